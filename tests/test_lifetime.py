"""Children stop when their parent dies, asked for by the child itself (no preexec_fn)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.lifetime import PARENT_ENV, child_environment, stop_with_parent_if_asked
from tests.conftest import REPO

CHILD = ("import os, time; from bench.lifetime import stop_with_parent_if_asked; "
         "stop_with_parent_if_asked(); print(os.getpid(), os.environ.get('BENCH_STOP_WITH_PARENT'), "
         "flush=True); time.sleep(120)")
PARENT = ("import subprocess, sys, time; from bench.lifetime import child_environment; import os; "
          f"child = subprocess.Popen([sys.executable, '-c', {CHILD!r}], env=child_environment(os.environ)); "
          "time.sleep(120)")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has ended
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_child_asked_by_its_environment_ends_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    try:
        pid, inherited = parent.stdout.readline().split()
        assert inherited == "None"  # the request is not passed on to the child's own children
        assert alive(int(pid))
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while alive(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(int(pid))
    finally:
        parent.kill()


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_child_whose_parent_is_already_gone_ends_at_once():
    """The parent may die between fork and the child's request: the child sees another parent
    than the one named and ends."""
    code = "from bench.lifetime import stop_with_parent_if_asked; stop_with_parent_if_asked(); print('ran')"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=60, env={**os.environ, PARENT_ENV: "1"})  # pid 1 is not our parent
    assert out.returncode == 128 + signal.SIGTERM and "ran" not in out.stdout


def test_without_the_request_nothing_happens():
    environ = {"PATH": "/bin"}
    stop_with_parent_if_asked(environ)
    assert environ == {"PATH": "/bin"}
    assert child_environment(environ) == {"PATH": "/bin", PARENT_ENV: str(os.getpid())}
