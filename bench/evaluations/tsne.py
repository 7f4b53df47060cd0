"""The leakage t-SNE: a 2-D t-SNE of z on the first test images (tsne.csv, every point; tsne.png,
a panel per code of z, points coloured by class). openTSNE (bench/evaluations/tsne_fit.py) runs in
the run's own process with torch's number of threads, or, for runs trained together, in worker
processes started as soon as the run is encoded (bench/evaluations/tsne_pool.py), whose
embeddings reach this evaluation through ``Context.started``. Its parameters, seed and threads go
into evaluation.json and figures.json (the report reads the latter)."""
from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import UnusableFile
from bench.evaluations.tsne_fit import parameters_for, tsne_embedding
from bench.evaluations.base import Context, Evaluation, Outcome, register
from bench.sections.blocks import Block, Figure, Heading, Paragraph
from bench.sections.hook import ReportSection, SectionInput
from bench.spec.bounds import LARGEST, MAX_CLASSES
from bench.store.records import RunRecord

NAME = "tsne"
TSNE_FILE, TSNE_FIGURE = "tsne.csv", "tsne.png"
# What the paper's figures show, by method (docs/evaluation.md, "What the paper's figures show").
PAPER_TSNE = {"szabo": "ten clean clusters (z leaks the class)",
              "mathieu": "a structureless disk", "ccvae": "a structureless disk"}


@dataclasses.dataclass(frozen=True)
class TsneInputs:
    """What a run's t-SNE embeds: each z code (``z_codes_to_embed``) of the first test images,
    their labels, and the seed."""
    codes: dict[str, np.ndarray]
    labels: np.ndarray
    seed: int

    @property
    def points(self) -> int:
        return len(self.labels)


def tsne_inputs(context: Context) -> TsneInputs:
    import torch
    from bench.evaluations.encoding import z_codes_to_embed
    data = context.data
    points = min(context.config.settings.tsne_points or len(data.test_labels), len(data.test_labels))
    generator = torch.Generator(device=context.method.device).manual_seed(context.seed("z sample"))
    codes = {code: values[:points].cpu().numpy()
             for code, values in z_codes_to_embed(context.test, generator).items()}
    return TsneInputs(codes, data.test_labels[:points].cpu().numpy(), context.seed("tsne") % 2**31)


@dataclasses.dataclass(frozen=True)
class TsneWork:
    """A run's t-SNE embeddings computed elsewhere (CPU workers, bench/evaluations/tsne_pool.py):
    its inputs, one future per code, and the threads each used."""
    inputs: TsneInputs
    embeddings: dict[str, Future]
    threads: int


def _worker_embedding(work: TsneWork, code: str, run_id: str) -> np.ndarray | None:
    """The embedding of ``code`` from its worker, or None (said) if the worker failed: it is
    then computed here, with the worker's number of threads, which gives the same embedding."""
    from tqdm.auto import tqdm
    try:
        return work.embeddings[code].result()
    except Exception as error:  # noqa: BLE001 - a worker killed (out of memory) or failed
        tqdm.write(f"{run_id} t-SNE of {code}: the worker failed "
                   f"({type(error).__name__}: {error}); computing it here")
        return None


def tsne_rows(context: Context) -> Outcome:
    """Every point of each code's embedding (its coordinates to 4 decimals), and what made them.
    The embeddings come from ``context.started["tsne"]`` (a TsneWork) when they are under way
    elsewhere, otherwise they are computed here with torch's number of threads."""
    from bench import progress
    work: TsneWork | None = context.started.get(NAME)
    if work is None:
        import torch
        inputs, threads = tsne_inputs(context), torch.get_num_threads()
    else:
        inputs, threads = work.inputs, work.threads
    run_id, points = context.config.run_id, inputs.points
    rows, embeddings = [], {}
    for code, values in inputs.codes.items():
        where = "" if work is None else ", from a worker process"
        with progress.step(f"{run_id} t-SNE of {code} ({points} points{where})"):
            xy = None if work is None else _worker_embedding(work, code, run_id)
            if xy is None:
                xy = tsne_embedding(values, inputs.seed, n_jobs=threads)
        embeddings[code] = xy
        rows += [{"code": code, "index": i, "label": label, "x": "%.4f" % x, "y": "%.4f" % y}
                 for i, (label, x, y) in enumerate(zip(inputs.labels.tolist(), xy[:, 0], xy[:, 1]))]
    details = {"points": points, "which": "the first test images", "seed": inputs.seed,
               "threads": threads,  # openTSNE's result depends on its number of threads
               "codes": list(embeddings), "library": "openTSNE",
               "classes": context.data.num_classes, "label_name": context.data.label_name,
               "parameters": parameters_for(points)}
    return Outcome(rows, details, drawing=(embeddings, inputs.labels))


def draw_tsne(context: Context, outcome: Outcome, run_dir: Path) -> dict[str, Any]:
    """tsne.png: a panel per code, from the embeddings at full precision; returns the t-SNE's
    parameters (figures.json)."""
    from bench import drawing
    embeddings, labels = outcome.drawing
    panels = [drawing.Panel(drawing.CODE_TITLES[code], xy, labels) for code, xy in embeddings.items()]
    drawing.plot_embeddings([panels], run_dir / TSNE_FIGURE,
                            f"t-SNE of z on {len(labels)} test images: {context.label}",
                            context.data.num_classes, context.data.label_name)
    return outcome.details


