"""`bench check`: compare a results folder's numbers with a committed baseline or the paper."""
from __future__ import annotations

from pathlib import Path

from bench.cli.arguments import UsageError
from bench.store import paths
from bench.store.results import DEFAULT_RESULTS
from bench.terminal import printable


def command_check(args) -> int:
    from bench.report import comparison
    from bench.report.page import load_paper_table

    paths.input_folder(args.results, "--results")
    if args.baseline is not None:
        if args.update_baseline:
            paths.output_file(args.baseline, "--baseline")
        else:
            paths.input_file(args.baseline, "--baseline")
    numbers = comparison.current_numbers(args.results)
    current = comparison.current_results(numbers)
    external = comparison.external_runs(args.results)
    if external:
        print(printable(f"note: {len(external)} run(s) of external models not checked (no "
                        f"baseline for a model outside the suite): {', '.join(external)}"))
    if current.empty:
        raise UsageError(f"no complete runs of suite methods in {args.results}")
    seed_tolerance = comparison.SEED_TOLERANCE if args.seed_tolerance is None else args.seed_tolerance
    if args.tolerance < 0 or args.spread_factor < 0 or seed_tolerance < 0:
        raise UsageError("--tolerance, --spread-factor and --seed-tolerance must be non-negative")
    groups = sorted(current.groupby(["dataset", "preset"]).groups)

    if args.update_baseline:
        if args.against == "paper":
            raise UsageError("--update-baseline writes a baseline; it cannot update the paper")
        for path in comparison.update_baselines(numbers, groups, args.baseline, args.force):
            print(f"wrote {path}")
        return 0
    if args.against == "paper":
        tables, disorder = comparison.compare_with_paper(current, load_paper_table())
    else:
        tolerance = comparison.Tolerance(args.tolerance, args.spread_factor, seed_tolerance)
        tables, disorder = comparison.compare_with_baselines(numbers, groups, args.baseline, tolerance,
                                                         say=lambda line: print(printable(line)))
    failing = 0
    for name, table in tables:
        print(printable(f"against {name}:"))
        for line in comparison.format_table(table, "reference").splitlines():
            print(printable(line))  # method names: from the runs' files
        failing += int(table.verdict.isin(comparison.FAILING).sum())
    for line in disorder:
        print(printable(f"WORSE: {line}"))
    numbers = sum(len(t) for _, t in tables)
    verdict = "FAIL" if failing or disorder else "pass"
    print(f"check: {verdict}: {numbers} numbers, {failing} worse or missing"
          + (f", {len(disorder)} leakage orders differ" if disorder else ""))
    return 1 if verdict == "FAIL" else 0


def add(commands) -> None:
    """The `check` command's arguments."""
    parser = commands.add_parser("check", help="compare probe accuracies with a baseline or the paper")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    parser.add_argument("--baseline", type=Path, help="baseline file (default: "
                       "results/baselines/<dataset>-<preset>.csv for the runs in --results)")
    parser.add_argument("--against", choices=["baseline", "paper"], default="baseline",
                       help="paper: the paper preset's runs against the paper's table, within "
                            "1.5 points (s) and 5 points (z), in the paper's order of leakage")
    parser.add_argument("--tolerance", type=float, default=2.0,
                       help="seeds the baseline lacks: absolute tolerance in points (default 2)")
    parser.add_argument("--spread-factor", type=float, default=3.0,
                       help="tolerance is max(--tolerance, this x the baseline's seed spread); default 3")
    parser.add_argument("--seed-tolerance", type=float, default=None,
                       help="a seed the baseline holds may be worse than its own baseline number by "
                            "this many points (default: the measured bench.report.comparison.SEED_TOLERANCE)")
    parser.add_argument("--update-baseline", action="store_true",
                       help="write the baseline from the results instead of checking")
    parser.add_argument("--force", action="store_true",
                       help="with --update-baseline: overwrite even where a number gets worse")
    parser.set_defaults(handler=command_check)
