"""python -m bench report: results/report.md and a self-contained results/report.html, from the
files in results/ alone (no models, no torch).

Runs are averaged only when they differ in nothing but their seed: every table has a row per
experiment (method, latent sizes and every other setting), and the settings in which experiments
of one method differ are shown beside it.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pandas as pd

from bench import progress
from bench.evaluations import EVALUATIONS, Evaluation, ReportTable, in_order
from bench.evaluations.mdl_leakage import MDL_LEAKAGE
from bench.evaluations.probe_sensitivity import CAPACITIES, PROBE_SENSITIVITY
from bench.report.document import (Block, Details, Figure, Gallery, Heading, Paragraph, Table,
                                   embeddable, to_html, to_markdown)
from bench.report.statistics import ACCURACY, ALPHA, LEVEL, interval, not_significant
from bench.store import results
from bench.store.records import RunRecord, differing_settings, load_runs, metrics_of

PAPER_TABLE = Path(__file__).resolve().parent / "paper_table.csv"
REPORT_FILE, REPORT_HTML = "report.md", "report.html"
FIGURES_DIR = "figures"  # the report's own figures (side-by-side comparisons), in results/
TITLE = "Weakly supervised disentanglement: benchmark report"
# The paper's table columns, and the probe that gives each (z: the sampled code, as in the paper).
TABLE_COLUMNS = {"z train": ("z_sample", "train"), "z test": ("z_sample", "test"),
                 "s train": ("s", "train"), "s test": ("s", "test")}
PAPER_COLUMNS = {"z train": "z_train_acc", "z test": "z_test_acc",
                 "s train": "s_train_acc", "s test": "s_test_acc"}
# One row of a table per experiment: runs that differ only in their seed (records.RunRecord.variant).
GROUP = ["method", "z_dim", "s_dim", "variant"]
# What the paper's figures show, by method (docs/evaluation.md, "What the paper's figures show").
PAPER_TSNE = {"szabo": "ten clean clusters (z leaks the class)",
              "mathieu": "a structureless disk", "ccvae": "a structureless disk"}
PAPER_SWAP = "every cell (i, j) shows digit j written in the style of row i"
DETERMINISTIC_MARK = "†"
DETERMINISTIC_NOTE = (f"{DETERMINISTIC_MARK} deterministic z: there is no posterior to sample, "
                      "so the z columns probe z itself (z_sample and z_mean are the same code).")
EXTERNAL_MARK = "(external)"  # a model of the user's own (python -m bench evaluate-model)
# Beside the leakage columns: how much z is used (the z_usage evaluation).
Z_USAGE = "z_usage"
Z_USAGE_READING = ("Read the z columns together: a low z accuracy means little leakage only when z "
                   "is used. **z style retention** (higher is better; 0 when the decoder ignores "
                   "z) and **z active units** (dimensions of z that vary across images: on the "
                   "unit prior's scale for a variational z, on the code's own for a deterministic "
                   "one, so a code kept small by a penalty still counts) say "
                   "whether it is; a z with low leakage, retention near 0 and few active units has "
                   "collapsed, it has not disentangled anything.")
MISSING = "–"


def load_paper_table() -> pd.DataFrame:
    return pd.read_csv(PAPER_TABLE)


def summarise(table: pd.DataFrame, value: str = "accuracy", by: tuple[str, ...] = ("probe", "split")
              ) -> pd.DataFrame:
    """Mean, standard deviation over seeds and seed count per experiment (GROUP) and ``by``."""
    table = table.assign(**{value: pd.to_numeric(table[value], errors="coerce")})
    grouped = table.groupby([*GROUP, *by], dropna=False, sort=False)[value]
    return grouped.agg(mean="mean", std="std", seeds="count").reset_index()


def _format(mean: float, std: float, seeds: int, decimals: int = 2,
            bounds: tuple[float | None, float | None] = (None, None)) -> str:
    """The mean over seeds with its 95 % confidence interval (statistics.interval), cut to
    ``bounds`` (ACCURACY for an accuracy), or the mean and "one seed" where there is none."""
    if pd.isna(mean):
        return "n/a"
    found = interval(mean, std, seeds, *bounds)
    if found is None:
        return f"{mean:.{decimals}f} (one seed)"
    low, high = found
    return f"{mean:.{decimals}f} [{low:.{decimals}f}, {high:.{decimals}f}]"


def _method_order(methods, paper_order: list[str]) -> list[str]:
    return sorted(set(methods), key=lambda m: (paper_order.index(m) if m in paper_order
                                               else len(paper_order), m))


def _keyed_rows(table: pd.DataFrame, paper_order: list[str]):
    """(experiment key: method, z_dim, s_dim, variant; its rows) in the report's order."""
    keys = table[GROUP].drop_duplicates()
    order = _method_order(keys.method, paper_order)
    keys = keys.assign(o=keys.method.map(order.index)).sort_values(["o", "z_dim", "s_dim", "variant"])
    for _, key in keys.iterrows():
        yield key, table[(table[GROUP] == key[GROUP]).all(axis=1)]


