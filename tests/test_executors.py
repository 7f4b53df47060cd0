"""Executors: --jobs N child processes, and --executor slurm against a real SLURM.

The SLURM tests need a controller that answers (scripts/slurm_single_node.sh start); they are
skipped without one, except where BENCH_TEST_SLURM=1 (CI) makes a missing cluster a failure.
"""
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bench.launch.slurm import queued_jobs, read_record
from bench.store import results
from tests.conftest import REPO
from tests.helpers import held_after

SMOKE = ["run", "--dataset", "mnist", "--preset", "smoke"]
SLURM_REQUIRED = os.environ.get("BENCH_TEST_SLURM") == "1"


def bench(*argv, env=None, timeout=600):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=environment)


def run_files(results_dir, name):
    return {p.parent.name: p.read_bytes() for p in results.runs_dir(results_dir).glob(f"*/{name}")}


def local_reference(tmp_path, *argv, threads=1):
    """The same runs trained one by one in one process with ``threads`` threads (a SLURM job here
    has one CPU)."""
    reference = tmp_path / "local"
    out = bench(*SMOKE, *argv, "--results", str(reference), env={"OMP_NUM_THREADS": str(threads)})
    assert out.returncode == 0, out.stderr
    return reference


def test_jobs_run_concurrently_with_the_results_of_one_by_one(tmp_path):
    grid = ["--methods", "ccvae,szabo", "--seeds", "0"]
    out = bench(*SMOKE, *grid, "--jobs", "2", "--results", str(tmp_path / "jobs"))
    assert out.returncode == 0, out.stderr
    reference = local_reference(tmp_path, *grid, threads=max(1, os.cpu_count() // 2))
    concurrent = run_files(tmp_path / "jobs", results.METRICS_FILE)
    assert len(concurrent) == 2 and concurrent == run_files(reference, results.METRICS_FILE)
    assert run_files(tmp_path / "jobs", results.LOSSES_FILE) == run_files(reference, results.LOSSES_FILE)
    for run_id in concurrent:  # each run links the log of the process that trained it
        job = json.loads((results.runs_dir(tmp_path / "jobs") / run_id / "job.json").read_text())
        assert job["executor"] == "local" and job["exit_code"] == 0
        assert f"run {run_id}" in open(job["log"]).read()


def test_local_executor_refuses_slurm_flags(tmp_path):
    out = bench(*SMOKE, "--methods", "ccvae", "--no-wait", "--results", str(tmp_path))
    assert out.returncode == 2 and "need --executor slurm" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not tmp_path.joinpath("runs").exists()


def test_missing_sbatch_is_one_line_and_submits_nothing(tmp_path):
    bare_path = os.path.dirname(sys.executable)  # python, and no SLURM client
    out = bench(*SMOKE, "--methods", "ccvae", "--executor", "slurm", "--results", str(tmp_path),
                env={"PATH": bare_path})
    assert out.returncode == 2, out.stderr
    assert "sbatch, squeue, scontrol, scancel not found on PATH" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


# A submitit SLURM job without SLURM: the job process's environment as submitit's _submit sets it
# up, its signal handlers included (SIGUSR2: checkpoint and requeue, here only logged), then RunJob.
FAKE_JOB = """
import sys
import submitit
from submitit.core.utils import DelayedSubmission
from bench.launch.slurm import RunJob

results_dir, run_id, *argv = sys.argv[1:]
job = RunJob(results_dir)
environment = submitit.JobEnvironment()
environment._requeue = lambda countdown: print("requeued", flush=True)
delayed = DelayedSubmission(job, run_id, tuple(argv))
delayed.set_timeout(1, 3)
environment._handle_signals(environment.paths, delayed)
try:
    job(run_id, tuple(argv))
finally:
    print("bench.cli loaded:", "bench.cli" in sys.modules, flush=True)
"""


def fake_job(tmp_path, method, overrides=None):
    """Start FAKE_JOB for one smoke MNIST run with the argv a submission gives it, in a session of
    its own (SLURM signals every process of a job step); returns (process, run id, stdout path,
    stderr path)."""
    from bench.spec.config import resolve
    from bench.run.options import RunOptions
    config = resolve(method, "mnist", "smoke", 0, overrides)
    argv = RunOptions(tmp_path / "results", device_request="cpu").child_argv(config, overrides or {})
    folder = tmp_path / "logs"
    folder.mkdir()
    environment = {**os.environ, "SUBMITIT_EXECUTOR": "slurm", "SUBMITIT_FOLDER": str(folder),
                   "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": str(REPO)}  # as the job's setup lines (SlurmOptions) export it
    environment.pop("SLURM_ARRAY_JOB_ID", None)
    out, err = tmp_path / "job.out", tmp_path / "job.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", FAKE_JOB, str(tmp_path / "results"),
                                    config.run_id, *argv],
                                   cwd=tmp_path, env=environment, stdout=stdout, stderr=stderr,
                                   start_new_session=True)
    return process, config.run_id, out, err


