"""Progress of the steps that take more than a few seconds (probes, t-SNE, factor metrics, swap
decoding, the report): a live bar on a terminal, and in every case one line with the step's time
when it ends, so that a log that is not a terminal gets one line per step and no bar."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


_hidden = False


def hide() -> None:
    """Draw no bars from this process (a worker's would interleave with its parent's)."""
    global _hidden
    _hidden = True


def interactive() -> bool:
    """Whether progress bars are drawn: only when stderr (where tqdm draws) is a terminal."""
    return not _hidden and sys.stderr.isatty()


def bar(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``items``, with a bar on a terminal that disappears when done; nothing elsewhere."""
    return iter(tqdm(items, desc=description, total=total, leave=False, disable=not interactive(),
                     dynamic_ncols=True))


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
