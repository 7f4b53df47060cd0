"""`bench run`: train a grid of runs (one by one, trained together, as --jobs children or SLURM
jobs) and say how each ended."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from bench.cli.arguments import (UsageError, add_common, apply_gpu_options, check_cache_dir, choose,
                                 data_dir, int_list, known_dataset, latent_sizes,
                                 load_data, require_figure_libraries, resolve_device,
                                 settings_overrides)
from bench.errors import DeviceFault, RunFailed
from bench.store import paths
from bench.store.results import DEFAULT_RESULTS


def command_run(args) -> int:
    evaluations = chosen_evaluations(args.evaluations)
    configs, overrides = planned_configs(args)
    slurm_flags = check_execution_flags(args)
    slurm_options = check_outputs_and_libraries(args, slurm_flags)
    device = resolve_device(args.device) if args.executor == "local" else None
    apply_gpu_options(args, device)
    from bench.run.options import RunOptions
    options = RunOptions(results_dir=args.results, device=device, device_request=args.device,
                         restart=args.restart, cuda_graphs=args.cuda_graphs, tf32=args.tf32,
                         tensorboard=args.tensorboard, together=args.together,
                         tsne_workers=args.tsne_workers, data_dir=data_dir(args.data_dir),
                         evaluations=evaluations)
    # Bad data fails before anything is written or submitted (and caches are built once, here).
    data = load_data(args.dataset, args.data_dir, device or "cpu")
    if args.executor == "slurm" or args.jobs > 1:
        from bench.launch.executors import RunRequest
        del data
        requests = [RunRequest(c, options.child_argv(c, overrides)) for c in configs]
        if args.executor == "local":
            from bench.launch.executors import run_concurrently
            return run_concurrently(requests, args.jobs, args.results)
        from bench.launch import slurm
        slurm.submit(requests, slurm_options, args.results)
        if args.no_wait:
            print("bench: submitted; python -m bench status --results "
                  f"{args.results} shows each run's state")
            return 0
        return slurm.wait(requests, args.results)
    if options.trains_together(len(configs)):
        return run_together_in_process(configs, data, options)
    return run_in_process(configs, data, options)


def chosen_evaluations(names: str | None) -> tuple[str, ...] | None:
    """--evaluations: names of EVALUATIONS (or all), in their order; None when not given."""
    if names is None:
        return None
    from bench.evaluations import EVALUATIONS, in_order
    return tuple(e.name for e in in_order(choose(names, EVALUATIONS, "evaluation")))


def planned_configs(args) -> tuple[list, dict]:
    """The command's runs (methods x latent sizes x seeds), each resolved, and the overrides the
    flags give (which --jobs children and SLURM jobs are given again)."""
    from bench.spec.config import resolve
    from bench.spec.presets import LATENT_SIZES
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
                             "(bench/spec/presets.py, LATENT_SIZES); give --z-dim/--s-dim")
        sizes_list = [{"z_dim": z, "s_dim": s} for z, s in LATENT_SIZES[args.dataset]]
    else:
        sizes_list = latent_sizes(args.z_dim, args.s_dim)
    configs = [resolve(method, args.dataset, args.preset, seed, overrides | sizes)
               for method in methods for sizes in sizes_list for seed in args.seeds]
    return configs, overrides


def check_execution_flags(args) -> dict:
    """How the runs are to be executed (--jobs, --together, --tsne-workers, the SLURM flags),
    checked against each other and this machine; returns the SLURM resource flags."""
    if args.jobs < 1:
        raise UsageError(f"--jobs must be positive, got {args.jobs}")
    if args.executor == "local" and args.jobs > most_processes():
        raise UsageError(f"--jobs {args.jobs}: this machine has {cores()} CPU core(s); at most "
                         f"{most_processes()} runs at once ({PROCESSES_PER_CORE} per core: more "
                         "only slow each other and hold memory)")
    if args.together and (args.jobs > 1 or args.executor == "slurm"):
        raise UsageError("--together trains the runs in this process: not with --jobs or "
                         "--executor slurm")
    if args.tsne_workers is not None:
        if args.tsne_workers < 0:
            raise UsageError(f"--tsne-workers must be 0 or more, got {args.tsne_workers}")
        if args.tsne_workers > most_processes():
            raise UsageError(f"--tsne-workers {args.tsne_workers}: this machine has {cores()} CPU "
                             f"core(s); at most {most_processes()} workers ({PROCESSES_PER_CORE} "
                             "per core)")
        if args.together is False or args.jobs > 1 or args.executor == "slurm":
            raise UsageError("--tsne-workers is for runs trained together in this process: not "
                             "with --no-together, --jobs or --executor slurm")
    slurm_flags = {"partition": args.partition, "time_minutes": args.time_minutes,
                   "cpus_per_job": args.cpus_per_job, "gpus_per_job": args.gpus_per_job,
                   "mem_gb": args.mem_gb, "sbatch": settings_overrides(args.sbatch)}
    if args.executor == "local" and (args.no_wait or args.slurm_config
                                     or any(v not in (None, {}) for v in slurm_flags.values())):
        raise UsageError("--no-wait, --slurm-config and the SLURM resource flags need --executor slurm")
    return slurm_flags


def check_outputs_and_libraries(args, slurm_flags: dict):
    """What must hold before anything is written or submitted: the figure libraries (and
    TensorBoard when asked), a usable results folder and cache, the SLURM config; returns the
    SLURM options (None on this machine)."""
    slurm_options = None
    require_figure_libraries()
    if args.tensorboard:
        from bench.run import monitors
        if not monitors.tensorboard_available():
            raise UsageError(monitors.TENSORBOARD_MISSING)
    paths.output_folder(args.results, "--results")
    check_cache_dir()
    if args.slurm_config is not None:
        paths.input_file(args.slurm_config, "--slurm-config")
    if args.executor == "slurm":
        from bench.launch.slurm import SlurmOptions
        slurm_options = SlurmOptions.from_sources(args.slurm_config, {
            **slurm_flags, "array_parallelism": args.jobs if args.jobs > 1 else None})
        if args.device.startswith("cuda") and not slurm_options.gpus_per_job:
            raise UsageError(f"--device {args.device} with --executor slurm needs --gpus-per-job 1")
    return slurm_options


PROCESSES_PER_CORE = 4  # the most --jobs children or t-SNE workers per CPU core


def cores() -> int:
    return os.cpu_count() or 1


def most_processes() -> int:
    return PROCESSES_PER_CORE * cores()


def run_in_process(configs, data, options) -> int:
    from bench.run.runner import execute
    from bench.run.train import Interrupted, StopOnSignal

    failures, busy = [], []
    with StopOnSignal() as stop:
        for config in configs:
            try:
                outcome = execute(config, data, options, stop)
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
    return closing_lines(configs, failures, busy)


def run_together_in_process(configs, data, options) -> int:
    """The runs trained together, in turn, in this process (bench/run/together.py)."""
    from bench.run.together import run_together
    from bench.run.train import StopOnSignal
    from bench.evaluations.tsne_pool import default_workers, threads_per_worker

    device, workers = options.device, options.tsne_workers
    if workers is None:
        workers = default_workers(len(configs)) if device.type == "cuda" else 0
        options = dataclasses.replace(options, tsne_workers=workers)
    where = "" if not workers else \
        f"; t-SNE in {workers} worker processes of {threads_per_worker(workers)} thread(s)"
    print(f"bench: training {len(configs)} runs together on {device}{where}")
    with StopOnSignal() as stop:
        outcomes = run_together(configs, data, options, stop)
    if outcomes.device_fault is not None:
        print(device_fault_line(outcomes.device_fault, f"the {len(configs)} runs trained together"),
              file=sys.stderr)
        return 1
    if outcomes.interrupted is not None:
        print(f"bench: interrupted ({outcomes.interrupted}): every unfinished run checkpointed; "
              "rerun the same command to resume", file=sys.stderr)
        return 128 + outcomes.interrupted.signal_number
    return closing_lines(configs, outcomes.failures, outcomes.busy)


def together_limit() -> int:
    from bench.run.together import CUDA_GROUP_SIZE
    return CUDA_GROUP_SIZE


def device_fault_line(fault, what: str) -> str:
    return (f"bench: a device-wide CUDA fault ({fault}) stopped {what}: the device is unusable in "
            "this process, so no run is marked failed; each resumes from its last checkpoint when "
            "the same command is rerun")


def closing_lines(configs, failures: list[str], busy: list[str]) -> int:
    """The closing lines of a local command, and its exit code."""
    if busy:
        print(f"bench: {len(busy)} run(s) left to the other process(es) working on them: "
              f"{', '.join(busy)}", file=sys.stderr)
    if failures:
        print(f"bench: {len(failures)} of {len(configs)} runs failed: {', '.join(failures)}",
              file=sys.stderr)
        return 1
    return 0


def add(commands) -> None:
    """The `run` command's arguments."""
    from bench.spec.presets import PRESETS

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
                          "and 64/64; Sprites: 512/64 and 1024/512; see docs/usage.md)")
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
                          "overlap); default: on with a CUDA device, off elsewhere (docs/gpu.md, "
                          "\"Runs trained together\")")
    run.add_argument("--tsne-workers", type=int, metavar="N",
                     help="runs trained together: the t-SNE of each run in N CPU worker processes, "
                          "started as soon as the run has trained, beside the GPU's work "
                          "(default: on CUDA one per run, up to (cores - 1) / 2; elsewhere 0, in "
                          "this process)")
    run.add_argument("--evaluations", metavar="NAMES",
                     help="comma-separated evaluations each run computes once trained, or all "
                          "(default: those every run computes); python -m bench evaluate adds "
                          "the others later")
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