def test_a_slurm_job_runs_bench_in_a_child_process_without_importing_the_cli(tmp_path):
    source = (REPO / "bench" / "launch" / "slurm.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):  # anywhere, functions included
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    assert not {name for name in imported if name == "bench.cli" or name.startswith("bench.cli.")}

    process, run_id, out, err = fake_job(tmp_path, "szabo")
    assert process.wait(timeout=300) == 0, err.read_text()
    assert "bench.cli loaded: False" in out.read_text()
    run_dir = results.runs_dir(tmp_path / "results") / run_id
    assert results.is_complete(run_dir)
    assert f"done {run_id}" in out.read_text() + err.read_text()  # the run's output: the job's
    assert f"done {run_id}" in (run_dir / "run.log").read_text()  # and its own log
    job = json.loads((run_dir / "job.json").read_text())
    assert job["executor"] == "slurm" and job["job_id"] == "4242" and job["exit_code"] == 0


@pytest.mark.parametrize("to_the_step", [False, True], ids=["sigterm-to-the-job", "sigusr2-to-the-step"])
def test_a_slurm_jobs_run_checkpoints_on_sigterm_and_on_requeue(tmp_path, to_the_step):
    """SIGTERM to the job process (scancel, pre-emption) is forwarded to the run; SIGUSR2 to every
    process (the time limit is near) requeues the job, whose run checkpoints before the job ends."""
    process, run_id, out, err = fake_job(tmp_path, "szabo", {"epochs": 400})
    losses = results.runs_dir(tmp_path / "results") / run_id / results.LOSSES_FILE
    try:
        wait_for(lambda: process.poll() is not None or (
            losses.is_file() and len(losses.read_text().splitlines()) > 1), 120, "a first epoch")
        assert process.poll() is None, out.read_text() + err.read_text()
        if to_the_step:
            os.killpg(process.pid, signal.SIGUSR2)
        else:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    log = out.read_text() + err.read_text()
    assert f"interrupted (SIGTERM): run {run_id} checkpointed" in log, log
    assert "bench.cli loaded: False" in log
    run_dir = results.runs_dir(tmp_path / "results") / run_id
    assert not results.is_complete(run_dir)
    if to_the_step:  # submitit's handler: checkpoint() pickled, job requeued, SystemExit(-1)
        assert code == 255 and "requeued" in log and "this job is timed-out" in log, log
        assert (tmp_path / "logs" / "4242_submitted.pkl").is_file()
    else:
        assert code == 1 and "bench run " + run_id + " exited with code 143" in log, log
        assert json.loads((run_dir / "job.json").read_text())["exit_code"] == 143


def cluster_answers() -> bool:
    if shutil.which("scontrol") is None:
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    return ping.returncode == 0 and "UP" in ping.stdout


@pytest.fixture(scope="module")
def cluster():
    if not cluster_answers():
        if SLURM_REQUIRED:
            pytest.fail("BENCH_TEST_SLURM=1 but no SLURM controller answers (scontrol ping)")
        pytest.skip("no SLURM controller answers: scripts/slurm_single_node.sh start")


def slurm_run(*argv, timeout=600):
    return bench(*SMOKE, "--executor", "slurm", "--cpus-per-job", "1", *argv, timeout=timeout)


def test_a_grid_runs_as_slurm_jobs_like_local_runs_and_is_not_resubmitted(cluster, tmp_path):
    grid = ["--methods", "ccvae,szabo", "--seeds", "0"]
    out = slurm_run(*grid, "--results", str(tmp_path / "slurm"))
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.count("submitted ") == 2
    metrics = run_files(tmp_path / "slurm", results.METRICS_FILE)
    reference = local_reference(tmp_path, *grid)
    assert len(metrics) == 2 and metrics == run_files(reference, results.METRICS_FILE)
    for run_id in metrics:  # the job's logs, linked from the run's folder
        job = json.loads((results.runs_dir(tmp_path / "slurm") / run_id / "job.json").read_text())
        assert job["executor"] == "slurm" and job["exit_code"] == 0
        assert f"run {run_id}" in open(job["stdout"]).read() + open(job["stderr"]).read()
        run_log = (results.runs_dir(tmp_path / "slurm") / run_id / "run.log").read_text()
        assert f"run {run_id}" in run_log and f"done {run_id}" in run_log

    again = slurm_run(*grid, "--results", str(tmp_path / "slurm"))
    assert again.returncode == 0, again.stderr
    assert "submitted " not in again.stdout and again.stdout.count("already complete") == 2

    status = bench("status", "--results", str(tmp_path / "slurm"))
    assert status.returncode == 0 and status.stdout.strip().splitlines()[-1] == "2 complete"


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


# Cancelled after its third epoch: twelve epochs leave it nine more (a smoke epoch takes about a
# second) to be still training when scancel lands; the test trains them twice (SLURM, then local).
CANCELLED_EPOCHS = 12


def test_a_cancelled_job_resumes_from_its_checkpoint_when_resubmitted(cluster, tmp_path):
    run = ["--methods", "szabo", "--epochs", str(CANCELLED_EPOCHS), "--results",
           str(tmp_path / "slurm")]
    out = slurm_run(*run, "--no-wait")
    assert out.returncode == 0, out.stderr
    record_files = list((tmp_path / "slurm" / "jobs" / "slurm").glob("*.json"))
    assert len(record_files) == 1
    run_id = record_files[0].stem
    job_id = read_record(tmp_path / "slurm", run_id)["job_id"]
    losses = results.runs_dir(tmp_path / "slurm") / run_id / results.LOSSES_FILE

    def epochs_logged():
        try:
            return len({line.split(",")[0] for line in losses.read_text().splitlines()[1:]})
        except OSError:
            return 0
    wait_for(lambda: epochs_logged() >= 3, 180, "three epochs")
    subprocess.run(["scancel", job_id], check=True)
    wait_for(lambda: job_id not in queued_jobs(), 60, f"job {job_id} to end")
    cancelled_at = epochs_logged()
    assert 3 <= cancelled_at < CANCELLED_EPOCHS
    assert not results.is_complete(results.runs_dir(tmp_path / "slurm") / run_id)
    status = bench("status", "--results", str(tmp_path / "slurm"))
    assert f"{run_id}" in status.stdout and "lost" in status.stdout

    again = slurm_run(*run)
    assert again.returncode == 0, again.stderr
    new_job = read_record(tmp_path / "slurm", run_id)["job_id"]
    assert new_job != job_id
    log = open(read_record(tmp_path / "slurm", run_id)["stdout"]).read() + \
        open(read_record(tmp_path / "slurm", run_id)["stderr"]).read()
    assert f"resume {run_id}" in log and "from its checkpoint (epoch " in log
    resumed_epoch = int(log.split("from its checkpoint (epoch ")[1].split(",")[0])
    assert resumed_epoch >= 3 - 1  # at least the epochs checkpointed before the cancel
    reference = local_reference(tmp_path, "--methods", "szabo", "--epochs",
                                str(CANCELLED_EPOCHS))
    assert run_files(tmp_path / "slurm", results.METRICS_FILE) == run_files(reference, results.METRICS_FILE)


def test_slurms_refusal_is_one_line_and_nothing_is_submitted(cluster, tmp_path):
    out = slurm_run("--methods", "ccvae", "--partition", "no-such-partition",
                    "--results", str(tmp_path))
    assert out.returncode == 2
    assert "SLURM refused the submission" in out.stderr and "partition" in out.stderr.lower()
    assert len(out.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "jobs" / "slurm").glob("*.json"))


