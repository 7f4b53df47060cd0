"""python -m bench speed: milliseconds per training iteration of each method at the paper's config."""
from __future__ import annotations

import gc
import time
from typing import Callable

import torch

from bench import progress
from bench.run.build import build, iterations_per_epoch
from bench.spec.config import resolve
from bench.run.environment import device_name, peak_memory_mb, tf32_allowed
from bench.run.graphs import EAGER_STEPS, GraphedStep
from datasets import ImageSet


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_iterations(step, method, feed, iterations: int, warmup: int,
                    device: torch.device | None = None) -> float:
    """Seconds per ``step(method, feed)`` after ``warmup`` untimed steps."""
    device = device or method.device
    for _ in range(warmup):
        step(method, feed)
    synchronise(device)
    started = time.perf_counter()
    for _ in range(iterations):
        step(method, feed)
    synchronise(device)
    return (time.perf_counter() - started) / iterations


def time_phases(step, method, feed, iterations: int, warmup: int,
                epochs: int) -> list[tuple[float, int]]:
    """(seconds per iteration, epochs) of each phase of a method's training, in order. A method
    whose step changes between epochs (``Method.phase``: LORD's two stages) is timed in each
    phase, reached by ending epochs as training would; others have one phase of ``epochs``."""
    phases, done = [], 0
    while done < epochs:
        seconds = time_iterations(step, method, feed, iterations, warmup)
        phase, started = method.phase, done
        while done < epochs and method.phase == phase:
            method.end_epoch()
            done += 1
        phases.append((seconds, done - started))
    return phases


def no_twin_line(name: str) -> str:
    """What ``--compare`` says of a method without a straightforward twin."""
    return f"{name}: no straightforward twin to compare with (methods/straightforward.py)"


def measure_speed(methods: list[str], data: ImageSet, device: torch.device, *, iterations: int,
                  warmup: int, compare: bool = False, cuda_graphs: bool = False) -> list[dict]:
    """Time each method's training step (with ``cuda_graphs``, as CUDA graph replays); with
    ``compare``, also its straightforward twin (methods/straightforward.py), where it has one, in
    the same process, from the same initial state; a method without one gets a line saying so."""
    memory = "peak MB" if device.type == "cuda" else "process peak RSS MB"
    if cuda_graphs:  # the timed iterations are replays, not the eager steps or the capture
        warmup = max(warmup, EAGER_STEPS + 1)
    precision = f", TF32 {'allowed' if tf32_allowed() else 'off'}" if device.type == "cuda" else ""
    print(f"device: {device} ({device_name(device)}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads{precision}, batch 64, {iterations} timed iterations "
          f"after {warmup} warm-up; training step: "
          f"{'CUDA graph replays' if cuda_graphs else 'eager'}")
    header = f"{'method':<10} {'ms/iter':>8} {'images/s':>9} {'paper training':>15} {memory:>20}"
    print(header + (f" {'straightforward ms/iter':>24} {'speed-up':>9}" if compare else ""))
    rows = []
    for name in methods:
        row, line, notes = _time_method(name, data, device, iterations, warmup, compare, cuda_graphs)
        print(line)
        for note in notes:
            print(note)
        rows.append(row)
    measure_probes(data, device, compare)
    return rows


def _time_method(name: str, data: ImageSet, device: torch.device, iterations: int, warmup: int,
                 compare: bool, cuda_graphs: bool) -> tuple[dict, str, list[str]]:
    """One row of ``measure_speed``. Its own function so that the method, its graph and its twin
    are freed when it returns: the next method's peak memory starts from what is left."""
    from methods.straightforward import STRAIGHTFORWARD
    config = resolve(name, data.name, "paper", seed=0)
    if device.type == "cuda":
        gc.collect()  # what an earlier method left in reference cycles
        torch.cuda.reset_peak_memory_stats(device)
    method, feed = build(config, data, device)
    step = type(method).train_step
    if cuda_graphs:
        graphed = GraphedStep(method, feed)
        step = lambda method, feed: graphed()  # noqa: E731
    epochs = config.method_config.training_epochs
    phases = time_phases(step, method, feed, iterations, warmup, epochs)
    seconds = sum(s * e for s, e in phases) / epochs  # per iteration, over the whole training
    paper_minutes = seconds * iterations_per_epoch(config, data) * epochs / 60
    row = {"method": name, "cuda_graphs": cuda_graphs, "ms_per_iteration": 1000 * seconds,
           "images_per_second": config.method_config.batch_size / seconds,
           "paper_training_minutes": paper_minutes, "peak_memory_mb": peak_memory_mb(device)}
    line = (f"{name:<10} {row['ms_per_iteration']:>8.1f} {row['images_per_second']:>9.0f} "
            f"{paper_minutes:>11.0f} min {row['peak_memory_mb']:>20.0f}")
    notes = []
    if len(phases) > 1:
        notes.append(f"{name}: ms/iter is the mean over its training; by phase " + ", ".join(
            f"{1000 * s:.1f} ms/iter for {e} epochs" for s, e in phases))
    if compare and name in STRAIGHTFORWARD:
        twin, twin_feed = build(config, data, device)
        plain = time_iterations(STRAIGHTFORWARD[name], twin, twin_feed, iterations, warmup)
        row |= {"straightforward_ms_per_iteration": 1000 * plain, "speed_up": plain / seconds}
        line += f" {1000 * plain:>24.1f} {plain / seconds:>8.2f}x"
    elif compare:  # a twin is optional (docs/methods.md, "Straightforward twins")
        line += f" {'-':>24} {'-':>9}"
        notes.append(no_twin_line(name))
    return row, line, notes