class Experiments:
    """The leading cells of a row: method (marked when its z is deterministic, and when it is an
    external model), latent sizes, the settings in which it differs from other experiments of the
    method (when any do), seeds."""

    def __init__(self, records: list[RunRecord]):
        self.settings = differing_settings(records)
        self.deterministic = {r.method for r in records if not r.variational_z}
        self.external = {r.method for r in records if r.external is not None}
        self.show_settings = any(self.settings.values())

    def header(self) -> list[str]:
        return ["method", "z / s", *(["settings"] if self.show_settings else []), "seeds"]

    def name(self, key) -> str:
        """The experiment in words: method, latent sizes and its differing settings."""
        settings = self.settings.get(key.variant) if self.show_settings else ""
        return f"{key.method} {key.z_dim}/{key.s_dim}" + (f" ({settings})" if settings else "")

    def cells(self, key, seeds: int) -> list[str]:
        label = key.method + (f" {DETERMINISTIC_MARK}" if key.method in self.deterministic else "")
        label += f" {EXTERNAL_MARK}" if key.method in self.external else ""
        settings = [self.settings.get(key.variant) or "defaults"] if self.show_settings else []
        return [label, f"{key.z_dim} / {key.s_dim}", *settings, str(seeds)]


def z_usage_cells(z_usage: pd.DataFrame, key) -> list[str]:
    """Style retention and active units of an experiment (mean over seeds), or dashes."""
    part = z_usage[(z_usage[GROUP] == key[GROUP]).all(axis=1)] if not z_usage.empty else z_usage
    cells = []
    for metric in ("style_retention", "active_units"):
        row = part[part.metric == metric] if not part.empty else part
        if row.empty:
            cells.append(MISSING)
        elif metric == "active_units":
            mean = row.iloc[0]["mean"]
            cells.append(f"{mean:.0f} / {key.z_dim}" if float(mean).is_integer()
                         else f"{mean:.1f} / {key.z_dim}")
        else:
            r = row.iloc[0]
            cells.append(_format(r["mean"], r["std"], int(r.seeds)))
    return cells


def accuracy_table(summary: pd.DataFrame, paper: pd.DataFrame, columns: dict[str, tuple[str, str]],
                   method_order: list[str], experiments: Experiments,
                   z_usage: pd.DataFrame | None = None) -> Table:
    """A row per experiment, ours beside the paper's number; with ``z_usage`` (its summary), style
    retention and active units of z after the z columns."""
    rows = []
    for key, part in _keyed_rows(summary, method_order):
        paper_row = paper[(paper.method == key.method) & (paper.z_dim == key.z_dim)
                          & (paper.s_dim == key.s_dim)]
        cells = experiments.cells(key, int(part.seeds.max()))
        for name, (probe, split) in columns.items():
            row = part[(part.probe == probe) & (part.split == split)].iloc[0]
            cell = _format(row["mean"], row["std"], int(row.seeds), bounds=ACCURACY)
            if name in PAPER_COLUMNS and not paper_row.empty:
                reference = float(paper_row.iloc[0][PAPER_COLUMNS[name]])
                cell += f" (paper {reference:.2f}, {row['mean'] - reference:+.2f})"
            elif name in PAPER_COLUMNS and not paper.empty and key.method not in set(paper.method):
                cell += " (no paper row)"  # a method the paper did not run: a new result
            cells.append(cell)
            if z_usage is not None and name == "z test":
                cells += z_usage_cells(z_usage, key)
        rows.append(cells)
    header = []
    for name in columns:
        header.append(name)
        if z_usage is not None and name == "z test":
            header += ["z style retention", "z active units"]
    return Table([*experiments.header(), *header], rows)


