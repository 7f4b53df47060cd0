"""python -m bench report: results/report.md and a self-contained results/report.html, from the
files in results/ alone (no models, no torch)."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pandas as pd

from bench import results
from bench.document import (Block, Details, Figure, Gallery, Heading, Paragraph, Table, to_html,
                            to_markdown)

PAPER_TABLE = Path(__file__).resolve().parent / "paper_table.csv"
REPORT_FILE, REPORT_HTML = "report.md", "report.html"
FIGURES_DIR = "figures"  # the report's own figures (side-by-side comparisons), in results/
TITLE = "Weakly supervised disentanglement: benchmark report"
# The paper's table columns, and the probe that gives each (z: the sampled code, as in the paper).
TABLE_COLUMNS = {"z train": ("z_sample", "train"), "z test": ("z_sample", "test"),
                 "s train": ("s", "train"), "s test": ("s", "test")}
PAPER_COLUMNS = {"z train": "z_train_acc", "z test": "z_test_acc",
                 "s train": "s_train_acc", "s test": "s_test_acc"}
GROUP = ["method", "z_dim", "s_dim"]
# What the paper's figures show, by method (methods.md, "Evaluation protocol").
PAPER_TSNE = {"szabo": "ten clean clusters (z leaks the class)",
              "mathieu": "a structureless disk", "ccvae": "a structureless disk"}
PAPER_SWAP = "every cell (i, j) shows digit j written in the style of row i"
DETERMINISTIC_MARK = "†"
DETERMINISTIC_NOTE = (f"{DETERMINISTIC_MARK} deterministic z: there is no posterior to sample, "
                      "so the z columns probe z itself (z_sample and z_mean are the same code).")


def load_paper_table() -> pd.DataFrame:
    return pd.read_csv(PAPER_TABLE)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load_runs(results_dir: Path) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """(metrics of complete runs, a record per complete run, a record per other run folder).

    A record holds the run's folder, status, config and environment; the state of a folder with
    no readable status is "unfinished"."""
    frames, complete, others = [], [], []
    for run_dir in sorted(results.runs_dir(results_dir).glob("*/")):
        status = results.read_status(run_dir) or {"state": "unfinished"}
        record = {"run_id": run_dir.name, "dir": run_dir, "status": status,
                  "config": _read_json(run_dir / results.CONFIG_FILE),
                  "env": _read_json(run_dir / results.ENV_FILE)}
        if status.get("state") == results.COMPLETE:
            frames.append(pd.read_csv(run_dir / results.METRICS_FILE))
            complete.append(record)
        else:
            others.append(record)
    metrics = (pd.concat(frames, ignore_index=True) if frames
               else pd.DataFrame(columns=list(results.METRICS_COLUMNS)))
    return metrics, complete, others


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation over seeds and seed count per (method, dims, probe, split)."""
    grouped = metrics.groupby([*GROUP, "probe", "split"])["accuracy"]
    return grouped.agg(mean="mean", std="std", seeds="count").reset_index()


def _format(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.2f} ± {std:.2f}" if seeds > 1 else f"{mean:.2f}"


def _method_order(methods, paper_order: list[str]) -> list[str]:
    return sorted(set(methods), key=lambda m: (paper_order.index(m) if m in paper_order
                                               else len(paper_order), m))


def accuracy_table(summary: pd.DataFrame, paper: pd.DataFrame, columns: dict[str, tuple[str, str]],
                   method_order: list[str], deterministic: set[str] = frozenset()) -> Table:
    """A row per method and latent size, ours beside the paper's number.
    Methods in ``deterministic`` are marked as having no z sample."""
    rows = []
    for key, part in _keyed_rows(summary, method_order):
        paper_row = paper[(paper.method == key.method) & (paper.z_dim == key.z_dim)
                          & (paper.s_dim == key.s_dim)]
        label = key.method + (f" {DETERMINISTIC_MARK}" if key.method in deterministic else "")
        cells = [label, f"{key.z_dim} / {key.s_dim}", str(int(part.seeds.max()))]
        for name, (probe, split) in columns.items():
            row = part[(part.probe == probe) & (part.split == split)].iloc[0]
            cell = _format(row["mean"], row["std"], int(row.seeds))
            if name in PAPER_COLUMNS and not paper_row.empty:
                reference = float(paper_row.iloc[0][PAPER_COLUMNS[name]])
                cell += f" (paper {reference:.2f}, {row['mean'] - reference:+.2f})"
            cells.append(cell)
        rows.append(cells)
    return Table(["method", "z / s", "seeds", *columns], rows)


