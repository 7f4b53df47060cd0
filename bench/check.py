"""python -m bench check: compare probe accuracies with a committed baseline or the paper.

Pure functions on tables (pandas, no torch). Each probe has a direction: s accuracy higher is
better, z accuracy (leakage) lower is better. A number fails when it is worse than the reference by
more than its tolerance; better, or worse within tolerance, passes.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench import results
from bench.errors import UsageError, first_line
from bench.report import load_runs

BASELINE_DIR = results.DEFAULT_RESULTS / "baselines"
KEY = ["method", "dataset", "preset", "z_dim", "s_dim", "probe", "split"]
BASELINE_COLUMNS = (*KEY, "mean", "std", "seeds")
HIGHER_IS_BETTER = {"s": True, "z_mean": False, "z_sample": False}
PASS, BETTER, WORSE, MISSING = "ok", "better", "WORSE", "MISSING"
FAILING = (WORSE, MISSING)


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """A number may be worse than its reference by max(absolute, spread_factor x reference spread)."""
    absolute: float = 2.0
    spread_factor: float = 3.0


# The paper check's documented tolerances (absolute points), by probe.
PAPER_TOLERANCE = {"s": 1.5, "z_sample": 5.0}
PAPER_COLUMN = {("s", "train"): "s_train_acc", ("s", "test"): "s_test_acc",
                ("z_sample", "train"): "z_train_acc", ("z_sample", "test"): "z_test_acc"}


def baseline_path(dataset: str, preset: str, directory: Path = BASELINE_DIR) -> Path:
    return Path(directory) / f"{dataset}-{preset}.csv"


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, spread (sample std; 0 for one seed) and seed count of each number over seeds."""
    table = metrics.groupby(KEY)["accuracy"].agg(mean="mean", std="std", seeds="count").reset_index()
    table["std"] = table["std"].fillna(0.0)
    return table


def judge(reference: pd.DataFrame, current: pd.DataFrame, tolerance: pd.Series) -> pd.DataFrame:
    """Join reference (KEY + mean) with current (KEY + mean) and judge every reference row.

    ``tolerance`` is aligned with ``reference``. Reference rows without a current number are
    MISSING; current numbers without a reference row are not judged.
    """
    table = reference[KEY].copy()
    table["reference"] = reference["mean"].to_numpy()
    table["tolerance"] = np.asarray(tolerance, dtype=float)
    table = table.merge(current[KEY + ["mean"]].rename(columns={"mean": "now"}), on=KEY, how="left")
    table["delta"] = table["now"] - table["reference"]
    sign = table["probe"].map(lambda p: 1.0 if HIGHER_IS_BETTER[p] else -1.0)
    worse_by = -sign * table["delta"]  # positive: worse than the reference
    table["verdict"] = np.select(
        [table["now"].isna(), worse_by > table["tolerance"], worse_by < -table["tolerance"]],
        [MISSING, WORSE, BETTER], default=PASS)
    return table


def against_baseline(current: pd.DataFrame, baseline: pd.DataFrame, tolerance: Tolerance) -> pd.DataFrame:
    limits = np.maximum(tolerance.absolute, tolerance.spread_factor * baseline["std"].to_numpy())
    return judge(baseline, current, pd.Series(limits))


def paper_reference(paper: pd.DataFrame, datasets: set[str]) -> pd.DataFrame:
    """The paper's table in long format (KEY + mean) for ``datasets``, preset "paper"."""
    rows = [dict(method=r.method, dataset=r.dataset, preset="paper", z_dim=r.z_dim, s_dim=r.s_dim,
                 probe=probe, split=split, mean=float(getattr(r, column)))
            for r in paper.itertuples() if r.dataset in datasets
            for (probe, split), column in PAPER_COLUMN.items()]
    return pd.DataFrame(rows, columns=[*KEY, "mean"])


def leakage_order(table: pd.DataFrame, value: str) -> dict[tuple, list[str]]:
    """Methods from most to least leaking (z_sample test accuracy), per (dataset, z_dim, s_dim)."""
    z_test = table[(table.probe == "z_sample") & (table.split == "test")].dropna(subset=[value])
    return {key: list(part.sort_values(value, ascending=False).method)
            for key, part in z_test.groupby(["dataset", "z_dim", "s_dim"])}


