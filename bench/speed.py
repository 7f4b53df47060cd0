"""python -m bench speed: milliseconds per training iteration of each method at the paper's config."""
from __future__ import annotations

import time

import torch

from bench.config import resolve
from bench.environment import device_name, peak_memory_mb, tf32_allowed
from bench.graphs import EAGER_STEPS, GraphedStep
from bench.build import build, iterations_per_epoch
from datasets import ImageSet


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_iterations(step, method, feed, iterations: int, warmup: int) -> float:
    """Seconds per ``step(method, feed)`` after ``warmup`` untimed steps."""
    for _ in range(warmup):
        step(method, feed)
    synchronise(method.device)
    started = time.perf_counter()
    for _ in range(iterations):
        step(method, feed)
    synchronise(method.device)
    return (time.perf_counter() - started) / iterations


def no_twin_line(name: str) -> str:
    """What ``--compare`` says of a method without a straightforward twin."""
    return f"{name}: no straightforward twin to compare with (methods/straightforward.py)"


def measure_speed(methods: list[str], data: ImageSet, device: torch.device, *, iterations: int,
                  warmup: int, compare: bool = False, cuda_graphs: bool = False) -> list[dict]:
    """Time each method's training step (with ``cuda_graphs``, as CUDA graph replays); with
    ``compare``, also its straightforward twin (methods/straightforward.py), where it has one, in
    the same process, from the same initial state; a method without one gets a line saying so."""
    from methods.straightforward import STRAIGHTFORWARD
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
        config = resolve(name, data.name, "paper", seed=0)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        method, feed = build(config, data, device)
        step = type(method).train_step
        if cuda_graphs:
            graphed = GraphedStep(method, feed)
            step = lambda method, feed: graphed()  # noqa: E731
        seconds = time_iterations(step, method, feed, iterations, warmup)
        paper_minutes = seconds * iterations_per_epoch(config, data) * config.method_config.epochs / 60
        row = {"method": name, "cuda_graphs": cuda_graphs, "ms_per_iteration": 1000 * seconds,
               "images_per_second": config.method_config.batch_size / seconds,
               "paper_training_minutes": paper_minutes, "peak_memory_mb": peak_memory_mb(device)}
        line = (f"{name:<10} {row['ms_per_iteration']:>8.1f} {row['images_per_second']:>9.0f} "
                f"{paper_minutes:>11.0f} min {row['peak_memory_mb']:>20.0f}")
        note = None
        if compare and name in STRAIGHTFORWARD:
            twin, twin_feed = build(config, data, device)
            plain = time_iterations(STRAIGHTFORWARD[name], twin, twin_feed, iterations, warmup)
            row |= {"straightforward_ms_per_iteration": 1000 * plain, "speed_up": plain / seconds}
            line += f" {1000 * plain:>24.1f} {plain / seconds:>8.2f}x"
        elif compare:  # a twin is optional (docs/methods.md, "Straightforward twins")
            line += f" {'-':>24} {'-':>9}"
            note = no_twin_line(name)
        print(line)
        if note:
            print(note)
        rows.append(row)
    measure_probes(data, device, compare)
    return rows


def measure_probes(data: ImageSet, device: torch.device, compare: bool) -> None:
    """Time one epoch of a run's three latent probes (s, z_mean, z_sample: 16-d codes of the
    training set's size), trained side by side as they are in a run; with ``compare``, also one
    by one. Prints what the paper preset's probes cost per run."""
    from bench.probes import LatentCode, fit_probe, fit_probes
    settings = resolve("ccvae", data.name, "paper", seed=0).settings
    labels = data.train_labels
    mean = torch.randn(len(labels), 16, device=device)
    codes = [LatentCode(mean), LatentCode(mean.flip(1)), LatentCode(mean, torch.ones_like(mean))]
    options = dict(epochs=1, batch_size=settings.probe_batch_size, lr=settings.probe_lr, seed=0)

    def seconds(probe) -> float:
        started = time.perf_counter()
        probe()
        synchronise(device)
        return time.perf_counter() - started

    iterations = len(labels) // settings.probe_batch_size
    warm = [code.subset(slice(640)) for code in codes]
    fit_probes(warm, labels[:640], warm, labels[:640], data.num_classes, **options)  # one-time setup
    together = seconds(lambda: fit_probes(codes, labels, codes, labels, data.num_classes, **options))
    line = (f"latent probes ({len(codes)} side by side, as in a run): "
            f"{1000 * together / iterations:.2f} ms/iter over one epoch of {iterations} iterations "
            f"(evaluation included); the paper preset's {settings.probe_epochs} epochs: "
            f"{together * settings.probe_epochs / 60:.0f} min per run")
    if compare:
        alone = seconds(lambda: [fit_probe(code, labels, code, labels, data.num_classes, **options)
                                 for code in codes])
        line += f"; one by one {1000 * alone / iterations:.2f} ms/iter ({alone / together:.2f}x)"
    print(line)


def measure_tsne(data: ImageSet, device: torch.device, points: int) -> float:
    """Seconds for the t-SNE of the 16-d posterior means of ``points`` test images (an untrained
    cycle-consistent VAE's encoder: the same size and kind of input as a trained one's)."""
    from bench.evaluate import encode_all, tsne_embedding
    method, _ = build(resolve("ccvae", data.name, "paper", seed=0), data, device)
    codes = encode_all(method, data.test_images[:points]).z_mean.cpu().numpy()
    started = time.perf_counter()
    tsne_embedding(codes, seed=0)
    seconds = time.perf_counter() - started
    print(f"t-SNE of {len(codes)} points of dimension {codes.shape[1]} (openTSNE, FFT gradients, "
          f"{torch.get_num_threads()} threads): {seconds:.1f} s")
    return seconds
