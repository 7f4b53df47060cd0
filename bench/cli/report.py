"""`bench report`: results/report.md and report.html from the complete runs."""
from __future__ import annotations

from pathlib import Path

from bench.store import paths
from bench.store.results import DEFAULT_RESULTS, REPO_ROOT


def command_report(args) -> int:
    from bench.report.page import write_report
    paths.input_folder(args.results, "--results")
    paths.output_folder(args.results, "--results")
    from bench.progress import step
    with step("report", say=print):
        written = write_report(args.results)
    for path in written:
        print(f"wrote {path}")
    paper = REPO_ROOT / "results" / "paper"
    if paper.is_dir() and Path(args.results).resolve() == paper.resolve():
        from bench.report.paper_results import update_readme
        if update_readme(paper, REPO_ROOT / "README.md"):
            print(f"wrote the table in {REPO_ROOT / 'README.md'}")
    return 0


def add(commands) -> None:
    """The `report` command's arguments."""
    report = commands.add_parser("report", help="write results/report.md from the finished runs")
    report.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    report.set_defaults(handler=command_report)
