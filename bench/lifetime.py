"""Child processes that do not outlive their parent (no imports beyond the standard library, so
that a small worker can use it without loading torch).

A parent never does this for its child with ``preexec_fn``: that runs Python between fork and
exec, which can deadlock a parent with threads (torch's, tqdm's). The parent names itself in the
child's environment (``child_environment``) and the child asks for the signal as it starts
(``bench/__main__.py``: ``stop_with_parent_if_asked``; the t-SNE worker calls ``stop_with_parent``).
"""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, MutableMapping

PARENT_ENV = "BENCH_STOP_WITH_PARENT"  # the pid of the parent whose death stops this process


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for a child that is to stop when this process dies."""
    return {**environ, PARENT_ENV: str(os.getpid())}


def stop_with_parent(parent: int | None = None) -> None:
    """Called first thing in a child, on Linux: SIGTERM when the parent dies, SIGKILL included, so
    a killed parent leaves no orphan working on; a training child checkpoints and ends, and the
    rerun command resumes it. ``parent``: its pid, when known (else an orphan is recognised by its
    new parent, init). Elsewhere nothing (an orphan finishes its work)."""
    if sys.platform != "linux":
        return
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    orphaned = os.getppid() != parent if parent is not None else os.getppid() == 1
    if orphaned:  # the parent died before prctl: no signal will come
        os._exit(128 + signal.SIGTERM)


def stop_with_parent_if_asked(environ: MutableMapping[str, str] = os.environ) -> None:
    """``stop_with_parent`` when the parent asked for it (``child_environment``). The request is
    this process's own: removed, so that its children do not inherit it."""
    parent = environ.pop(PARENT_ENV, None)
    if parent is not None and parent.isdigit():
        stop_with_parent(int(parent))


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (another user's counts; a zombie, dead but
    not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:  # Linux: a zombie writes nothing more
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


PR_SET_PDEATHSIG = 1  # linux/prctl.h
