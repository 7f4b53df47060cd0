"""python -m bench check: compare a run's numbers with a committed baseline or the paper.

Pure functions on tables (pandas, no torch). The numbers checked are those of every evaluation
that declares them (``Evaluation.checked``): the probe accuracies (s higher is better, z accuracy,
the leakage, lower is better) and how much z is used (style retention and active units, higher is
better). A number fails when it is worse than the reference by more than its tolerance; better, or
worse within tolerance, passes.

Against a baseline, every run is judged on its own. A seed the baseline holds for the machine the
run was computed on (RunRecord.computed_on) is held to that seed's own numbers within a small
tolerance (the CPU is deterministic: the same seed on the same kernels gives the same table);
any other run is held to the reference machine's mean within its spread over seeds.

A baseline holds one block of rows per machine: the reference machine's first (it sets the means
the spread rule uses), then any other machine's per-seed rows, which a user adds for their own
machine from a known-good commit to get the tight check there (docs/usage.md).
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import Refused, UnusableFile, first_line
from bench.evaluations import in_order
from bench.store import results
from bench.store.records import RunRecord, load_runs
from bench.terminal import printable

BASELINE_DIR = results.COMMITTED_RESULTS / "baselines"
KEY = ["method", "dataset", "preset", "z_dim", "s_dim", "probe", "split"]
BASELINE_COLUMNS = (*KEY, "mean", "std", "seeds")
# Then, optionally: seed_<n>, that seed's number, COMPUTED_ON, what they were computed on, and
# LIBRARIES, the versions of the VERSIONED libraries they were made with (libraries_text).
SEED_PREFIX = "seed_"
COMPUTED_ON = "seeds_computed_on"
LIBRARIES = "libraries"
VERSIONED = ("torch", "numpy")
# The direction of every checked number, by its name (the "probe" column of a baseline).
HIGHER_IS_BETTER = {name: higher for evaluation in in_order() if evaluation.checked
                    for name, higher in evaluation.checked.higher_is_better.items()}
# One point of absolute tolerance in each number's unit (percentages: 1).
POINT = {name: evaluation.checked.point.get(name, 1.0) for evaluation in in_order()
         if evaluation.checked for name in evaluation.checked.higher_is_better}
PASS, BETTER, WORSE, MISSING = "ok", "better", "WORSE", "MISSING"
FAILING = (WORSE, MISSING)


# How far a seed's number may fall from the same seed's baseline number, in points: just above the
# largest difference measured between installs and thread counts (results/baselines/README.md).
SEED_TOLERANCE = 0.5
SEED_RULE, SPREAD_RULE = "seed", "spread"


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """A number may be worse than its reference by ``seed`` points when the baseline holds its
    seed, else by max(absolute points, spread_factor x the baseline's spread over seeds); a point
    is one unit of a percentage or a count, 0.01 of a number in [0, 1]."""
    absolute: float = 2.0
    spread_factor: float = 3.0
    seed: float = SEED_TOLERANCE


# The paper check's documented tolerances (absolute points), by probe.
PAPER_TOLERANCE = {"s": 1.5, "z_sample": 5.0}
PAPER_COLUMN = {("s", "train"): "s_train_acc", ("s", "test"): "s_test_acc",
                ("z_sample", "train"): "z_train_acc", ("z_sample", "test"): "z_test_acc"}


def baseline_path(dataset: str, preset: str, directory: Path = BASELINE_DIR) -> Path:
    """``<dataset>-<preset>.csv`` in ``directory``; names read from run files must be plain (a
    crafted preset such as ``../../x`` would otherwise choose where a baseline is written)."""
    for what, name in (("dataset", dataset), ("preset", preset)):
        if not results.is_plain_name(name):
            raise UnusableFile(f"runs name the {what} {str(name)[:80]!r}: not a plain name, so no "
                               "baseline file is named after it")
    return Path(directory) / f"{dataset}-{preset}.csv"


def baseline_statistics(numbers: pd.DataFrame) -> pd.DataFrame:
    """Mean, spread (sample std; 0 for one seed) and seed count of each number over seeds
    (``numbers``: KEY columns and ``value``)."""
    table = numbers.groupby(KEY)["value"].agg(mean="mean", std="std", seeds="count").reset_index()
    table["std"] = table["std"].fillna(0.0)
    return table


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (KEY, reference, now, tolerance) with delta and verdict: MISSING without a
    number, WORSE when worse than the reference by more than the tolerance, "better" when better
    by more, else ok. Directions come from HIGHER_IS_BETTER."""
    table = table.copy()
    table["delta"] = table["now"] - table["reference"]
    sign = table["probe"].map(lambda p: 1.0 if HIGHER_IS_BETTER[p] else -1.0)
    worse_by = -sign * table["delta"]  # positive: worse than the reference
    table["verdict"] = np.select(
        [table["now"].isna(), worse_by > table["tolerance"], worse_by < -table["tolerance"]],
        [MISSING, WORSE, BETTER], default=PASS)
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
    return verdicts(table)


def seed_columns(baseline: pd.DataFrame) -> list[str]:
    """The baseline's seed_<n> columns (COMPUTED_ON does not start with SEED_PREFIX)."""
    return [c for c in baseline.columns if c.startswith(SEED_PREFIX)]


def seeds_computed_on(baseline: pd.DataFrame) -> set[str]:
    """What the baseline's per-seed numbers were computed on (empty: it has none)."""
    return set(machines(baseline)) - {""}


def machines(baseline: pd.DataFrame) -> list[str]:
    """The baseline's machines in the order of its rows, the reference machine first ("" for a
    baseline without a COMPUTED_ON column)."""
    if COMPUTED_ON not in baseline.columns:
        return [""]
    return list(dict.fromkeys(baseline[COMPUTED_ON].fillna("").astype(str)))


def reference_rows(baseline: pd.DataFrame) -> pd.DataFrame:
    """The reference machine's rows (those of the first machine listed)."""
    return machine_rows(baseline, machines(baseline)[0])


def machine_rows(baseline: pd.DataFrame, machine: str) -> pd.DataFrame:
    """The rows of one machine (none when the baseline has no block for it)."""
    if COMPUTED_ON not in baseline.columns:  # an older baseline: one machine, unnamed
        return baseline
    return baseline[baseline[COMPUTED_ON].fillna("").astype(str) == machine]


def seed_numbers(baseline: pd.DataFrame) -> pd.DataFrame:
    """The baseline's per-seed numbers: KEY, seed, computed_on, reference (none in a baseline
    written before baselines kept them)."""
    columns = seed_columns(baseline)
    if not columns or COMPUTED_ON not in baseline.columns:
        return pd.DataFrame(columns=[*KEY, "seed", "computed_on", "reference"])
    table = baseline[[*KEY, COMPUTED_ON, *columns]].rename(columns={COMPUTED_ON: "computed_on"})
    table = table.melt(id_vars=[*KEY, "computed_on"], var_name="seed", value_name="reference")
    table = table.dropna(subset=["reference"])
    return table.assign(seed=table["seed"].str[len(SEED_PREFIX):].astype(int))


def against_baseline(numbers: pd.DataFrame, baseline: pd.DataFrame, tolerance: Tolerance) -> pd.DataFrame:
    """Judge every run's number (``numbers``: KEY, seed, computed_on, value) against the
    baseline: by its own seed's number within ``tolerance.seed`` points where the baseline holds
    that seed for the machine it was computed on (rule "seed"), else by the reference machine's
    mean within max(absolute points, spread_factor x spread) (rule "spread"). A reference number
    no run gives is MISSING; numbers the baseline lacks are not judged."""
    reference = reference_rows(baseline)
    points = reference["probe"].map(POINT).fillna(1.0)
    spread = reference.assign(spread_reference=reference["mean"],
                              spread_tolerance=np.maximum(tolerance.absolute * points,
                                                          tolerance.spread_factor * reference["std"]))
    table = spread[[*KEY, "spread_reference", "spread_tolerance"]].merge(
        numbers[[*KEY, "seed", "computed_on", "value"]], on=KEY, how="left")
    table = table.merge(seed_numbers(baseline), on=[*KEY, "seed", "computed_on"], how="left")
    by_seed = table["reference"].notna()
    table["rule"] = np.where(by_seed, SEED_RULE, SPREAD_RULE)
    table["reference"] = table["reference"].where(by_seed, table["spread_reference"])
    table["tolerance"] = np.where(by_seed, tolerance.seed * table["probe"].map(POINT).fillna(1.0),
                                  table["spread_tolerance"])
    table = table.rename(columns={"value": "now"}).drop(columns=["spread_reference",
                                                                 "spread_tolerance"])
    return verdicts(table).sort_values([*KEY, "seed"], na_position="first").reset_index(drop=True)


def unjudged(numbers: pd.DataFrame, baseline: pd.DataFrame) -> list[str]:
    """"method z/s" of each experiment of the baseline's dataset and preset whose numbers the
    baseline has no row for: they are not judged (a method added since the baseline was written)."""
    own = numbers.merge(baseline[["dataset", "preset"]].drop_duplicates(), on=["dataset", "preset"])
    keys = own[KEY].drop_duplicates().merge(baseline[KEY].drop_duplicates(), on=KEY, how="left",
                                            indicator=True)
    missing = keys[keys["_merge"] == "left_only"]
    return sorted({f"{r.method} {r.z_dim}/{r.s_dim}" for r in missing.itertuples()})


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
    """A committed baseline, checked: a malformed one is a UnusableFile naming the file."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise UnusableFile(f"no baseline {path} (write one with --update-baseline)") from None
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise UnusableFile(f"malformed baseline {path}: {first_line(error)}") from None
    return checked_baseline(table, path)


def checked_baseline(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``table``, read from the baseline ``path``, checked (an UnusableFile naming the file where
    it is malformed), its numbers as numbers."""
    missing = [c for c in BASELINE_COLUMNS if c not in table.columns]
    if missing:
        raise UnusableFile(f"malformed baseline {path}: missing columns {', '.join(missing)}")
    numbers = table[["z_dim", "s_dim", "mean", "std", "seeds"]].apply(pd.to_numeric, errors="coerce")
    if numbers.isna().any().any() or table.empty:
        raise UnusableFile(f"malformed baseline {path}: empty, or a number that is not one")
    unknown = set(table.probe) - set(HIGHER_IS_BETTER)
    if unknown:
        raise UnusableFile(f"malformed baseline {path}: unknown probe {sorted(unknown)[0]!r}")
    if table.duplicated([*KEY, COMPUTED_ON] if COMPUTED_ON in table.columns else KEY).any():
        raise UnusableFile(f"malformed baseline {path}: a row is listed twice")
    table[["z_dim", "s_dim", "seeds"]] = numbers[["z_dim", "s_dim", "seeds"]].astype(int)
    table[["mean", "std"]] = numbers[["mean", "std"]]
    for column in seed_columns(table):
        values = pd.to_numeric(table[column], errors="coerce")
        if not column[len(SEED_PREFIX):].isdigit() or (values.isna() & table[column].notna()).any():
            raise UnusableFile(f"malformed baseline {path}: column {column!r} is not seed_<n> with "
                             "numbers")
        table[column] = values
    return table


def has_seed_numbers(baseline: pd.DataFrame) -> bool:
    return bool(seeds_computed_on(baseline))


def checked_numbers(record: RunRecord) -> pd.DataFrame:
    """The numbers of one run that the check holds to a reference, as KEY columns and ``value``
    (an evaluation's name column becomes "probe")."""
    frames = []
    for evaluation in in_order():
        checked = evaluation.checked
        needed = (*[c for c in KEY if c != "probe"], checked.key, checked.value) if checked else ()
        table = record.table(evaluation.file, needed) if checked else None
        if table is None or table.empty:
            continue
        table = table[table[checked.key].isin(list(checked.higher_is_better))]
        frames.append(table.assign(probe=table[checked.key],
                                   value=pd.to_numeric(table[checked.value], errors="coerce"))
                      [[*KEY, "value"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*KEY, "value"])


def libraries_text(versions: dict[str, str | None]) -> str:
    """The VERSIONED libraries' versions as a baseline records them: "torch 2.14.1, numpy 2.4.6"
    (a library without a version is left out)."""
    return ", ".join(f"{name} {versions[name]}" for name in VERSIONED if versions.get(name))


def parse_libraries(text: str) -> dict[str, str]:
    """The inverse of libraries_text."""
    parts = (part.strip().partition(" ") for part in text.split(","))
    return {name: version.strip() for name, _, version in parts if name}


def installed_versions() -> dict[str, str | None]:
    """The installed versions of the VERSIONED libraries (None: not installed)."""
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None
    return {name: version(name) for name in VERSIONED}


def version_notes(baseline: pd.DataFrame, installed: dict[str, str | None]) -> list[str]:
    """One line when an installed VERSIONED library differs from the version the baseline was
    made with (its LIBRARIES column), else none; none for a baseline without the column. A
    warning only: another version may move the numbers, the check still judges them."""
    if LIBRARIES not in baseline.columns:
        return []
    made_with = sorted(set(baseline[LIBRARIES].dropna().astype(str)) - {""})
    recorded = [parse_libraries(text) for text in made_with]
    differing = [name for name in VERSIONED
                 if any(name in versions and versions[name] != installed.get(name)
                        for versions in recorded)]
    if not differing:
        return []
    now = ", ".join(f"{name} {installed.get(name) or 'not installed'}" for name in differing)
    return [f"note: the baseline was made with {'; '.join(made_with)}; installed: {now} "
            "(numbers may move; a warning, not a failure)"]


def current_numbers(results_dir: Path) -> pd.DataFrame:
    """Every checked number of every complete run of a suite method in results_dir (KEY, seed,
    computed_on, LIBRARIES, value; an external model has no baseline: ``external_runs``);
    refuses runs of one method and size that differ in more than their seed (the report's rule:
    RunRecord.variant)."""
    complete = [r for r in load_runs(results_dir) if r.complete and r.external is None]
    variants: dict[tuple, dict[str, str]] = {}
    for record in complete:
        key = (record.method, record.dataset, record.preset, record.z_dim, record.s_dim)
        variants.setdefault(key, {}).setdefault(record.variant, record.run_id)
    for key, found in variants.items():
        if len(found) > 1:
            raise Refused(f"runs of different configs for {key[0]} {key[1]} {key[2]} "
                             f"{key[3]}/{key[4]} ({', '.join(found.values())}): keep one "
                             "config per method and size in the results checked")
    frames = [checked_numbers(r).assign(seed=r.seed, computed_on=r.computed_on,
                                        **{LIBRARIES: libraries_text(r.env.get("libraries") or {})})
              for r in complete]
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=[*KEY, "seed", "computed_on", LIBRARIES, "value"]))


