"""python -m bench report: results/report.md from the files in results/ alone (no models, no torch)."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pandas as pd

from bench import results

PAPER_TABLE = Path(__file__).resolve().parent / "paper_table.csv"
REPORT_FILE = "report.md"
# The paper's table columns, and the probe that gives each (z: the sampled code, as in the paper).
TABLE_COLUMNS = {"z train": ("z_sample", "train"), "z test": ("z_sample", "test"),
                 "s train": ("s", "train"), "s test": ("s", "test")}
PAPER_COLUMNS = {"z train": "z_train_acc", "z test": "z_test_acc",
                 "s train": "s_train_acc", "s test": "s_test_acc"}
GROUP = ["method", "z_dim", "s_dim"]


def load_paper_table() -> pd.DataFrame:
    return pd.read_csv(PAPER_TABLE)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load_runs(results_dir: Path) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """(metrics of complete runs, one record per complete run, one record per failed run)."""
    frames, complete, failed = [], [], []
    for run_dir in sorted(results.runs_dir(results_dir).glob("*/")):
        status = results.read_status(run_dir) or {}
        record = {"run_id": run_dir.name, "status": status,
                  "config": _read_json(run_dir / results.CONFIG_FILE),
                  "env": _read_json(run_dir / results.ENV_FILE)}
        if status.get("state") == results.COMPLETE:
            frames.append(pd.read_csv(run_dir / results.METRICS_FILE))
            complete.append(record)
        elif status.get("state") == results.FAILED:
            failed.append(record)
    metrics = (pd.concat(frames, ignore_index=True) if frames
               else pd.DataFrame(columns=list(results.METRICS_COLUMNS)))
    return metrics, complete, failed


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation over seeds and seed count per (method, dims, probe, split)."""
    grouped = metrics.groupby([*GROUP, "probe", "split"])["accuracy"]
    return grouped.agg(mean="mean", std="std", seeds="count").reset_index()


def _format(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.2f} ± {std:.2f}" if seeds > 1 else f"{mean:.2f}"


DETERMINISTIC_MARK = "†"
DETERMINISTIC_NOTE = (f"{DETERMINISTIC_MARK} deterministic z: there is no posterior to sample, "
                      "so the z columns probe z itself (z_sample and z_mean are the same code).")


def accuracy_table(summary: pd.DataFrame, paper: pd.DataFrame, columns: dict[str, tuple[str, str]],
                   method_order: list[str], deterministic: set[str] = frozenset()) -> str:
    """A markdown table: a row per method and latent size, ours beside the paper's number.
    Methods in ``deterministic`` are marked as having no z sample."""
    header = ["method", "z / s", "seeds", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    keys = summary[GROUP].drop_duplicates()
    keys = keys.assign(order=keys.method.map(lambda m: method_order.index(m)
                                              if m in method_order else len(method_order)))
    for _, key in keys.sort_values(["order", "method", "z_dim", "s_dim"]).iterrows():
        rows = summary[(summary[GROUP] == key[GROUP]).all(axis=1)]
        paper_row = paper[(paper.method == key.method) & (paper.z_dim == key.z_dim)
                          & (paper.s_dim == key.s_dim)]
        label = key.method + (f" {DETERMINISTIC_MARK}" if key.method in deterministic else "")
        cells = [label, f"{key.z_dim} / {key.s_dim}", str(int(rows.seeds.max()))]
        for name, (probe, split) in columns.items():
            row = rows[(rows.probe == probe) & (rows.split == split)].iloc[0]
            cell = _format(row["mean"], row["std"], int(row.seeds))
            if name in PAPER_COLUMNS and not paper_row.empty:
                reference = float(paper_row.iloc[0][PAPER_COLUMNS[name]])
                cell += f" (paper {reference:.2f}, {row['mean'] - reference:+.2f})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def runs_table(records: list[dict]) -> str:
    lines = ["| run id | method | preset | seed | z / s | device | train time | git revision | torch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        c, e, mc = r["config"], r["env"], r["config"].get("method_config", {})
        git = e.get("git", {})
        revision = str(git.get("revision", "?"))[:10] + (" (modified)" if git.get("dirty") else "")
        seconds = r["status"].get("train_seconds")
        lines.append(f"| {r['run_id']} | {c.get('method')} | {c.get('preset')} | {c.get('seed')} "
                     f"| {mc.get('z_dim')} / {mc.get('s_dim')} "
                     f"| {e.get('device')} ({e.get('device_name')}) "
                     f"| {'?' if seconds is None else f'{seconds / 60:.1f} min'} | {revision} "
                     f"| {e.get('libraries', {}).get('torch')} |")
    return "\n".join(lines)


def render(results_dir: Path) -> str:
    metrics, complete, failed = load_runs(results_dir)
    paper = load_paper_table()
    deterministic = {r["config"]["method"] for r in complete if r["config"].get("variational_z") is False}
    out = ["# Weakly supervised disentanglement: benchmark report", "",
           f"Generated {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} from "
           f"{len(complete)} complete run(s) in `{results_dir}`"
           + (f"; {len(failed)} failed run(s) are listed at the end." if failed else "."), "",
           "Each number is the accuracy (%) of a classifier that predicts the specified label "
           "(the digit) from one frozen latent code. **s: higher is better** (the specified code "
           "carries the class). **z: lower is better** (the unspecified code should not leak the "
           "class; chance is 10 % on MNIST). Cells read `ours (paper, ours - paper)`; with several "
           "seeds, ours is the mean ± standard deviation over seeds.", ""]
    if metrics.empty:
        out.append("No complete runs yet: `python -m bench run --methods all --dataset mnist`.")
    for (dataset, preset), part in metrics.groupby(["dataset", "preset"], sort=True):
        summary = summarise(part)
        paper_part = paper[paper.dataset == dataset]
        order = list(dict.fromkeys(paper_part.method))
        out += [f"## {dataset}, preset `{preset}`", ""]
        if preset != "paper":
            out += [f"> The `{preset}` preset trains for a fraction of the paper's protocol (the "
                    "`paper` preset): its numbers show that the methods work, they are not "
                    "comparable to the paper's.", ""]
        out += ["z is probed on a **sample** of the posterior, as the paper did "
                "(the paper-comparable figure).", "",
                accuracy_table(summary, paper_part, TABLE_COLUMNS, order, deterministic), ""]
        if deterministic & set(part.method):
            out += [DETERMINISTIC_NOTE, ""]
        out += ["### z probed on the posterior mean (not the paper's figure)", "",
                "The mean of q(z|x) carries more class information than a sample of it.", "",
                accuracy_table(summary, paper_part.iloc[0:0],
                               {"z mean train": ("z_mean", "train"), "z mean test": ("z_mean", "test")},
                               order, deterministic), ""]
    if complete:
        out += ["## Runs", "", "Each run's folder `runs/<run id>/` holds its full config "
                "(`config.json`), environment (`env.json`), per-iteration losses (`losses.csv`), "
                "final checkpoint and `metrics.csv`.", "", runs_table(complete), ""]
    if failed:
        out += ["## Failed runs", "", "| run id | reason |", "|---|---|"]
        out += [f"| {r['run_id']} | {r['status'].get('reason', '?')} |" for r in failed]
        out.append("")
    return "\n".join(out)


def write_report(results_dir: Path) -> Path:
    path = Path(results_dir) / REPORT_FILE
    results.write_text_atomic(path, render(Path(results_dir)))
    return path
