"""`bench evaluate`: recompute evaluations of complete runs from their checkpoints."""
from __future__ import annotations

import sys
from pathlib import Path

from bench.cli.arguments import (DEVICE_HELP, check_cache_dir, choose, device_argument,
                                 known_dataset, load_data, resolve_device)
from bench.store import paths
from bench.store.results import DEFAULT_RESULTS


def command_evaluate(args) -> int:
    """Recompute evaluations of complete runs from their checkpoints (bench/run/reevaluate.py)."""
    from bench.evaluations import EVALUATIONS, by_default, in_order
    from bench.run.reevaluate import choose_runs, reevaluate
    from bench.run.train import Interrupted, StopOnSignal

    names = None if args.evaluations is None else choose(args.evaluations, EVALUATIONS, "evaluation")
    run_ids = None if args.runs is None else [r.strip() for r in args.runs.split(",") if r.strip()]
    paths.input_folder(args.results, "--results")
    paths.output_folder(args.results, "--results")
    check_cache_dir()
    records = choose_runs(args.results, run_ids)
    if not records:
        print(f"no complete runs in {args.results}")
        return 0
    device = resolve_device(args.device)
    for dataset in sorted({r.dataset for r in records}):
        known_dataset(dataset)
    with StopOnSignal() as stop:
        try:
            counts = reevaluate(records, by_default() if names is None else in_order(names), device,
                                lambda name: load_data(name, args.data_dir, device), args.force,
                                between=stop.check)
        except Interrupted as interruption:
            print(f"bench: interrupted ({interruption}): the evaluations finished so far are "
                  "written; rerun the same command for the rest", file=sys.stderr)
            return 128 + interruption.signal_number
    print(f"evaluate: {', '.join(f'{n} {what}' for what, n in counts.items() if n)} "
          f"of {len(records)} complete run(s)")
    return 0


def add(commands) -> None:
    """The `evaluate` command's arguments."""
    evaluate = commands.add_parser("evaluate", help="recompute evaluations of complete runs from "
                                                    "their checkpoints (no training)")
    evaluate.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    evaluate.add_argument("--evaluations", help="comma-separated evaluation names, or all (default: "
                                                "those every run computes; all and a name add "
                                                "the opt-in ones, such as mdl_leakage)")
    evaluate.add_argument("--runs", help="comma-separated run ids (default: every complete run)")
    evaluate.add_argument("--force", action="store_true",
                          help="recompute even the evaluations already computed at their version")
    evaluate.add_argument("--device", default="auto", type=device_argument, help=DEVICE_HELP)
    evaluate.add_argument("--data-dir", type=Path, help="data root, as for run")
    evaluate.set_defaults(handler=command_evaluate)