def external_runs(results_dir: Path) -> list[str]:
    """The ids of the complete runs of external models (python -m bench evaluate-model): the check
    judges none of their numbers."""
    return [r.run_id for r in load_runs(results_dir) if r.complete and r.external is not None]


def current_results(numbers: pd.DataFrame) -> pd.DataFrame:
    """Mean, spread and seed count over the seeds of ``numbers`` (current_numbers)."""
    return baseline_statistics(numbers) if not numbers.empty else pd.DataFrame(columns=BASELINE_COLUMNS)


def _number(value: float, probe: str, signed: bool = False) -> str:
    if pd.isna(value):
        return "-"
    decimals = 4 if POINT.get(probe, 1.0) < 1 else 2
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def format_table(table: pd.DataFrame, reference_name: str) -> str:
    """One line per judged number; with per-run verdicts (against a baseline), the run's seed and
    the rule that judged it."""
    per_run = "rule" in table.columns
    header = ["method", "z/s", "probe", "split", *(["seed", "rule"] if per_run else []),
              reference_name, "now", "delta", "tolerance", "verdict"]
    rows = [[r.method, f"{r.z_dim}/{r.s_dim}", r.probe, r.split,
             *([("-" if pd.isna(r.seed) else str(int(r.seed))), r.rule] if per_run else []),
             _number(r.reference, r.probe), _number(r.now, r.probe),
             _number(r.delta, r.probe, signed=True), _number(r.tolerance, r.probe), r.verdict]
            for r in table.itertuples()]
    rows = [[printable(x) for x in row] for row in rows]  # names read from run files
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
                     for line in [header, *rows])


