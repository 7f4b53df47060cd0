"""The runs of one command trained together in one process (`bench run --together`, the default
on CUDA).

At batch 64 the MNIST networks leave a GPU idle most of an iteration: each kernel does
microseconds of work, and runs in separate processes time-slice the device instead of sharing
it. Here the runs advance in turn, one training iteration each, in one process. On CUDA each run
works on its own stream, so the kernels of different runs can overlap; with --cuda-graphs each
run's iteration is its own CUDA graph (bench/run/graphs.py), replayed on that stream.

Each run keeps everything it has alone: its folder, run id, config, losses.csv, per-epoch
checkpoints, random streams, gate decisions and run.log. A run that fails (a NaN loss) stops
alone and the others go on; a signal checkpoints every run at its next iteration boundary. A
device-wide CUDA fault (an illegal address, a device-side assert: after one, every CUDA call of
the process fails, so any run may be the first to see another's) is no run's failure: the group
stops, every run that still can checkpoints, none is marked failed, and the same command resumes
them all in a new process.

On CUDA every run has a stream of its own, for its eager steps and its CUDA graphs alike (each
graph is captured on its run's stream, so no two runs share a cuBLAS workspace). torch hands
streams out round robin from a pool of 32 per device, so at most 32 runs are trained together:
a command with more trains them in consecutive groups of at most 32, and says so. On any device
a group is also kept within the open-file limit (a training run holds its lock, its run.log and,
with --tensorboard, an event file): a command with more runs than the limit allows trains them in
consecutive groups, says so, and names `ulimit -n`. Each run's
status.json records the device memory its own steps allocated at their peak (its networks,
optimisers and graphs; not the dataset the group shares) and, beside it, the group's peak.

A run is encoded as soon as it has trained; with t-SNE workers (the default on CUDA) its t-SNE
starts then, on the CPU, while the GPU trains the others. Once every run has trained, the
evaluations that can take several runs at once do (the latent probes of all runs fitted side by
side as one stacked model), then each run finishes in turn: its other evaluations (its t-SNE
among them, the workers' embeddings) and its training curves. On the CPU a run trained
together computes what it computes alone, bit for bit (tests/test_together.py).
"""
from __future__ import annotations

import dataclasses
import resource
import sys
from typing import TYPE_CHECKING, Any, Callable

import torch
from tqdm.auto import tqdm

from bench.errors import DeviceFault, RunFailed, first_line, is_device_fault
from bench.evaluations import compute_together
from bench.evaluations.tsne import TSNE, TsneWork, tsne_inputs
from bench.spec.config import RunConfig
from bench.run.options import RunOptions
from bench.run.runner import Run, Shared
from bench.run.train import Interrupted, StopOnSignal
from bench.terminal import printable
from datasets import ImageSet

if TYPE_CHECKING:
    from bench.evaluations.tsne_pool import TsnePool

CUDA_GROUP_SIZE = 32  # torch's CUDA streams per device and priority, handed out round robin
FILES_PER_RUN = 4  # a training run's lock, run.log, TensorBoard event file, and a file being written
RESERVED_FILES = 128  # the process's own: libraries, the dataset, t-SNE workers' pipes, the console


def open_file_limit() -> int:
    """This process's soft limit on open files (``ulimit -n``)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def group_size(device: torch.device, file_limit: int) -> int:
    """The most runs trained together at once: the runs' open files within ``file_limit``, and
    on CUDA a stream each."""
    by_files = max(1, (file_limit - RESERVED_FILES) // FILES_PER_RUN)
    return min(CUDA_GROUP_SIZE, by_files) if device.type == "cuda" else by_files


@dataclasses.dataclass
class GroupMemory:
    """The device memory of runs trained together: the group's peak, and each run's own (what
    its steps allocated, counted from the allocator's figures before and after each of its
    steps, since one device peak cannot tell the runs apart)."""
    device: Any
    peak: int = 0

    def observe(self, step: Callable[[], Any]) -> Any:
        """``step()``, counted toward the group's peak only (the probes of all runs at once)."""
        torch.cuda.reset_peak_memory_stats(self.device)
        try:
            return step()
        finally:
            self.peak = max(self.peak, torch.cuda.max_memory_allocated(self.device))

    def measure(self, member: Member, step: Callable[[], Any]) -> Any:
        """``step()``, one of ``member``'s: what it allocates is the member's."""
        before = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        try:
            return step()
        finally:
            top = torch.cuda.max_memory_allocated(self.device)
            self.peak = max(self.peak, top)
            member.peak = max(member.peak, member.held + top - before)
            member.held += torch.cuda.memory_allocated(self.device) - before

    def record(self, member: Member) -> dict[str, float]:
        """status.json's memory fields for ``member``."""
        return {"peak_memory_mb": round(member.peak / 2**20, 1),
                "group_peak_memory_mb": round(self.peak / 2**20, 1)}


