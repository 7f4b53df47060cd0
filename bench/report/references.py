"""Reference rows: the suite's own published numbers, shown in a folder's report beside its runs
so that a model (a user's own, evaluated by ``bench evaluate-model``) has something to be read
against without training the suite's methods first.

For a dataset and preset, and the latent sizes the folder's runs have, they come from what the
repository holds:

- the published runs of ``results/paper/`` (the paper campaign's, ``bench campaign publish``):
  run folders, read as any run folder is (``load_runs``);
- the committed baseline ``results/baselines/<dataset>-<preset>.csv`` (``bench check``'s): each
  seed's own number of the reference machine's block becomes a row of its evaluation's table
  (``Evaluation.checked`` says which table and column), read through ``read_run_file``.

An experiment (method and latent sizes) comes from the first of these that has it. Every record
is marked ``reference`` (bench.store.records.RunRecord): the report lists reference rows after the
folder's own, marks each one, says in one sentence where they come from, and keeps them out of its
statistics, figures and list of runs; ``bench check`` never sees them (they are not in the folder).
Nothing is trained, and no torch is imported.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import UnusableFile, first_line
from bench.evaluations import in_order
from bench.report import comparison
from bench.store import results
from bench.store.records import RunRecord, RunStatus, load_runs

PUBLISHED = results.COMMITTED_RESULTS / "paper"
# What the sentence calls each source; the paths relative to the repository
PUBLISHED_NAME = "results/paper/"


@dataclasses.dataclass(frozen=True)
class References:
    """The reference rows of one dataset and preset, and the sentence on where they come from."""
    records: tuple[RunRecord, ...] = ()
    sources: tuple[str, ...] = ()  # one clause per source read, or why one could not be


def _relative(path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(results.REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


@functools.lru_cache(maxsize=None)
def _committed(path: Path) -> str | None:
    """"revision 20fdce9 of 2026-12-06" (the last commit that changed ``path``; "modified since"
    when the working tree's file differs from it), or None where git does not say."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=results.REPO_ROOT, capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None
    last = git("log", "-1", "--format=%h %cs", "--", str(path))
    if not last:
        return None
    revision, _, date = last.partition(" ")
    modified = git("status", "--porcelain", "--", str(path))
    return f"revision {revision} of {date}" + (", modified since" if modified else "")


def published(dataset: str, preset: str, sizes: set[tuple], own: set[str],
              folder: Path = PUBLISHED) -> tuple[list[RunRecord], str | None]:
    """The complete published runs of ``dataset``, ``preset`` and ``sizes`` (not those among
    ``own``, the folder's run ids: a report of results/paper itself), marked as references, and
    the clause saying what they are (None without any)."""
    if not Path(folder).is_dir():
        return [], None
    source = _relative(folder) + "/"
    chosen = [dataclasses.replace(r, reference=source) for r in load_runs(folder)
              if r.complete and r.dataset == dataset and r.preset == preset
              and (r.z_dim, r.s_dim) in sizes and r.run_id not in own]
    if not chosen:
        return [], None
    experiments: dict[str, list] = {}
    revisions, until = set(), ""
    for record in chosen:
        experiments.setdefault(f"{record.method} {record.z_dim}/{record.s_dim}", []).append(record.seed)
        revisions |= record.training_summary()[1]
        for segment in record.training_segments:
            for key in ("ended", "checkpointed"):
                if isinstance(segment.get(key), str):
                    until = max(until, segment[key][:10])
    runs = "; ".join(f"{name} seed{'s' if len(seeds) > 1 else ''} "
                     f"{', '.join(str(s) for s in sorted(seeds, key=str))}"
                     for name, seeds in sorted(experiments.items()))
    trained = [f"trained at revision{'s' if len(revisions) > 1 else ''} "
               f"{', '.join(sorted(revisions))}"] if revisions else []
    trained += [f"last trained on {until}"] if until else []
    return chosen, (f"{source} (the paper campaign's published runs: {runs}"
                    + (f"; {', '.join(trained)}" if trained else "") + ")")


def _baseline_records(baseline: pd.DataFrame, path: Path, dataset: str, preset: str,
                      sizes: set[tuple], skip: set[tuple]) -> list[RunRecord]:
    """A record per (method, latent sizes, seed) of the reference machine's per-seed numbers,
    its tables those of the evaluations that declare the numbers (``Evaluation.checked``)."""
    reference = comparison.reference_rows(baseline)
    reference = reference[(reference.dataset.astype(str) == dataset)
                          & (reference.preset.astype(str) == preset)]
    seeds = comparison.seed_numbers(reference)
    if seeds.empty:
        return []
    source = _relative(path)
    records = []
    for (method, z, s, seed), rows in seeds.groupby(["method", "z_dim", "s_dim", "seed"], sort=True):
        if (int(z), int(s)) not in sizes or (method, int(z), int(s)) in skip:
            continue
        run_id = f"{method}-{dataset}-{preset}-z{int(z)}-s{int(s)}-seed{int(seed)} ({path.name})"
        run = dict(run_id=run_id, method=method, dataset=dataset, preset=preset, seed=int(seed),
                   z_dim=int(z), s_dim=int(s))
        tables: dict[str, pd.DataFrame] = {}
        for evaluation in in_order():
            checked = evaluation.checked
            if checked is None:
                continue
            mine = rows[rows.probe.isin(list(checked.higher_is_better))]
            if not mine.empty:
                tables[evaluation.file] = pd.DataFrame(
                    [{**run, checked.key: r.probe, "split": r.split, checked.value: r.reference}
                     for r in mine.itertuples()])
        probes = tables.get(results.METRICS_FILE)
        config = {"method": method, "dataset": dataset, "preset": preset, "seed": int(seed),
                  "run_id": run_id, "method_config": {"z_dim": int(z), "s_dim": int(s)},
                  "variational_z": _variational(probes)}
        records.append(BaselineRun(run_id, path.parent, config, {}, RunStatus(results.COMPLETE),
                                   reference=source, tables=tables))
    return records


def _variational(probes: pd.DataFrame | None) -> bool:
    """Whether z is variational, from the probes: a deterministic z has no sample, so its
    z_sample rows are its z_mean rows (bench/evaluations/encoding.py probe_job), number for
    number; a sampled z's never all are."""
    if probes is None:
        return True
    value = results.METRICS_COLUMNS[-1]
    by_probe = {probe: part.set_index("split")[value].sort_index()
                for probe, part in probes.groupby("probe")}
    sample, mean = by_probe.get("z_sample"), by_probe.get("z_mean")
    return sample is None or mean is None or not sample.equals(mean)


@dataclasses.dataclass(frozen=True)
class BaselineRun(RunRecord):
    """A seed of a committed baseline as a reference row: its tables in memory, nothing on disk."""
    tables: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict, compare=False,
                                                        repr=False)

    def table(self, name: str, columns: tuple[str, ...] = results.RUN_COLUMNS) -> pd.DataFrame | None:
        found = self.tables.get(name)
        return None if found is None else found.copy()

    @property
    def evaluations(self) -> dict[str, Any]:
        return {}

    @property
    def training_segments(self) -> list[dict[str, Any]]:
        return []


