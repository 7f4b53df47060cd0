"""`bench campaign start|status|stop|publish`: the paper's grid and the studies
(bench/spec/studies.py) trained in the background (bench/launch/campaign.py) and published into
results/paper/ and results/studies/ (bench/launch/publish.py)."""
from __future__ import annotations

from pathlib import Path

from bench.store.results import REPO_ROOT, read_json
from bench.terminal import printable

PAPER_DIR = REPO_ROOT / "results" / "paper"
README = REPO_ROOT / "README.md"


def command_campaign(args) -> int:
    from bench.launch import campaign as launch
    folder = launch.Campaign(args.dir or launch.default_folder())
    if args.action == "start":
        print(launch.start(folder, Path(args.source or REPO_ROOT), args.threads, grid_options(args),
                           args.workers))
    elif args.action == "stop":
        print(launch.stop(folder))
    elif args.action == "status":
        for line in launch.status_lines(folder):
            print(printable(line))
    elif args.action == "serve":
        return launch.Server(folder).serve()
    elif args.action == "publish":
        return publish(folder, Path(args.paper or PAPER_DIR), Path(args.readme or README),
                       args.carry_from_minutes)
    return 0


def grid_options(args) -> dict:
    """The grid a start names (stored in the campaign's state): the paper's unless narrowed."""
    from bench.cli.arguments import choose
    from bench.errors import ConfigError
    from bench.launch.campaign import METHOD_ORDER
    from bench.spec.presets import PRESETS
    grid: dict = {}
    try:
        if args.methods:  # "all" widens a campaign an earlier start narrowed
            grid["methods"] = choose(args.methods, dict.fromkeys(METHOD_ORDER), "method")
        if args.seeds:
            grid["seeds"] = [int(s) for s in args.seeds.split(",")]
        if args.sizes:
            grid["sizes"] = [[int(n) for n in size.split("/")] for size in args.sizes.split(",")]
        if args.studies is not None:
            grid["studies"] = study_names(args.studies)
        if args.fingerprint_iterations is not None:
            grid["fingerprint_iterations"] = args.fingerprint_iterations
    except ValueError:
        raise ConfigError("--seeds 0,1 and --sizes 16/16,64/64 take integers") from None
    if args.preset:
        if args.preset not in PRESETS:
            raise ConfigError(f"--preset: unknown preset {args.preset!r}")
        grid["preset"] = args.preset
    return grid


def study_names(text: str) -> list[str]:
    """--studies: names of STUDIES, or "none"."""
    from bench.errors import ConfigError
    from bench.spec.studies import STUDIES
    if text.strip() == "none":
        return []
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in {s.name for s in STUDIES}]
    if unknown:
        raise ConfigError(f"--studies: unknown study {unknown[0]!r} (valid: "
                          f"{', '.join(s.name for s in STUDIES)}, or none)")
    return names


def publish(folder, paper: Path, readme: Path, carry_from_minutes: float | None = None) -> int:
    from bench.launch import publish as publishing
    from bench.launch.campaign import PRESET, git, paper_grid, publication_folders, study_runs
    from bench.report.paper_results import update_readme
    if carry_from_minutes is not None and not 0 <= carry_from_minutes < float("inf"):
        from bench.errors import ConfigError
        raise ConfigError(f"--carry-from-minutes must be 0 or more, got {carry_from_minutes}")
    publishing.refuse_unknown_campaign(folder)
    every_study = {"preset": folder.state().get("preset", PRESET)}  # a narrowed start's too
    labels = {run.config().run_id: run.label  # a study's variant
              for run in [*paper_grid(folder.state()), *study_runs(every_study)]}
    head = git(folder.source(), "rev-parse", "HEAD")
    fingerprints = read_json(folder.fingerprints / f"{head}.json")
    outcomes = publishing.publish(folder, paper, fingerprints,
                                  publication_folders(folder.state(), paper))
    for outcome in outcomes:
        into = "" if outcome.folder in (None, paper) else f" (into {outcome.folder})"
        label = labels.get(outcome.run_id, outcome.label)
        print(printable(f"{label:<24} {outcome.run_id}  {outcome.action}{into}"))
    for line in publishing.check_budget(paper):
        print(printable(f"over budget: {line}"))
    if readme.is_file() and update_readme(paper, readme):
        print(f"wrote the table in {readme}")
    for line in publish_studies(folder, paper):
        print(printable(line))
    for line in carry(folder, paper, carry_from_minutes):
        print(printable(line))
    over = publishing.repository_over_budget(paper)
    if over:
        print(printable(f"over budget: {over}"))
    if not outcomes:
        print("no finished run to publish")
    return 1 if any(o.action.startswith("refused") for o in outcomes) else 0