def _dims(record: dict) -> tuple[int, int]:
    mc = record["config"].get("method_config", {})
    return mc.get("z_dim"), mc.get("s_dim")


def _label(record: dict) -> str:
    c = record["config"]
    z, s = _dims(record)
    return f"{c.get('method')} (z/s {z}/{s}, seed {c.get('seed')})"


def tsne_comparison(records: list[dict], path: Path, title: str, dataset: str) -> Figure:
    """One t-SNE panel per method side by side (first seed of each), a row per code of z."""
    from bench import figures  # matplotlib: only where a figure is drawn
    columns, classes = [], 0
    parameters = _read_json(records[0]["dir"] / results.FIGURES_FILE).get("tsne", {})
    label_name = parameters.get("label_name", "digit")
    for record in records:
        table = pd.read_csv(record["dir"] / results.TSNE_FILE)
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
            row.append(figures.Panel(f"{record['config']['method']}: {figures.CODE_TITLES[shown]}",
                                     part[["x", "y"]].to_numpy(), part["label"].to_numpy()))
        rows.append(row)
    figures.plot_embeddings(rows, path, title, classes, label_name)
    expected = "; ".join(f"{r['config']['method']}: {PAPER_TSNE[r['config']['method']]}"
                         for r in records if r["config"]["method"] in PAPER_TSNE and dataset == "mnist")
    caption = f"Points: test images, coloured by {label_name}."
    return Figure(path, f"{caption} What the paper shows: {expected}." if expected else caption,
                  width=min(1150, 330 * len(records) + 80))


def _figure(record: dict, name: str, caption: str, width: int) -> Figure:
    path = record["dir"] / results.FIGURES[name]
    if not path.is_file():
        return Figure(None, f"{_label(record)}: no {name.replace('_', ' ')} figure in {record['dir']}")
    return Figure(path, caption, width)


def dataset_section(dataset: str, preset: str, part: pd.DataFrame, records: list[dict],
                    paper: pd.DataFrame, results_dir: Path) -> list[Block]:
    paper_part = paper[paper.dataset == dataset]
    paper_order = list(dict.fromkeys(paper_part.method))
    deterministic = {r["config"]["method"] for r in records if r["config"].get("variational_z") is False}
    summary = summarise(part)
    blocks: list[Block] = [Heading(2, f"{dataset}, preset `{preset}`")]
    if preset != "paper":
        blocks.append(Paragraph(f"The `{preset}` preset trains for a fraction of the paper's protocol "
                                "(the `paper` preset): its numbers show that the methods work, they "
                                "are not comparable to the paper's.", quote=True))
    blocks += [Heading(3, "Latent probes (the paper's table)"),
               Paragraph("z is probed on a **sample** of the posterior, as the paper did (the "
                         "paper-comparable figure)."),
               accuracy_table(summary, paper_part, TABLE_COLUMNS, paper_order, deterministic)]
    if deterministic & set(part.method):
        blocks.append(Paragraph(DETERMINISTIC_NOTE))
    blocks += [Paragraph("z probed on the posterior mean (not the paper's figure; the mean of "
                         "q(z|x) carries more class information than a sample of it):"),
               accuracy_table(summary, paper_part.iloc[0:0],
                              {"z mean train": ("z_mean", "train"), "z mean test": ("z_mean", "test")},
                              paper_order, deterministic)]
    protocols = {_read_json(r["dir"] / results.EVALUATION_FILE).get("probes", {}).get("specified")
                 for r in records} - {None}
    if protocols:
        blocks.append(Paragraph("Probe protocol: " + "; ".join(sorted(protocols)) + "."))
    blocks += factor_blocks(records, paper_order)

    order = _method_order([r["config"]["method"] for r in records], paper_order)
    by_dims: dict[tuple, list[dict]] = {}
    for record in sorted(records, key=lambda r: (order.index(r["config"]["method"]), r["config"]["seed"])):
        by_dims.setdefault(_dims(record), []).append(record)
    blocks.append(Heading(3, "Leakage: t-SNE of the unspecified code z"))
    for (z, s), group in sorted(by_dims.items()):
        first_seeds: dict[str, dict] = {}
        for record in group:
            first_seeds.setdefault(record["config"]["method"], record)
        with_tsne = [r for r in first_seeds.values() if (r["dir"] / results.TSNE_FILE).is_file()]
        if with_tsne:
            path = results_dir / FIGURES_DIR / f"tsne-{dataset}-{preset}-z{z}-s{s}.png"
            blocks.append(tsne_comparison(with_tsne, path, f"t-SNE of z, {dataset}, z/s {z}/{s}, "
                                          f"{preset} preset (first seed of each method)", dataset))
        blocks += [_figure(r, "tsne", f"t-SNE of z: {_label(r)}", width=760)
                   for r in group if r not in with_tsne]  # other seeds, and any without a t-SNE

    blocks.append(Heading(3, "Swap grids"))
    blocks.append(Paragraph("Top row: the images that give s; left column: the images that give "
                            "z; cell (i, j) decodes the posterior mean of z of row image i with "
                            "the s of column image j."
                            + (f" What the paper shows: {PAPER_SWAP}." if dataset == "mnist" else "")))
    for group in by_dims.values():
        blocks.append(Gallery([_figure(r, "swap_grid", f"Swap grid: {_label(r)}", width=360)
                               for r in group]))
    blocks.append(Heading(3, "Training curves"))
    blocks.append(Paragraph("The paper shows no training curves; each run's `losses.csv` holds "
                            "every term at every iteration."))
    for group in by_dims.values():
        for record in group:
            blocks.append(_figure(record, "curves", f"Training curves: {_label(record)}", width=900))
    return blocks


