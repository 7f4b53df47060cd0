"""scripts/gpu_evidence.sh across two leases, dry-run on the CPU (DEVICE=cpu PRESET=smoke).

The first lease is stopped by its protocol time limit while its run trains: the run checkpoints
and the pack it leaves in OUT holds that checkpoint. The second lease, on a fresh WORK folder,
unpacks that pack and finishes the grid, whose metrics.csv and losses.csv must be byte for byte
those of the same `bench run` uninterrupted. And a missing package stops the script at once, in
one line. One run (szabo, z/s 16/16, four epochs of 10 iterations) keeps this near a minute and a
half on a 2-core CPU. In the first lease, training waits after its 15th iteration until the time
limit's signal comes (tests/hold/sitecustomize.py), so that the signal lands mid-training
however fast or slow the machine is that day."""
import io
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

from tests.conftest import REPO
from tests.helpers import held_after

SCRIPT = REPO / "scripts" / "gpu_evidence.sh"
EPOCHS, ITERATIONS = 4, 10
GRID = {"METHODS": "szabo", "SIZES": "16/16", "SEEDS": "0",
        "RUN_ARGS": f"--epochs {EPOCHS} --set iterations_per_epoch={ITERATIONS}"}
BENCH_RUN = [sys.executable, "-m", "bench", "run", "--methods", "szabo", "--dataset", "mnist",
             "--preset", "smoke", "--z-dim", "16", "--s-dim", "16", "--seeds", "0", "--device",
             "cpu", "--together", "--epochs", str(EPOCHS), "--set", f"iterations_per_epoch={ITERATIONS}"]
STEADY = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
HOLD_AFTER = 15  # in epoch 2 of 4
HOLD = held_after(HOLD_AFTER)


def lease(tmp: Path, name: str, budget: int = 900, **extra) -> str:
    """One run of the script in tmp/name/{work,out}, reading its pack from PACK_IN; its
    summary.txt and protocol log (to explain a failure)."""
    env = {**os.environ, **STEADY, **GRID, "PYTHON": sys.executable, "DEVICE": "cpu",
           "PRESET": "smoke", "TESTS": "0", "SPEED": "0", "WORK": str(tmp / name / "work"),
           "PACK_MAX_MB": "20",  # not what the repository leaves (test_this_repository_fits_a_gpu_lease)
           "OUT": str(tmp / name / "out"), "PACK_IN": str(tmp / name / "nothing"), **extra}
    done = subprocess.run(["bash", str(SCRIPT), str(budget)], cwd=REPO, env=env, check=False,
                          capture_output=True, text=True, timeout=600)
    summary = (tmp / name / "out" / "summary.txt").read_text()
    assert done.returncode == 0, done.stderr + summary
    logs = sorted((tmp / name / "work" / "logs").glob("lease*/protocol.txt"))
    return summary + "".join(f"--- {p}\n{p.read_text()}" for p in logs)


def unpack(out: Path) -> dict[str, bytes]:
    """Every file of the pack in ``out``, by its path."""
    data = b"".join(p.read_bytes() for p in sorted(out.glob("results.tar.xz.part*")))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:xz") as pack:
        return {m.name: pack.extractfile(m).read() for m in pack.getmembers() if m.isfile()}


def trained(packed: dict[str, bytes]) -> int | None:
    """Training iterations done in the pack's one checkpoint; None without one."""
    checkpoints = [name for name in packed if name.endswith("/checkpoint.pt")]
    if not checkpoints:
        return None
    assert len(checkpoints) == 1, checkpoints
    progress = torch.load(io.BytesIO(packed[checkpoints[0]]), weights_only=True)["progress"]
    return progress["logged_rows"] + progress["iteration"]


def reference(results: Path) -> tuple[dict[str, bytes], float]:
    """The grid's metrics.csv and losses.csv, trained and probed uninterrupted (the evaluations
    after the probes, which these files do not depend on, are not waited for), and the seconds
    from the command's start to its second epoch line: past the iteration the first lease
    waits at."""
    started, epochs = time.monotonic(), []
    with subprocess.Popen([*BENCH_RUN, "--results", str(results)], cwd=REPO,
                          env={**os.environ, **STEADY}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            if " epoch " in line:
                epochs.append(time.monotonic() - started)
            if re.search(r" probes: [0-9.]+ s", line):  # printed once metrics.csv is written
                process.kill()
                break
    assert len(epochs) == EPOCHS and (results / "runs").is_dir()
    files = {f"results/{p.relative_to(results)}": p.read_bytes()
             for p in results.rglob("*") if p.name in ("metrics.csv", "losses.csv")}
    return files, epochs[1]


def test_a_stopped_lease_is_finished_by_the_next_from_its_pack(tmp_path, mnist):
    # mnist: the dataset's cache is built, so that every process below starts as fast
    expected, second_epoch = reference(tmp_path / "reference")

    # The first lease, stopped while training: its run waits after iteration HOLD_AFTER until
    # the limit's SIGINT. A limit that came before training started (a machine far slower than
    # during the reference) is doubled.
    limit = 2 * second_epoch + 10
    for attempt in range(3):
        first = tmp_path / f"first{attempt}"
        summary = lease(tmp_path, first.name, PROTOCOL_SECONDS=str(round(limit)), **HOLD)
        packed = unpack(first / "out")
        done = trained(packed)
        if done is not None:
            break
        limit *= 2
    assert done is not None and 0 < done <= HOLD_AFTER, summary  # checkpointed mid-way
    assert "seeds 0: exit 130" in summary, summary  # stopped by SIGINT at its limit
    assert summary.index("CUDA tests: skipped") < summary.index("paper protocol, seeds 0")
    assert not any(name.endswith("/status.json") for name in packed)
    assert "0 of 1 runs complete, 1 remain (1 unfinished" in summary, summary
    assert "copy the results.tar.xz.part* of OUT into .evidence/" in summary
    assert any(name.startswith("logs/lease1/") for name in packed)
    assert all(p.name in ("summary.txt", "report.md") or p.name.startswith("results.tar.xz.part")
               for p in (first / "out").iterdir())

    summary = lease(tmp_path, "second", PACK_IN=str(first / "out"))
    assert "unpacked 1 part(s)" in summary and "lease 2: 0 run(s) complete, 1 unfinished" in summary
    assert summary.index("paper protocol, seeds 0") < summary.index("CUDA tests: skipped")
    assert "seeds 0: exit 0" in summary and "1 of 1 runs complete, 0 remain" in summary, summary
    finished = unpack(tmp_path / "second" / "out")
    assert {name for name in finished if name.startswith("logs/")} >= {
        "logs/lease1/protocol.txt", "logs/lease2/protocol.txt"}
    assert len(expected) == 2
    for name, content in expected.items():
        assert finished[name] == content, name


def test_a_missing_package_stops_the_script_in_one_line(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()  # an openTSNE that fails to import, found first
    (broken / "openTSNE.py").write_text("raise ImportError('this openTSNE is broken on purpose')\n")
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "WORK": str(tmp_path / "work"),
           "OUT": str(tmp_path / "out"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(broken), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, check=False,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "openTSNE" in done.stderr and ".whl/" in done.stderr
    assert (tmp_path / "out" / "summary.txt").read_text() == done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["summary.txt"]
    assert not any((tmp_path / "work").iterdir())