def update_baseline(numbers: pd.DataFrame, path: Path, force: bool) -> None:
    """Write ``numbers`` (current_numbers of one dataset and preset, computed on one machine) into
    the baseline at ``path``: each number's mean, spread and seed count, and each seed's own number,
    as that machine's block. The other machines' blocks are kept (a new machine's block goes
    last); with ``force`` the file holds this block alone, whose machine becomes the reference.
    Without ``force``, refuse (Refused naming the numbers) where a mean would be worse than in the
    block it replaces, or a number of that block would be dropped."""
    machines_now = sorted(set(numbers.computed_on))
    if len(machines_now) > 1:
        raise Refused(f"not writing {path}: its runs were computed on "
                      f"{' and on '.join(machines_now)}; a baseline's per-seed numbers come from "
                      "one machine, thread count and torch")
    libraries = sorted(set(numbers[LIBRARIES].dropna()) - {""}) if LIBRARIES in numbers else []
    if len(libraries) > 1:
        raise Refused(f"not writing {path}: its runs were computed with "
                      f"{' and with '.join(libraries)}; a baseline comes from one set")
    machine = machines_now[0] if machines_now else ""
    # Compared as written: a mean of 10, 12, 10 is stored as 10.6667, and 10.666... must not
    # count as worse than itself.
    current = current_results(numbers).round({"mean": 4, "std": 4})
    old = read_baseline(path) if path.exists() and not force else None
    if old is not None:
        replaced = machine_rows(old, machine)
        judged = judge(replaced, current, pd.Series(np.zeros(len(replaced))))
        worse = judged[judged.verdict.isin(FAILING)]
        if not worse.empty:
            names = ", ".join(f"{r.method} {r.z_dim}/{r.s_dim} {r.probe} {r.split}"
                              for r in worse.itertuples())
            raise Refused(f"not overwriting {path}: it would make these worse or drop them: "
                          f"{names} (use --force)")
    seeds = numbers.pivot_table(index=KEY, columns="seed", values="value", aggfunc="first")
    seeds.columns = [f"{SEED_PREFIX}{int(seed)}" for seed in seeds.columns]
    block = current[list(BASELINE_COLUMNS)]
    block = block.merge(seeds.reset_index(), on=KEY, how="left").assign(
        **{COMPUTED_ON: machine, LIBRARIES: libraries[0] if libraries else ""})
    if old is not None and COMPUTED_ON in old.columns:
        blocks = [block if m == machine else machine_rows(old, m) for m in machines(old)]
        if machine not in machines(old):
            blocks.append(block)
        block = pd.concat(blocks, ignore_index=True)
        block = block[[*BASELINE_COLUMNS, *sorted(seed_columns(block), key=_seed_order),
                       COMPUTED_ON, LIBRARIES]]
    results.write_text_atomic(path, block.to_csv(index=False))


