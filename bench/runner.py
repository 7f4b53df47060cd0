"""One run: train a method on a dataset from a resolved config, probe it, write its folder.

results/runs/<run-id>/ holds config.json, env.json, losses.csv (written per epoch),
checkpoint.pt, metrics.csv, and status.json, which says "complete" only once all the others exist.
"""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pandas as pd
import torch
from torchvision.utils import save_image
from tqdm.auto import tqdm

from bench import results
from bench.config import RunConfig
from bench.environment import environment
from bench.errors import RunFailed
from bench import evaluate, figures
from bench.train import train
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


def metric_rows(config: RunConfig, accuracies: dict[tuple[str, str], float]) -> list[dict]:
    c = config.method_config
    return [dict(run_id=config.run_id, method=config.method, dataset=config.dataset,
                 preset=config.preset, seed=config.seed, z_dim=c.z_dim, s_dim=c.s_dim,
                 probe=probe, split=split, accuracy=round(accuracies[probe, split], 4))
            for probe in results.PROBES for split in results.SPLITS]


def write_metrics(path: Path, rows: list[dict]) -> None:
    lines = [",".join(results.METRICS_COLUMNS)]
    lines += [",".join(str(row[column]) for column in results.METRICS_COLUMNS) for row in rows]
    results.write_text_atomic(path, "\n".join(lines) + "\n")


class LossLog:
    """losses.csv: one row per iteration (epoch, iteration, every loss term), appended per epoch."""

    def __init__(self, path: Path, label: str):
        self.path, self.label, self.started = path, label, time.perf_counter()
        path.unlink(missing_ok=True)

    def __call__(self, epoch: int, names: list[str], losses: torch.Tensor) -> None:
        first = (epoch - 1) * len(losses) + 1
        with self.path.open("a") as out:
            if epoch == 1:
                out.write(",".join(["epoch", "iteration", *names]) + "\n")
            for i, row in enumerate(losses.tolist()):
                out.write(",".join([str(epoch), str(first + i), *(f"{v:.6g}" for v in row)]) + "\n")
        means = ", ".join(f"{n} {v:.4g}" for n, v in zip(names, losses.mean(0).tolist()))
        tqdm.write(f"{self.label} epoch {epoch}: {means} "
                   f"({time.perf_counter() - self.started:.0f} s)")


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
                            f"t-SNE of z on {points} test images: {label}", data.num_classes)

    s_index, z_index = evaluate.swap_header_indices(data.test_labels, data.num_classes)
    s_images, z_images = data.test_images[s_index], data.test_images[z_index]
    grid = evaluate.swap_grid_image(evaluate.swap_cells(method, z_images, s_images), z_images, s_images)
    results.write_atomic(run_dir / results.FIGURES["swap_grid"],
                         lambda tmp: save_image(grid, tmp, format="png"))

    losses = pd.read_csv(run_dir / results.LOSSES_FILE)
    figures.plot_curves(losses, run_dir / results.FIGURES["curves"], f"Training: {label}")
    results.write_json_atomic(run_dir / results.FIGURES_FILE, {
        "tsne": {"points": points, "which": "the first test images", "seed": tsne_seed,
                 "codes": [t.code.iloc[0] for t in tables], "library": "openTSNE",
                 "parameters": evaluate.TSNE_PARAMETERS},
        "swap_grid": {"rule": "columns (s): the first test image of each class; rows (z): the second",
                      "s_images": s_index, "z_images": z_index,
                      "cell": "Dec(z_mean of row image, s of column image)"}})


def execute(config: RunConfig, data: ImageSet, results_dir: Path, device: torch.device) -> str:
    """Train, probe and record one run; returns "skipped" or "complete", raises RunFailed."""
    run_dir = results.runs_dir(results_dir) / config.run_id
    label = f"{config.run_id} (seed {config.seed}, z/s {config.method_config.z_dim}/" \
            f"{config.method_config.s_dim})"
    if results.is_complete(run_dir):
        tqdm.write(f"skip {label}: already complete in {run_dir}")
        return "skipped"
    if run_dir.exists():  # an earlier attempt that did not complete: start it over
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    tqdm.write(f"run {label}")
    results.write_json_atomic(run_dir / results.CONFIG_FILE, {
        **config.to_dict(), "run_id": config.run_id,
        "variational_z": METHODS[config.method].variational})
    results.write_json_atomic(run_dir / results.ENV_FILE, environment(device))
    try:
        data = data.head(config.settings.train_size, config.settings.test_size)
        method, feed = build(config, data, device)
        started = time.perf_counter()
        train(method, feed, epochs=config.method_config.epochs,
              iterations_per_epoch=iterations_per_epoch(config, data),
              on_epoch_end=LossLog(run_dir / results.LOSSES_FILE, config.run_id), label=config.run_id)
        train_seconds = time.perf_counter() - started
        results.write_atomic(run_dir / results.CHECKPOINT_FILE, lambda tmp: torch.save(
            {"config": config.to_dict(), "method": method.state_dict(), "data": feed.state_dict()},
            tmp))
        s = config.settings
        train_codes = evaluate.encode_all(method, data.train_images)
        test_codes = evaluate.encode_all(method, data.test_images)
        accuracies = evaluate.probe_accuracies(train_codes, test_codes, data, epochs=s.probe_epochs,
                                               batch_size=s.probe_batch_size, lr=s.probe_lr,
                                               seed=derive_seed(config.seed, "probe"))
        write_metrics(run_dir / results.METRICS_FILE, metric_rows(config, accuracies))
        write_figures(config, method, data, test_codes, run_dir)
    except RunFailed as failure:
        results.write_json_atomic(run_dir / results.STATUS_FILE,
                                  {"state": results.FAILED, "reason": str(failure)})
        raise
    results.write_json_atomic(run_dir / results.STATUS_FILE, {
        "state": results.COMPLETE, "train_seconds": round(train_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2)})
    summary = ", ".join(f"{p} {sp} {a:.2f}" for (p, sp), a in accuracies.items() if sp == "test")
    tqdm.write(f"done {config.run_id}: test accuracy {summary}")
    return "complete"
