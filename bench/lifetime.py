"""Child processes that do not outlive their parent (no imports beyond the standard library, so
that a small worker can use it without loading torch)."""
from __future__ import annotations

import os
import signal
import sys


def stop_with_parent() -> None:
    """Given as ``preexec_fn`` (it runs in the child before exec) or called first thing in the
    child, on Linux: SIGTERM when the parent dies, SIGKILL included, so a killed parent leaves no
    orphan working on; a training child checkpoints and ends, and the rerun command resumes it.
    Elsewhere nothing (an orphan finishes its work)."""
    if sys.platform != "linux":
        return
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl: no signal will come
        os._exit(128 + signal.SIGTERM)


PR_SET_PDEATHSIG = 1  # linux/prctl.h