def _seed_order(column: str) -> int:
    return int(column[len(SEED_PREFIX):])


def update_baselines(numbers: pd.DataFrame, groups: list[tuple[str, str]], baseline: Path | None,
                     force: bool) -> list[Path]:
    """Write the baseline of each (dataset, preset) of ``groups`` from ``numbers``: to
    ``baseline`` when given (then only one group may be present), else to its committed place.
    Returns the files written (``update_baseline`` refuses what would make a baseline worse)."""
    if baseline and len(groups) > 1:
        raise Refused(f"--baseline names one file but the runs hold {len(groups)} dataset/preset "
                      "pairs")
    written = []
    for dataset, preset in groups:
        path = baseline or baseline_path(dataset, preset)
        update_baseline(numbers[(numbers.dataset == dataset) & (numbers.preset == preset)], path,
                        force)
        written.append(path)
    return written


Table = tuple[str, pd.DataFrame]  # (what it is compared with, the verdict table)


def compare_with_paper(current: pd.DataFrame, paper: pd.DataFrame) -> tuple[list[Table], list[str]]:
    """The runs of the paper preset against the paper's table, and the leakage orders that differ."""
    paper_runs = current[current.preset == "paper"]
    if paper_runs.empty:
        raise Refused("no complete runs of the paper preset to compare with the paper")
    table, disorder = against_paper(paper_runs, paper)
    return [("paper", table)], disorder