CELLS = (f"Each cell: the mean over seeds and its {LEVEL:.0%} confidence interval (Student's t "
         "over the seeds, an accuracy's cut to 0-100 %; none with one seed).")


def significance(part: pd.DataFrame, columns: dict[str, tuple[str, str]],
                 experiments: Experiments, paper_order: list[str],
                 value: str = "accuracy") -> list[Paragraph]:
    """For each column, the experiments of equal latent sizes whose difference the seeds do not
    establish (Welch's t-test, Holm-corrected over the column's pairs: bench/report/statistics.py);
    none where no two experiments have two seeds each."""
    lines, single = [], set()
    for name, (probe, split) in columns.items():
        chosen = part[(part.probe == probe) & (part.split == split)]
        found, pairs = [], 0
        for _, sized in chosen.groupby(["z_dim", "s_dim"], sort=True):
            values = {experiments.name(key): list(pd.to_numeric(rows[value], errors="coerce").dropna())
                      for key, rows in _keyed_rows(sized, paper_order)}
            single |= {n for n, v in values.items() if len(v) < 2}
            tested = {n: v for n, v in values.items() if len(v) >= 2}
            pairs += len(tested) * (len(tested) - 1) // 2
            found += [f"{a} and {b}" for a, b in not_significant(tested)]
        if pairs:
            lines.append(f"**{name}**: " + ("; ".join(found) if found else "every pair differs"))
    if not lines:
        return []
    text = (f"Differences the seeds do not establish (Welch's t-test, Holm-corrected over each "
            f"column's pairs of equal latent sizes, α = {ALPHA}): " + ". ".join(lines) + ".")
    if single:
        text += f" Not tested (one seed): {', '.join(sorted(single))}."
    return [Paragraph(text)]


def _select(table: pd.DataFrame, where: dict, keep: bool) -> pd.DataFrame:
    for column, value in where.items():
        values = [str(v) for v in (value if isinstance(value, (tuple, list)) else [value])]
        inside = table[column].astype(str).isin(values)
        table = table[inside if keep else ~inside]
    return table


def evaluation_table(spec: ReportTable, table: pd.DataFrame, paper_order: list[str],
                     experiments: Experiments) -> Table | None:
    """An evaluation's table, the same way for every evaluation: a row per experiment, a column
    per value of the pivot columns, each cell the mean over seeds and its interval."""
    part = _select(_select(table, spec.where, True), spec.exclude, False)
    if part.empty:
        return None
    pivots = list(dict.fromkeys(part[list(spec.pivot)].itertuples(index=False, name=None)))
    summary = summarise(part, spec.value, spec.pivot)
    header = []
    for pivot in pivots:
        match = part[(part[list(spec.pivot)] == pd.Series(pivot, index=list(spec.pivot))).all(axis=1)]
        notes = [f"{column.replace('_', ' ')} {float(match[column].iloc[0]):.1f}"
                 for column in spec.header_notes if column in match]
        header.append(" · ".join(map(str, pivot)) + (f" ({', '.join(notes)})" if notes else ""))
    rows = []
    for key, rows_of_key in _keyed_rows(summary, paper_order):
        cells = experiments.cells(key, int(rows_of_key.seeds.max()))
        for pivot in pivots:
            found = rows_of_key[(rows_of_key[list(spec.pivot)]
                                 == pd.Series(pivot, index=list(spec.pivot))).all(axis=1)]
            bounds = ACCURACY if spec.value == "accuracy" else (None, None)
            cells.append(MISSING if found.empty else _format(found.iloc[0]["mean"], found.iloc[0]["std"],
                                                             int(found.iloc[0].seeds), spec.decimals,
                                                             bounds))
        rows.append(cells)
    return Table([*experiments.header(), *header], rows)


