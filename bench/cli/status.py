"""`bench status`: each run's state, from its folder and, for SLURM jobs, the queue."""
from __future__ import annotations

from pathlib import Path

from bench.store import paths
from bench.store.results import DEFAULT_RESULTS
from bench.terminal import printable


def command_status(args) -> int:
    """Each run's state: complete, failed (reason), or, for SLURM jobs, pending/running/lost."""
    from bench.launch.slurm import status_table
    paths.optional_folder(args.results, "--results")
    states = status_table(args.results)
    if not states:
        print(f"no runs in {args.results}")
        return 0
    width = max(len(s.run_id) for s in states)
    for s in states:
        detail = "; ".join(part for part in (s.reason, f"log: {s.log}" if s.log else "") if part)
        print(printable(f"{s.run_id:<{width}}  {s.state:<10}  {detail}".rstrip()))
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0


def add(commands) -> None:
    """The `status` command's arguments."""
    status = commands.add_parser("status", help="each run's state: complete, failed (why), or its "
                                                "SLURM job's (pending, running, ...), with its log")
    status.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    status.set_defaults(handler=command_status)
