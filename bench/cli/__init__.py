"""python -m bench {run,status,report,check,evaluate,speed,datasets}: argument parsing and
one-line errors.

Exit codes: 0 success; 1 a run failed (its folder says why) or a check failed; 2 bad input, an
unusable path or a refused checkpoint (nothing written), or a write the disk refused (the previous
file is kept); 128 + the signal number when SIGINT/SIGTERM stopped a run after a checkpoint.
Heavy imports (torch) happen inside the commands that need them.
"""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from pathlib import Path

from bench.store import paths
from bench.errors import DeviceFault, RunFailed, UsageError
from bench.store.results import DEFAULT_RESULTS

DATA_DIR_ENV = "BENCH_DATA_DIR"


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    return values


def choose(names: str, registry: dict, what: str) -> list[str]:
    """``names`` (comma-separated, or "all") checked against ``registry``."""
    chosen = list(registry) if names == "all" else [n.strip() for n in names.split(",")]
    unknown = [n for n in chosen if n not in registry]
    if unknown:
        raise UsageError(f"unknown {what} {', '.join(map(repr, unknown))} "
                         f"(valid: {', '.join(registry)}, or all)")
    if len(set(chosen)) != len(chosen):
        raise UsageError(f"{what} listed twice in {names!r}")
    return chosen


