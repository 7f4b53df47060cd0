"""A run's figures: the t-SNE of z (tsne.csv, tsne.png), the swap grid, the training curves, and
the parameters that made them (figures.json)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torchvision.utils import save_image

from bench import evaluate, figures, progress, results
from bench.build import derive_seed
from bench.config import RunConfig
from datasets import ImageSet
from methods import Method


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
        with progress.step(f"{config.run_id} t-SNE of {code} ({points} points)"):
            xy = evaluate.tsne_embedding(values[:points].cpu().numpy(), tsne_seed)
        tables.append(pd.DataFrame({"code": code, "index": range(points), "label": labels,
                                    "x": xy[:, 0], "y": xy[:, 1]}))
        panels.append(figures.Panel(figures.CODE_TITLES[code], xy, labels))
    results.write_atomic(run_dir / results.TSNE_FILE,
                         lambda tmp: pd.concat(tables).to_csv(tmp, index=False, float_format="%.4f"))
    figures.plot_embeddings([panels], run_dir / results.FIGURES["tsne"],
                            f"t-SNE of z on {points} test images: {label}", data.num_classes,
                            data.label_name)

    with progress.step(f"{config.run_id} swap grid"):
        s_index, z_index = evaluate.swap_header_indices(data.test_labels)
        s_images, z_images = data.test_images[s_index], data.test_images[z_index]
        grid = evaluate.swap_grid_image(evaluate.swap_cells(method, z_images, s_images), z_images,
                                        s_images)
        results.write_atomic(run_dir / results.FIGURES["swap_grid"],
                             lambda tmp: save_image(grid, tmp, format="png"))

    with progress.step(f"{config.run_id} training curves"):
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


