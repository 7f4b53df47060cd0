"""Pure metric functions: arrays or tensors in, numbers out. Nothing here reads or writes files
or imports the rest of bench/; a long loop reports its progress through the ``bar`` it is given."""
from __future__ import annotations

from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
Bar = Callable[..., Iterable]  # bar(items, description, total=None) -> the same items


def no_bar(items: Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    """Report nothing: the default of every metric that loops."""
    return items