def baseline(dataset: str, preset: str, sizes: set[tuple], skip: set[tuple],
             directory: Path = comparison.BASELINE_DIR) -> tuple[list[RunRecord], str | None]:
    """The committed baseline's reference rows for ``dataset``, ``preset`` and ``sizes`` (not the
    experiments of ``skip``, (method, z, s), which a source before it gave), and the clause saying
    where they come from; a baseline that cannot be read gives none, and a clause saying why."""
    if not (results.is_plain_name(dataset) and results.is_plain_name(preset)):
        return [], None  # names from run files never choose a file (comparison.baseline_path)
    path = comparison.baseline_path(dataset, preset, directory)
    if not path.is_file() and not path.is_symlink():
        return [], None
    name = _relative(path)
    text = results.read_run_file(path, results.TABLE_BYTES_LIMIT)
    if text is None:
        return [], f"{name} left out: not a regular file bench reads (a link, or too large)"
    try:
        table = comparison.checked_baseline(pd.read_csv(io.StringIO(text)), path)
    except UnusableFile as error:
        return [], f"{name} left out: {first_line(error)}"
    except (ValueError, pd.errors.ParserError) as error:
        return [], f"{name} left out: not a readable table ({first_line(error)})"
    records = _baseline_records(table, path, dataset, preset, sizes, skip)
    if not records:
        return [], None
    seeds = sorted({r.seed for r in records})
    machine = comparison.machines(table)[0]
    committed = _committed(path)
    return records, (f"{name} (the committed `{preset}` baseline of `bench check`"
                     + (f", {committed}" if committed else "")
                     + f"; seeds {', '.join(map(str, seeds))}"
                     + (f" computed on {machine}" if machine else "") + ")")


def references_for(dataset: str, preset: str, records: list[RunRecord]) -> References:
    """The reference rows for a dataset and preset's part of the report: of the latent sizes
    ``records`` (the folder's complete runs there) have, none without such runs."""
    sizes = {(r.z_dim, r.s_dim) for r in records}
    if not sizes:
        return References()
    runs, said = published(dataset, preset, sizes, {r.run_id for r in records})
    given = {(r.method, r.z_dim, r.s_dim) for r in runs}
    seeds, clause = baseline(dataset, preset, sizes, given)
    return References(tuple(runs + seeds), tuple(c for c in (said, clause) if c))


def sentence(references: References) -> str | None:
    """The one sentence that says what the reference rows are and where they come from."""
    if not references.sources:
        return None
    from bench.sections.experiments import REFERENCE_MARK
    if not references.records:
        return f"No reference rows: {'; '.join(references.sources)}."
    return (f"Rows marked {REFERENCE_MARK} are the suite's own published numbers for this dataset, "
            f"preset and latent size, not runs of this folder and not trained for it: from "
            f"{'; and from '.join(references.sources)}. They enter no significance test (their "
            "seeds ran at another revision and on another machine), no figure and not the list "
            "of runs, and `bench check` does not read them.")