def against_paper(current: pd.DataFrame, paper: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per-number verdicts against the paper, and the latent sizes whose leakage order differs."""
    reference = paper_reference(paper, set(current.dataset))
    table = judge(reference, current, reference["probe"].map(PAPER_TOLERANCE))
    ours, theirs = leakage_order(table, "now"), leakage_order(table, "reference")
    complete = {k for k, methods in ours.items() if len(methods) == len(theirs.get(k, []))}
    disorder = [f"{d} {z}/{s}: z leakage order {' > '.join(ours[(d, z, s)])}, paper "
                f"{' > '.join(theirs[(d, z, s)])}"
                for (d, z, s) in sorted(complete) if ours[(d, z, s)] != theirs[(d, z, s)]]
    return table, disorder


def read_baseline(path: Path) -> pd.DataFrame:
    """A committed baseline, checked: a malformed one is a UsageError naming the file."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise UsageError(f"no baseline {path} (write one with --update-baseline)") from None
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise UsageError(f"malformed baseline {path}: {first_line(error)}") from None
    missing = [c for c in BASELINE_COLUMNS if c not in table.columns]
    if missing:
        raise UsageError(f"malformed baseline {path}: missing columns {', '.join(missing)}")
    numbers = table[["z_dim", "s_dim", "mean", "std", "seeds"]].apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any().any() or table.empty:
        raise UsageError(f"malformed baseline {path}: empty, or a number that is not one")
    unknown = set(table.probe) - set(HIGHER_IS_BETTER)
    if unknown:
        raise UsageError(f"malformed baseline {path}: unknown probe {sorted(unknown)[0]!r}")
    if table.duplicated(KEY).any():
        raise UsageError(f"malformed baseline {path}: a row is listed twice")
    table[["z_dim", "s_dim", "seeds"]] = numbers[["z_dim", "s_dim", "seeds"]].astype(int)
    table[["mean", "std"]] = numbers[["mean", "std"]]
    return table


def current_results(results_dir: Path) -> pd.DataFrame:
    """Summary over seeds of the complete runs in results_dir; refuses to mix configs."""
    metrics, complete, _ = load_runs(results_dir)
    configs: dict[tuple, dict[str, str]] = {}
    for record in complete:
        c = record["config"]
        mc = c.get("method_config", {})
        key = (c.get("method"), c.get("dataset"), c.get("preset"), mc.get("z_dim"), mc.get("s_dim"))
        variant = json.dumps({"method_config": mc, "settings": c.get("settings")}, sort_keys=True)
        configs.setdefault(key, {}).setdefault(variant, record["run_id"])
    for key, variants in configs.items():
        if len(variants) > 1:
            raise UsageError(f"runs of different configs for {key[0]} {key[1]} {key[2]} "
                             f"{key[3]}/{key[4]} ({', '.join(variants.values())}): keep one "
                             "config per method and size in the results checked")
    return summarise(metrics) if not metrics.empty else pd.DataFrame(columns=BASELINE_COLUMNS)


def format_table(table: pd.DataFrame, reference_name: str) -> str:
    header = ["method", "z/s", "probe", "split", reference_name, "now", "delta", "tolerance", "verdict"]
    rows = [[r.method, f"{r.z_dim}/{r.s_dim}", r.probe, r.split, f"{r.reference:.2f}",
             "-" if pd.isna(r.now) else f"{r.now:.2f}",
             "-" if pd.isna(r.delta) else f"{r.delta:+.2f}", f"{r.tolerance:.2f}", r.verdict]
            for r in table.itertuples()]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
                     for line in [header, *rows])


def update_baseline(current: pd.DataFrame, path: Path, force: bool) -> None:
    """Write ``current`` (one dataset and preset) as the baseline at ``path``. Without ``force``,
    refuse (UsageError naming the numbers) where it would be worse than the baseline it replaces."""
    if path.exists() and not force:
        verdicts = against_baseline(current, read_baseline(path), Tolerance(0.0, 0.0))
        worse = verdicts[verdicts.verdict.isin(FAILING)]
        if not worse.empty:
            names = ", ".join(f"{r.method} {r.z_dim}/{r.s_dim} {r.probe} {r.split}"
                              for r in worse.itertuples())
            raise UsageError(f"not overwriting {path}: it would make these worse or drop them: "
                             f"{names} (use --force)")
    table = current[list(BASELINE_COLUMNS)].round({"mean": 4, "std": 4})
    results.write_text_atomic(path, table.to_csv(index=False))
