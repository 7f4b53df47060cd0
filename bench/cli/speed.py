"""`bench speed`: time training iterations (and probes, t-SNE) per method."""
from __future__ import annotations

from bench.cli.arguments import (UsageError, add_common, apply_gpu_options, check_cache_dir, choose,
                                 known_dataset, load_data, resolve_device)
from bench.cli.run import together_limit


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


def add(commands) -> None:
    """The `speed` command's arguments."""
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