def read_evaluation(records: list[RunRecord], evaluation: Evaluation) -> pd.DataFrame:
    """The rows of ``evaluation``'s file of every run that has it, with each run's variant."""
    frames = []
    for record in records:
        table = record.table(evaluation.file)
        if table is not None and not table.empty:
            frames.append(table.assign(variant=record.variant))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def evaluation_blocks(records: list[RunRecord], paper_order: list[str],
                      experiments: Experiments) -> list[Block]:
    """Every registered evaluation with report tables that some of ``records`` computed."""
    blocks: list[Block] = []
    for evaluation in in_order():
        if not evaluation.tables or evaluation.file == results.METRICS_FILE:
            continue
        table = read_evaluation(records, evaluation)
        if table.empty:
            continue
        blocks += [Heading(3, evaluation.title), Paragraph(evaluation.description)]
        for spec in evaluation.tables:
            rendered = evaluation_table(spec, table, paper_order, experiments)
            if rendered is not None:
                blocks += ([Paragraph(spec.caption)] if spec.caption else []) + [rendered]
    return blocks


def plain_figure_name(dataset: str, preset: str, z, s) -> bool:
    """Whether a report figure may be named after these (read from run files, they never choose
    where a file is written): plain dataset and preset names, integer latent sizes."""
    return all(map(results.is_plain_name, (dataset, preset))) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in (z, s))


SENSITIVITY_CODES = {"z_sample": "the z sample's leakage", "z_mean": "the z mean's leakage",
                     "s": "s"}


def probe_dependence(records: list[RunRecord], paper_order: list[str], experiments: Experiments,
                     results_dir: Path, dataset: str, preset: str) -> list[Block]:
    """Where runs computed probe_sensitivity, per latent size: a figure of accuracy against the
    probe's budget, and whether the methods' order is the same under every probe of the sweep
    (Kendall's tau against the paper's probe at its largest budget)."""
    from bench.report.statistics import ranking_agreement
    blocks: list[Block] = []
    for z, s in sorted({(r.z_dim, r.s_dim) for r in records}, key=str):
        frames = []
        for record in (r for r in records if (r.z_dim, r.s_dim) == (z, s)):
            table = record.table(PROBE_SENSITIVITY.file)
            if table is not None and not table.empty:  # the run's own identity, not the file's
                frames.append(table.assign(method=record.method, z_dim=z, s_dim=s,
                                           variant=record.variant))
        if not frames:
            continue
        table = pd.concat(frames, ignore_index=True)
        table = table[table.split.astype(str) == "test"].assign(
            epochs=pd.to_numeric(table.epochs, errors="coerce"))
        means = summarise(table, "accuracy", ("probe", "capacity", "epochs")).dropna(subset=["mean"])
        means = means[means.capacity.astype(str).isin(CAPACITIES)]  # nothing else is drawn
        if means.empty:
            continue
        order = _method_order(means.method, paper_order)
        means = means.assign(label=[experiments.name(key) for key in means.itertuples()],
                             order=means.method.map(order.index)).sort_values("order", kind="stable")
        sentences = []
        for code, words in SENSITIVITY_CODES.items():
            part = means[means.probe == code]
            values = {f"{capacity} probe at {epochs:g} epochs": dict(zip(rows.label, rows["mean"]))
                      for (capacity, epochs), rows in part.groupby(["capacity", "epochs"], sort=False)}
            budget = part[part.capacity == "paper"].epochs.max()
            reference = f"paper probe at {budget:g} epochs"
            if reference not in values or len(values[reference]) < 2:
                continue
            found = ranking_agreement(values, reference)
            if not found.swapped:
                sentences.append(f"by {words}, the same under every probe of the sweep")
            else:
                sentences.append(
                    f"by {words}, Kendall's τ with the order under the {reference} falls to "
                    f"{found.lowest_tau:.2f} (under the {found.lowest_at}); pairs that change "
                    f"places under some probe: {'; '.join(f'{a} and {b}' for a, b in found.swapped)}")
        if sentences:
            blocks.append(Paragraph(f"**How the methods' order depends on the probe** (z/s {z}/{s}, "
                                    f"evaluation `{PROBE_SENSITIVITY.name}`): " + "; ".join(sentences)
                                    + "."))
        if plain_figure_name(dataset, preset, z, s):
            from bench import drawing  # matplotlib: only where a figure is drawn
            path = results_dir / FIGURES_DIR / f"probe-sensitivity-{dataset}-{preset}-z{z}-s{s}.png"
            drawing.plot_probe_sensitivity(means.assign(method=means.label), path,
                                           f"Probe accuracy against the probe's budget, {dataset}, "
                                           f"z/s {z}/{s}, {preset} preset (means over seeds)")
            blocks.append(Figure(path, "Test accuracy of each code's probes: a colour per method, "
                                       "a line style per probe capacity.", width=1150))
    return blocks


