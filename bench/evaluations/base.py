"""What an evaluation is, the registry, and running evaluations on a trained run.

An evaluation is one object: a name and a version, the datasets it applies to, a function from a
trained run (its method, data and codes: ``Context``) to long-format rows, the file it writes in
the run's folder, optionally figures drawn beside that file, and how the report shows it (its
tables, and its own section: bench/sections/hook.py) and the check judges it. The runner
computes every registered evaluation that applies; ``python -m bench evaluate`` recomputes them
from a run's checkpoint. The report and the check import the registry without torch, so an
evaluation's module imports torch (and anything heavy) inside its function only.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from bench import progress
from bench.errors import Interrupted, is_device_fault
from bench.sections.hook import ReportSection
from bench.store import results
from bench.store.records import run_columns

if TYPE_CHECKING:
    from bench.spec.config import RunConfig
    from datasets import ImageSet
    from methods import Encoding, Method


@dataclasses.dataclass(frozen=True)
class Context:
    """A trained run as its evaluations see it: the method in its final state, the run's data
    (its settings may keep the first images only) and both splits encoded once. ``stop`` is a
    stop check that long computations call at their boundaries (it raises Interrupted).
    ``started``: work begun elsewhere for an evaluation, by its name (runs trained together start
    each run's t-SNE in worker processes as soon as it is encoded: ``{"tsne": TsneWork}``)."""
    config: RunConfig
    method: Method
    data: ImageSet
    train: Encoding
    test: Encoding
    stop: Callable[[], None] = lambda: None
    started: dict[str, Any] = dataclasses.field(default_factory=dict)

    def seed(self, stream: str) -> int:
        """A seed of its own for each evaluation's random draws, from the run's seed."""
        from bench.spec.seeds import derive_seed
        return derive_seed(self.config.seed, stream)

    @property
    def probe_options(self) -> dict[str, Any]:
        """The latent probes' training settings (RunSettings), seeded as the class probes are."""
        s = self.config.settings
        return dict(epochs=s.probe_epochs, batch_size=s.probe_batch_size, lr=s.probe_lr,
                    seed=self.seed("probe"))

    @property
    def label(self) -> str:
        """The run as a figure's title names it: "ccvae, z/s 16/16, seed 0, smoke preset" (an
        external model's name followed by "(external)")."""
        c = self.config
        return (f"{c.shown_name}, z/s {c.method_config.z_dim}/{c.method_config.s_dim}, "
                f"seed {c.seed}, {c.preset} preset")


@dataclasses.dataclass(frozen=True)
class Outcome:
    rows: list[dict[str, Any]]  # the evaluation's own columns; the run columns are added
    details: dict[str, Any] = dataclasses.field(default_factory=dict)  # -> evaluation.json
    # What the evaluation's ``figures`` draw from beside the rows (the t-SNE's embeddings at full
    # precision, where its table rounds them); never written
    drawing: Any = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class ReportTable:
    """A table of the report: one row per experiment (method, latent sizes, settings), a column
    per value of the ``pivot`` columns, each cell the mean over seeds of ``value`` and its interval
    (bench.sections.experiments.CELL_SENTENCE)."""
    pivot: tuple[str, ...]
    value: str
    # keep the rows whose column has this value (or one of these values), drop those of ``exclude``
    where: dict[str, Any] = dataclasses.field(default_factory=dict)
    exclude: dict[str, Any] = dataclasses.field(default_factory=dict)
    decimals: int = 2
    caption: str = ""
    header_notes: tuple[str, ...] = ()  # columns shown in each column's header, e.g. its chance


@dataclasses.dataclass(frozen=True)
class Checked:
    """The numbers ``bench check`` holds to a baseline: one per value of the ``key`` column and
    split, read from ``value``; ``higher_is_better`` gives each one's direction and ``point`` what
    one point of the check's absolute tolerance is in its unit (1 for percentages and counts;
    0.01 for a number in [0, 1])."""
    key: str
    value: str
    higher_is_better: dict[str, bool]
    point: dict[str, float] = dataclasses.field(default_factory=dict)


def stop_checks(contexts: list[Context]) -> Callable[[], None]:
    """One stop check for computations that span several runs: each run's."""
    def check() -> None:
        for context in contexts:
            context.stop()
    return check


def every_dataset(data: ImageSet) -> bool:
    return True


def every_method(method: str) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Evaluation:
    name: str
    version: int  # raise it when the numbers change: `bench evaluate` recomputes older versions
    file: str  # in the run's folder
    columns: tuple[str, ...]  # after results.RUN_COLUMNS
    compute: Callable[[Context], Outcome]
    title: str
    description: str  # what the numbers are and how to read them (the report shows it)
    applies: Callable[[ImageSet], bool] = every_dataset
    applies_to_method: Callable[[str], bool] = every_method  # given the method's name
    tables: tuple[ReportTable, ...] = ()
    checked: Checked | None = None
    order: int = 100  # where it comes in the run and the report
    # Optional: the outcomes of several runs at once, each what ``compute`` gives for its run
    # alone; runs trained together (bench/run/together.py) share the work, e.g. probes fitted side
    # by side as one stacked model.
    compute_together: Callable[[list[Context]], list[Outcome]] | None = None
    # False: computed only when named (`bench evaluate --evaluations NAME`), an extra beside the
    # protocol, too slow to add to every run
    by_default: bool = True
    # True: it decodes (Method.decode or transfer), so an external model without a decoder
    # (bench/external_model.py) skips it
    needs_decoder: bool = False
    # Optional: figures beside the table (the t-SNE's tsne.png, the swap grid), drawn from the
    # outcome into the run's folder, each PNG written atomically; returns what made them, which
    # figures.json records under the evaluation's name
    figures: Callable[[Context, Outcome, Path], dict[str, Any]] | None = None
    # True: its table is its figures' data (the t-SNE's points), published only with the figures
    figure_data: bool = False
    # Optional: the evaluation's own part of the report beyond its tables (a paragraph, a figure,
    # columns beside the paper's table), so that the report names no evaluation
    section: ReportSection | None = None

    def applies_to(self, context: Context) -> bool:
        return (self.applies(context.data) and self.applies_to_method(context.config.method)
                and (not self.needs_decoder or context.method.decodes))

    @property
    def all_columns(self) -> tuple[str, ...]:
        return (*results.RUN_COLUMNS, *self.columns)


EVALUATIONS: dict[str, Evaluation] = {}


def register(evaluation: Evaluation) -> Evaluation:
    if evaluation.name in EVALUATIONS:
        raise ValueError(f"evaluation {evaluation.name!r} registered twice")
    EVALUATIONS[evaluation.name] = evaluation
    return evaluation


def in_order(names=None) -> list[Evaluation]:
    """The registered evaluations (those named), in their run and report order."""
    chosen = EVALUATIONS.values() if names is None else [EVALUATIONS[n] for n in names]
    return sorted(chosen, key=lambda e: (e.order, e.name))


def report_sections() -> list[ReportSection]:
    """The registered evaluations' report sections, in their report order."""
    chosen = sorted((e for e in EVALUATIONS.values() if e.section is not None),
                    key=lambda e: (e.section.order, e.name))
    return [evaluation.section for evaluation in chosen]


def by_default() -> list[Evaluation]:
    """The evaluations every run computes, in order (the opt-in ones are left out)."""
    return [evaluation for evaluation in in_order() if evaluation.by_default]


def is_current(evaluation: Evaluation, run_dir: Path) -> bool:
    """Whether the run's folder holds this version of the evaluation's results."""
    recorded = results.read_json(Path(run_dir) / results.EVALUATION_FILE).get(evaluation.name)
    return (results.table_file(Path(run_dir), evaluation.file) is not None and isinstance(recorded, dict)
            and recorded.get("version") == evaluation.version)


def compute_together(evaluations: list[Evaluation], contexts: list[Context],
                     say: Callable[[str], None] = print) -> dict[str, dict[str, Outcome]]:
    """{run id: {evaluation name: outcome}}: the ``evaluations`` that can compute several runs at
    once, each over the ``contexts`` it applies to (two at least). One that raises is left out,
    with a line: each run then computes it alone, where a failure stays that run's. A stop
    (Interrupted) and a device-wide fault are not failures of the evaluation: they propagate."""
    computed: dict[str, dict[str, Outcome]] = {c.config.run_id: {} for c in contexts}
    for evaluation in evaluations:
        chosen = [c for c in contexts if evaluation.applies_to(c)]
        if evaluation.compute_together is None or len(chosen) < 2:
            continue
        started = time.perf_counter()
        try:  # out of memory for so many runs at once, say, or a bug
            outcomes = list(zip(chosen, evaluation.compute_together(chosen), strict=True))
        except Interrupted:
            raise
        except Exception as error:  # noqa: BLE001 - each run computes it alone, contained there
            if is_device_fault(error):  # every run would meet it again
                raise
            say(f"{evaluation.name} of {len(chosen)} runs together failed "
                f"({type(error).__name__}: {error}): each run computes it alone")
            continue
        for context, outcome in outcomes:
            computed[context.config.run_id][evaluation.name] = outcome
        say(f"{evaluation.name} of {len(chosen)} runs together: "
            f"{time.perf_counter() - started:.1f} s")
    return computed


def run_evaluations(context: Context, run_dir: Path, evaluations: list[Evaluation],
                    between: Callable[[], None] = lambda: None,
                    say: Callable[[str], None] = print,
                    computed: dict[str, Outcome] | None = None) -> dict[str, Outcome]:
    """Compute ``evaluations`` (those that apply to the run's dataset), writing each one's file,
    its figures and their entry in figures.json (if it draws any), and then its entry in
    evaluation.json, each atomically: an interruption leaves every file whole, old or new (an
    evaluation whose file is new and entry old is recomputed next time).
    ``computed``: outcomes already computed (with other runs, ``compute_together``), written as
    they are. ``between`` runs after each (a stop check). Returns the outcomes, by name."""
    columns = run_columns(context.config.to_dict(), context.config.run_id)
    computed = computed or {}
    done = {}
    chosen = [evaluation for evaluation in evaluations if evaluation.applies_to(context)]
    for number, evaluation in enumerate(chosen, 1):
        if evaluation.name not in computed:  # what it is doing, before the minutes it may take
            progress.note(f"{context.config.run_id} {evaluation.name}: started (evaluation "
                          f"{number} of {len(chosen)})")
        started = time.perf_counter()
        outcome = computed.get(evaluation.name) or evaluation.compute(context)
        results.write_table(Path(run_dir) / evaluation.file, evaluation.all_columns,
                            [{**columns, **row} for row in outcome.rows])
        if evaluation.figures is not None:
            drawn = evaluation.figures(context, outcome, Path(run_dir))
            figures = results.read_json(Path(run_dir) / results.FIGURES_FILE)
            figures[evaluation.name] = drawn
            results.write_json_atomic(Path(run_dir) / results.FIGURES_FILE, figures)
        recorded = results.read_json(Path(run_dir) / results.EVALUATION_FILE)
        recorded[evaluation.name] = {**outcome.details, "version": evaluation.version}
        results.write_json_atomic(Path(run_dir) / results.EVALUATION_FILE, recorded)
        how = " (computed with the runs trained together)" if evaluation.name in computed else ""
        say(f"{context.config.run_id} {evaluation.name}: {time.perf_counter() - started:.1f} s{how}")
        done[evaluation.name] = outcome
        between()
    return done
