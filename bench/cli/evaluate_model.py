"""`bench evaluate-model`: evaluate a model of the user's own (bench/external_model.py) into an ordinary
run folder, beside the suite's methods (bench/run/external_run.py)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from bench.cli.arguments import (DEVICE_HELP, UsageError, check_cache_dir, choose,
                                 device_argument, known_dataset, load_data, resolve_device,
                                 settings_overrides)
from bench.store import paths
from bench.spec.presets import PRESETS
from bench.store.results import DEFAULT_RESULTS, read_status, runs_dir

# The report's row name and the start of the run id: short and plain, never hidden or an option.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a --model-arg's key


def model_name(text: str) -> str:
    from methods import METHODS
    if not NAME.fullmatch(text):
        raise UsageError(f"--name {text!r}: expected 1 to 32 letters, digits, '_', '.' or '-', "
                         "not starting with '.' or '-'")
    clash = [method for method in METHODS if method.lower() == text.lower()]
    if clash:
        raise UsageError(f"--name {text}: a suite method's name ({clash[0]}; names are compared "
                         "without case): the report would mix the two")
    return text


def model_arguments(pairs: list[str]) -> dict[str, str]:
    """--model-arg KEY=VALUE ...: the factory's keyword arguments, each value a string as given."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not IDENTIFIER.fullmatch(key):
            raise UsageError(f"--model-arg expects KEY=VALUE with KEY a Python name, got {pair!r}")
        if key in found:
            raise UsageError(f"--model-arg {key} given twice")
        found[key] = value
    return found


def command_evaluate_model(args) -> int:
    from bench.evaluations import EVALUATIONS, by_default, in_order
    from bench.external_model import NotAModel, check_model, load, locate, weights_sha256
    from bench.run.external_run import (ExternalConfig, LatentSizes, check_one_model,
                                        evaluate_external, external_settings, replace_runs,
                                        skipped_without_decoder)
    from bench.run.runner import test_summary
    from bench.run.train import Interrupted, StopOnSignal

    name = model_name(args.name)
    known_dataset(args.dataset)
    if args.seed < 0:
        raise UsageError("--seed must be non-negative")
    chosen = by_default() if args.evaluations is None else in_order(
        choose(args.evaluations, EVALUATIONS, "evaluation"))
    settings = external_settings(args.preset, settings_overrides(args.set))
    paths.output_folder(args.results, "--results")
    check_cache_dir()
    try:
        source = locate(args.model, args.decoder, model_arguments(args.model_arg))
    except NotAModel as refusal:  # what the file is, on stderr; the factory to write, here
        print(refusal.advice)
        raise
    device = resolve_device(args.device)
    data = load_data(args.dataset, args.data_dir, device).head(settings.train_size,
                                                               settings.test_size)
    model = load(source, device)
    weights = weights_sha256(model)
    method = check_model(model, source.spec, data.test_images, device)
    config = ExternalConfig(method=name, dataset=args.dataset, preset=args.preset, seed=args.seed,
                            method_config=LatentSizes(method.shape.z_dim, method.shape.s_dim),
                            settings=settings, source=source,
                            variational_z=method.shape.variational, decodes=method.decodes,
                            weights_sha256=weights)
    replaced = check_one_model(config, args.results, args.replace)
    skipped = skipped_without_decoder(chosen, data, method.decodes)
    if skipped:
        print(f"{name} has no decode method: skipped {', '.join(skipped)} (they decode)")
    with StopOnSignal() as stop:
        try:
            outcome = evaluate_external(config, method, data, args.results, chosen,
                                        args.force, stop.check)
        except Interrupted as interruption:
            print(f"bench: interrupted ({interruption}): nothing of {config.run_id} is kept; "
                  "rerun the same command", file=sys.stderr)
            return 128 + interruption.signal_number
    if outcome != "busy":
        replace_runs(replaced)
    if outcome == "complete":
        run_dir = runs_dir(args.results) / config.run_id
        print(f"done {config.run_id}: {test_summary(run_dir)} (peak memory "
              f"{read_status(run_dir)['peak_memory_mb']:.0f} MB)")
    return 0


def add(commands) -> None:
    """The `evaluate-model` command's arguments."""
    command = commands.add_parser(
        "evaluate-model", help="evaluate a model of your own (your code, your checkpoint) beside "
                               "the suite's methods, without training")
    command.add_argument("model", help="path/to/file.py:factory or package.module:factory (your "
                                       "own Python code: it is imported and run as it is, with "
                                       "this process's rights; factory(**model args) returns an "
                                       "object with encode(images) -> (s, z_mean[, z_logvar]) and "
                                       "optionally decode(z, s) -> images), a torch.export "
                                       "program encoder.pt2 (torch.export.load: of encode), or a "
                                       "TorchScript file model.pt (deprecated by torch; "
                                       "torch.jit.load: its encode or forward, and decode)")
    command.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                         help="a keyword argument of the factory, passed as a string "
                              "(repeatable): e.g. --model-arg checkpoint=weights.pt")
    command.add_argument("--decoder", type=Path, metavar="DECODER.pt2",
                         help="beside a torch.export encoder: the torch.export program of "
                              "decode(z, s)")
    command.add_argument("--replace", action="store_true",
                         help="discard this name's runs on the dataset from another model "
                              "(retrained weights, another file or --model-arg) once this one is "
                              "evaluated (without it they are refused: one name, one model)")
    command.add_argument("--dataset", required=True, help="the dataset to evaluate it on")
    command.add_argument("--name", required=True,
                         help="the model's row in the report: up to 32 letters, digits, _ . -")
    command.add_argument("--preset", default="paper", choices=list(PRESETS),
                         help="the evaluation budget (data sizes, probe epochs, t-SNE points) of "
                              "a run of this preset (default paper)")
    command.add_argument("--seed", type=int, default=0,
                         help="seed of the evaluations' random draws, as a run's (default 0)")
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override an evaluation setting (train_size, test_size, "
                              "probe_epochs, probe_batch_size, probe_lr, tsne_points)")
    command.add_argument("--evaluations", help="comma-separated evaluation names, or all (default: "
                                               "those every run computes)")
    command.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    command.add_argument("--force", action="store_true",
                         help="evaluate again even when the run is complete")
    command.add_argument("--device", default="auto", type=device_argument, help=DEVICE_HELP)
    command.add_argument("--data-dir", type=Path, help="data root, as for run")
    command.set_defaults(handler=command_evaluate_model)
