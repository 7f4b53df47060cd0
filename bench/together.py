"""The runs of one command trained together in one process (`bench run --together`, the default
on CUDA).

At batch 64 the MNIST networks leave a GPU idle most of an iteration: each kernel does
microseconds of work, and runs in separate processes time-slice the device instead of sharing
it. Here the runs advance in turn, one training iteration each, in one process. On CUDA each run
works on its own stream, so the kernels of different runs can overlap; with --cuda-graphs each
run's iteration is its own CUDA graph (bench/graphs.py), replayed on that stream.

Each run keeps everything it has alone: its folder, run id, config, losses.csv, per-epoch
checkpoints, random streams, gate decisions and run.log. A run that fails (a NaN loss) stops
alone and the others go on; a signal checkpoints every run at its next iteration boundary. When
every run has trained, each is evaluated in turn. On the CPU a run trained together computes what
it computes alone, bit for bit (tests/test_together.py).
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch

from bench.config import RunConfig
from bench.errors import RunFailed
from bench.runner import TRAINED, execute_steps
from bench.train import Interrupted, StopOnSignal
from datasets import ImageSet

STEP, ENDED = "step", "ended"


@dataclasses.dataclass
class Member:
    """One run of the group: its steps (runner.execute_steps) and, on CUDA, its stream."""
    config: RunConfig
    steps: Generator
    stream: Any = None

    def advance(self):
        if self.stream is None:
            return next(self.steps)
        with torch.cuda.stream(self.stream):
            return next(self.steps)


@dataclasses.dataclass
class Outcomes:
    failures: list[str] = dataclasses.field(default_factory=list)
    busy: list[str] = dataclasses.field(default_factory=list)
    interrupted: Interrupted | None = None


def _stream(device: torch.device):
    if device.type != "cuda":
        return None
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))  # the data, loaded on the default stream
    return stream


def _advance(member: Member, outcomes: Outcomes) -> str:
    """One step of ``member``: STEP, TRAINED, or ENDED (finished, busy, failed or interrupted)."""
    try:
        item = member.advance()
    except StopIteration as finished:
        if finished.value == "busy":
            outcomes.busy.append(member.config.run_id)
        return ENDED
    except RunFailed as failure:  # recorded in its folder; the others go on
        print(f"bench: run {member.config.run_id} failed: {failure}", file=sys.stderr)
        outcomes.failures.append(member.config.run_id)
        return ENDED
    except Interrupted as interruption:  # checkpointed
        outcomes.interrupted = interruption
        return ENDED
    return TRAINED if item == TRAINED else STEP


def run_together(configs: list[RunConfig], data: ImageSet, results_dir: Path, device: torch.device,
                 stop: StopOnSignal, *, restart: bool = False, cuda_graphs: bool = False,
                 tensorboard: bool = False) -> Outcomes:
    """Train ``configs`` in turn, one iteration each, then evaluate each. After a signal every run
    still training has checkpointed and ``Outcomes.interrupted`` is set."""
    members = [Member(config, execute_steps(config, data, results_dir, device, stop, restart,
                                            cuda_graphs, tensorboard, together=True),
                      _stream(device)) for config in configs]
    outcomes = Outcomes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # each status.json: the group's peak so far
    try:
        training, trained = list(members), []
        while training:
            for member in list(training):
                state = _advance(member, outcomes)
                if state != STEP:
                    training.remove(member)
                if state == TRAINED:
                    trained.append(member)
        for member in trained:
            if outcomes.interrupted is not None:
                break  # the rest are trained and checkpointed: a rerun evaluates them
            while _advance(member, outcomes) == STEP:
                pass
    finally:
        for member in members:  # releases the locks of runs left unfinished
            member.steps.close()
    return outcomes
