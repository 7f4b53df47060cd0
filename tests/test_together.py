"""Runs trained together in one process (`bench run --together`, bench/run/together.py): the same
numbers as one by one, every run resumed after SIGTERM and SIGKILL, a failing run failing alone,
and `bench speed --together`."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.evaluations import EVALUATIONS
from bench.run.lock import RunLock
from bench.evaluations.tsne import TSNE_FILE
from bench.store import results
from methods import METHODS, register
from methods.ccvae import CycleConsistentVAE
from tests.conftest import REPO

SMOKE = ["run", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu"]
COMPARED = (results.LOSSES_FILE, results.METRICS_FILE)

# The runs' training and probes only: the figures and the other evaluations take most of a smoke
# run's time and do not depend on how the runs were trained.
FAST = """
import sys
import bench.evaluations as evaluations
import bench.run.runner as runner
from bench.evaluations import EVALUATIONS
runner.draw_curves = lambda *args, **kwargs: None
evaluations.by_default = lambda: [EVALUATIONS["probes"]]  # what RunOptions.chosen_evaluations reads
from bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def fast_runs(monkeypatch):
    """The probes of every run and lord's code probes only."""
    import bench.evaluations
    import bench.run.runner as runner
    monkeypatch.setattr(runner, "draw_curves", lambda *args, **kwargs: None)
    monkeypatch.setattr(bench.evaluations, "by_default",
                        lambda: [EVALUATIONS["probes"], EVALUATIONS["code_leakage"]])


def run_dirs(results_dir):
    return {path.name: path for path in results.runs_dir(results_dir).iterdir()}


def assert_same_runs(expected_dir, got_dir):
    expected, got = run_dirs(expected_dir), run_dirs(got_dir)
    assert set(got) == set(expected)
    for run_id, folder in expected.items():
        assert results.is_complete(got[run_id]), run_id
        for name in COMPARED:
            assert (got[run_id] / name).read_bytes() == (folder / name).read_bytes(), (run_id, name)


def test_runs_trained_together_equal_runs_trained_one_by_one(tmp_path, fast_runs, capsys):
    """Two seeds of every method, each with two epochs: bit for bit on the CPU (two are enough to
    stack every method's probes and lord's code probes; a third cost CI a third more)."""
    argv = [*SMOKE, "--methods", "all", "--seeds", "0,1", "--epochs", "2"]
    assert main([*argv, "--results", str(tmp_path / "alone")]) == 0
    assert main([*argv, "--together", "--results", str(tmp_path / "together")]) == 0
    out = capsys.readouterr().out
    assert f"training {2 * len(METHODS)} runs together on cpu" in out
    # the probes of all runs fitted side by side (one stack: every code is 16 wide), and lord's
    assert f"probes of {2 * len(METHODS)} runs together" in out
    assert "code_leakage of 2 runs together" in out
    assert_same_runs(tmp_path / "alone", tmp_path / "together")
    for run_id, folder in run_dirs(tmp_path / "together").items():
        assert json.loads((folder / results.ENV_FILE).read_text())["together"] is True
        log = (folder / "run.log").read_text()
        assert f"run {folder.name}" in log and log.count(" epoch ") == log.count(f"{folder.name} epoch ")
        assert f"{run_id} probes: " in log and "computed with the runs trained together" in log
        leakage = folder / "code_leakage.csv"
        assert leakage.is_file() == run_id.startswith("lord")
        if leakage.is_file():
            alone = tmp_path / "alone" / folder.relative_to(tmp_path / "together") / "code_leakage.csv"
            assert leakage.read_bytes() == alone.read_bytes()
    for folder in run_dirs(tmp_path / "alone").values():
        assert json.loads((folder / results.ENV_FILE).read_text())["together"] is False


@pytest.fixture
def nan_method():
    """A registered method (the cycle-consistent VAE) whose losses turn NaN at its third step."""
    class NaNAtThirdStep(CycleConsistentVAE):
        name = "nan-at-third-step"

        def train_step(self, data):
            losses = super().train_step(data)
            self.steps = getattr(self, "steps", 0) + 1
            return {k: v * float("nan") for k, v in losses.items()} if self.steps >= 3 else losses
    register(NaNAtThirdStep)
    try:
        yield NaNAtThirdStep.name
    finally:
        METHODS.pop(NaNAtThirdStep.name, None)


