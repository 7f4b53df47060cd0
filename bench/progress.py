"""Progress of the steps that take more than a few seconds (probes, t-SNE, factor metrics, swap
decoding, the report): a live bar on a terminal, and lines that say what is being done and how
far it is, so that a log that is not a terminal gets one line per step and no bar.

Where the lines go: ``note`` prints them where no bar is drawn (the console is then a log: a
``--jobs`` child's, a SLURM job's, a pipe, and run.log copies it); on a terminal, where the bars
show progress, they go to the run's log only (``log_to``: run.log while a run's output is copied
there). Nothing here touches a random stream or the order of a computation."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


_hidden = False
_log: Callable[[str], None] | None = None  # the run's log, on a terminal (``log_to``)


def hide() -> None:
    """Draw no bars from this process (a worker's would interleave with its parent's)."""
    global _hidden
    _hidden = True


def interactive() -> bool:
    """Whether progress bars are drawn: only when stderr (where tqdm draws) is a terminal."""
    return not _hidden and sys.stderr.isatty()


def log_to(write: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Send progress lines to ``write`` (a run's log, bench/run/live.py) where a bar is drawn
    instead of them on the console; None stops. Returns what was set before."""
    global _log
    previous, _log = _log, write
    return previous


def note(line: str) -> None:
    """A line of progress: printed where no bar is drawn (a log); on a terminal, written to the
    run's log only (``log_to``), the bars showing it there."""
    if not interactive():
        tqdm.write(line)
    elif _log is not None:
        _log(line)


def bar(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``items``, with a bar on a terminal that disappears when done; nothing elsewhere."""
    return iter(tqdm(items, desc=description, total=total, leave=False, disable=not interactive(),
                     dynamic_ncols=True))


# How often a logged bar says how far it is: at every tenth of its items, and at its last.
LOGGED_PARTS = 10


def logged_bar(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``bar``, and a line (``note``) each time another tenth of the items is done, and at the
    last: "probe epochs 30/100: 41.2 s" (the seconds since the first item began). For the long
    loops whose steps are minutes at the paper's budget (the probes' epochs)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    started, said = time.perf_counter(), 0
    for done, item in enumerate(bar(items, description, total), 1):
        yield item
        if total:
            part = done * LOGGED_PARTS // total
            if part > said or done == total:
                said = part
                note(f"{description} {done}/{total}: {time.perf_counter() - started:.1f} s")


def counter(description: str, total: int) -> tqdm:
    """A bar advanced by hand (``update()``), for loops inside a library; use it as a context
    manager. Disabled (updates do nothing) where no bar is drawn."""
    return tqdm(total=total, desc=description, leave=False, disable=not interactive(),
                dynamic_ncols=True)


@contextlib.contextmanager
def step(description: str, say: Callable[[str], None] = tqdm.write) -> Iterator[None]:
    """Time the enclosed step and say "<description>: <seconds> s" when it ends."""
    started = time.perf_counter()
    yield
    say(f"{description}: {time.perf_counter() - started:.1f} s")
