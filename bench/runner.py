"""One run: train a method on a dataset from a resolved config, probe it, write its folder.

results/runs/<run-id>/ holds config.json, env.json, losses.csv (written per epoch),
checkpoint.pt, metrics.csv, and status.json, which says "complete" only once all the others exist.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import time
import traceback
from pathlib import Path

import pandas as pd
import torch
from torchvision.utils import save_image
from tqdm.auto import tqdm

from bench import evaluate, figures, results
from bench.config import RunConfig
from bench.environment import environment, peak_memory_mb
from bench.errors import RunFailed, first_line
from bench.train import Interrupted, Progress, StopOnSignal, train
from datasets import ImageSet
from datasets.samplers import BatchSampler, PairedTrainingData, PairSampler
from methods import METHODS, Method


def derive_seed(seed: int, stream: str) -> int:
    """Independent seeds for the run's random streams (network init, pairs, batches, probes)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:8], "little") >> 1


def build(config: RunConfig, data: ImageSet, device: torch.device) -> tuple[Method, PairedTrainingData]:
    """The method and its training data source, seeded from ``config.seed``."""
    def generator(stream: str) -> torch.Generator:
        g = torch.Generator(device=device)
        g.manual_seed(derive_seed(config.seed, stream))
        return g

    batch_size = config.method_config.batch_size
    method = METHODS[config.method](config.method_config, data.image_shape, device,
                                    derive_seed(config.seed, "method"))
    feed = PairedTrainingData(data.train_images,
                              PairSampler(data.train_labels, batch_size, generator("pairs")),
                              BatchSampler(len(data.train_images), batch_size, generator("batches"),
                                           device))
    return method, feed