def test_a_run_that_fails_fails_alone(tmp_path, fast_runs, nan_method, capsys):
    argv = [*SMOKE, "--seeds", "0", "--epochs", "2"]
    assert main([*argv, "--methods", f"ccvae,{nan_method},szabo", "--together",
                 "--results", str(tmp_path / "together")]) == 1
    err = capsys.readouterr().err
    assert "1 of 3 runs failed" in err and f"run {nan_method}-mnist" in err
    assert main([*argv, "--methods", "ccvae,szabo", "--results", str(tmp_path / "alone")]) == 0
    runs = run_dirs(tmp_path / "together")
    (failed,) = [folder for name, folder in runs.items() if name.startswith(nan_method)]
    status = json.loads((failed / results.STATUS_FILE).read_text())
    assert status["state"] == results.FAILED and "nan" in status["reason"].lower()
    for name, folder in run_dirs(tmp_path / "alone").items():
        for file in COMPARED:
            assert (runs[name] / file).read_bytes() == (folder / file).read_bytes(), (name, file)


def start(argv):
    return subprocess.Popen([sys.executable, "-c", FAST, *argv], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, seconds=180):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"exited {process.returncode}: {process.stderr.read()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_and_sigkill_during_a_together_run_resume_every_run(tmp_path, fast_runs):
    argv = [*SMOKE, "--methods", "ccvae,mathieu,lord", "--seeds", "0", "--epochs", "3",
            "--set", "iterations_per_epoch=25"]
    together = tmp_path / "together"
    command = [*argv, "--together", "--results", str(together)]

    def folders():
        return list(run_dirs(together).values()) if results.runs_dir(together).is_dir() else []

    def every_run_checkpointed():
        found = folders()
        return len(found) == 3 and all((f / results.CHECKPOINT_FILE).is_file() for f in found)

    # SIGTERM once every run has checkpointed its first epoch: each checkpoints where it stands.
    first = start(command)
    wait_for(every_run_checkpointed, first)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 128 + signal.SIGTERM
    assert all("interrupted (SIGTERM)" in (f / "run.log").read_text() for f in folders())
    rows = {f.name: len((f / results.LOSSES_FILE).read_text().splitlines()) for f in folders()}

    # SIGKILL once the rerun has logged another epoch: nothing is checkpointed on the way out.
    second = start(command)
    wait_for(lambda: any(len((f / results.LOSSES_FILE).read_text().splitlines()) > rows[f.name]
                         for f in folders()), second)
    second.kill()
    assert second.wait(timeout=60) == -signal.SIGKILL
    assert not all(results.is_complete(f) for f in folders())

    third = start(command)
    assert third.wait(timeout=300) == 0, third.stderr.read()
    assert main([*argv, "--results", str(tmp_path / "alone")]) == 0
    assert_same_runs(tmp_path / "alone", together)
    for folder in folders():
        lock = RunLock(folder)
        assert lock.acquire(), folder.name
        lock.release()
        assert not list(folder.glob(f".*{results.TEMPORARY_SUFFIX}"))


def test_tsne_in_worker_processes_is_the_tsne_of_the_runs_own_process(tmp_path, monkeypatch,
                                                                        capsys):
    """--tsne-workers: each run's t-SNE computed in a worker process while the others train is,
    with as many threads, the one computed in the run's own process. The first worker is killed
    (SIGKILL) mid-embedding, once it has read its points: that embedding is computed in the
    process instead, with one line, and equals the rest. The workers end with the command and
    leave no temporary folder."""
    import threading
    import bench.evaluations
    from bench.evaluations import tsne_pool
    from tests.test_lifetime import alive
    monkeypatch.setattr(bench.evaluations, "by_default", lambda: [EVALUATIONS[name] for name in
                                                                  ("probes", "swap_grid", "tsne")])
    monkeypatch.setattr(tsne_pool, "threads_per_worker", lambda workers: torch.get_num_threads())
    workers, folders, killed, popen, start = [], [], [], subprocess.Popen, tsne_pool.TsnePool.__init__

    def kill_once_embedding(process, points_file):
        while Path(points_file).exists() and process.poll() is None:
            time.sleep(0.001)  # the worker deletes its points file once it has read them
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed.append(process.pid)

    def recorded_popen(command, *args, **kwargs):  # every process the pool starts
        process = popen(command, *args, **kwargs)
        if "bench.evaluations.tsne_fit" in command:
            workers.append(process.pid)
            if len(workers) == 1:
                threading.Thread(target=kill_once_embedding, args=(process, command[3])).start()
        return process

    def recorded_start(pool, *args, **kwargs):
        start(pool, *args, **kwargs)
        folders.append(Path(pool.folder.name))

    monkeypatch.setattr(tsne_pool.subprocess, "Popen", recorded_popen)
    monkeypatch.setattr(tsne_pool.TsnePool, "__init__", recorded_start)
    # lord trains for 2 + 2 epochs, ccvae for 2: ccvae's t-SNE starts while lord trains
    argv = [*SMOKE, "--methods", "ccvae,lord", "--seeds", "0", "--epochs", "2"]
    assert main([*argv, "--results", str(tmp_path / "alone")]) == 0
    capsys.readouterr()
    assert main([*argv, "--together", "--tsne-workers", "2",
                 "--results", str(tmp_path / "together")]) == 0
    out = capsys.readouterr().out
    assert "t-SNE in 2 worker processes" in out
    assert len(workers) == 3 and killed == workers[:1]  # ccvae 2 codes, lord 1; the first killed
    assert out.count("the worker failed (RuntimeError: t-SNE worker exited with -9") == 1
    together = run_dirs(tmp_path / "together")
    for run_id, folder in run_dirs(tmp_path / "alone").items():
        for name in (*COMPARED, TSNE_FILE, results.FIGURES_FILE):
            assert (together[run_id] / name).read_bytes() == (folder / name).read_bytes(), (run_id, name)
        assert "from a worker process" in (together[run_id] / "run.log").read_text()
    assert not any(map(alive, workers))
    assert len(folders) == 1 and not folders[0].exists()