def test_a_child_runs_argv_resolves_to_the_same_run(tmp_path):
    from bench.cli import parser
    from bench.cli.arguments import settings_overrides
    from bench.spec.config import resolve
    from bench.run.options import RunOptions
    overrides = {"lr": "0.0003", "epochs": 3, "probe_epochs": "2"}
    config = resolve("mathieu", "shapes", "quick", 4, {**overrides, "z_dim": 8, "s_dim": 5})
    argv = RunOptions(tmp_path, device_request="cpu").child_argv(config, overrides)
    args = parser().parse_args(list(argv))
    again = resolve(args.methods, args.dataset, args.preset, args.seeds[0],
                    {**settings_overrides(args.set), "z_dim": args.z_dim[0], "s_dim": args.s_dim[0]})
    assert again.run_id == config.run_id and args.results == tmp_path.resolve()
    assert args.evaluations is None  # every default evaluation, as the parent's
    chosen = RunOptions(tmp_path, device_request="cpu", evaluations=("probes", "swap"))
    assert parser().parse_args(list(chosen.child_argv(config, overrides))).evaluations == "probes,swap"


def test_slurm_options_file_then_flags(tmp_path):
    from bench.errors import ConfigError
    from bench.launch.slurm import SlurmOptions
    path = tmp_path / "slurm.json"
    path.write_text(json.dumps({"partition": "gpu", "gpus_per_job": 1, "time_minutes": 30,
                                "sbatch": {"account": "proj"}}))
    options = SlurmOptions.from_sources(path, {"time_minutes": 90, "partition": None, "sbatch": {}})
    assert (options.partition, options.gpus_per_job, options.time_minutes) == ("gpu", 1, 90)
    parameters = options.submitit_parameters()
    assert parameters["additional_parameters"] == {"account": "proj"} and parameters["gpus_per_node"] == 1
    assert "export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1" in parameters["setup"]
    path.write_text(json.dumps({"partitoin": "gpu"}))
    with pytest.raises(ConfigError, match="unknown SLURM option.*partitoin"):
        SlurmOptions.from_sources(path, {})
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="--slurm-config .*slurm.json"):
        SlurmOptions.from_sources(path, {})
    with pytest.raises(ConfigError, match="cpus_per_job must be a positive integer"):
        SlurmOptions.from_sources(None, {"cpus_per_job": 0})