@dataclasses.dataclass
class Member:
    """One run of the group (bench/run/runner.py's Run) and, on CUDA, its stream and the memory its
    steps hold."""
    config: RunConfig
    run: Run | None = None
    stream: Any = None
    memory: GroupMemory | None = None
    tsne: TsneWork | None = None  # its t-SNE, under way in worker processes
    held: int = 0  # bytes its steps allocated and still hold
    peak: int = 0

    def advance(self, shared: Shared | None = None) -> str:
        if self.stream is None:
            return self.run.step(shared)
        with torch.cuda.stream(self.stream):
            return self.memory.measure(self, lambda: self.run.step(shared))

    def synchronise(self) -> None:
        """Wait for the work queued on its stream (before its tensors are read elsewhere)."""
        if self.stream is not None:
            self.stream.synchronize()


@dataclasses.dataclass
class Outcomes:
    failures: list[str] = dataclasses.field(default_factory=list)
    busy: list[str] = dataclasses.field(default_factory=list)
    interrupted: Interrupted | None = None
    device_fault: str | None = None  # what stopped the group, when a device-wide fault did


def _stream(device: torch.device):
    if device.type != "cuda":
        return None
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))  # the data, loaded on the default stream
    return stream


def _advance(member: Member, outcomes: Outcomes, shared: Shared | None = None) -> str:
    """One step of ``member``'s run; its new state (Run.ENDED too when it failed, was interrupted
    or met a device fault, each noted in ``outcomes``)."""
    try:
        state = member.advance(shared)
    except RunFailed as failure:  # recorded in its folder; the others go on
        print(printable(f"bench: run {member.config.run_id} failed: {failure}"), file=sys.stderr)
        outcomes.failures.append(member.config.run_id)
        return Run.ENDED
    except Interrupted as interruption:  # checkpointed
        outcomes.interrupted = interruption
        return Run.ENDED
    except DeviceFault as fault:  # the group stops (run_together)
        outcomes.device_fault = outcomes.device_fault or str(fault)
        return Run.ENDED
    if state == Run.ENDED and member.run.outcome == "busy":
        outcomes.busy.append(member.config.run_id)
    return state


def run_together(configs: list[RunConfig], data: ImageSet, options: RunOptions,
                 stop: StopOnSignal) -> Outcomes:
    """Train ``configs`` in turn, one iteration each, then evaluate them (on CUDA in groups of
    at most CUDA_GROUP_SIZE, one after the other). After a signal every run still training has
    checkpointed and ``Outcomes.interrupted`` is set; after a device-wide fault, likewise as far
    as the device allows, and ``Outcomes.device_fault`` says what it was. ``options.tsne_workers``:
    the t-SNE of each run in that many CPU worker processes, started once the run is trained
    (bench/evaluations/tsne_pool.py); 0 or None: in this process, in each run's turn."""
    device, tsne_workers = options.device, options.tsne_workers
    file_limit = open_file_limit()
    groups = in_groups(configs, device, file_limit)
    if len(groups) > 1:
        size = len(groups[0])
        why = (f"each run has a CUDA stream of its own, and torch has {CUDA_GROUP_SIZE} per device"
               if size == CUDA_GROUP_SIZE and device.type == "cuda" else
               f"each training run holds up to {FILES_PER_RUN} open files, and this process may "
               f"open {file_limit} (ulimit -n raises it)")
        print(f"bench: {len(configs)} runs are trained together in {len(groups)} groups of at most "
              f"{size}, one group after the other ({why})")
    outcomes = Outcomes()
    pool = None
    if tsne_workers:
        from bench.evaluations.tsne_pool import TsnePool, threads_per_worker
        pool = TsnePool(tsne_workers, threads_per_worker(tsne_workers))
    try:
        for group in groups:
            _run_group(group, data, options, stop, outcomes, pool)
            if outcomes.interrupted is not None or outcomes.device_fault is not None:
                break
    finally:
        if pool is not None:
            pool.close()
    return outcomes