def tsne_workers_of(pid: int) -> set[int]:
    """The t-SNE worker processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
        if parent == pid and b"bench.evaluations.tsne_fit" in command:
            found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_sigterm_during_the_tsne_workers_ends_them_and_leaves_no_folder(tmp_path):
    """SIGTERM while a run's t-SNE is under way in a worker (lord still training): the command
    checkpoints and exits 143, every worker it started is gone, and its temporary folder too."""
    from tests.test_lifetime import alive
    script = FAST.replace('[EVALUATIONS["probes"]]', '[EVALUATIONS["probes"], EVALUATIONS["tsne"]]')
    assert script != FAST
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    command = subprocess.Popen(
        [sys.executable, "-c", script, *SMOKE, "--methods", "ccvae,lord", "--seeds", "0",
         "--epochs", "2", "--together", "--tsne-workers", "1", "--results", str(tmp_path / "r")],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(temporary)})
    seen: set[int] = set()

    def a_worker_runs():
        seen.update(tsne_workers_of(command.pid))
        return bool(seen)

    wait_for(a_worker_runs, command)
    command.send_signal(signal.SIGTERM)
    assert command.wait(timeout=120) == 128 + signal.SIGTERM, command.stderr.read()
    deadline = time.monotonic() + 10
    while any(map(alive, seen)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen and not any(map(alive, seen))
    assert not list(temporary.glob("bench-tsne-*"))


def test_a_new_pool_removes_the_folders_of_pools_whose_process_died(tmp_path, monkeypatch):
    """A command killed with SIGKILL leaves its pool's temporary folder; the next pool deletes
    it, and keeps a live process's folder, a link, a file and a name it did not make."""
    from bench.evaluations import tsne_pool
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tsne_pool.tempfile, "tempdir", None)  # read TMPDIR again
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    dead = tmp_path / f"bench-tsne-{ended.pid}-abc"
    (dead / "inner").mkdir(parents=True)
    (dead / "inner" / "points.npy").write_bytes(b"x")
    live = tmp_path / f"bench-tsne-{os.getppid()}-abc"
    live.mkdir()
    other = tmp_path / "bench-tsne-notapid-abc"
    other.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / f"bench-tsne-{ended.pid}-link"
    link.symlink_to(target)
    plain = tmp_path / f"bench-tsne-{ended.pid}-file"
    plain.write_text("kept")
    pool = tsne_pool.TsnePool(1, 1)
    try:
        assert Path(pool.folder.name).parent == tmp_path
        assert Path(pool.folder.name).name.startswith(f"bench-tsne-{os.getpid()}-")
        assert not dead.exists()
        assert live.is_dir() and other.is_dir() and link.is_symlink() and target.is_dir()
        assert plain.read_text() == "kept"
        assert tsne_pool.remove_stale_folders(tmp_path) == []  # its own folder is live
    finally:
        pool.close()
    assert not Path(pool.folder.name).exists()