def carry(folder, paper: Path, from_minutes: float | None) -> list[str]:
    """The unfinished runs (those with ``from_minutes`` of training or more) and the computed
    fingerprints written into results/campaign/ beside ``paper``, for a campaign on another
    machine (bench/launch/carry.py)."""
    from bench.launch import carry as carrying
    from bench.launch.campaign import SOURCES_FILE
    carried = carrying.carry_folder(paper)
    minutes = carrying.CARRY_FROM_CPU_MINUTES if from_minutes is None else from_minutes
    lines = carrying.carry_unfinished(folder, carried, minutes * 60, carrying.room_to_carry(paper))
    count = carrying.carry_fingerprints(folder, carried, SOURCES_FILE)
    return [*lines, f"carried {count} runs' fingerprints in {carried / carrying.FINGERPRINTS_FILE}"]


def publish_studies(folder, paper: Path) -> list[str]:
    """The README of each study with a published run (also one a narrowed start leaves out), and
    the size budget of its folder; what was written or is over."""
    from bench.launch import publish as publishing
    from bench.launch.campaign import PRESET
    from bench.report.study_results import update_study_readme
    from bench.spec.studies import STUDIES
    lines = []
    state = folder.state()
    for study in STUDIES:
        where = paper.parent / publishing.STUDIES_FOLDER / study.name
        if not publishing.published_run_ids(where):
            continue
        if update_study_readme(study, where, study.preset_in(state.get("preset", PRESET))):
            lines.append(f"wrote {where / 'README.md'}")
        lines += [f"over budget: {line}" for line in publishing.check_budget(where)]
    return lines


def add(commands) -> None:
    """The `campaign` command's arguments."""
    campaign = commands.add_parser(
        "campaign", help="train the paper's grid and the studies in the background at the lowest "
                         "priority, and publish finished runs into results/paper/ and "
                         "results/studies/")
    campaign.add_argument("action", choices=("start", "status", "stop", "publish", "serve"),
                          help="start (returns at once; safe twice), status, stop (checkpoints "
                               "first), publish; serve is the background process itself")
    campaign.add_argument("--dir", type=Path, default=None,
                          help="the campaign's folder (default: $BENCH_CACHE_DIR/campaign, else "
                               "~/.cache/weakly-disentangled-bench/campaign)")
    campaign.add_argument("--threads", type=int, default=None,
                          help="torch threads of every run of the grid (start; default 1)")
    campaign.add_argument("--workers", type=int, default=None,
                          help="start: runs trained at once, each by its own process (default 1; "
                               "workers x threads at most this machine's cores); a start with more "
                               "than run now adds the missing ones")
    campaign.add_argument("--methods", default=None, help="start: only these methods, kept by "
                                                          "later starts; all: every method again")
    campaign.add_argument("--seeds", default=None, help="start: only these seeds (default 0,1,2)")
    campaign.add_argument("--sizes", default=None, help="start: only these z/s sizes (default "
                                                        "16/16,64/64)")
    campaign.add_argument("--studies", default=None,
                          help="start: only these studies (names, or none; default: every study "
                               "of a method trained)")
    campaign.add_argument("--preset", default=None, help="start: another preset than paper (tests)")
    campaign.add_argument("--fingerprint-iterations", type=int, default=None,
                          help="start: iterations of each run's fingerprint (default 200)")
    campaign.add_argument("--source", type=Path, default=None,
                          help="the repository whose committed HEAD is trained (start; default: "
                               "this one)")
    campaign.add_argument("--paper", type=Path, default=None,
                          help="where publish writes (default: results/paper of this repository; "
                               "a study's runs go to studies/<study>/ beside it)")
    campaign.add_argument("--carry-from-minutes", type=float, default=None, metavar="M",
                          help="publish: carry an unfinished run into results/campaign/ once its "
                               "checkpoint holds M CPU minutes of training (default 30; 0: every "
                               "one with a checkpoint)")
    campaign.add_argument("--readme", type=Path, default=None,
                          help="the README whose table publish rewrites (default: this one's)")
    campaign.set_defaults(handler=command_campaign)