def latent_sizes(z_dims: list[int] | None, s_dims: list[int] | None) -> list[dict]:
    """Pairs (z_dim, s_dim) from --z-dim/--s-dim: equal-length lists pair up, one value repeats."""
    z_dims, s_dims = z_dims or [None], s_dims or [None]
    if len(z_dims) != len(s_dims) and 1 not in (len(z_dims), len(s_dims)):
        raise UsageError(f"--z-dim and --s-dim give {len(z_dims)} and {len(s_dims)} sizes: "
                         "give the same number, or one")
    count = max(len(z_dims), len(s_dims))
    z_dims, s_dims = z_dims * (count // len(z_dims)), s_dims * (count // len(s_dims))
    for value in [*z_dims, *s_dims]:
        if value is not None and value < 1:
            raise UsageError(f"latent sizes must be positive, got {value}")
    return [{k: v for k, v in (("z_dim", z), ("s_dim", s)) if v is not None}
            for z, s in zip(z_dims, s_dims)]


def settings_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {pair!r}")
        overrides[key.strip()] = value.strip()
    return overrides


DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device_argument(text: str) -> str:
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def resolve_device(name: str):
    """The torch device of --device (auto: the first CUDA device, else the CPU); one line when
    this machine does not have it."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device is available (use --device cpu or auto)")
        count = torch.cuda.device_count()
        if ":" in name and int(name.split(":")[1]) >= count:
            raise UsageError(f"--device {name}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
    if name == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise UsageError("--device mps: Apple's MPS backend is not available here (it needs a "
                             "Mac with Apple silicon and a torch built with MPS)")
    return torch.device(name)


def gpu_flags(args) -> tuple[str, ...]:
    return tuple(flag for flag, given in (("--cuda-graphs", args.cuda_graphs), ("--tf32", args.tf32))
                 if given)


def apply_gpu_options(args, device) -> None:
    """--cuda-graphs and --tf32 act on CUDA devices only; set this process's TF32 rounding.
    ``device`` is None where runs go elsewhere (SLURM jobs check on their node)."""
    runs_on = device.type if device is not None else args.device.split(":")[0]
    if gpu_flags(args) and runs_on in ("cpu", "mps"):
        raise UsageError(f"{' and '.join(gpu_flags(args))}: only for a CUDA device, and this "
                         f"command runs on {'the CPU' if runs_on == 'cpu' else 'MPS'}")
    if device is not None and device.type == "cuda":
        from bench.run.environment import set_tf32
        set_tf32(args.tf32)
        if device.index is not None:  # streams, graphs and their memory pools on that device
            import torch
            torch.cuda.set_device(device)


def data_dir(arg: Path | None) -> Path | None:
    """The data root from --data-dir, else $BENCH_DATA_DIR, else None; never a file or under one."""
    if arg is not None:
        return paths.optional_folder(arg, "--data-dir")
    if os.environ.get(DATA_DIR_ENV):
        return paths.optional_folder(Path(os.environ[DATA_DIR_ENV]), f"${DATA_DIR_ENV}")
    return None


def check_cache_dir() -> None:
    """$BENCH_CACHE_DIR, when set, must be a folder this process can write in."""
    from datasets.base import CACHE_ENV
    if os.environ.get(CACHE_ENV):
        paths.output_folder(Path(os.environ[CACHE_ENV]), f"${CACHE_ENV}")


def known_dataset(name: str) -> None:
    from datasets import DATASETS
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r} (valid: {', '.join(DATASETS)})")


def load_data(name: str, arg: Path | None, device):
    from datasets import DATASETS, DataError
    try:
        return DATASETS[name](data_dir(arg), device)
    except DataError as error:
        raise UsageError(str(error)) from None


FIGURE_LIBRARIES = ("matplotlib", "seaborn", "openTSNE")


def require_figure_libraries() -> None:
    """Fail before training, not after it, when a library the figures need is missing."""
    import importlib.util
    missing = [name for name in FIGURE_LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}, needed for each run's figures: "
                         "pip install -r requirements.txt")


def command_run(args) -> int:
    from bench.run.config import resolve
    from bench.run.presets import LATENT_SIZES
    from methods import METHODS

    methods = choose(args.methods, METHODS, "method")
    known_dataset(args.dataset)
    if not args.seeds or any(seed < 0 for seed in args.seeds):
        raise UsageError(f"--seeds must be non-negative integers, got {args.seeds}")
    if len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds lists a seed twice: {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be positive, got {args.epochs}")
    overrides = settings_overrides(args.set)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.paper_sizes:
        if args.z_dim or args.s_dim:
            raise UsageError("--paper-sizes chooses the latent sizes: give it or --z-dim/--s-dim, not both")
        if args.dataset not in LATENT_SIZES:
            raise UsageError(f"--paper-sizes: no latent sizes are listed for {args.dataset!r} "
                             "(bench/run/presets.py, LATENT_SIZES); give --z-dim/--s-dim")
        sizes_list = [{"z_dim": z, "s_dim": s} for z, s in LATENT_SIZES[args.dataset]]
    else:
        sizes_list = latent_sizes(args.z_dim, args.s_dim)
    configs = [resolve(method, args.dataset, args.preset, seed, overrides | sizes)
               for method in methods for sizes in sizes_list for seed in args.seeds]
    if args.jobs < 1:
        raise UsageError(f"--jobs must be positive, got {args.jobs}")
    if args.together and (args.jobs > 1 or args.executor == "slurm"):
        raise UsageError("--together trains the runs in this process: not with --jobs or "
                         "--executor slurm")
    if args.tsne_workers is not None:
        if args.tsne_workers < 0:
            raise UsageError(f"--tsne-workers must be 0 or more, got {args.tsne_workers}")
        if args.together is False or args.jobs > 1 or args.executor == "slurm":
            raise UsageError("--tsne-workers is for runs trained together in this process: not "
                             "with --no-together, --jobs or --executor slurm")
    slurm_flags = {"partition": args.partition, "time_minutes": args.time_minutes,
                   "cpus_per_job": args.cpus_per_job, "gpus_per_job": args.gpus_per_job,
                   "mem_gb": args.mem_gb, "sbatch": settings_overrides(args.sbatch)}
    if args.executor == "local" and (args.no_wait or args.slurm_config
                                     or any(v not in (None, {}) for v in slurm_flags.values())):
        raise UsageError("--no-wait, --slurm-config and the SLURM resource flags need --executor slurm")
    require_figure_libraries()
    if args.tensorboard:
        from bench.run import live
        if not live.tensorboard_available():
            raise UsageError(live.TENSORBOARD_MISSING)
    paths.output_folder(args.results, "--results")
    check_cache_dir()
    if args.slurm_config is not None:
        paths.input_file(args.slurm_config, "--slurm-config")
    if args.executor == "slurm":
        from bench.launch.slurm import SlurmOptions
        options = SlurmOptions.from_sources(args.slurm_config, {
            **slurm_flags, "array_parallelism": args.jobs if args.jobs > 1 else None})
        if args.device.startswith("cuda") and not options.gpus_per_job:
            raise UsageError(f"--device {args.device} with --executor slurm needs --gpus-per-job 1")
    device = resolve_device(args.device) if args.executor == "local" else None
    apply_gpu_options(args, device)
    # Bad data fails before anything is written or submitted (and caches are built once, here).
    data = load_data(args.dataset, args.data_dir, device or "cpu")
    if args.executor == "slurm" or args.jobs > 1:
        from bench.launch.executors import RunRequest, single_run_argv
        del data
        requests = [RunRequest(c, single_run_argv(c, overrides, args.results, args.device,
                                                   data_dir(args.data_dir), args.restart,
                                                   gpu_flags(args), args.tensorboard))
                    for c in configs]
        if args.executor == "local":
            from bench.launch.executors import run_concurrently
            return run_concurrently(requests, args.jobs, args.results)
        from bench.launch import slurm
        slurm.submit(requests, options, args.results)
        if args.no_wait:
            print("bench: submitted; python -m bench status --results "
                  f"{args.results} shows each run's state")
            return 0
        return slurm.wait(requests, args.results)
    together = args.together if args.together is not None else device.type == "cuda"
    if together and len(configs) > 1:
        return run_together_in_process(configs, data, args, device)
    return run_in_process(configs, data, args, device)


def run_in_process(configs, data, args, device) -> int:
    from bench.run.runner import execute
    from bench.run.train import Interrupted, StopOnSignal

    failures, busy = [], []
    with StopOnSignal() as stop:
        for config in configs:
            try:
                outcome = execute(config, data, args.results, device, stop, restart=args.restart,
                                  cuda_graphs=args.cuda_graphs, tensorboard=args.tensorboard)
            except RunFailed as failure:
                print(f"bench: run {config.run_id} failed: {failure}", file=sys.stderr)
                failures.append(config.run_id)
                continue
            except DeviceFault as fault:
                print(device_fault_line(fault, f"run {config.run_id}"), file=sys.stderr)
                return 1
            except Interrupted as interruption:
                print(f"bench: interrupted ({interruption}): run {config.run_id} checkpointed; "
                      "rerun the same command to resume", file=sys.stderr)
                return 128 + interruption.signal_number
            if outcome == "busy":
                busy.append(config.run_id)
    return summarise(configs, failures, busy)


def run_together_in_process(configs, data, args, device) -> int:
    """The runs trained together, in turn, in this process (bench/run/together.py)."""
    from bench.run.together import run_together
    from bench.run.train import StopOnSignal
    from bench.evaluations._tsne_pool import default_workers, threads_per_worker

    workers = args.tsne_workers
    if workers is None:
        workers = default_workers(len(configs)) if device.type == "cuda" else 0
    where = "" if not workers else \
        f"; t-SNE in {workers} worker processes of {threads_per_worker(workers)} thread(s)"
    print(f"bench: training {len(configs)} runs together on {device}{where}")
    with StopOnSignal() as stop:
        outcomes = run_together(configs, data, args.results, device, stop, restart=args.restart,
                                cuda_graphs=args.cuda_graphs, tensorboard=args.tensorboard,
                                tsne_workers=workers)
    if outcomes.device_fault is not None:
        print(device_fault_line(outcomes.device_fault, f"the {len(configs)} runs trained together"),
              file=sys.stderr)
        return 1
    if outcomes.interrupted is not None:
        print(f"bench: interrupted ({outcomes.interrupted}): every unfinished run checkpointed; "
              "rerun the same command to resume", file=sys.stderr)
        return 128 + outcomes.interrupted.signal_number
    return summarise(configs, outcomes.failures, outcomes.busy)


def together_limit() -> int:
    from bench.run.together import CUDA_GROUP_SIZE
    return CUDA_GROUP_SIZE


def device_fault_line(fault, what: str) -> str:
    return (f"bench: a device-wide CUDA fault ({fault}) stopped {what}: the device is unusable in "
            "this process, so no run is marked failed; each resumes from its last checkpoint when "
            "the same command is rerun")


def summarise(configs, failures: list[str], busy: list[str]) -> int:
    """The closing lines of a local command, and its exit code."""
    if busy:
        print(f"bench: {len(busy)} run(s) left to the other process(es) working on them: "
              f"{', '.join(busy)}", file=sys.stderr)
    if failures:
        print(f"bench: {len(failures)} of {len(configs)} runs failed: {', '.join(failures)}",
              file=sys.stderr)
        return 1
    return 0


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
        print(f"{s.run_id:<{width}}  {s.state:<10}  {detail}".rstrip())
    counts: dict[str, int] = {}
    for s in states:
        counts[s.state] = counts.get(s.state, 0) + 1
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0


def command_report(args) -> int:
    from bench.report.page import write_report
    paths.input_folder(args.results, "--results")
    paths.output_folder(args.results, "--results")
    from bench.progress import step
    with step("report", say=print):
        written = write_report(args.results)
    for path in written:
        print(f"wrote {path}")
    return 0


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


def command_evaluate(args) -> int:
    """Recompute evaluations of complete runs from their checkpoints (bench/evaluations/_recompute.py)."""
    from bench.evaluations import EVALUATIONS, in_order
    from bench.evaluations._recompute import choose_runs, reevaluate
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
            counts = reevaluate(records, in_order(names), device,
                                lambda name: load_data(name, args.data_dir, device), args.force,
                                between=stop.check)
        except Interrupted as interruption:
            print(f"bench: interrupted ({interruption}): the evaluations finished so far are "
                  "written; rerun the same command for the rest", file=sys.stderr)
            return 128 + interruption.signal_number
    print(f"evaluate: {', '.join(f'{n} {what}' for what, n in counts.items() if n)} "
          f"of {len(records)} complete run(s)")
    return 0


def command_speed(args) -> int:
    from bench.run.speed import measure_speed, measure_together, measure_tsne
    from methods import METHODS

    methods = choose(args.methods, METHODS, "method")
    if args.iterations < 1 or args.warmup < 0:
        raise UsageError("--iterations must be positive and --warmup non-negative")
    device = resolve_device(args.device)
    apply_gpu_options(args, device)
    known_dataset(args.dataset)
    check_cache_dir()
    data = load_data(args.dataset, args.data_dir, device)
    if args.tsne is not None:
        if args.tsne < 100:
            raise UsageError("--tsne needs at least 100 points")
        measure_tsne(data, device, args.tsne)
        return 0
    if args.together is not None:
        if args.together < 2:
            raise UsageError(f"--together needs at least 2 runs, got {args.together}")
        if args.compare:
            raise UsageError("--together and --compare time different things: give one")
        if device.type == "cuda" and args.together > together_limit():
            raise UsageError(f"--together {args.together}: at most {together_limit()} runs are "
                             f"trained together on CUDA (one stream each; torch has "
                             f"{together_limit()} per device)")
        measure_together(methods, data, device, args.together, iterations=args.iterations,
                         warmup=args.warmup, cuda_graphs=args.cuda_graphs)
        return 0
    measure_speed(methods, data, device, iterations=args.iterations, warmup=args.warmup,
                  compare=args.compare, cuda_graphs=args.cuda_graphs)
    return 0


def command_datasets(args) -> int:
    """One block per dataset: what it is, whether its data is present and where, how to get it;
    with --download, fetch, check and unpack a dataset's published files instead."""
    from datasets import DATASETS, DataError
    root = data_dir(args.data_dir)
    if args.download is not None:
        from datasets.download import download
        try:
            download(args.download, root)
        except DataError as error:
            raise UsageError(str(error)) from None
        return 0
    for name, source in DATASETS.items():
        found = source.locate(root)
        print(f"{name}: {source.summary}")
        print(f"  data: {'present, ' + str(found) if found is not None else 'absent'}")
        if found is None:
            print(f"  get it: {source.how_to_get}")
    return 0


def parser() -> Parser:
    from bench.run.presets import PRESETS

    root = Parser(prog="bench", description="Weakly supervised disentanglement benchmark.")
    commands = root.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = commands.add_parser("run", help="train methods and probe their latents")
    run.add_argument("--methods", required=True, help="comma-separated method names, or all")
    run.add_argument("--dataset", required=True, help="dataset name")
    run.add_argument("--preset", default="paper", choices=list(PRESETS),
                     help="training budget (default: paper, the paper's protocol)")
    run.add_argument("--seeds", type=int_list, default=[0], help="comma-separated seeds (default 0)")
    run.add_argument("--z-dim", type=int_list, help="unspecified latent size(s), e.g. 16 or 16,64")
    run.add_argument("--s-dim", type=int_list, help="specified latent size(s), paired with --z-dim")
    run.add_argument("--paper-sizes", action="store_true",
                     help="run every latent size the paper gives for the dataset (MNIST: 16/16 "
                          "and 64/64; Sprites: 512/64 and 1024/512; see README)")
    run.add_argument("--epochs", type=int,
                     help="training epochs (overrides the preset; a method trained in stages, "
                          "lord, trains this many in each)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a method or run setting, e.g. reverse_cycle_weight=0")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                     help="results directory (default: results/ in the repository)")
    run.add_argument("--restart", action="store_true",
                     help="discard unfinished or failed runs' folders (checkpoints included) and "
                          "train them from the start; complete runs are still skipped")
    run.add_argument("--tensorboard", action="store_true",
                     help="also write each run's curves for TensorBoard into its folder's "
                          "tensorboard/ (loss terms, learning rates, probe accuracies, swap grid; "
                          "needs the tensorboard package)")
    run.add_argument("--together", action=argparse.BooleanOptionalAction, default=None,
                     help="train the command's runs together in this process, one iteration of "
                          "each in turn (on CUDA each on its own stream, so their kernels "
                          "overlap); default: on with a CUDA device, off elsewhere (README, "
                          "\"Runs trained together\")")
    run.add_argument("--tsne-workers", type=int, metavar="N",
                     help="runs trained together: the t-SNE of each run in N CPU worker processes, "
                          "started as soon as the run has trained, beside the GPU's work "
                          "(default: on CUDA one per run, up to (cores - 1) / 2; elsewhere 0, in "
                          "this process)")
    run.add_argument("--jobs", type=int, default=1,
                     help="runs at once: local, N child processes sharing the machine (each with "
                          "cores/N threads); slurm, at most N jobs of the array at once")
    run.add_argument("--executor", choices=["local", "slurm"], default="local",
                     help="local (default): on this machine; slurm: one SLURM job per run")
    slurm = run.add_argument_group("SLURM (--executor slurm)")
    slurm.add_argument("--no-wait", action="store_true",
                       help="return once submitted (python -m bench status shows progress)")
    slurm.add_argument("--slurm-config", type=Path, metavar="FILE",
                       help="JSON object of SLURM options (partition, time_minutes, cpus_per_job, "
                            "gpus_per_job, mem_gb, sbatch); flags win over it")
    slurm.add_argument("--partition", help="partition (default: the cluster's default)")
    slurm.add_argument("--time-minutes", type=int, help="time limit per job (default 1440)")
    slurm.add_argument("--cpus-per-job", type=int, help="CPUs per job (default 1)")
    slurm.add_argument("--gpus-per-job", type=int, help="GPUs per job (default 0)")
    slurm.add_argument("--mem-gb", type=float, help="memory per job in GB (default: the partition's)")
    slurm.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. --sbatch account=proj --sbatch qos=high")
    add_common(run)
    run.set_defaults(handler=command_run)

    listing = commands.add_parser("datasets", help="list the datasets, where their data is, "
                                                   "and how to get what is missing")
    listing.add_argument("--data-dir", type=Path,
                         help=f"data root to look in (default: ${DATA_DIR_ENV}, else each "
                              "dataset's default place)")
    listing.add_argument("--download", metavar="NAME|all",
                         help="fetch NAME's published files (or every dataset's), check them and "
                              "unpack them where the loader looks (README, \"Datasets\")")
    listing.set_defaults(handler=command_datasets)

    status = commands.add_parser("status", help="each run's state: complete, failed (why), or its "
                                                "SLURM job's (pending, running, ...), with its log")
    status.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    status.set_defaults(handler=command_status)

    report = commands.add_parser("report", help="write results/report.md from the finished runs")
    report.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    report.set_defaults(handler=command_report)

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

    evaluate = commands.add_parser("evaluate", help="recompute evaluations of complete runs from "
                                                    "their checkpoints (no training)")
    evaluate.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    evaluate.add_argument("--evaluations", help="comma-separated evaluation names, or all (default: "
                                                "all)")
    evaluate.add_argument("--runs", help="comma-separated run ids (default: every complete run)")
    evaluate.add_argument("--force", action="store_true",
                          help="recompute even the evaluations already computed at their version")
    evaluate.add_argument("--device", default="auto", type=device_argument, help=DEVICE_HELP)
    evaluate.add_argument("--data-dir", type=Path, help="data root, as for run")
    evaluate.set_defaults(handler=command_evaluate)

    speed = commands.add_parser("speed", help="time training iterations per method")
    speed.add_argument("--methods", default="all", help="comma-separated method names, or all")
    speed.add_argument("--dataset", default="mnist", help="dataset whose images are used (default mnist)")
    speed.add_argument("--iterations", type=int, default=50, help="timed iterations (default 50)")
    speed.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default 5)")
    speed.add_argument("--compare", action="store_true",
                       help="also time a straightforward implementation of each method, side by side")
    speed.add_argument("--together", type=int, metavar="K",
                       help="aggregate iterations per second of K runs of each method trained "
                            "together (as bench run --together) against K runs one by one")
    speed.add_argument("--tsne", type=int, metavar="POINTS",
                       help="time the t-SNE of POINTS test images' z instead (e.g. 10000)")
    add_common(speed)
    speed.set_defaults(handler=command_speed)
    return root


DEVICE_HELP = ("auto (default: the first CUDA device, else the CPU), cpu, cuda, cuda:N (the Nth "
               "CUDA device) or mps (Apple silicon)")


def add_common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--device", default="auto", type=device_argument, help=DEVICE_HELP)
    command.add_argument("--cuda-graphs", action="store_true",
                         help="CUDA: replay each training iteration as one CUDA graph "
                              "(README, \"On a GPU\")")
    command.add_argument("--tf32", action="store_true",
                         help="CUDA: allow TF32 rounding in convolutions and matrix products "
                              "(default: float32 throughout)")
    command.add_argument("--data-dir", type=Path,
                         help=f"data root: ROOT/MNIST/raw etc. in torchvision's layout "
                              f"(downloaded if missing), ROOT/sprites, ROOT/smallnorb "
                              f"(default: ${DATA_DIR_ENV}, else each dataset's default place; "
                              f"python -m bench datasets lists them)")


# Writes the file system refused (the atomic writes in bench/store/results.py keep the previous file).
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except RunFailed as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            raise
        print(f"bench: error: {error} (files already written are unchanged)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