def tsne_comparison(records: list[RunRecord], path: Path, title: str, dataset: str) -> Figure:
    """One t-SNE panel per method side by side (first seed of each), a row per code of z."""
    from bench import drawing  # matplotlib: only where a figure is drawn
    columns, classes = [], 0
    parameters = results.read_json(records[0].path(results.FIGURES_FILE)).get("tsne", {})
    label_name = parameters.get("label_name", "digit")
    for record in records:
        table = record.table(results.TSNE_FILE, ("code", "label", "x", "y"))
        classes = max(classes, int(table["label"].max()) + 1)
        columns.append({code: part for code, part in table.groupby("code", sort=False)})
    classes = max(classes, int(parameters.get("classes", 0)))
    codes = ["z_sample", "z_mean"]
    rows = []
    for code in codes:
        row = []
        for record, tables in zip(records, columns):
            part = tables.get(code, tables.get("z"))  # a deterministic z stands in both rows
            shown = code if code in tables else "z"
            row.append(drawing.Panel(f"{record.method}: {drawing.CODE_TITLES[shown]}",
                                     part[["x", "y"]].to_numpy(), part["label"].to_numpy()))
        rows.append(row)
    drawing.plot_embeddings(rows, path, title, classes, label_name)
    expected = "; ".join(f"{r.method}: {PAPER_TSNE[r.method]}"
                         for r in records if r.method in PAPER_TSNE and dataset == "mnist")
    caption = f"Points: test images, coloured by {label_name}."
    return Figure(path, f"{caption} What the paper shows: {expected}." if expected else caption,
                  width=min(1150, 330 * len(records) + 80))


def _figure(record: RunRecord, name: str, caption: str, width: int) -> Figure:
    path = record.path(results.FIGURES[name])
    if not path.is_file() and not path.is_symlink():
        return Figure(None, f"{record.label()}: no {name.replace('_', ' ')} figure in {record.dir}")
    if not embeddable(path, record.dir):
        return Figure(None, f"{record.label()}: {path.name} left out: only a PNG file of the run's "
                            "own folder is shown (not a link, nor any other file)")
    return Figure(path, caption, width)


def external_models(records: list[RunRecord]) -> list[Paragraph]:
    """A sentence on the external models among ``records``: what they are, and what each
    skipped for want of a decoder."""
    external = {r.method: r.external for r in records if r.external is not None}
    if not external:
        return []
    skipped = [f"{name} has no decoder: {', '.join(source.skipped_without_decoder)} skipped "
               "(they decode)" for name, source in sorted(external.items())
               if source.skipped_without_decoder]
    return [Paragraph(f"{EXTERNAL_MARK}: a model of the user's own ({', '.join(sorted(external))}), "
                      "evaluated by `python -m bench evaluate-model`; not trained by the suite, it "
                      "has no paper row and no training curves."
                      + (" " + "; ".join(skipped) + "." if skipped else ""))]


