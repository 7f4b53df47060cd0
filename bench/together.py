"""The runs of one command trained together in one process (`bench run --together`, the default
on CUDA).

At batch 64 the MNIST networks leave a GPU idle most of an iteration: each kernel does
microseconds of work, and runs in separate processes time-slice the device instead of sharing
it. Here the runs advance in turn, one training iteration each, in one process. On CUDA each run
works on its own stream, so the kernels of different runs can overlap; with --cuda-graphs each
run's iteration is its own CUDA graph (bench/graphs.py), replayed on that stream.

Each run keeps everything it has alone: its folder, run id, config, losses.csv, per-epoch
checkpoints, random streams, gate decisions and run.log. A run that fails (a NaN loss) stops
alone and the others go on; a signal checkpoints every run at its next iteration boundary.

A run is encoded as soon as it has trained; with t-SNE workers (the default on CUDA) its t-SNE
starts then, on the CPU, while the GPU trains the others. Once every run has trained, the
evaluations that can take several runs at once do (the latent probes of all runs fitted side by
side as one stacked model), then each run finishes in turn: its other evaluations and figures.
On the CPU a run trained together computes what it computes alone, bit for bit
(tests/test_together.py).
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from bench.config import RunConfig
from bench.errors import RunFailed
from bench.evaluations import Context, compute_together, in_order
from bench.run_figures import TsneWork, tsne_inputs
from bench.runner import TRAINED, Encoded, Shared, execute_steps
from bench.train import Interrupted, StopOnSignal
from datasets import ImageSet

if TYPE_CHECKING:
    from bench.tsne_pool import TsnePool

STEP, ENDED = "step", "ended"


@dataclasses.dataclass
class Member:
    """One run of the group: its steps (runner.execute_steps) and, on CUDA, its stream."""
    config: RunConfig
    steps: Generator
    stream: Any = None
    encoded: Context | None = None  # once trained and encoded
    tsne: TsneWork | None = None  # its t-SNE, under way in worker processes

    def advance(self, sent=None):
        if self.stream is None:
            return self.steps.send(sent)
        with torch.cuda.stream(self.stream):
            return self.steps.send(sent)

    def synchronise(self) -> None:
        """Wait for the work queued on its stream (before its tensors are read elsewhere)."""
        if self.stream is not None:
            self.stream.synchronize()


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


def _advance(member: Member, outcomes: Outcomes, sent=None):
    """One step of ``member``: STEP, TRAINED, ENDED (finished, busy, failed or interrupted), or
    the run's ``Encoded`` (its evaluations are next)."""
    try:
        item = member.advance(sent)
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
    if isinstance(item, Encoded):
        return item
    return TRAINED if item == TRAINED else STEP


def run_together(configs: list[RunConfig], data: ImageSet, results_dir: Path, device: torch.device,
                 stop: StopOnSignal, *, restart: bool = False, cuda_graphs: bool = False,
                 tensorboard: bool = False, tsne_workers: int = 0) -> Outcomes:
    """Train ``configs`` in turn, one iteration each, then evaluate them. After a signal every
    run still training has checkpointed and ``Outcomes.interrupted`` is set. ``tsne_workers``:
    the t-SNE of each run in that many CPU worker processes, started once the run is trained
    (bench/tsne_pool.py); 0: in this process, in each run's turn."""
    members = [Member(config, execute_steps(config, data, results_dir, device, stop, restart,
                                            cuda_graphs, tensorboard, together=True),
                      _stream(device)) for config in configs]
    outcomes = Outcomes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # each status.json: the group's peak so far
    pool = None
    if tsne_workers:
        from bench.tsne_pool import TsnePool, threads_per_worker
        pool = TsnePool(tsne_workers, threads_per_worker(tsne_workers))
    try:
        training, encoded = list(members), []
        while training:
            for member in list(training):
                state = _advance(member, outcomes)
                if state == STEP:
                    continue
                training.remove(member)
                if state == TRAINED:  # encoded now: its t-SNE can start while the others train
                    state = _advance(member, outcomes)
                if isinstance(state, Encoded):
                    member.encoded = state.context
                    if pool is not None:
                        member.tsne = _start_tsne(member, pool)
                    encoded.append(member)
        if outcomes.interrupted is None:
            _evaluate(encoded, outcomes, device)
    finally:
        for member in members:  # releases the locks of runs left unfinished
            member.steps.close()
        if pool is not None:
            pool.close()
    return outcomes


def _start_tsne(member: Member, pool: TsnePool) -> TsneWork | None:
    """Submit the run's embeddings to the workers; None (the run then embeds in its turn, where a
    failure is its own) if preparing them fails."""
    member.synchronise()
    context = member.encoded
    try:
        return pool.submit(tsne_inputs(context.config, context.method, context.data, context.test))
    except Exception as error:  # noqa: BLE001 - contained: the run computes it in its turn
        tqdm.write(f"{member.config.run_id}: t-SNE not started in a worker "
                   f"({type(error).__name__}: {error}); it is computed in the run's turn")
        return None


def _evaluate(encoded: list[Member], outcomes: Outcomes, device: torch.device) -> None:
    """Compute the evaluations that can take several runs at once for all of them (the probes,
    side by side), then finish each run in turn (its other evaluations and figures)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the codes were made on the runs' streams, used here
    computed = compute_together(in_order(), [m.encoded for m in encoded], say=tqdm.write)
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # and what was computed here is used on those streams
    for member in encoded:
        if outcomes.interrupted is not None:
            return  # the rest are trained and checkpointed: a rerun evaluates them
        state = _advance(member, outcomes, Shared(computed[member.config.run_id], member.tsne))
        while state == STEP:
            state = _advance(member, outcomes)