def iterations_per_epoch(config: RunConfig, data: ImageSet) -> int:
    return (config.settings.iterations_per_epoch
            or len(data.train_images) // config.method_config.batch_size)


def _run_columns(config: RunConfig) -> dict:
    c = config.method_config
    return dict(run_id=config.run_id, method=config.method, dataset=config.dataset,
                preset=config.preset, seed=config.seed, z_dim=c.z_dim, s_dim=c.s_dim)


def metric_rows(config: RunConfig, accuracies: dict[tuple[str, str], float]) -> list[dict]:
    return [dict(_run_columns(config), probe=probe, split=split,
                 accuracy=round(accuracies[probe, split], 4))
            for probe in results.PROBES for split in results.SPLITS]


def factor_rows(config: RunConfig, data: ImageSet,
                accuracies: dict[tuple[str, str, str], float]) -> list[dict]:
    return [dict(_run_columns(config), factor=factor, unspecified=factor in data.unspecified_factors,
                 code=code, split=split, accuracy=round(value, 4),
                 chance=round(100.0 / data.factor_sizes[factor], 4))
            for (factor, code, split), value in accuracies.items()]


def disentanglement_rows(config: RunConfig, scores) -> list[dict]:
    rows = []
    for metric, overall, per_factor in (("MIG", scores.mig, scores.per_factor_mig),
                                        ("SAP", scores.sap, scores.per_factor_sap)):
        for factor, value in [("all", overall), *per_factor.items()]:
            rows.append(dict(_run_columns(config), code="z_mean", metric=metric, factor=factor,
                             value=round(float(value), 4)))
    return rows


def write_table(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    lines = [",".join(columns)]
    lines += [",".join(str(row[column]) for column in columns) for row in rows]
    results.write_text_atomic(path, "\n".join(lines) + "\n")


def write_metrics(path: Path, rows: list[dict]) -> None:
    write_table(path, results.METRICS_COLUMNS, rows)


class LossLog:
    """losses.csv: one row per iteration (epoch, iteration, every loss term), rewritten atomically
    once per epoch (the text of earlier epochs is kept, only the new rows are formatted).

    Opened at a checkpoint's ``logged_rows``: rows past it (an epoch logged before a kill that came
    ahead of its checkpoint) are dropped, so the log always matches the checkpoint."""

    def __init__(self, path: Path, label: str, logged_rows: int):
        self.path, self.label, self.started = path, label, time.perf_counter()
        self.lines: list[str] = []
        if logged_rows:
            lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
            if len(lines) < logged_rows + 1:
                raise CorruptRun(f"{path} holds {max(len(lines) - 1, 0)} rows, its checkpoint "
                                 f"{logged_rows}")
            self.lines = lines[:logged_rows + 1]

    def __call__(self, epoch: int, names: list[str], losses: torch.Tensor) -> None:
        first = (epoch - 1) * len(losses) + 1
        if not self.lines:
            self.lines.append(",".join(["epoch", "iteration", *names]) + "\n")
        self.lines += [",".join([str(epoch), str(first + i), *(f"{v:.6g}" for v in row)]) + "\n"
                       for i, row in enumerate(losses.tolist())]
        results.write_text_atomic(self.path, "".join(self.lines))
        means = ", ".join(f"{n} {v:.4g}" for n, v in zip(names, losses.mean(0).tolist()))
        tqdm.write(f"{self.label} epoch {epoch}: {means} "
                   f"({time.perf_counter() - self.started:.0f} s)")


class CorruptRun(Exception):
    """A run folder or checkpoint that cannot be resumed."""


class RunLock:
    """An exclusive lock on one run id (``locks/<run-id>.lock`` beside ``runs/``), held while a
    process works on the run.

    flock locks die with their process, SIGKILL included: a lock left by a dead process is free
    for the next one. (flock may not be honoured across machines on some network filesystems.)"""

    def __init__(self, run_dir: Path):
        self.path = run_dir.parent.parent / "locks" / f"{run_dir.name}.lock"
        self.handle = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            self.handle = None
            return False
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def load_checkpoint(path: Path, config: RunConfig) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        progress = state["progress"]
        method_state, data_state = state["method"], state["data"]
    except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is reported the same way
        raise CorruptRun(f"corrupt checkpoint {path} ({first_line(error)})") from None
    if state.get("config") != config.to_dict():
        raise CorruptRun(f"checkpoint {path} was written for another config")
    return {"progress": Progress(**progress), "method": method_state, "data": data_state}


def write_figures(config: RunConfig, method: Method, data: ImageSet, test_codes, run_dir: Path) -> None:
    """The run's t-SNE of z (tsne.csv and tsne.png), swap grid and training curves, and the
    parameters that made them (figures.json)."""
    label = f"{config.method}, z/s {config.method_config.z_dim}/{config.method_config.s_dim}, " \
            f"seed {config.seed}, {config.preset} preset"
    points = min(config.settings.tsne_points or len(data.test_labels), len(data.test_labels))
    tsne_seed = derive_seed(config.seed, "tsne") % 2**31
    generator = torch.Generator(device=method.device).manual_seed(derive_seed(config.seed, "z sample"))
    labels = data.test_labels[:points].cpu().numpy()
    tables, panels = [], []
    for code, values in evaluate.z_codes_to_embed(test_codes, generator).items():
        xy = evaluate.tsne_embedding(values[:points].cpu().numpy(), tsne_seed)
        tables.append(pd.DataFrame({"code": code, "index": range(points), "label": labels,
                                    "x": xy[:, 0], "y": xy[:, 1]}))
        panels.append(figures.Panel(figures.CODE_TITLES[code], xy, labels))
    results.write_atomic(run_dir / results.TSNE_FILE,
                         lambda tmp: pd.concat(tables).to_csv(tmp, index=False, float_format="%.4f"))
    figures.plot_embeddings([panels], run_dir / results.FIGURES["tsne"],
                            f"t-SNE of z on {points} test images: {label}", data.num_classes,
                            data.label_name)

    s_index, z_index = evaluate.swap_header_indices(data.test_labels)
    s_images, z_images = data.test_images[s_index], data.test_images[z_index]
    grid = evaluate.swap_grid_image(evaluate.swap_cells(method, z_images, s_images), z_images, s_images)
    results.write_atomic(run_dir / results.FIGURES["swap_grid"],
                         lambda tmp: save_image(grid, tmp, format="png"))

    losses = pd.read_csv(run_dir / results.LOSSES_FILE)
    figures.plot_curves(losses, run_dir / results.FIGURES["curves"], f"Training: {label}")
    results.write_json_atomic(run_dir / results.FIGURES_FILE, {
        "tsne": {"points": points, "which": "the first test images", "seed": tsne_seed,
                 "codes": [t.code.iloc[0] for t in tables], "library": "openTSNE",
                 "classes": data.num_classes, "label_name": data.label_name,
                 "parameters": evaluate.TSNE_PARAMETERS},
        "swap_grid": {"rule": f"columns (s): the first test image of each of up to "
                              f"{evaluate.SWAP_CLASSES} classes spread over the sorted classes; "
                              "rows (z): the second",
                      "s_images": s_index, "z_images": z_index,
                      "cell": "Dec(z_mean of row image, s of column image)"}})


def execute(config: RunConfig, data: ImageSet, results_dir: Path, device: torch.device,
            stop: StopOnSignal, restart: bool = False, cuda_graphs: bool = False) -> str:
    """Train, probe and record one run, resuming from its checkpoint when it has one
    (``cuda_graphs``: training iterations as CUDA graph replays, bench/graphs.py).

    Returns "complete", "skipped" (already complete) or "busy" (another process holds the run);
    raises RunFailed (recorded in the run's folder) or Interrupted (after a checkpoint)."""
    run_dir = results.runs_dir(results_dir) / config.run_id
    label = f"{config.run_id} (seed {config.seed}, z/s {config.method_config.z_dim}/" \
            f"{config.method_config.s_dim})"
    lock = RunLock(run_dir)
    if not lock.acquire():
        tqdm.write(f"busy {label}: another process (pid {lock.holder()}) is working on it")
        return "busy"
    try:
        if results.is_complete(run_dir):  # --restart never discards a complete run
            tqdm.write(f"skip {label}: already complete in {run_dir}")
            return "skipped"
        return _execute_locked(config, data, run_dir, device, stop, restart, label, cuda_graphs)
    finally:
        lock.release()


def _execute_locked(config: RunConfig, data: ImageSet, run_dir: Path, device: torch.device,
                    stop: StopOnSignal, restart: bool, label: str, cuda_graphs: bool) -> str:
    checkpoint_path = run_dir / results.CHECKPOINT_FILE
    if restart and run_dir.exists():
        shutil.rmtree(run_dir)
    restart_hint = f"rerun with --restart to discard this run's folder {run_dir} and train it again"
    try:
        resumed = load_checkpoint(checkpoint_path, config) if checkpoint_path.is_file() else None
    except CorruptRun as error:
        raise RunFailed(f"{error}: {restart_hint}") from None
    if resumed is None:
        if run_dir.exists():  # an attempt that stopped before its first checkpoint
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        results.write_json_atomic(run_dir / results.CONFIG_FILE, {
            **config.to_dict(), "run_id": config.run_id,
            "variational_z": METHODS[config.method].variational})
        tqdm.write(f"run {label}")
    else:
        for leftover in (results.STATUS_FILE, results.ERROR_FILE):  # of a failure being retried
            (run_dir / leftover).unlink(missing_ok=True)
        p = resumed["progress"]
        tqdm.write(f"resume {label} from its checkpoint (epoch {p.epoch}, iteration {p.iteration})")
    results.write_json_atomic(run_dir / results.ENV_FILE, environment(device, cuda_graphs))
    try:
        accuracies, seconds = _train_and_evaluate(config, data, run_dir, device, stop, resumed,
                                                  cuda_graphs)
    except RunFailed as failure:
        _record_failure(run_dir, str(failure))
        raise
    except CorruptRun as error:
        _record_failure(run_dir, f"{error}: {restart_hint}")
        raise RunFailed(f"{error}: {restart_hint}") from None
    except Interrupted:
        raise
    except Exception as error:  # noqa: BLE001 - contained: this run fails, the others go on
        results.write_text_atomic(run_dir / results.ERROR_FILE, traceback.format_exc())
        reason = (f"{config.method}: {type(error).__name__}: {first_line(error, default='')} "
                  "(traceback in error.log)")
        _record_failure(run_dir, reason)
        raise RunFailed(reason) from error
    results.write_json_atomic(run_dir / results.STATUS_FILE, {
        "state": results.COMPLETE, **seconds})
    summary = ", ".join(f"{p} {sp} {a:.2f}" for (p, sp), a in accuracies.items() if sp == "test")
    tqdm.write(f"done {config.run_id}: test accuracy {summary}")
    return "complete"


def _record_failure(run_dir: Path, reason: str) -> None:
    results.write_json_atomic(run_dir / results.STATUS_FILE, {"state": results.FAILED, "reason": reason})


def _evaluate(config: RunConfig, data: ImageSet, train_codes, test_codes, run_dir: Path,
              stop: StopOnSignal) -> dict[tuple[str, str], float]:
    """Probe the codes and write metrics.csv, evaluation.json and, for datasets with known factors,
    factors.csv and disentanglement.csv; returns the class probes' accuracies."""
    s = config.settings
    probe_options = dict(epochs=s.probe_epochs, batch_size=s.probe_batch_size, lr=s.probe_lr,
                         seed=derive_seed(config.seed, "probe"))
    accuracies, protocol = evaluate.probe_accuracies(train_codes, test_codes, data, **probe_options)
    stop.check()
    evaluation = {"probes": {"specified": protocol}}
    if data.train_factors:
        found, protocols = evaluate.factor_probe_accuracies(train_codes, test_codes, data,
                                                            **probe_options)
        write_table(run_dir / results.FACTORS_FILE, results.FACTOR_COLUMNS,
                    factor_rows(config, data, found))
        evaluation["probes"].update(protocols)
        evaluation["factor_probe_codes"] = list(evaluate.FACTOR_PROBE_CODES)
        stop.check()
    scores = evaluate.disentanglement_scores(train_codes, test_codes, data,
                                             seed=derive_seed(config.seed, "disentanglement") % 2**31)
    if scores is not None:
        write_table(run_dir / results.DISENTANGLEMENT_FILE, results.DISENTANGLEMENT_COLUMNS,
                    disentanglement_rows(config, scores))
        evaluation["disentanglement"] = {"code": "z_mean", "factors": list(data.unspecified_factors),
                                         "definitions": "disentanglement_lib: MIG with 20-bin "
                                                        "histograms, SAP with a LinearSVC per dimension"}
    results.write_json_atomic(run_dir / results.EVALUATION_FILE, evaluation)
    write_metrics(run_dir / results.METRICS_FILE, metric_rows(config, accuracies))
    return accuracies


def _train_and_evaluate(config: RunConfig, data: ImageSet, run_dir: Path, device: torch.device,
                        stop: StopOnSignal, resumed: dict | None, cuda_graphs: bool):
    data = data.head(config.settings.train_size, config.settings.test_size)
    method, feed = build(config, data, device)
    progress = Progress()
    if resumed is not None:
        method.load_state_dict(resumed["method"])
        feed.load_state_dict(resumed["data"])
        progress = resumed["progress"]

    def save(p: Progress) -> None:
        state = {"config": config.to_dict(), "method": method.state_dict(),
                 "data": feed.state_dict(), "progress": p.state_dict()}
        results.write_atomic(run_dir / results.CHECKPOINT_FILE, lambda tmp: torch.save(state, tmp))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    train(method, feed, epochs=config.method_config.epochs,
          iterations_per_epoch=iterations_per_epoch(config, data),
          on_epoch_end=LossLog(run_dir / results.LOSSES_FILE, config.run_id, progress.logged_rows),
          checkpoint=save, stop=stop, start=progress, label=config.run_id, cuda_graphs=cuda_graphs)
    train_seconds = time.perf_counter() - started
    stop.check()
    train_codes = evaluate.encode_all(method, data.train_images)
    test_codes = evaluate.encode_all(method, data.test_images)
    accuracies = _evaluate(config, data, train_codes, test_codes, run_dir, stop)
    write_figures(config, method, data, test_codes, run_dir)
    return accuracies, {"train_seconds": round(train_seconds, 2),
                        "total_seconds": round(time.perf_counter() - started, 2),
                        # CUDA: this run's peak; CPU: the process's (all its runs so far)
                        "peak_memory_mb": round(peak_memory_mb(device), 1)}