def _swap_grid(record: RunRecord) -> Figure:
    source = record.external
    if source is not None and not source.decoder:
        return Figure(None, f"{record.label()}: no swap grid (the model has no decoder)")
    return _figure(record, "swap_grid", f"Swap grid: {record.label()}", width=360)


def description_length_order(part: pd.DataFrame, records: list[RunRecord],
                             experiments: Experiments) -> list[Block]:
    """Where runs computed mdl_leakage, per latent size: whether the methods' order by each code's
    compression is their order by the paper probe's test accuracy (Kendall's tau over the
    experiments that have both), and the pairs in another order."""
    from bench.report.statistics import ranking_agreement
    table = read_evaluation(records, MDL_LEAKAGE)  # the rows the MDL table above shows
    if table.empty:
        return []
    compression = summarise(table, "compression", ("probe",))
    accuracy = summarise(part[part.split.astype(str) == "test"], "accuracy", ("probe",))
    blocks = []
    for (z, s), mdl in compression.groupby(["z_dim", "s_dim"], sort=True):
        probed = accuracy[(accuracy.z_dim == z) & (accuracy.s_dim == s)]
        sentences = []
        for code, words in SENSITIVITY_CODES.items():
            values = {measure: {experiments.name(row): row.mean
                                for row in table[table.probe == code].itertuples()
                                if not pd.isna(row.mean)}
                      for measure, table in (("paper probe", probed), ("MDL", mdl))}
            if len(set(values["paper probe"]) & set(values["MDL"])) < 2:
                continue
            found = ranking_agreement(values, "paper probe")
            sentences.append(f"by {words}, the same order" if not found.swapped else
                             f"by {words}, Kendall's τ {found.lowest_tau:.2f}; pairs in another "
                             f"order: {'; '.join(f'{a} and {b}' for a, b in found.swapped)}")
        if sentences:
            blocks.append(Paragraph(
                f"**The methods' order under MDL** (z/s {z}/{s}, evaluation `{MDL_LEAKAGE.name}`, "
                "compression against the paper probe's test accuracy, means over seeds): "
                + "; ".join(sentences) + "."))
    return blocks