def test_a_job_at_its_time_limit_is_requeued_and_resumes(cluster, tmp_path):
    # A two-minute limit with SIGUSR2 25 s before it. slurmctld checks limits every 30 s and sends
    # the warning at the first check that finds the end within signal_delay_s + 30 s: here 65 to
    # 95 s into the attempt, time for even a slow day's start (Python, submitit, torch) to reach
    # training. The first attempt's training waits after its fifth iteration until it is stopped
    # (tests/hold/sitecustomize.py), so the warning always lands mid-training; submitit requeues
    # the job and the second attempt (SLURM_RESTART_COUNT=1, which trains without waiting)
    # resumes from the checkpoint.
    options = tmp_path / "slurm.json"
    options.write_text(json.dumps({"time_minutes": 2, "signal_delay_s": 25}))
    run = ["--methods", "szabo", "--epochs", "4"]
    out = bench(*SMOKE, "--executor", "slurm", "--cpus-per-job", "1", *run, "--slurm-config",
                str(options), "--results", str(tmp_path / "slurm"), env=held_after(5), timeout=900)
    assert out.returncode == 0, out.stderr
    (job_file,) = results.runs_dir(tmp_path / "slurm").glob(f"*/{'job.json'}")
    job = json.loads(job_file.read_text())
    assert job["restarts"] >= 1
    log = open(job["stdout"]).read()
    assert "this job is timed-out" in log and "from its checkpoint (epoch 2" in log
    reference = local_reference(tmp_path, *run)
    assert run_files(tmp_path / "slurm", results.METRICS_FILE) == run_files(reference, results.METRICS_FILE)
    assert run_files(tmp_path / "slurm", results.LOSSES_FILE) == run_files(reference, results.LOSSES_FILE)