def compare_with_baselines(numbers: pd.DataFrame, groups: list[tuple[str, str]],
                           baseline: Path | None, tolerance: Tolerance,
                           say=print) -> tuple[list[Table], list[str]]:
    """``numbers`` against ``baseline``, or else the committed baseline of each (dataset, preset)
    of ``groups`` that has one; ``say`` gets a note for each version difference, each number
    judged by the spread rule instead of its seeds, and each experiment a baseline lacks."""
    files = [baseline] if baseline else [p for p in (baseline_path(d, pr) for d, pr in groups)
                                         if p.exists()]
    if not files:
        raise Refused(f"no baseline for these runs ({', '.join(f'{d}-{p}' for d, p in groups)}): "
                      "write one with --update-baseline")
    tables = []
    for path in files:
        reference = read_baseline(path)
        for line in version_notes(reference, installed_versions()):
            say(f"{line} [{path.name}]")
        if not has_seed_numbers(reference):
            say(f"note: {path} has no per-seed numbers (an older baseline): every number is "
                "judged by the spread rule")
        else:
            elsewhere = sorted(set(numbers.computed_on) - seeds_computed_on(reference))
            if elsewhere:
                say(f"note: the per-seed numbers do not apply to runs computed on "
                    f"{'; '.join(elsewhere)} ({path.name} holds them for "
                    f"{'; '.join(machines(reference))}): those runs are judged by the spread rule, "
                    f"worse than the reference mean by at most max({tolerance.absolute:g} points, "
                    f"{tolerance.spread_factor:g} x its spread over seeds); to check them per "
                    "seed, add this machine's rows from a known-good commit (docs/usage.md)")
        for experiment in unjudged(numbers, reference):
            say(f"note: {experiment} has numbers {path.name} has no row for: not judged (add "
                "them with --update-baseline)")
        tables.append((f"baseline {path.name}", against_baseline(numbers, reference, tolerance)))
    return tables, []