def measure_together(methods: list[str], data: ImageSet, device: torch.device, runs: int, *,
                     iterations: int, warmup: int, cuda_graphs: bool = False) -> list[dict]:
    """Per method, the aggregate training iterations per second of ``runs`` runs (seeds 0, 1, ...)
    trained one by one and trained together as `bench run --together` trains them: in turn, one
    iteration each, on CUDA each on its own stream (bench/run/together.py)."""
    if cuda_graphs:
        warmup = max(warmup, EAGER_STEPS + 1)
    print(f"device: {device} ({device_name(device)}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {runs} runs per method, {iterations} timed "
          f"iterations of each after {warmup} warm-up; training step: "
          f"{'CUDA graph replays' if cuda_graphs else 'eager'}")
    memory = "peak MB" if device.type == "cuda" else "process peak RSS MB"
    print(f"{'method':<10} {'one by one it/s':>16} {'together it/s':>14} {'speed-up':>9} "
          f"{memory:>20}")
    rows = []
    members: list = []
    for name in methods:
        del members[:]  # the previous method's runs, freed before this one's are built
        gc.collect()
        for seed in range(runs):
            stream = torch.cuda.Stream(device) if device.type == "cuda" else None
            members.append((_together_step(name, data, device, seed, cuda_graphs, stream), stream))
        one_by_one = sum(time_iterations(lambda _method, _feed, step=step: step(), None, None,
                                         iterations, warmup, device)
                         for step, _ in members) / runs  # seconds per iteration
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        def in_turn(count: int) -> None:
            for _ in range(count):
                for step, stream in members:
                    if stream is None:
                        step()
                    else:
                        with torch.cuda.stream(stream):
                            step()
        in_turn(warmup)
        synchronise(device)  # every stream of the device
        started = time.perf_counter()
        in_turn(iterations)
        synchronise(device)  # every stream of the device
        together = (time.perf_counter() - started) / (iterations * runs)
        row = {"method": name, "runs": runs, "cuda_graphs": cuda_graphs,
               "one_by_one_iterations_per_second": 1 / one_by_one,
               "together_iterations_per_second": 1 / together, "speed_up": one_by_one / together,
               "peak_memory_mb": peak_memory_mb(device)}
        print(f"{name:<10} {row['one_by_one_iterations_per_second']:>16.1f} "
              f"{row['together_iterations_per_second']:>14.1f} {row['speed_up']:>8.2f}x "
              f"{row['peak_memory_mb']:>20.0f}")
        rows.append(row)
    measure_probes_together(data, device, runs * len(methods), iterations)
    return rows


def _together_step(name: str, data: ImageSet, device: torch.device, seed: int, cuda_graphs: bool,
                   stream) -> Callable[[], object]:
    """One run's training step for ``measure_together``; its graph is captured on ``stream``, the
    run's own, as runs trained together capture theirs."""
    method, feed = build(resolve(name, data.name, "paper", seed=seed), data, device)
    if not cuda_graphs:
        return lambda: method.train_step(feed)
    with torch.cuda.stream(stream):
        graphed = GraphedStep(method, feed)
    return graphed


