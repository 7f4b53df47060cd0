"""Whole training iterations as CUDA graph replays (`bench run --cuda-graphs`).

At batch 64 the MNIST networks leave a GPU idle between hundreds of small kernels, so the time of
an iteration is the host's time to launch them. A CUDA graph records one iteration's kernels
(every phase, every optimiser step) once and then launches them all with one call.

A graph replays fixed memory, but a method's ``train_step`` draws new inputs every iteration from
``data.pair()``, ``data.indexed_pair()``, ``data.group()``, ``data.batch()`` and
``method.normal()``. ``GraphedStep`` records, on ordinary
(eager) steps, the sequence of draws one step makes. Before each replay it draws that same sequence
from the same samplers and generator into fixed buffers, outside the graph, so every random stream
advances exactly as in eager training; inside the graph the method reads the buffers. So a graphed
run computes the eager run's function on the eager run's random numbers. A method whose step
changes between epochs says so through ``method.phase``: a new phase is recorded and captured anew.

Each run's graphs are captured on the run's own stream: the stream current when its
``GraphedStep`` is made (runs trained together make it on their own stream), or a new one for a
run alone (the default stream cannot capture). A graph keeps the cuBLAS workspace of the stream it
was captured on; graphs captured on one shared stream would share one workspace, and corrupt each
other's products when replayed at once on their runs' streams.

The same class without a graph (``capture=False``) runs every step eagerly through the fixed
buffers: that path, which is all of the mechanism but the capture itself, is what the CPU tests
compare with plain training.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from bench.errors import RunFailed, first_line
from methods import Method, TrainingData

EAGER_STEPS = 3  # before the capture, on a side stream: allocators, cuDNN and optimiser state settle


class Draw(NamedTuple):
    kind: str  # "pair", "indexed_pair", "group", "batch" or "normal"
    shape: tuple[int, ...]  # of the batch (both halves of a pair have it), the group or the noise
    size: int = 0  # a group's


class RecordingSource:
    """The real data source and the method's noise, recording what one step draws."""

    def __init__(self, data: TrainingData, normal):
        self.data, self.real_normal, self.draws = data, normal, []

    def pair(self):
        x1, x2 = self.data.pair()
        self.draws.append(Draw("pair", tuple(x1.shape)))
        return x1, x2

    def indexed_pair(self):
        i1, i2, x1, x2 = self.data.indexed_pair()
        self.draws.append(Draw("indexed_pair", tuple(x1.shape)))
        return i1, i2, x1, x2

    def group(self, size: int):
        members = self.data.group(size)
        self.draws.append(Draw("group", tuple(members.shape), size))
        return members

    def batch(self):
        x = self.data.batch()
        self.draws.append(Draw("batch", tuple(x.shape)))
        return x

    def normal(self, *shape: int):
        self.draws.append(Draw("normal", tuple(shape)))
        return self.real_normal(*shape)