@pytest.mark.parametrize("argv, message", [
    (["--together", "--jobs", "2"], "--together trains the runs in this process"),
    (["--together", "--executor", "slurm"], "--together trains the runs in this process"),
    (["--tsne-workers", "-1"], "--tsne-workers must be 0 or more, got -1"),
    (["--tsne-workers", "2", "--no-together"], "--tsne-workers is for runs trained together"),
    (["--tsne-workers", "2", "--jobs", "2"], "--tsne-workers is for runs trained together"),
])
def test_together_refuses_other_executors_in_one_line(argv, message, tmp_path, capsys):
    code = main([*SMOKE, "--methods", "ccvae", "--seeds", "0,1", *argv,
                 "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_speed_together_reports_both_throughputs(capsys):
    assert main(["speed", "--methods", "ccvae,lord", "--together", "2", "--iterations", "2",
                 "--warmup", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split()[:1] and line.split()[0] in METHODS}
    assert set(rows) == {"ccvae", "lord"}
    for row in rows.values():
        alone, together, speed_up = float(row[1]), float(row[2]), float(row[3].rstrip("x"))
        assert alone > 0 and together > 0
        # throughputs are printed to 0.1 iteration/s, the speed-up to 0.01: the ratio of the
        # printed throughputs bounds it (a slow machine prints small throughputs)
        low, high = (together - 0.05) / (alone + 0.05), (together + 0.05) / max(alone - 0.05, 1e-9)
        assert low - 0.005 <= speed_up <= high + 0.005, row
    probes = re.search(r"latent probes of 4 runs \(3 each, 2 iterations, predictions included\): "
                       r"side by side ([\d.]+) ms/iter, run by run ([\d.]+) ms/iter \(([\d.]+)x\)", out)
    assert probes, out
    stacked, run_by_run, ratio = map(float, probes.groups())
    assert stacked > 0 and ratio == pytest.approx(run_by_run / stacked, rel=0.02)
    assert main(["speed", "--methods", "ccvae", "--together", "1", "--device", "cpu"]) == 2


@pytest.fixture
def device_fault_method():
    """A registered method (the cycle-consistent VAE) that meets a device-wide CUDA fault once, at
    its fifth step (in its second epoch of three), as an asynchronous fault surfaces: a
    RuntimeError with CUDA's message."""
    class FaultOnce(CycleConsistentVAE):
        name = "fault-once"
        armed = True

        def train_step(self, data):
            self.steps = getattr(self, "steps", 0) + 1
            if FaultOnce.armed and self.steps == 5:
                FaultOnce.armed = False
                raise RuntimeError("CUDA error: an illegal memory access was encountered\n"
                                   "CUDA kernel errors might be asynchronously reported")
            return super().train_step(data)
    register(FaultOnce)
    try:
        yield FaultOnce.name
    finally:
        METHODS.pop(FaultOnce.name, None)


def test_a_device_wide_fault_stops_the_group_and_fails_no_run(tmp_path, fast_runs,
                                                             device_fault_method, capsys):
    """Every run stops (those still training checkpoint where they stand), none is marked failed,
    one line says it was device-wide, and the same command finishes them all: the runs the
    fault did not touch end exactly as runs never stopped."""
    argv = [*SMOKE, "--seeds", "0", "--epochs", "3", "--set", "iterations_per_epoch=3"]
    command = [*argv, "--methods", f"ccvae,{device_fault_method},szabo", "--together",
               "--results", str(tmp_path / "together")]
    assert main(command) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "device-wide" in line]
    assert len(lines) == 1 and "CUDA error: an illegal memory access was encountered" in lines[0]
    assert "stopped the 3 runs trained together" in lines[0] and "failed" not in err.replace(
        "no run is marked failed", "")
    runs = run_dirs(tmp_path / "together")
    for name, folder in runs.items():
        assert not (folder / results.STATUS_FILE).exists(), name  # neither failed nor complete
        assert (folder / results.CHECKPOINT_FILE).is_file(), name
        log = (folder / "run.log").read_text()
        if name.startswith(device_fault_method):
            assert "by a device-wide fault" in log and "not this run's failure" in log
        else:
            assert "stopped with the runs trained together by a device-wide fault" in log
    assert main(command) == 0
    assert main([*argv, "--methods", "ccvae,szabo", "--results", str(tmp_path / "alone")]) == 0
    for name, folder in run_dirs(tmp_path / "alone").items():
        for file in COMPARED:
            assert (runs[name] / file).read_bytes() == (folder / file).read_bytes(), (name, file)
    assert all(results.is_complete(folder) for folder in runs.values())


def test_only_cuda_faults_that_poison_the_device_are_device_wide():
    from bench.errors import is_device_fault
    assert is_device_fault(RuntimeError("CUDA error: device-side assert triggered"))
    assert is_device_fault(RuntimeError("CUDA error: unspecified launch failure\nmore"))
    assert not is_device_fault(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_device_fault(RuntimeError("an illegal memory access in my own code"))
    assert not is_device_fault(ValueError("shapes do not match"))


def test_on_cuda_at_most_32_runs_share_a_group():
    from bench.run.together import CUDA_GROUP_SIZE, in_groups
    configs = list(range(70))
    assert CUDA_GROUP_SIZE == 32
    assert [len(g) for g in in_groups(configs, torch.device("cuda"))] == [32, 32, 6]
    assert sum(in_groups(configs, torch.device("cuda")), []) == configs
    assert in_groups(configs, torch.device("cpu"), file_limit=4096) == [configs]


def test_the_open_file_limit_bounds_a_group():
    from bench.run.together import FILES_PER_RUN, RESERVED_FILES, in_groups
    configs = list(range(70))
    room_for_20 = RESERVED_FILES + 20 * FILES_PER_RUN
    assert [len(g) for g in in_groups(configs, torch.device("cpu"), room_for_20)] == [20, 20, 20, 10]
    assert [len(g) for g in in_groups(configs, torch.device("cuda"), room_for_20)] == [20, 20, 20, 10]
    assert [len(g) for g in in_groups(configs[:3], torch.device("cpu"), 1)] == [1, 1, 1]


def test_runs_beyond_the_open_file_limit_train_in_groups(tmp_path, fast_runs, capsys, monkeypatch):
    import bench.run.together as together
    monkeypatch.setattr(together, "open_file_limit",
                        lambda: together.RESERVED_FILES + together.FILES_PER_RUN)
    assert main([*SMOKE, "--methods", "ccvae", "--seeds", "0,1", "--together",
                 "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 runs are trained together in 2 groups of at most 1" in out and "ulimit -n" in out
    assert all(results.is_complete(folder) for folder in run_dirs(tmp_path).values())
    assert len(run_dirs(tmp_path)) == 2


def test_too_many_open_files_is_one_line(monkeypatch, capsys, tmp_path):
    import errno
    import bench.cli.status as status

    def exhausted(args):
        raise OSError(errno.EMFILE, "Too many open files")
    monkeypatch.setattr(status, "command_status", exhausted)
    assert main(["status", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Too many open files" in err and "ulimit -n" in err


def test_each_run_trained_together_is_charged_its_own_memory(monkeypatch):
    """The allocator's figures, faked: run A holds 100 bytes and peaks 50 above them within a
    step; B allocates 30 and frees them; the group's peak is the device's."""
    from bench.run import together
    state = {"allocated": 1000, "peak": 1000}
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: state["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: state["peak"])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats",
                        lambda device=None: state.update(peak=state["allocated"]))

    def allocate(change, transient=0):
        def step():
            state["peak"] = max(state["peak"], state["allocated"] + max(change, 0) + transient)
            state["allocated"] += change
        return step
    memory = together.GroupMemory("cuda")
    a, b = together.Member("a", memory=memory), together.Member("b", memory=memory)
    memory.measure(a, allocate(100))
    memory.measure(b, allocate(30))
    memory.measure(a, allocate(0, transient=50))
    memory.measure(b, allocate(-30))
    memory.observe(allocate(0, transient=500))  # the probes of both
    assert (a.held, a.peak, b.held, b.peak) == (100, 150, 0, 30)
    assert memory.peak == 1000 + 100 + 500  # b has freed its 30 by then
    assert memory.record(a) == {"peak_memory_mb": round(150 / 2**20, 1),
                                "group_peak_memory_mb": round(1600 / 2**20, 1)}


def test_runs_on_cuda_train_one_at_a_time_unless_asked_until_the_gpu_tests_have_passed():
    """--together's path has never run on a GPU (issue 45): on CUDA it is not the default."""
    import torch

    from bench.run.options import TOGETHER_ON_CUDA, RunOptions
    assert TOGETHER_ON_CUDA is False
    cuda = torch.device("cuda")
    assert not RunOptions(Path("r"), device=cuda).trains_together(3)
    assert RunOptions(Path("r"), device=cuda, together=True).trains_together(3)
    assert not RunOptions(Path("r"), device=torch.device("cpu")).trains_together(3)