def measure_probes_together(data: ImageSet, device: torch.device, runs: int, iterations: int) -> None:
    """Time ``iterations`` probe iterations (and the predictions that follow them) of ``runs``
    runs' three probes each: fitted side by side as runs trained together fit them, and run by
    run (three side by side, as a run alone fits them)."""
    from bench.metrics.probe_classifier import LatentCode, ProbeTask, fit_probe_tasks
    settings = resolve("ccvae", data.name, "paper", seed=0).settings
    n = min(iterations * settings.probe_batch_size, len(data.train_labels))
    labels = data.train_labels[:n]
    generator = torch.Generator(device=device).manual_seed(0)
    tasks = []
    for run in range(runs):
        mean = torch.randn(n, 16, device=device, generator=generator)
        tasks += [ProbeTask(code, labels, code, labels, run) for code in
                  (LatentCode(mean), LatentCode(mean.flip(1)), LatentCode(mean, torch.ones_like(mean)))]
    options = dict(epochs=1, batch_size=settings.probe_batch_size, lr=settings.probe_lr,
                   bar=progress.bar)
    fit_probe_tasks(tasks[:3], data.num_classes, **options)  # one-time setup

    def seconds(groups) -> float:
        started = time.perf_counter()
        for group in groups:
            fit_probe_tasks(group, data.num_classes, **options)
        synchronise(device)
        return time.perf_counter() - started

    stacked = seconds([tasks])
    run_by_run = seconds([tasks[i:i + 3] for i in range(0, len(tasks), 3)])
    steps = n // settings.probe_batch_size
    print(f"latent probes of {runs} runs (3 each, {steps} iterations, predictions included): "
          f"side by side {1000 * stacked / steps:.2f} ms/iter, run by run "
          f"{1000 * run_by_run / steps:.2f} ms/iter ({run_by_run / stacked:.2f}x)")


def measure_probes(data: ImageSet, device: torch.device, compare: bool) -> None:
    """Time one epoch of a run's three latent probes (s, z_mean, z_sample: 16-d codes of the
    training set's size), trained side by side as they are in a run; with ``compare``, also one
    by one. Prints what the paper preset's probes cost per run."""
    from bench.metrics.probe_classifier import LatentCode, ProbeTask, fit_probe, fit_probe_tasks
    settings = resolve("ccvae", data.name, "paper", seed=0).settings
    labels = data.train_labels
    mean = torch.randn(len(labels), 16, device=device)
    codes = [LatentCode(mean), LatentCode(mean.flip(1)), LatentCode(mean, torch.ones_like(mean))]
    options = dict(epochs=1, batch_size=settings.probe_batch_size, lr=settings.probe_lr)

    def tasks(codes: list[LatentCode], labels: torch.Tensor) -> list[ProbeTask]:
        return [ProbeTask(code, labels, code, labels, seed=0) for code in codes]

    def seconds(probe) -> float:
        started = time.perf_counter()
        probe()
        synchronise(device)
        return time.perf_counter() - started

    iterations = len(labels) // settings.probe_batch_size
    warm = [code.subset(slice(640)) for code in codes]
    fit_probe_tasks(tasks(warm, labels[:640]), data.num_classes, **options)  # one-time setup
    together = seconds(lambda: fit_probe_tasks(tasks(codes, labels), data.num_classes, **options))
    line = (f"latent probes ({len(codes)} side by side, as in a run): "
            f"{1000 * together / iterations:.2f} ms/iter over one epoch of {iterations} iterations "
            f"(evaluation included); the paper preset's {settings.probe_epochs} epochs: "
            f"{together * settings.probe_epochs / 60:.0f} min per run")
    if compare:
        alone = seconds(lambda: [fit_probe(task, data.num_classes, **options)
                                 for task in tasks(codes, labels)])
        line += f"; one by one {1000 * alone / iterations:.2f} ms/iter ({alone / together:.2f}x)"
    print(line)


def measure_tsne(data: ImageSet, device: torch.device, points: int) -> float:
    """Seconds for the t-SNE of the 16-d posterior means of ``points`` test images (an untrained
    cycle-consistent VAE's encoder: the same size and kind of input as a trained one's)."""
    from bench.evaluations.encoding import encode_all
    from bench.evaluations.tsne_fit import tsne_embedding
    method, _ = build(resolve("ccvae", data.name, "paper", seed=0), data, device)
    codes = encode_all(method, data.test_images[:points]).z_mean.cpu().numpy()
    started = time.perf_counter()
    tsne_embedding(codes, seed=0)
    seconds = time.perf_counter() - started
    print(f"t-SNE of {len(codes)} points of dimension {codes.shape[1]} (openTSNE, FFT gradients, "
          f"{torch.get_num_threads()} threads): {seconds:.1f} s")
    return seconds
