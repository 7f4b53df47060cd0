"""A run's console lines in ``run.log`` in its folder: what the run prints while it executes,
appended across resumes, one line per start, and the lines of progress a terminal shows as bars
instead (bench/progress.py: ``note``, ``log_to``). Written by every executor alike (a ``--jobs`` child or
a SLURM job runs the same ``bench run`` in its own process). The run's other watchers (losses.csv,
TensorBoard, a user's own) are monitors: bench/run/monitors.py."""
from __future__ import annotations

import datetime
import os
import socket
import sys
import threading
from collections.abc import Generator
from pathlib import Path

from bench import progress
from bench.store import results

RUN_LOG = "run.log"


class ConsoleLog:
    """While active, what this process writes to stdout and stderr is also appended to ``path``,
    complete lines only: a progress bar redrawn in place (carriage returns) leaves at most its last
    state, and a line still unfinished when the log closes is written as it stands. The lines reach
    the file as they are printed (``tail -f`` works). If the file cannot be opened or written (a
    full disk), logging stops and the run goes on: the console still has every line. While
    attached, it is where ``bench.progress`` sends the progress lines a terminal shows as bars.
    ``command``: what the first line of each start names (bench run, bench evaluate-model)."""

    def __init__(self, path: Path, command: str = "bench run"):
        self.path, self.command = Path(path), command
        self._file = None
        self._lock = threading.Lock()
        self._partial: dict[str, str] = {}
        self._saved = None

    def __enter__(self) -> "ConsoleLog":
        try:
            self._file = results.open_unlinked(self.path, "a")  # a link is refused: UnusablePath
        except OSError:
            self._file = None
        stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self._append(f"== {stamp} {self.command} (pid {os.getpid()} on {socket.gethostname()})\n")
        self.attach()
        return self

    def attach(self) -> None:
        """Start copying this process's output to the log (it is attached while active)."""
        if self._saved is None:
            self._saved = sys.stdout, sys.stderr, progress.log_to(self.note)
            sys.stdout, sys.stderr = _Tee(sys.stdout, self, "out"), _Tee(sys.stderr, self, "err")

    def detach(self) -> None:
        """Stop copying output to the log, until ``attach`` (another run's turn)."""
        if self._saved is not None:
            for stream in (sys.stdout, sys.stderr):
                if isinstance(stream, _Tee):
                    stream.flush()
            sys.stdout, sys.stderr, previous = self._saved
            progress.log_to(previous)
            self._saved = None

    def steps(self, steps: Generator):
        """``yield from steps`` (what is sent goes on to ``steps``) with the log attached while
        ``steps`` runs and detached whenever it yields: runs advanced in turn in one process each
        log their own lines."""
        try:
            sent = None
            while True:
                try:
                    item = steps.send(sent)
                except StopIteration as finished:
                    return finished.value
                self.detach()
                try:
                    sent = yield item
                finally:
                    self.attach()
        finally:
            steps.close()  # when this is closed early: its runs' own cleanup, now

    def __exit__(self, *exc) -> None:
        self.detach()
        with self._lock:
            rest = "".join(_last_state(text) + "\n" for text in self._partial.values()
                           if _last_state(text).strip())
            self._partial.clear()
        self._append(rest)
        self._close()

    def note(self, line: str) -> None:
        """Write ``line`` to the log only (not to the console)."""
        self._append(line.rstrip("\n") + "\n")

    def take(self, stream: str, text: str) -> None:
        """Text written to ``stream``: its complete lines go to the file, the rest waits."""
        with self._lock:
            *lines, rest = (self._partial.get(stream, "") + text).split("\n")
            # An unfinished line keeps only its last redraw (and a trailing carriage return).
            cut = rest.rfind("\r", 0, len(rest) - 1)
            self._partial[stream] = rest[cut + 1:]
        self._append("".join(_last_state(line) + "\n" for line in lines
                             if _last_state(line).strip()))

    def _append(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.write(text)
                self._file.flush()
            except OSError:  # the run matters more than its log
                self._close()

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def _last_state(line: str) -> str:
    """What a terminal shows of ``line``: the text after its last carriage return."""
    return line.rstrip("\r").rsplit("\r", 1)[-1]


class _Tee:
    """A text stream that writes through to ``stream`` and hands the text to a ConsoleLog; every
    other attribute (isatty, fileno, encoding) is the stream's, so tqdm treats it as the stream."""

    def __init__(self, stream, log: ConsoleLog, name: str):
        self._stream, self._log, self._name = stream, log, name

    def write(self, text):
        written = self._stream.write(text)
        if isinstance(text, str):
            self._log.take(self._name, text)
        return written

    def flush(self):
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)
