"""Figures drawn from tables (matplotlib/seaborn, no torch): t-SNE panels and training curves.

Used by the runner for each run's figures and by the report for the side-by-side comparisons.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# Titles and labels hold text read from run files (method names, run labels): never formulas. A
# "$" would reach matplotlib's mathtext parser, and an unbalanced one fail the whole report. Such
# text is drawn as ``printable`` shows it (a control character as its escape: no glyph is missing,
# and no warning quotes it to the terminal).
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.store import results  # noqa: E402
from bench.terminal import printable  # noqa: E402

CODE_TITLES = {"z_sample": "z, a sample of q(z|x)", "z_mean": "z, posterior mean",
               "z": "z (deterministic)"}


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    xy: np.ndarray  # n x 2
    labels: np.ndarray  # n


def save_figure(figure: plt.Figure, path: Path) -> None:
    results.write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110,
                                                          bbox_inches="tight"))
    plt.close(figure)


LEGEND_MAX_CLASSES = 20


def class_palette(num_classes: int) -> list:
    """tab10/tab20 for up to 10/20 classes, evenly spaced hues beyond."""
    if num_classes <= 10:
        return sns.color_palette("tab10", num_classes)
    if num_classes <= 20:
        return sns.color_palette("tab20", num_classes)
    return sns.color_palette("husl", num_classes)


def plot_embeddings(rows: list[list[Panel]], path: Path, title: str, num_classes: int = 10,
                    legend_title: str = "digit") -> None:
    save_figure(embedding_figure(rows, title, num_classes, legend_title), path)


def embedding_figure(rows: list[list[Panel]], title: str, num_classes: int = 10,
                     legend_title: str = "digit") -> plt.Figure:
    """A grid of t-SNE panels, points coloured by class with one discrete legend (none beyond
    LEGEND_MAX_CLASSES classes, where colours can no longer be told apart anyway)."""
    n_rows, n_columns = len(rows), max(len(r) for r in rows)
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(3.6 * n_columns, 3.4 * n_rows),
                                squeeze=False)
    palette = class_palette(num_classes)
    for r, row in enumerate(rows):
        for c in range(n_columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row):
                ax.axis("off")
                continue
            panel = row[c]
            sns.scatterplot(x=panel.xy[:, 0], y=panel.xy[:, 1], hue=panel.labels.astype(int),
                            hue_order=range(num_classes), palette=palette, s=4, linewidth=0,
                            alpha=0.8, legend=False, ax=ax, rasterized=True)
            ax.set_title(printable(panel.title), fontsize=9)
    if num_classes <= LEGEND_MAX_CLASSES:
        handles = [plt.Line2D([], [], marker="o", linestyle="", color=palette[k], label=str(k))
                   for k in range(num_classes)]
        figure.legend(handles=handles, title=printable(legend_title), loc="center right",
                      frameon=False)
    figure.suptitle(printable(title), fontsize=11)
    figure.tight_layout(rect=(0, 0, 0.93, 0.95))
    return figure


def epoch_means(losses: pd.DataFrame) -> pd.DataFrame:
    return losses.drop(columns="iteration").groupby("epoch").mean()


def plot_curves(losses: pd.DataFrame, path: Path, title: str) -> None:
    """Every logged term: per-iteration values smoothed (line) and per-epoch means (dots)."""
    terms = [c for c in losses.columns if c not in ("epoch", "iteration")]
    iterations_per_epoch = losses.groupby("epoch").size().max()
    progress = (losses["iteration"] - 1) / iterations_per_epoch  # in epochs
    window = max(1, min(len(losses) // 50, iterations_per_epoch))
    columns = min(3, len(terms))
    n_rows = -(-len(terms) // columns)
    figure, axes = plt.subplots(n_rows, columns, figsize=(4 * columns, 2.6 * n_rows), squeeze=False)
    means = epoch_means(losses)
    for ax, term in zip(axes.flat, terms):
        ax.plot(progress, losses[term].rolling(window, min_periods=1).mean(), linewidth=0.8,
                color="tab:blue", alpha=0.6)
        ax.plot(means.index - 0.5, means[term], "o-", color="tab:red", markersize=3, linewidth=1)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    figure.suptitle(f"{printable(title)}\nline: per iteration, smoothed over {window}; dots: "
                    "epoch means", fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


# The probes of the probe-sensitivity figure, in their order along its x axis
PROBE_TICKS = {"paper": "paper probe\n(the table's)", "linear": "linear\n(converged)",
               "knn": "k nearest\nneighbours"}


def plot_probe_sensitivity(means: pd.DataFrame, path: Path, title: str) -> None:
    """One panel per code: the test accuracy (``means``: method, probe, capacity, mean) under each
    probe of PROBE_TICKS, a line per method, so that a change of the methods' order is a
    crossing."""
    means = means[means.capacity.astype(str).isin(PROBE_TICKS)]
    codes = [c for c in ("z_sample", "z_mean", "s") if c in set(means.probe)]
    methods = list(dict.fromkeys(means.method))
    palette = dict(zip(methods, sns.color_palette("tab10", len(methods))))
    where = {capacity: x for x, capacity in enumerate(PROBE_TICKS)}
    figure, axes = plt.subplots(1, len(codes), figsize=(4.2 * len(codes), 3.4), squeeze=False)
    for ax, code in zip(axes[0], codes):
        for method, line in means[means.probe == code].groupby("method", sort=False):
            line = line.assign(x=line.capacity.map(where)).sort_values("x")
            ax.plot(line.x, line["mean"], "-", marker="o", markersize=3, color=palette[method],
                    linewidth=1.2)
        ax.set_xticks(list(where.values()), list(PROBE_TICKS.values()))
        ax.set_xlim(-0.3, len(where) - 0.7)
        ax.set_ylabel("test accuracy (%)", fontsize=8)
        ax.set_title(CODE_TITLES.get(code, code), fontsize=9)
        ax.tick_params(labelsize=7)
    handles = [plt.Line2D([], [], color=palette[m], label=printable(m)) for m in methods]
    figure.legend(handles=handles, loc="center right", frameon=False, fontsize=8)
    figure.suptitle(printable(title), fontsize=10)
    figure.tight_layout(rect=(0, 0, 0.84, 0.93))
    save_figure(figure, path)
