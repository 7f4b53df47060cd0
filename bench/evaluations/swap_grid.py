"""The swap grid, the paper's figure: the header images chosen by one fixed rule on the test labels
(``swap_header_indices``), so every method shows the same images; cell (i, j) decodes the
posterior mean of z of row image i with the s of column image j. Its table (swap_grid.csv) holds
the header images, one row per class kept; the figure (swap_grid.png) is drawn from it. Swap
accuracy (swap.py) is the same swap as a number."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.evaluations.base import Context, Evaluation, Outcome, register
from bench.sections.blocks import Block, Figure, Gallery, Heading, Paragraph
from bench.sections.hook import ReportSection, SectionInput
from bench.store import results
from bench.store.records import RunRecord

CELL = "Dec(z_mean of row image, s of column image)"
SWAP_GRID_FIGURE = "swap_grid.png"
# What the paper's figure shows (docs/evaluation.md, "What the paper's figures show").
PAPER_SWAP = "every cell (i, j) shows digit j written in the style of row i"


def rule() -> str:
    from bench.evaluations.swap_grid_cells import SWAP_CLASSES
    return (f"columns (s): the first test image of each of up to {SWAP_CLASSES} classes spread "
            "over the sorted classes; rows (z): the second")


def header_rows(context: Context) -> Outcome:
    """The grid's header images: position k is column k (its image gives s) and row k (its image
    gives z), both of the same class."""
    from bench.evaluations.swap_grid_cells import swap_header_indices
    labels = context.data.test_labels
    s_index, z_index = swap_header_indices(labels)
    rows = [{"position": k, "label": int(labels[s]), "s_image": s, "z_image": z}
            for k, (s, z) in enumerate(zip(s_index, z_index))]
    return Outcome(rows, {"rule": rule(), "cell": CELL})


def draw_swap_grid(context: Context, outcome: Outcome, run_dir: Path) -> dict[str, Any]:
    """swap_grid.png, decoded from the header images of ``outcome``; returns what made it
    (figures.json)."""
    from torchvision.utils import save_image

    from bench import progress
    from bench.evaluations.swap_grid_cells import swap_cells, swap_grid_image
    s_index = [row["s_image"] for row in outcome.rows]
    z_index = [row["z_image"] for row in outcome.rows]
    data = context.data
    with progress.step(f"{context.config.run_id} swap_grid figure"):
        s_images, z_images = data.test_images[s_index], data.test_images[z_index]
        grid = swap_grid_image(swap_cells(context.method, z_images, s_images), z_images, s_images)
        results.write_atomic(run_dir / SWAP_GRID_FIGURE,
                             lambda tmp: save_image(grid, tmp, format="png"))
    return {"rule": rule(), "s_images": s_index, "z_images": z_index, "cell": CELL}


def grid_of(record: RunRecord) -> Figure:
    """A run's swap grid, or why there is none."""
    from bench.sections.experiments import run_figure
    source = record.external
    if source is not None and not source.decoder:
        return Figure(None, f"{record.label()}: no swap grid (the model has no decoder)")
    return run_figure(record, SWAP_GRID_FIGURE, "swap grid", f"Swap grid: {record.label()}",
                      width=360)


def swap_grids(section: SectionInput) -> list[Block]:
    """Every run's swap grid, those of one latent size side by side."""
    paper = f" What the paper shows: {PAPER_SWAP}." if section.dataset == "mnist" else ""
    blocks: list[Block] = [
        Heading(3, "Swap grids"),
        Paragraph("Top row: the images that give s; left column: the images that give z; cell "
                  "(i, j) decodes the posterior mean of z of row image i with the s of column "
                  "image j." + paper)]
    return blocks + [Gallery([grid_of(r) for r in group])
                     for group in section.runs_by_latent_sizes().values()]


SWAP_GRID = register(Evaluation(
    name="swap_grid", version=1, file="swap_grid.csv",
    columns=("position", "label", "s_image", "z_image"),
    compute=header_rows, figures=draw_swap_grid, needs_decoder=True,
    order=900,  # after the evaluations, before the t-SNE (the slowest, and the last)
    title="Swap grid",
    description="Top row: the test images that give s; left column: those that give z; cell "
                "(i, j) decodes the posterior mean of z of row image i with the s of column "
                "image j. swap_grid.csv holds the header images (test image indices).",
    section=ReportSection(figures=swap_grids, order=20)))
