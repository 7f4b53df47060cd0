"""Folders and files named by the user (--results, --data-dir, $BENCH_CACHE_DIR, --baseline,
--slurm-config), checked before anything is written: an unusable one is a UnusablePath, reported
in one line with exit code 2."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.errors import UnusablePath

# Less free space than this where a command writes is refused up front (a run's folder with its
# checkpoint and figures takes a few MB; a disk this full would fail halfway).
MIN_FREE_BYTES = 64 * 2**20


def nearest_existing(path: Path) -> Path:
    """``path`` itself when it exists, else its closest existing ancestor."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _not_under_a_file(path: Path, what: str) -> Path:
    """The nearest existing folder at or above ``path``; a UnusablePath when a file is in the way."""
    existing = nearest_existing(path)
    if existing == Path(os.path.abspath(path)) and not existing.is_dir():
        raise UnusablePath(f"{what} {path} is a file, not a folder")
    if not existing.is_dir():
        raise UnusablePath(f"{what} {path} is under {existing}, which is a file, not a folder")
    return existing


def output_folder(path: Path, what: str) -> Path:
    """A folder this command may create and write into: not a file, not under one, writable, and
    on a disk with room."""
    existing = _not_under_a_file(path, what)
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == Path(os.path.abspath(path)) else f" (in {existing})"
        raise UnusablePath(f"{what} {path}: cannot write there{where}: permission denied or a "
                         "read-only file system")
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise UnusablePath(f"{what} {path}: only {free / 2**20:.0f} MB free on its disk "
                         f"(at least {MIN_FREE_BYTES // 2**20} MB needed)")
    return Path(path)


def input_folder(path: Path, what: str) -> Path:
    """A folder that must exist and be readable."""
    path = Path(path)
    if not path.exists():
        _not_under_a_file(path, what)
        raise UnusablePath(f"{what} {path} does not exist")
    if not path.is_dir():
        raise UnusablePath(f"{what} {path} is a file, not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UnusablePath(f"{what} {path}: permission denied")
    return path


def optional_folder(path: Path, what: str) -> Path:
    """A folder that may be absent (its reader then says what is missing), but is not a file
    and not under one."""
    _not_under_a_file(path, what)
    return Path(path)


def input_file(path: Path, what: str) -> Path:
    """A file that must exist and be readable."""
    path = Path(path)
    if path.is_dir():
        raise UnusablePath(f"{what} {path} is a folder, not a file")
    if not path.exists():
        _not_under_a_file(path.parent, what)
        raise UnusablePath(f"{what} {path} does not exist")
    if not os.access(path, os.R_OK):
        raise UnusablePath(f"{what} {path}: permission denied")
    return path


def output_file(path: Path, what: str) -> Path:
    """A file this command may write (replacing it atomically): not a folder, in a usable folder."""
    path = Path(path)
    if path.is_dir():
        raise UnusablePath(f"{what} {path} is a folder, not a file")
    existing = nearest_existing(path.parent)
    if not existing.is_dir():
        raise UnusablePath(f"{what} {path} is under {existing}, which is a file, not a folder")
    output_folder(path.parent, f"{what} {path}: its folder")
    return path
