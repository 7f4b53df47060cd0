"""The lock on one run id, held by the process that trains or evaluates the run."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bench.store import results
from bench.terminal import printable


class RunLock:
    """An exclusive lock on one run id (``locks/<run-id>.lock`` beside ``runs/``), held while a
    process works on the run (trains or evaluates it).

    flock locks die with their process, SIGKILL included: a lock left by a dead process is free
    for the next one. (flock may not be honoured across machines on some network filesystems.)"""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir).parent.parent / "locks" / f"{Path(run_dir).name}.lock"
        self.handle = None

    def acquire(self) -> bool:
        results.not_a_link(self.path.parent)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = results.open_unlinked(self.path, "r+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            self.handle = None
            return False
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()
        return True

    def holder(self) -> str:
        """What the lock file says of its holder (a pid), made safe to print: a lock file may come
        from someone else's results folder (no link followed, 64 bytes at most, escapes shown)."""
        text = results.read_run_file(self.path, 64)
        return printable(text.strip()) if text and text.strip() else "?"

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