def _read_tables(records: list[dict], name: str) -> pd.DataFrame:
    frames = [pd.read_csv(r["dir"] / name) for r in records if (r["dir"] / name).is_file()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _keyed_rows(table: pd.DataFrame, paper_order: list[str]):
    """(method, z_dim, s_dim, part) in the report's method order."""
    keys = table[GROUP].drop_duplicates()
    order = _method_order(keys.method, paper_order)
    for _, key in keys.assign(o=keys.method.map(order.index)).sort_values(["o", "z_dim", "s_dim"]).iterrows():
        yield key, table[(table[GROUP] == key[GROUP]).all(axis=1)]


def factor_table(factors: pd.DataFrame, paper_order: list[str]) -> Table:
    """Test accuracy of a probe for each known factor from s and from z (mean over seeds)."""
    names = list(dict.fromkeys(factors.factor))
    unspecified = set(factors[factors.unspecified.astype(str) == "True"].factor)
    chance = factors.groupby("factor")["chance"].first()
    test = factors[factors.split == "test"]
    rows = []
    for key, part in _keyed_rows(test, paper_order):
        means = part.groupby(["factor", "code"])["accuracy"].mean()
        rows.append([key.method, f"{key.z_dim} / {key.s_dim}", str(part.seed.nunique())]
                    + [f"s {means.get((f, 's'), float('nan')):.1f} · z {means.get((f, 'z_mean'), float('nan')):.1f}"
                       for f in names])
    header = [f"{f} ({'unspecified' if f in unspecified else 'specified side'}; chance "
              f"{chance[f]:.1f})" for f in names]
    return Table(["method", "z / s", "seeds", *header], rows)


def disentanglement_table(scores: pd.DataFrame, paper_order: list[str]) -> Table:
    factor_names = [f for f in dict.fromkeys(scores.factor) if f != "all"]
    rows = []
    for key, part in _keyed_rows(scores, paper_order):
        means = part.groupby(["metric", "factor"])["value"].mean()
        rows.append([key.method, f"{key.z_dim} / {key.s_dim}", str(part.seed.nunique()),
                     f"{means[('MIG', 'all')]:.3f}", f"{means[('SAP', 'all')]:.3f}"]
                    + [f"{means[('MIG', f)]:.2f} / {means[('SAP', f)]:.2f}" for f in factor_names])
    return Table(["method", "z / s", "seeds", "MIG", "SAP", *[f"{f}: MIG / SAP" for f in factor_names]],
                 rows)


def factor_blocks(records: list[dict], paper_order: list[str]) -> list[Block]:
    """The known-factor probes and MIG / SAP, for datasets whose factors are all known."""
    factors = _read_tables(records, results.FACTORS_FILE)
    scores = _read_tables(records, results.DISENTANGLEMENT_FILE)
    blocks: list[Block] = []
    if not factors.empty:
        blocks += [Heading(3, "Known factors: what each code holds"),
                   Paragraph("Test accuracy (%) of a probe (the same classifier) predicting each "
                             "known factor from s and from the posterior mean of z. Factors on the "
                             "specified side (they make up the pairing label) should be read from s "
                             "and not from z; unspecified factors from z and not from s."),
                   factor_table(factors, paper_order)]
    if not scores.empty:
        blocks += [Heading(3, "Disentanglement of z: MIG and SAP"),
                   Paragraph("Scores of the posterior mean of z with respect to the unspecified "
                             "factors, as defined in disentanglement_lib (MIG: mutual information "
                             "gap over 20-bin histograms, normalised by each factor's entropy; SAP: "
                             "gap between the two dimensions whose single-dimension linear SVM "
                             "predicts the factor best). Both lie in [0, 1]; higher is better. A single linear "
                             "threshold cannot isolate the middle values of a factor, so even a "
                             "perfect code scores SAP well below 1 on factors with more than four "
                             "values."),
                   disentanglement_table(scores, paper_order)]
    return blocks


def _device_cell(env: dict) -> str:
    """The device and how it computed: "cuda (NVIDIA H100, CUDA graphs, TF32)"."""
    how = [label for key, label in (("cuda_graphs", "CUDA graphs"), ("tf32", "TF32")) if env.get(key)]
    return f"{env.get('device')} ({', '.join([str(env.get('device_name')), *how])})"


def runs_section(complete: list[dict], others: list[dict]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Runs"), Paragraph(
        "Each run's folder `runs/<run id>/` holds its full config (`config.json`), environment "
        "(`env.json`), per-iteration losses (`losses.csv`), final checkpoint, `metrics.csv`, its "
        "figures and their parameters (`figures.json`).")]
    rows = []
    for r in complete:
        c, e = r["config"], r["env"]
        git = e.get("git", {})
        seconds = r["status"].get("train_seconds")
        z, s = _dims(r)
        rows.append([r["run_id"], str(c.get("method")), str(c.get("preset")), str(c.get("seed")),
                     f"{z} / {s}", _device_cell(e),
                     "?" if seconds is None else f"{seconds / 60:.1f} min",
                     str(r["status"].get("peak_memory_mb", "?")),
                     str(git.get("revision", "?"))[:10] + (" (modified)" if git.get("dirty") else ""),
                     str(e.get("libraries", {}).get("torch"))])
    blocks.append(Table(["run id", "method", "preset", "seed", "z / s", "device", "training",
                         "peak memory (MB)", "git revision", "torch"], rows))
    for r in complete:
        blocks.append(Details(f"{r['run_id']}: config and environment",
                              json.dumps({"config": r["config"], "environment": r["env"],
                                          "figures": _read_json(r["dir"] / results.FIGURES_FILE)},
                                         indent=2)))
    if others:
        blocks += [Heading(2, "Failed or unfinished runs"),
                   Paragraph("These runs have no metrics and no figures in this report."),
                   Table(["run id", "state", "reason"],
                         [[r["run_id"], str(r["status"].get("state")),
                           str(r["status"].get("reason", "no status: interrupted, or still running"))]
                          for r in others])]
    return blocks


def build(results_dir: Path) -> list[Block]:
    results_dir = Path(results_dir)
    metrics, complete, others = load_runs(results_dir)
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
                  "`ours (paper, ours - paper)`; with several seeds, ours is the mean ± standard "
                  "deviation over seeds.")]
    if metrics.empty:
        blocks.append(Paragraph("No complete runs yet: "
                                "`python -m bench run --methods all --dataset mnist`."))
    for (dataset, preset), part in metrics.groupby(["dataset", "preset"], sort=True):
        records = [r for r in complete if r["config"].get("dataset") == dataset
                   and r["config"].get("preset") == preset]
        blocks += dataset_section(dataset, preset, part, records, paper, results_dir)
    if complete or others:
        blocks += runs_section(complete, others)
    return blocks


def write_report(results_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.html into ``results_dir``; returns their paths."""
    results_dir = Path(results_dir)
    blocks = build(results_dir)
    markdown, page = results_dir / REPORT_FILE, results_dir / REPORT_HTML
    results.write_text_atomic(markdown, to_markdown(blocks, results_dir))
    results.write_text_atomic(page, to_html(blocks, TITLE))
    return markdown, page
