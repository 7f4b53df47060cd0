"""A run's figures: the t-SNE of z (tsne.csv, tsne.png), the swap grid, the training curves, and
the parameters that made them (figures.json)."""
from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torchvision.utils import save_image
from tqdm.auto import tqdm

from bench import progress
from bench.evaluations import _encoding as evaluate
from bench.evaluations._tsne import parameters_for, tsne_embedding
from bench.report import figures
from bench.run.build import derive_seed
from bench.run.config import RunConfig
from bench.store import results
from datasets import ImageSet
from methods import Method


@dataclasses.dataclass(frozen=True)
class TsneInputs:
    """What a run's t-SNE embeds: each z code (``evaluate.z_codes_to_embed``) of the first test
    images, their labels, and the seed."""
    codes: dict[str, np.ndarray]
    labels: np.ndarray
    seed: int

    @property
    def points(self) -> int:
        return len(self.labels)


def tsne_inputs(config: RunConfig, method: Method, data: ImageSet, test_codes) -> TsneInputs:
    points = min(config.settings.tsne_points or len(data.test_labels), len(data.test_labels))
    generator = torch.Generator(device=method.device).manual_seed(derive_seed(config.seed, "z sample"))
    codes = {code: values[:points].cpu().numpy()
             for code, values in evaluate.z_codes_to_embed(test_codes, generator).items()}
    return TsneInputs(codes, data.test_labels[:points].cpu().numpy(),
                      derive_seed(config.seed, "tsne") % 2**31)


@dataclasses.dataclass(frozen=True)
class TsneWork:
    """A run's t-SNE embeddings computed elsewhere (CPU workers, bench/evaluations/_tsne_pool.py): its inputs,
    one future per code, and the threads each used."""
    inputs: TsneInputs
    embeddings: dict[str, Future]
    threads: int


def _worker_embedding(tsne: TsneWork, code: str, run_id: str) -> np.ndarray | None:
    """The embedding of ``code`` from its worker, or None (said) if the worker failed: it is
    then computed here, with the worker's number of threads, which gives the same embedding."""
    try:
        return tsne.embeddings[code].result()
    except Exception as error:  # noqa: BLE001 - a worker killed (out of memory) or failed
        tqdm.write(f"{run_id} t-SNE of {code}: the worker failed "
                            f"({type(error).__name__}: {error}); computing it here")
        return None


def write_figures(config: RunConfig, method: Method, data: ImageSet, test_codes, run_dir: Path,
                  tsne: TsneWork | None = None, curves: bool = True) -> None:
    """The run's t-SNE of z (tsne.csv and tsne.png), swap grid (when the method decodes: an
    external model may not) and training curves (``curves``: an external model has none), and
    the parameters that made them (figures.json). ``tsne``: the embeddings, already under way
    elsewhere (otherwise computed here, with torch's number of threads)."""
    label = f"{config.method}, z/s {config.method_config.z_dim}/{config.method_config.s_dim}, " \
            f"seed {config.seed}, {config.preset} preset"
    inputs = tsne.inputs if tsne is not None else tsne_inputs(config, method, data, test_codes)
    threads = tsne.threads if tsne is not None else torch.get_num_threads()
    points, labels = inputs.points, inputs.labels
    tables, panels = [], []
    for code, values in inputs.codes.items():
        where = "" if tsne is None else ", from a worker process"
        with progress.step(f"{config.run_id} t-SNE of {code} ({points} points{where})"):
            xy = None if tsne is None else _worker_embedding(tsne, code, config.run_id)
            if xy is None:
                xy = tsne_embedding(values, inputs.seed, n_jobs=threads)
        tables.append(pd.DataFrame({"code": code, "index": range(points), "label": labels,
                                    "x": xy[:, 0], "y": xy[:, 1]}))
        panels.append(figures.Panel(figures.CODE_TITLES[code], xy, labels))
    results.write_atomic(run_dir / results.TSNE_FILE,
                         lambda tmp: pd.concat(tables).to_csv(tmp, index=False, float_format="%.4f"))
    figures.plot_embeddings([panels], run_dir / results.FIGURES["tsne"],
                            f"t-SNE of z on {points} test images: {label}", data.num_classes,
                            data.label_name)

    drawn = {"tsne": {"points": points, "which": "the first test images", "seed": inputs.seed,
                      "threads": threads,  # openTSNE's result depends on its number of threads
                      "codes": [t.code.iloc[0] for t in tables], "library": "openTSNE",
                      "classes": data.num_classes, "label_name": data.label_name,
                      "parameters": parameters_for(points)}}
    if method.decodes:
        drawn["swap_grid"] = write_swap_grid(config, method, data, run_dir)
    if curves:
        with progress.step(f"{config.run_id} training curves"):
            losses = pd.read_csv(run_dir / results.LOSSES_FILE)
            figures.plot_curves(losses, run_dir / results.FIGURES["curves"], f"Training: {label}")
    results.write_json_atomic(run_dir / results.FIGURES_FILE, drawn)


def write_swap_grid(config: RunConfig, method: Method, data: ImageSet, run_dir: Path) -> dict:
    """The swap grid (swap_grid.png); returns what made it, for figures.json."""
    with progress.step(f"{config.run_id} swap grid"):
        s_index, z_index = evaluate.swap_header_indices(data.test_labels)
        s_images, z_images = data.test_images[s_index], data.test_images[z_index]
        grid = evaluate.swap_grid_image(evaluate.swap_cells(method, z_images, s_images), z_images,
                                        s_images)
        results.write_atomic(run_dir / results.FIGURES["swap_grid"],
                             lambda tmp: save_image(grid, tmp, format="png"))
    return {"rule": f"columns (s): the first test image of each of up to "
                    f"{evaluate.SWAP_CLASSES} classes spread over the sorted classes; rows (z): "
                    "the second",
            "s_images": s_index, "z_images": z_index,
            "cell": "Dec(z_mean of row image, s of column image)"}