def in_groups(configs: list[RunConfig], device: torch.device,
              file_limit: int | None = None) -> list[list[RunConfig]]:
    """The groups the runs are trained in, one after the other, of at most ``group_size`` runs
    each: no two runs share a CUDA stream, and the open-file limit (``file_limit``, by default
    this process's) holds."""
    size = group_size(device, open_file_limit() if file_limit is None else file_limit)
    return [configs[i:i + size] for i in range(0, len(configs), size)]


def _run_group(configs: list[RunConfig], data: ImageSet, options: RunOptions, stop: StopOnSignal,
               outcomes: Outcomes, pool: TsnePool | None) -> None:
    device = options.device
    memory = GroupMemory(device) if device.type == "cuda" else None
    evaluations = options.chosen_evaluations()
    members = []
    for config in configs:
        member = Member(config, stream=_stream(device), memory=memory)
        member.run = Run(config, data, options, stop, together=True,
                         peak_memory=None if memory is None else lambda m=member: memory.record(m))
        members.append(member)
    streams = [m.stream.cuda_stream for m in members if m.stream is not None]
    if len(set(streams)) != len(streams):
        raise RuntimeError("two runs trained together were given the same CUDA stream")
    try:
        training, encoded = list(members), []
        while training and outcomes.device_fault is None:
            for member in list(training):
                state = _advance(member, outcomes)
                if state == Run.TRAINING:
                    continue
                training.remove(member)
                if state == Run.TRAINED:  # encoded now: its t-SNE can start while the others train
                    state = _advance(member, outcomes)
                if state == Run.ENCODED:
                    if pool is not None and TSNE in evaluations:
                        member.tsne = _start_tsne(member, pool)
                    encoded.append(member)
                if outcomes.device_fault is not None:
                    break
        if outcomes.device_fault is None and outcomes.interrupted is None:
            _evaluate(encoded, outcomes, device, memory, evaluations)
        if outcomes.device_fault is not None:
            _checkpoint_after_fault(training, outcomes, stop)
    finally:
        for member in members:  # releases the locks of runs left unfinished
            member.run.close()


def _checkpoint_after_fault(training: list[Member], outcomes: Outcomes, stop: StopOnSignal) -> None:
    """After a device-wide fault, each run still training checkpoints at its next iteration
    boundary, as far as the device allows (on a GPU that met the fault, the checkpoint's copy
    from the device fails too, and the run's last epoch checkpoint stays). Trained runs waiting
    for their evaluations are already checkpointed. No run is marked failed."""
    stop.request("stopped with the runs trained together by a device-wide fault")
    for member in training:
        if member.run.started:
            _advance(member, outcomes)


def _start_tsne(member: Member, pool: TsnePool) -> TsneWork | None:
    """Submit the run's embeddings to the workers; None (the run then embeds in its turn, where a
    failure is its own) if preparing them fails."""
    member.synchronise()
    context = member.run.context
    try:
        return pool.submit(tsne_inputs(context))
    except Exception as error:  # noqa: BLE001 - contained: the run computes it in its turn
        tqdm.write(f"{member.config.run_id}: t-SNE not started in a worker "
                   f"({type(error).__name__}: {error}); it is computed in the run's turn")
        return None


def _evaluate(encoded: list[Member], outcomes: Outcomes, device: torch.device,
              memory: GroupMemory | None, evaluations: list) -> None:
    """Compute the evaluations that can take several runs at once for all of them (the probes,
    side by side), then finish each run in turn (its other evaluations and training curves)."""
    def shared() -> dict:
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the codes were made on the runs' streams, used here
        found = compute_together(evaluations, [m.run.context for m in encoded], say=tqdm.write)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # and what was computed here is used on those streams
        return found
    try:
        computed = shared() if memory is None else memory.observe(shared)
    except Interrupted as interruption:  # in the probes: every run is trained and checkpointed
        outcomes.interrupted = interruption
        return
    except Exception as error:
        if not is_device_fault(error):
            raise
        outcomes.device_fault = first_line(error)
        return
    for member in encoded:
        if outcomes.interrupted is not None or outcomes.device_fault is not None:
            return  # the rest are trained and checkpointed: a rerun evaluates them
        started = {} if member.tsne is None else {TSNE.name: member.tsne}
        _advance(member, outcomes, Shared(computed[member.config.run_id], started))