def comparison(records: list[RunRecord], path: Path, title: str, dataset: str) -> Figure:
    """One t-SNE panel per method side by side (first seed of each), a row per code of z."""
    from bench import drawing  # matplotlib: only where a figure is drawn
    columns, classes = [], 0
    parameters = records[0].figures.get(NAME, {})  # its record's types and bounds checked
    label_name = parameters.get("label_name", "digit")
    for record in records:
        table = record.table(TSNE_FILE, ("code", "label", "x", "y"), numbers=("x", "y"),
                             integers={"label": (0, MAX_CLASSES - 1)})
        if len(table) > len(drawing.CODE_TITLES) * LARGEST["tsne_points"]:
            raise UnusableFile(f"{record.path(TSNE_FILE)}: {len(table)} points, more than a "
                               f"t-SNE of at most {LARGEST['tsne_points']} points per code holds")
        parts = {code: part for code, part in table.groupby("code", sort=False)}
        if not {"z_sample", "z_mean"} <= set(parts) and "z" not in parts:
            raise UnusableFile(f"{record.path(TSNE_FILE)}: no points of z (code z_sample and "
                               "z_mean, or z)")
        classes = max(classes, int(table["label"].max()) + 1)
        columns.append(parts)
    classes = max(classes, parameters.get("classes", 0))
    codes = ["z_sample", "z_mean"]
    rows = []
    for code in codes:
        row = []
        for record, tables in zip(records, columns):
            part = tables.get(code, tables.get("z"))  # a deterministic z stands in both rows
            shown = code if code in tables else "z"
            row.append(drawing.Panel(f"{shown_name(record)}: {drawing.CODE_TITLES[shown]}",
                                     part[["x", "y"]].to_numpy(), part["label"].to_numpy()))
        rows.append(row)
    drawing.plot_embeddings(rows, path, title, classes, label_name)
    expected = "; ".join(f"{r.method}: {PAPER_TSNE[r.method]}"
                         for r in records if r.method in PAPER_TSNE and dataset == "mnist")
    caption = f"Points: test images, coloured by {label_name}."
    return Figure(path, f"{caption} What the paper shows: {expected}." if expected else caption,
                  width=min(1150, 330 * len(records) + 80))


def sized_figures(section: SectionInput, sizes: tuple, group: list[RunRecord]) -> list[Block]:
    """The t-SNE of latent sizes z/s: the first run of each method side by side, then every
    other run's own figure (and each run's without a t-SNE, saying so)."""
    from bench.sections.experiments import plain_figure_name, run_figure
    dataset, preset, (z, s) = section.dataset, section.preset, sizes
    first_seeds: dict[str, RunRecord] = {}
    for record in group:
        first_seeds.setdefault(record.method, record)
    with_tsne = [r for r in first_seeds.values() if r.has_table(TSNE_FILE)]
    blocks: list[Block] = []
    if with_tsne and not plain_figure_name(dataset, preset, z, s):
        # names from run files never choose where a file is written
        blocks.append(Paragraph(f"No side-by-side t-SNE for z/s {z}/{s}: the runs' dataset or "
                                "preset is not a plain name, and figures are named after it."))
    elif with_tsne:
        path = section.figures_dir / f"tsne-{dataset}-{preset}-z{z}-s{s}.png"
        blocks.append(comparison(with_tsne, path, f"t-SNE of z, {dataset}, z/s {z}/{s}, "
                                 f"{preset} preset (first run of each method)", dataset))
    return blocks + [run_figure(r, TSNE_FIGURE, "tsne", f"t-SNE of z: {shown_name(r)} (z/s "
                                f"{r.z_dim}/{r.s_dim}, seed {r.seed})", width=760)
                     for r in group if r not in with_tsne]


def shown_name(record: RunRecord) -> str:
    """A run's model as the t-SNE's titles name it: an external model's marked "(external)"."""
    from bench.sections.experiments import EXTERNAL_MARK
    return record.method + (f" {EXTERNAL_MARK}" if record.external is not None else "")


def tsne_figures(section: SectionInput) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Leakage: t-SNE of the unspecified code z")]
    for sizes, group in sorted(section.runs_by_latent_sizes().items()):
        blocks += sized_figures(section, sizes, group)
    return blocks


TSNE = register(Evaluation(
    name=NAME, version=1, file=TSNE_FILE, columns=("code", "index", "label", "x", "y"),
    compute=tsne_rows, figures=draw_tsne,
    figure_data=True,  # megabytes of points: published with tsne.png only (bench/launch/publish.py)
    order=1000,  # the last: the slowest, and runs trained together embed meanwhile in workers
    title="Leakage t-SNE",
    description="A 2-D t-SNE of z on the first test images, points coloured by class (the report "
                "draws the runs' panels side by side); tsne.csv holds every point.",
    section=ReportSection(figures=tsne_figures, order=10)))
