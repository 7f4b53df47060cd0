"""The shape of a run's JSON records: every field of its type and within its bounds.

A results folder may come from someone else, and a record's values reach the report's arithmetic,
its figures and the terminal. Each record (status.json, env.json, config.json, evaluation.json,
figures.json, a SLURM job's record) is checked against its schema when it is read
(bench/store/records.py): a field of another type, or out of its bounds, is an UnusableFile naming
the file and the field in one line. A schema is a function ``check(value, field)`` that returns
the value or raises Mismatch; the functions below make them.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from bench.errors import UnusableFile

Check = Callable[[Any, str], Any]


MISSING = object()  # the value of a required field that is absent


class Mismatch(Exception):
    """A value that is not what its schema says: ``field`` (dotted, from the record's top),
    the value and what was expected."""

    def __init__(self, field: str, value: Any, expected: str):
        super().__init__(field)
        self.field, self.value, self.expected = field, value, expected


def kind_of(value: Any) -> str:
    """A JSON value's kind in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def shown(value: Any, most: int = 40) -> str:
    """``value`` as JSON, cut to ``most`` characters (the error shows it on one line)."""
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = "?"
    return text if len(text) <= most else text[:most - 3] + "..."


def checked(value: Any, schema: Check, path: Path | str) -> Any:
    """``value`` (the JSON read from ``path``) checked against ``schema``; an UnusableFile
    naming ``path`` and the field otherwise."""
    try:
        return schema(value, "")
    except Mismatch as mismatch:
        if mismatch.value is MISSING:
            raise UnusableFile(f"{path}: no {mismatch.field}") from None
        if not mismatch.field:
            raise UnusableFile(f"{path}: {shown(mismatch.value)} ({kind_of(mismatch.value)}) is "
                               f"not {mismatch.expected}") from None
        raise UnusableFile(f"{path}: {mismatch.field} is {shown(mismatch.value)} "
                           f"({kind_of(mismatch.value)}), not {mismatch.expected}") from None
    except RecursionError:
        raise UnusableFile(f"{path}: nested too deeply") from None


def _child(field: str, key: str) -> str:
    key = key if len(key) <= 40 else key[:37] + "..."
    return f"{field}.{key}" if field else key


def anything(value: Any, field: str) -> Any:
    """Any JSON value (free text the report shows as it is, escaped where it goes)."""
    return value


def text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise Mismatch(field, value, "text")
    return value


def words(most: int) -> Check:
    """Text of at most ``most`` characters (a name that reaches a figure's title or legend)."""
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str) or len(value) > most:
            raise Mismatch(field, value, f"text of at most {most} characters")
        return value
    return check


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise Mismatch(field, value, "true or false")
    return value


def _bounds(low: float, high: float) -> str:
    def written(bound: float) -> str:
        return str(bound) if isinstance(bound, int) else f"{bound:g}"
    return f"from {written(low)} to {written(high)}"


def integer(low: int, high: int) -> Check:
    """An integer (not true or false) in [low, high]."""
    def check(value: Any, field: str) -> int:
        if (isinstance(value, bool) or not isinstance(value, int)
                or not low <= value <= high):
            raise Mismatch(field, value, f"an integer {_bounds(low, high)}")
        return value
    return check


def number(low: float, high: float) -> Check:
    """A finite number (an integer or not; not true or false) in [low, high]."""
    def check(value: Any, field: str) -> float:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not low <= value <= high):
            raise Mismatch(field, value, f"a number {_bounds(low, high)}")
        return value
    return check


def optional(schema: Check, expected: str = "") -> Check:
    """``schema``'s value, or null."""
    def check(value: Any, field: str) -> Any:
        if value is None:
            return None
        try:
            return schema(value, field)
        except Mismatch as mismatch:
            if mismatch.field != field:
                raise
            raise Mismatch(field, value, f"{mismatch.expected} or null") from None
    return check


def list_of(schema: Check, most: int) -> Check:
    """A list of at most ``most`` values, each ``schema``'s."""
    def check(value: Any, field: str) -> list:
        if not isinstance(value, list) or len(value) > most:
            raise Mismatch(field, value, f"a list of at most {most} values")
        return [schema(item, f"{field}[{index}]") for index, item in enumerate(value)]
    return check


def mapping(schema: Check, most: int = 1000) -> Check:
    """A JSON object of at most ``most`` entries, each value ``schema``'s."""
    def check(value: Any, field: str) -> dict:
        if not isinstance(value, dict) or len(value) > most:
            raise Mismatch(field, value, f"a JSON object of at most {most} entries")
        return {key: schema(item, _child(field, key)) for key, item in value.items()}
    return check


def record(fields: dict[str, Check], required: tuple[str, ...] = (),
           others: Check | None = anything) -> Check:
    """A JSON object whose ``fields`` are each of their schema (absent allowed, unless
    ``required``); any other entry ``others``' (None: no other entry allowed)."""
    def check(value: Any, field: str) -> dict:
        if not isinstance(value, dict):
            raise Mismatch(field, value, "a JSON object")
        for name in required:
            if name not in value:
                raise Mismatch(_child(field, name), MISSING, "present")
        out = {}
        for key, item in value.items():
            schema = fields.get(key, others)
            if schema is None:
                raise Mismatch(_child(field, key), item, "a field this version knows")
            out[key] = schema(item, _child(field, key))
        return out
    return check
