"""How a command's runs are computed and watched, as one record from the command line down to each
run. What a run computes is its RunConfig (its id is a hash of it); these options choose where and
how: the device, CUDA graphs, TF32, training runs together, t-SNE workers, the monitors, which
evaluations a run computes once trained. Adding an
option is adding a field here, its argument in bench/cli/run.py and the code that reads it."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from bench.run.monitors import MonitorFactory, TensorBoard

if TYPE_CHECKING:
    import torch

    from bench.spec.config import RunConfig


def gpu_flags(cuda_graphs: bool, tf32: bool) -> tuple[str, ...]:
    """The CUDA-only options given, as `bench run` flags."""
    return tuple(flag for flag, given in (("--cuda-graphs", cuda_graphs), ("--tf32", tf32)) if given)


# Whether runs on CUDA train together unless --no-together says otherwise. That path (eager steps
# on per-run streams, stacked probes, t-SNE in workers) has never run on a GPU: until the CUDA
# tests of scripts/gpu_evidence.sh have passed on one, CUDA trains one run at a time like the CPU
# (--together stays available), and this is False.
TOGETHER_ON_CUDA = False


@dataclasses.dataclass(frozen=True)
class RunOptions:
    results_dir: Path
    device: "torch.device | None" = None  # resolved; None where child processes train the runs
    device_request: str = "auto"  # as given on the command line: what a child process resolves
    restart: bool = False  # discard an unfinished run's folder and train it again
    cuda_graphs: bool = False  # training iterations as CUDA graph replays (bench/run/graphs.py)
    tf32: bool = False  # TF32 rounding in convolutions and matrix products (CUDA)
    tensorboard: bool = False  # each run's curves as TensorBoard event files too
    together: bool | None = None  # train the runs in turn in one process; None: TOGETHER_ON_CUDA
    tsne_workers: int | None = None  # runs trained together: t-SNE in worker processes
    data_dir: Path | None = None
    monitors: tuple[MonitorFactory, ...] = ()  # a user's own, beside the loss log
    # the evaluations a run computes once trained, by name; None: every default one. A run is
    # complete with those it was asked for (bench evaluate adds the others later).
    evaluations: tuple[str, ...] | None = None

    def chosen_evaluations(self) -> list:
        from bench.evaluations import by_default, in_order
        return by_default() if self.evaluations is None else in_order(list(self.evaluations))

    def monitor_factories(self) -> tuple[MonitorFactory, ...]:
        """The monitors each run gets besides its loss log: ``--tensorboard``'s, then the user's."""
        return ((TensorBoard,) if self.tensorboard else ()) + self.monitors

    def trains_together(self, runs: int) -> bool:
        together = self.together if self.together is not None else (
            TOGETHER_ON_CUDA and self.device is not None and self.device.type == "cuda")
        return together and runs > 1

    def gpu_flags(self) -> tuple[str, ...]:
        return gpu_flags(self.cuda_graphs, self.tf32)

    def child_argv(self, config: RunConfig, overrides: dict) -> tuple[str, ...]:
        """The `bench run` arguments of a child process (--jobs, SLURM) that trains ``config``
        (same overrides, one seed, one size) with these options."""
        argv = ["run", "--methods", config.method, "--dataset", config.dataset,
                "--preset", config.preset, "--seeds", str(config.seed),
                "--z-dim", str(config.method_config.z_dim), "--s-dim", str(config.method_config.s_dim),
                "--results", str(Path(self.results_dir).resolve()), "--device", self.device_request]
        for key, value in overrides.items():
            if key not in ("z_dim", "s_dim"):
                argv += ["--set", f"{key}={value}"]
        if self.data_dir is not None:
            argv += ["--data-dir", str(Path(self.data_dir).resolve())]
        if self.restart:
            argv.append("--restart")
        if self.tensorboard:
            argv.append("--tensorboard")
        if self.evaluations is not None:
            argv += ["--evaluations", ",".join(self.evaluations)]
        return tuple(argv) + self.gpu_flags()
