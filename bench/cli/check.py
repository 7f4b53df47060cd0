"""`bench check`: compare a results folder's numbers with a committed baseline or the paper."""
from __future__ import annotations

from pathlib import Path

from bench.cli.arguments import UsageError
from bench.store import paths
from bench.store.results import DEFAULT_RESULTS


def command_check(args) -> int:
    from bench.report import check
    from bench.report.page import load_paper_table

    paths.input_folder(args.results, "--results")
    if args.baseline is not None:
        if args.update_baseline:
            paths.output_file(args.baseline, "--baseline")
        else:
            paths.input_file(args.baseline, "--baseline")
    numbers = check.current_numbers(args.results)
    current = check.current_results(numbers)
    if current.empty:
        raise UsageError(f"no complete runs in {args.results}")
    seed_tolerance = check.SEED_TOLERANCE if args.seed_tolerance is None else args.seed_tolerance
    if args.tolerance < 0 or args.spread_factor < 0 or seed_tolerance < 0:
        raise UsageError("--tolerance, --spread-factor and --seed-tolerance must be non-negative")
    groups = sorted(current.groupby(["dataset", "preset"]).groups)

    if args.update_baseline:
        if args.against == "paper":
            raise UsageError("--update-baseline writes a baseline; it cannot update the paper")
        if args.baseline and len(groups) > 1:
            raise UsageError(f"--baseline names one file but {args.results} holds runs of "
                             f"{len(groups)} dataset/preset pairs")
        for dataset, preset in groups:
            path = args.baseline or check.baseline_path(dataset, preset)
            check.update_baseline(numbers[(numbers.dataset == dataset) & (numbers.preset == preset)],
                                  path, args.force)
            print(f"wrote {path}")
        return 0

    if args.against == "paper":
        paper_runs = current[current.preset == "paper"]
        if paper_runs.empty:
            raise UsageError(f"no complete runs of the paper preset in {args.results}")
        table, disorder = check.against_paper(paper_runs, load_paper_table())
        tables = [("paper", table)]
    else:
        baseline_files = ([args.baseline] if args.baseline else
                          [p for p in (check.baseline_path(d, pr) for d, pr in groups) if p.exists()])
        if not baseline_files:
            raise UsageError(f"no baseline for the runs in {args.results} "
                             f"({', '.join(f'{d}-{p}' for d, p in groups)}): "
                             "write one with --update-baseline")
        tables, disorder = [], []
        tolerance = check.Tolerance(args.tolerance, args.spread_factor, seed_tolerance)
        for path in baseline_files:
            baseline = check.read_baseline(path)
            for line in check.version_notes(baseline, check.installed_versions()):
                print(f"{line} [{path.name}]")
            if not check.has_seed_numbers(baseline):
                print(f"note: {path} has no per-seed numbers (an older baseline): every number is "
                      "judged by the spread rule")
            else:
                elsewhere = sorted(set(numbers.computed_on) - check.seeds_computed_on(baseline))
                if elsewhere:
                    print(f"note: runs computed on {'; '.join(elsewhere)}, the baseline's seed "
                          f"numbers on {'; '.join(sorted(check.seeds_computed_on(baseline)))}: "
                          "they are judged by the spread rule")
            for experiment in check.unjudged(numbers, baseline):
                print(f"note: {experiment} has numbers {path.name} has no row for: not judged "
                      "(add them with --update-baseline)")
            tables.append((f"baseline {path.name}", check.against_baseline(numbers, baseline, tolerance)))

    failing = 0
    for name, table in tables:
        print(f"against {name}:")
        print(check.format_table(table, "reference"))
        failing += int(table.verdict.isin(check.FAILING).sum())
    for line in disorder:
        print(f"WORSE: {line}")
    numbers = sum(len(t) for _, t in tables)
    verdict = "FAIL" if failing or disorder else "pass"
    print(f"check: {verdict}: {numbers} numbers, {failing} worse or missing"
          + (f", {len(disorder)} leakage orders differ" if disorder else ""))
    return 1 if verdict == "FAIL" else 0


def add(commands) -> None:
    """The `check` command's arguments."""
    check = commands.add_parser("check", help="compare probe accuracies with a baseline or the paper")
    check.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    check.add_argument("--baseline", type=Path, help="baseline file (default: "
                       "results/baselines/<dataset>-<preset>.csv for the runs in --results)")
    check.add_argument("--against", choices=["baseline", "paper"], default="baseline",
                       help="paper: the paper preset's runs against the paper's table, within "
                            "1.5 points (s) and 5 points (z), in the paper's order of leakage")
    check.add_argument("--tolerance", type=float, default=2.0,
                       help="seeds the baseline lacks: absolute tolerance in points (default 2)")
    check.add_argument("--spread-factor", type=float, default=3.0,
                       help="tolerance is max(--tolerance, this x the baseline's seed spread); default 3")
    check.add_argument("--seed-tolerance", type=float, default=None,
                       help="a seed the baseline holds may be worse than its own baseline number by "
                            "this many points (default: the measured bench.report.check.SEED_TOLERANCE)")
    check.add_argument("--update-baseline", action="store_true",
                       help="write the baseline from the results instead of checking")
    check.add_argument("--force", action="store_true",
                       help="with --update-baseline: overwrite even where a number gets worse")
    check.set_defaults(handler=command_check)