class FixedSource:
    """Fixed buffers handed out in the recorded order; ``fill`` draws the next step's values into
    them from the real sources."""

    def __init__(self, draws: list[Draw], data: TrainingData, normal, like: torch.Tensor):
        self.draws, self.data, self.real_normal = draws, data, normal
        self.buffers = [torch.empty((2, *d.shape) if d.kind in ("pair", "indexed_pair") else d.shape,
                                    dtype=like.dtype, device=like.device) for d in draws]
        # The indices of each indexed pair, (2, batch), beside its images.
        self.indices = [torch.empty((2, d.shape[0]), dtype=torch.long, device=like.device)
                        if d.kind == "indexed_pair" else None for d in draws]
        self.cursor = 0

    def fill(self) -> None:
        for draw, buffer, indices in zip(self.draws, self.buffers, self.indices):
            if draw.kind == "pair":
                x1, x2 = self.data.pair()
                buffer[0].copy_(x1)
                buffer[1].copy_(x2)
            elif draw.kind == "indexed_pair":
                i1, i2, x1, x2 = self.data.indexed_pair()
                indices[0].copy_(i1)
                indices[1].copy_(i2)
                buffer[0].copy_(x1)
                buffer[1].copy_(x2)
            elif draw.kind == "group":
                buffer.copy_(self.data.group(draw.size))
            elif draw.kind == "batch":
                buffer.copy_(self.data.batch())
            else:
                buffer.copy_(self.real_normal(*draw.shape))
        self.cursor = 0

    def _next(self, kind: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        if self.cursor == len(self.draws) or self.draws[self.cursor].kind != kind or (
                shape is not None and self.draws[self.cursor].shape != shape):
            raise RuntimeError(f"--cuda-graphs: a training step drew {kind} {shape or ''} where "
                               f"earlier steps drew {self.draws[self.cursor:self.cursor + 1]}: its "
                               "draws must be the same every iteration")
        self.cursor += 1
        return self.buffers[self.cursor - 1]

    def pair(self):
        both = self._next("pair")
        return both[0], both[1]

    def indexed_pair(self):
        both = self._next("indexed_pair")
        indices = self.indices[self.cursor - 1]
        return indices[0], indices[1], both[0], both[1]

    def group(self, size: int):
        members = self._next("group")
        if members.shape[0] != size:
            raise RuntimeError(f"--cuda-graphs: a training step drew a group of {size} where "
                               f"earlier steps drew groups of {members.shape[0]}")
        return members

    def batch(self):
        return self._next("batch")

    def normal(self, *shape: int):
        return self._next("normal", tuple(shape))


class GraphedStep:
    """``step()`` is ``method.train_step(data)``: eagerly for the first ``EAGER_STEPS`` calls
    (recording the draws), then as replays of a graph captured on the next call (``capture``) or,
    without a graph, as eager steps through the fixed buffers."""

    def __init__(self, method: Method, data: TrainingData, capture: bool = True):
        if capture and method.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self.method, self.data, self.capture = method, data, capture
        self.stream = run_stream(method.device) if capture else None
        self._start_phase()

    def _start_phase(self) -> None:
        """Forget the recorded draws and the graph: the next steps record and capture anew."""
        self.phase = self.method.phase
        self.draws: list[Draw] | None = None
        self.eager_steps = 0
        self.source: FixedSource | None = None
        self.graph = None
        self.outputs: dict[str, torch.Tensor] | None = None

    def _with_source(self, source) -> dict[str, torch.Tensor]:
        """The method's step with its data and noise from ``source``."""
        self.method.normal = source.normal  # an instance attribute shadows Method.normal
        try:
            return self.method.train_step(source)
        finally:
            del self.method.normal

    def _eager(self) -> dict[str, torch.Tensor]:
        recorder = RecordingSource(self.data, self.method.normal)
        if self.stream is not None:
            self.stream.wait_stream(torch.cuda.current_stream(self.method.device))
            with torch.cuda.stream(self.stream):
                losses = self._with_source(recorder)
            torch.cuda.current_stream(self.method.device).wait_stream(self.stream)
        else:
            losses = self._with_source(recorder)
        if self.draws is not None and recorder.draws != self.draws:
            raise RuntimeError(f"--cuda-graphs: {self.method.name}'s training steps draw different "
                               f"inputs from one iteration to the next ({self.draws} then "
                               f"{recorder.draws})")
        self.draws = recorder.draws
        self.eager_steps += 1
        return losses

    def __call__(self) -> dict[str, torch.Tensor]:
        if self.method.phase != self.phase:
            self._start_phase()
        if self.eager_steps < EAGER_STEPS:
            return self._eager()
        if self.source is None:
            like = next(iter(self.method.networks.parameters()))
            self.source = FixedSource(self.draws, self.data, self.method.normal, like)
            self.source.fill()
            if self.capture:
                self.graph, self.outputs = capture(self.method.name,
                                                   lambda: self._with_source(self.source),
                                                   self.stream)
                self.graph.replay()  # capturing ran nothing: this is the iteration itself
                return self.outputs
        else:
            self.source.fill()
        if self.graph is not None:
            self.graph.replay()
            return self.outputs
        return self._with_source(self.source)


def run_stream(device: torch.device) -> torch.cuda.Stream:
    """The stream a run's graphs are captured on: the current one when it is a side stream (runs
    trained together each work on their own), else a new side stream of the run's."""
    current = torch.cuda.current_stream(device)
    if current != torch.cuda.default_stream(device):
        return current
    return torch.cuda.Stream(device)


def capture(name: str, step, stream: torch.cuda.Stream
            ) -> tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor]]:
    """A CUDA graph of ``step()`` captured on ``stream`` (the run's own), and the outputs it will
    write. A step that cannot be captured (an operation that waits for the host, say) fails the
    run in one line. Its checkpoints are those of eager training: the same command without
    --cuda-graphs resumes it from the last."""
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph, stream=stream):
            outputs = step()
    except RuntimeError as error:
        raise RunFailed(f"{name}: its training step cannot be captured as a CUDA graph "
                        f"({first_line(error)}); rerun without --cuda-graphs") from error
    return graph, outputs