def dataset_section(dataset: str, preset: str, part: pd.DataFrame, records: list[RunRecord],
                    paper: pd.DataFrame, results_dir: Path) -> list[Block]:
    paper_part = paper[paper.dataset == dataset]
    paper_order = list(dict.fromkeys(paper_part.method))
    experiments = Experiments(records)
    summary = summarise(part)
    z_usage = read_evaluation(records, EVALUATIONS[Z_USAGE]) if Z_USAGE in EVALUATIONS else pd.DataFrame()
    z_usage_summary = summarise(z_usage, "value", ("metric",)) if not z_usage.empty else None
    blocks: list[Block] = [Heading(2, f"{dataset}, preset `{preset}`")]
    if preset != "paper":
        blocks.append(Paragraph(f"The `{preset}` preset trains for a fraction of the paper's protocol "
                                "(the `paper` preset): its numbers show that the methods work, they "
                                "are not comparable to the paper's.", quote=True))
    blocks += [Heading(3, "Latent probes (the paper's table)"),
               Paragraph("z is probed on a **sample** of the posterior, as the paper did (the "
                         "paper-comparable figure)."),
               accuracy_table(summary, paper_part, TABLE_COLUMNS, paper_order, experiments,
                              z_usage_summary),
               Paragraph(CELLS), *significance(part, TABLE_COLUMNS, experiments, paper_order)]
    if z_usage_summary is not None:
        blocks.append(Paragraph(Z_USAGE_READING + " " + EVALUATIONS[Z_USAGE].description))
    if experiments.deterministic & set(part.method):
        blocks.append(Paragraph(DETERMINISTIC_NOTE))
    blocks += external_models(records)
    if experiments.show_settings:
        blocks.append(Paragraph("Rows differ in the settings shown (the others are equal); each "
                                "row averages runs that differ in their seed only."))
    z_mean_columns = {"z mean train": ("z_mean", "train"), "z mean test": ("z_mean", "test")}
    blocks += [Paragraph("z probed on the posterior mean (not the paper's figure; the mean of "
                         "q(z|x) carries more class information than a sample of it):"),
               accuracy_table(summary, paper_part.iloc[0:0], z_mean_columns, paper_order,
                              experiments),
               *significance(part, z_mean_columns, experiments, paper_order)]
    blocks += probe_dependence(records, paper_order, experiments, results_dir, dataset, preset)
    blocks += description_length_order(part, records, experiments)
    protocols = {r.evaluations.get("probes", {}).get("specified") for r in records} - {None}
    if protocols:
        blocks.append(Paragraph("Probe protocol: " + "; ".join(sorted(protocols)) + "."))
    blocks += evaluation_blocks(records, paper_order, experiments)

    order = _method_order([r.method for r in records], paper_order)
    by_dims: dict[tuple, list[RunRecord]] = {}
    for record in sorted(records, key=lambda r: (order.index(r.method), r.variant, r.seed)):
        by_dims.setdefault((record.z_dim, record.s_dim), []).append(record)
    blocks.append(Heading(3, "Leakage: t-SNE of the unspecified code z"))
    for (z, s), group in sorted(by_dims.items()):
        first_seeds: dict[str, RunRecord] = {}
        for record in group:
            first_seeds.setdefault(record.method, record)
        with_tsne = [r for r in first_seeds.values() if r.path(results.TSNE_FILE).is_file()]
        plain = plain_figure_name(dataset, preset, z, s)
        if with_tsne and not plain:  # names from run files never choose where a file is written
            blocks.append(Paragraph(f"No side-by-side t-SNE for z/s {z}/{s}: the runs' dataset or "
                                    "preset is not a plain name, and figures are named after it."))
        elif with_tsne:
            path = results_dir / FIGURES_DIR / f"tsne-{dataset}-{preset}-z{z}-s{s}.png"
            blocks.append(tsne_comparison(with_tsne, path, f"t-SNE of z, {dataset}, z/s {z}/{s}, "
                                          f"{preset} preset (first run of each method)", dataset))
        blocks += [_figure(r, "tsne", f"t-SNE of z: {r.label()}", width=760)
                   for r in group if r not in with_tsne]  # other runs, and any without a t-SNE

    blocks.append(Heading(3, "Swap grids"))
    blocks.append(Paragraph("Top row: the images that give s; left column: the images that give "
                            "z; cell (i, j) decodes the posterior mean of z of row image i with "
                            "the s of column image j."
                            + (f" What the paper shows: {PAPER_SWAP}." if dataset == "mnist" else "")))
    for group in by_dims.values():
        blocks.append(Gallery([_swap_grid(r) for r in group]))
    blocks.append(Heading(3, "Training curves"))
    blocks.append(Paragraph("The paper shows no training curves; each run's `losses.csv` holds "
                            "every term at every iteration."))
    for group in by_dims.values():
        for record in (r for r in group if r.external is None):  # an external model has none
            blocks.append(_figure(record, "curves", f"Training curves: {record.label()}", width=900))
    return blocks


def _device_cell(env: dict) -> str:
    """The device and how it computed: "cuda (NVIDIA H100, CUDA graphs, TF32)"."""
    how = [label for key, label in (("cuda_graphs", "CUDA graphs"), ("tf32", "TF32")) if env.get(key)]
    return f"{env.get('device')} ({', '.join([str(env.get('device_name')), *how])})"


def _memory_cell(status: dict) -> str:
    """A run's peak memory; trained together on CUDA, its own and the group's."""
    own = str(status.get("peak_memory_mb", "?"))
    group = status.get("group_peak_memory_mb")
    return own if group is None else f"{own} (group {group})"


def runs_section(complete: list[RunRecord], others: list[RunRecord]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Runs"), Paragraph(
        "Each run's folder `runs/<run id>/` holds its full config (`config.json`), environment "
        "(`env.json`), per-iteration losses (`losses.csv`), final checkpoint, `metrics.csv` and "
        "each evaluation's file (`evaluation.json` says how each was computed), its figures and "
        "their parameters (`figures.json`).")]
    rows = []
    for r in complete:
        git = r.env.get("git", {})
        seconds = r.status.get("train_seconds")
        training = ("none (external)" if r.external is not None
                    else "?" if seconds is None else f"{seconds / 60:.1f} min")
        if r.training_segments:  # a published run: its CPU time over every stretch of training
            cpu, _, machines = r.training_summary()
            training = (f"{cpu / 3600:.2f} CPU-hours in {len(r.training_segments)} segment(s)"
                        + (f" on {len(machines)} machines" if len(machines) > 1 else ""))
        rows.append([r.run_id, r.method, r.preset, str(r.seed), f"{r.z_dim} / {r.s_dim}",
                     _device_cell(r.env), training,
                     _memory_cell(r.status),
                     str(git.get("revision", "?"))[:10] + (" (modified)" if git.get("dirty") else ""),
                     str(r.env.get("libraries", {}).get("torch"))])
    blocks.append(Table(["run id", "method", "preset", "seed", "z / s", "device", "training",
                         "peak memory (MB)", "git revision", "torch"], rows))
    for r in complete:
        blocks.append(Details(f"{r.run_id}: config and environment",
                              json.dumps({"config": r.config, "environment": r.env,
                                          "evaluations": r.evaluations,
                                          "figures": results.read_json(r.path(results.FIGURES_FILE))},
                                         indent=2)))
    if others:
        blocks += [Heading(2, "Failed or unfinished runs"),
                   Paragraph("These runs have no metrics and no figures in this report."),
                   Table(["run id", "state", "reason"],
                         [[r.run_id, r.state,
                           str(r.status.get("reason", "no status: interrupted, or still running"))]
                          for r in others])]
    return blocks


def build(results_dir: Path) -> list[Block]:
    results_dir = Path(results_dir)
    records = load_runs(results_dir)
    complete = [r for r in records if r.complete]
    others = [r for r in records if not r.complete]
    metrics = metrics_of(complete)
    paper = load_paper_table()
    blocks: list[Block] = [
        Heading(1, TITLE),
        Paragraph(f"Generated {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} from "
                  f"{len(complete)} complete run(s) in `{results_dir}`"
                  + (f"; {len(others)} failed or unfinished run(s) are listed at the end."
                     if others else ".")),
        Paragraph("Each number is the accuracy (%) of a classifier that predicts the specified "
                  "label (the digit on MNIST) from one frozen latent code. **s: higher is better** "
                  "(the specified code carries the class). **z: lower is better** (the unspecified "
                  "code should not leak the class; chance is 10 % on MNIST). Cells read "
                  "`ours (paper, ours - paper)`; with several seeds, ours is the mean over seeds with "
                  f"its {LEVEL:.0%} confidence interval. Runs are averaged only when they differ in their seed "
                  "alone.")]
    if metrics.empty:
        blocks.append(Paragraph("No complete runs yet: "
                                "`python -m bench run --methods all --dataset mnist`."))
    groups = metrics.groupby(["dataset", "preset"], sort=True)
    for (dataset, preset), part in progress.bar(groups, "report sections", total=groups.ngroups):
        section = [r for r in complete if r.dataset == dataset and r.preset == preset]
        blocks += dataset_section(dataset, preset, part, section, paper, results_dir)
    if complete or others:
        blocks += runs_section(complete, others)
    return blocks


def write_report(results_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into ``results_dir``; returns their paths."""
    results_dir = Path(results_dir)
    results.not_a_link(results_dir / FIGURES_DIR)  # report.md and .html replace a link, never follow it
    results.remove_stale_temporaries(results_dir)
    blocks = build(results_dir)
    markdown, page = results_dir / REPORT_FILE, results_dir / REPORT_HTML
    results.write_text_atomic(markdown, to_markdown(blocks, results_dir))
    results.write_text_atomic(page, to_html(blocks, TITLE))
    return markdown, page
