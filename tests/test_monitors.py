"""A run's monitors (bench/run/monitors.py) and the training loop's hooks (bench/run/train.py):
one dispatcher calls every hook of every monitor in order; the checkpoint is written by a
monitor, last, after every epoch and where a signal stops training; each monitor's state goes
into the checkpoint and comes back on resume, and a checkpoint written before monitors had states
still resumes to the same run."""
import shutil

import pandas as pd
import pytest
import torch

from bench.errors import CorruptRun, Interrupted
from bench.run import monitors
from bench.run.monitors import Checkpointing, Evaluated, LossLog, Monitor, Monitors, RunStart
from bench.run.train import EpochEnd, Progress, StopOnSignal, TrainingPlan, training_steps
from bench.store import results
from tests.helpers import dies_after_first_epoch

HOOKS = ("on_train_start", "on_epoch_end", "on_interrupt", "on_evaluated", "on_image", "close")


class Calls(Monitor):
    """Records each hook it hears, by its own name, in a list shared with the test."""

    def __init__(self, name: str, calls: list):
        self.name, self.calls = name, calls

    def on_train_start(self):
        self.calls.append((self.name, "on_train_start"))

    def on_epoch_end(self, end):
        self.calls.append((self.name, "on_epoch_end", end.epoch))

    def on_interrupt(self, progress):
        self.calls.append((self.name, "on_interrupt", progress.iteration))

    def on_evaluated(self, evaluated):
        self.calls.append((self.name, "on_evaluated", evaluated.step))

    def on_image(self, name, path, step):
        self.calls.append((self.name, "on_image", name))

    def close(self):
        self.calls.append((self.name, "close"))


def an_epoch(epoch: int, rows: int = 3) -> EpochEnd:
    losses = torch.arange(rows * 2, dtype=torch.float32).view(rows, 2) + epoch
    return EpochEnd(epoch, ["a", "b"], losses, Progress(epoch + 1, 0, None, ["a", "b"], epoch * rows))


def test_the_dispatcher_calls_each_hook_of_every_monitor_once_in_order(tmp_path):
    calls = []
    watching = Monitors([Calls("first", calls), Calls("second", calls)])
    watching.on_train_start()
    watching.on_epoch_end(an_epoch(1))
    watching.on_epoch_end(an_epoch(2))
    watching.on_interrupt(Progress(3, 1, None, ["a", "b"], 6))
    watching.on_evaluated(Evaluated(6, {}))
    watching.on_image("swap_grid", tmp_path / "grid.png", 6)
    watching.close()
    heard = [("on_train_start",), ("on_epoch_end", 1), ("on_epoch_end", 2), ("on_interrupt", 1),
             ("on_evaluated", 6), ("on_image", "swap_grid"), ("close",)]
    assert calls == [(name, *hook) for hook in heard for name in ("first", "second")]


def test_every_monitor_is_closed_when_one_fails_to_close():
    calls = []

    class Failing(Calls):
        def close(self):
            super().close()
            raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        Monitors([Failing("first", calls), Calls("second", calls)]).close()
    assert calls == [("first", "close"), ("second", "close")]


def test_a_monitor_with_a_hook_of_its_former_name_is_refused():
    with pytest.raises(TypeError, match="epoch_end -> on_epoch_end"):
        class Old(Monitor):  # noqa: F841 - refused when defined
            def epoch_end(self, epoch, names, losses):
                pass


def test_checkpointing_saves_after_every_epoch_and_where_a_signal_stops():
    saved = []
    checkpointing = Checkpointing(saved.append)
    checkpointing.on_train_start()
    checkpointing.on_epoch_end(an_epoch(1))
    stopped = Progress(2, 2, torch.zeros(2, 2), ["a", "b"], 3)
    checkpointing.on_interrupt(stopped)
    checkpointing.on_evaluated(Evaluated(6, {}))
    assert saved == [an_epoch(1).progress, stopped]


class Counting:
    """A method whose loss term ``a`` counts its iterations."""
    name, device = "counting", torch.device("cpu")

    def __init__(self):
        self.iterations = self.epochs = 0

    def train_step(self, data):
        self.iterations += 1
        return {"a": torch.tensor(float(self.iterations)), "b": torch.tensor(0.5)}

    def end_epoch(self):
        self.epochs += 1


class Heard(Monitor):
    def __init__(self):
        self.heard = []

    def on_epoch_end(self, end):
        self.heard.append(("epoch", end.epoch, end.losses[:, 0].tolist(), end.progress))

    def on_interrupt(self, progress):
        self.heard.append(("interrupt", progress))


def test_the_training_loop_tells_its_hooks_of_every_epoch_with_the_progress_to_checkpoint():
    method, hooks = Counting(), Heard()
    plan = TrainingPlan(epochs=2, iterations_per_epoch=3, progress_bar=False)
    assert sum(1 for _ in training_steps(method, None, plan, hooks=hooks,
                                         stop=StopOnSignal())) == 6
    names = ["a", "b"]
    assert hooks.heard == [("epoch", 1, [1.0, 2.0, 3.0], Progress(2, 0, None, names, 3)),
                           ("epoch", 2, [4.0, 5.0, 6.0], Progress(3, 0, None, names, 6))]
    assert method.epochs == 2


def test_a_stop_is_told_at_its_iteration_boundary_and_training_resumes_there():
    method, hooks, stop = Counting(), Heard(), StopOnSignal()  # not entered: no signal handlers
    plan = TrainingPlan(epochs=2, iterations_per_epoch=3, progress_bar=False)
    steps = training_steps(method, None, plan, hooks=hooks, stop=stop)
    for _ in range(4):
        next(steps)
    stop.request("the test")
    with pytest.raises(Interrupted):
        next(steps)
    (_, progress) = hooks.heard[-1]
    assert hooks.heard[-1][0] == "interrupt" and len(hooks.heard) == 2
    assert (progress.epoch, progress.iteration, progress.logged_rows) == (2, 1, 3)
    assert progress.partial.tolist() == [[4.0, 0.5]]

    resumed = Heard()
    rest = TrainingPlan(epochs=2, iterations_per_epoch=3, start=progress, progress_bar=False)
    assert sum(1 for _ in training_steps(method, None, rest, hooks=resumed,
                                         stop=StopOnSignal())) == 2
    assert resumed.heard == [("epoch", 2, [4.0, 5.0, 6.0], Progress(3, 0, None, ["a", "b"], 6))]


def loss_log(run_dir, logged_rows=0) -> LossLog:
    from bench.spec.config import resolve
    start = RunStart(resolve("ccvae", "mnist", "smoke", 0), run_dir, None, 2, 3, logged_rows)
    return LossLog(start)


def test_the_loss_log_goes_on_from_its_saved_state_and_drops_rows_past_it(tmp_path, capsys):
    first = loss_log(tmp_path)
    first.on_train_start()
    first.on_epoch_end(an_epoch(1))
    state = first.state_dict()
    first.on_epoch_end(an_epoch(2))  # logged, then killed before its checkpoint
    assert state == {"rows": 3} and first.state_dict() == {"rows": 6}
    assert len(first.table()) == 6

    again = loss_log(tmp_path)  # logged_rows 0: only the state says where the log stands
    again.load_state_dict(state)
    again.on_train_start()
    assert again.table().equals(first.table().head(3))
    again.on_epoch_end(an_epoch(2))
    assert (tmp_path / results.LOSSES_FILE).read_text() == "".join(first.lines)
    assert again.table().equals(pd.read_csv(tmp_path / results.LOSSES_FILE))

    fallback = loss_log(tmp_path, logged_rows=3)  # a checkpoint without monitor states
    fallback.on_train_start()
    assert fallback.table().equals(first.table().head(3))
    for bad in ({}, {"rows": -1}, {"rows": "3"}, {"rows": True}):
        with pytest.raises(CorruptRun):
            loss_log(tmp_path).load_state_dict(bad)
    capsys.readouterr()


def test_states_are_kept_by_kind_and_a_monitor_without_one_keeps_its_start():
    class Stateful(Monitor):
        def __init__(self, value):
            self.value = value

        def state_dict(self):
            return {"value": self.value}

        def load_state_dict(self, state):
            self.value = state["value"]

    watching = Monitors([Stateful(1), Stateful(2), Checkpointing(lambda progress: None)])
    assert watching.state_dict() == {"Stateful": {"value": 1}, "Stateful#2": {"value": 2},
                                     "Checkpointing": {}}
    resumed = Monitors([Stateful(0), Stateful(0), Stateful(7)])
    resumed.load_state_dict({"Stateful": {"value": 1}, "Stateful#2": {"value": 2}})
    assert [m.value for m in resumed.monitors] == [1, 2, 7]


# ------------------------------------------------------------------ through real runs

class Remembering(Monitor):
    """A monitor with a state (the epochs it has seen), recording its calls in ``log``."""
    log: list = []

    def __init__(self, start: RunStart):
        self.epochs_seen = start.logged_rows // start.iterations_per_epoch
        Remembering.log.append(("start", start.logged_rows))

    def state_dict(self):
        return {"epochs_seen": self.epochs_seen}

    def load_state_dict(self, state):
        Remembering.log.append(("load", dict(state)))
        self.epochs_seen = state["epochs_seen"]

    def on_train_start(self):
        Remembering.log.append(("train", self.epochs_seen))

    def on_epoch_end(self, end):
        self.epochs_seen += 1
        Remembering.log.append(("epoch", end.epoch))

    def on_evaluated(self, evaluated):
        Remembering.log.append(("evaluated", evaluated.step, len(evaluated.rows("probes"))))

    def close(self):
        Remembering.log.append(("close", self.epochs_seen))


@pytest.fixture(scope="module", autouse=True)
def probes_only():
    """Only the probes are evaluated and no figure is drawn: the monitors are the point here."""
    import bench.evaluations
    import bench.run.runner
    from bench.evaluations import EVALUATIONS
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench.evaluations, "by_default", lambda: [EVALUATIONS["probes"]])
        patch.setattr(bench.run.runner, "draw_curves", lambda *args, **kwargs: None)
        yield


def execute(results_dir, mnist, tensorboard=False) -> str:
    from bench.run.options import RunOptions
    from bench.run.runner import execute as execute_run
    from bench.spec.config import resolve
    options = RunOptions(results_dir, device=torch.device("cpu"), device_request="cpu",
                         tensorboard=tensorboard, monitors=(Remembering,))
    with StopOnSignal() as stop:
        return execute_run(resolve("ccvae", "mnist", "smoke", 0, {"epochs": 2}), mnist, options,
                           stop)


def the_run(results_dir):
    (run_dir,) = [p for p in results.runs_dir(results_dir).iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist):
    """A whole 2-epoch run, its checkpoint saves spied on; and the same run whose process died at
    its second epoch's checkpoint."""
    import bench.run.runner
    base = tmp_path_factory.mktemp("monitored")
    original, saved = bench.run.runner.save_checkpoint, []

    def spied(path, config, method, feed, progress, states):
        Remembering.log.append(("checkpoint", progress.epoch, progress.iteration))
        saved.append(states)
        original(path, config, method, feed, progress, states)
    Remembering.log = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench.run.runner, "save_checkpoint", spied)
        assert execute(base / "whole", mnist, tensorboard=True) == "complete"
    whole = (list(Remembering.log), saved)
    with dies_after_first_epoch():
        with pytest.raises(Exception, match="killed"):
            execute(base / "stopped", mnist, tensorboard=True)
    return base, whole


def test_a_run_calls_its_monitors_in_order_and_checkpoints_after_each_epoch(runs):
    _, (log, saved) = runs
    assert log == [("start", 0), ("train", 0),
                   ("epoch", 1), ("checkpoint", 2, 0),
                   ("epoch", 2), ("checkpoint", 3, 0),
                   ("evaluated", 6, 6), ("close", 2)]
    assert saved == [{"LossLog": {"rows": rows}, "TensorBoard": {"step": rows},
                      "Remembering": {"epochs_seen": epochs}, "Checkpointing": {}}
                     for epochs, rows in ((1, 3), (2, 6))]


def assert_same_run(run_dir, reference):
    for name in (results.LOSSES_FILE, results.METRICS_FILE):
        assert (run_dir / name).read_bytes() == (reference / name).read_bytes(), name
    events = tensorboard_events(run_dir)
    steps = [p.step for p in events.Scalars("loss/reconstruction")]
    assert steps == pd.read_csv(run_dir / results.LOSSES_FILE).iteration.tolist()  # each once


def tensorboard_events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator
    events = EventAccumulator(str(run_dir / monitors.TENSORBOARD_DIR), size_guidance={SCALARS: 0})
    events.Reload()
    return events


def test_monitor_states_come_back_from_the_checkpoint(runs, tmp_path, mnist, capsys):
    base, _ = runs
    shutil.copytree(base / "stopped", tmp_path / "results")
    run_dir = the_run(tmp_path / "results")
    assert len(pd.read_csv(run_dir / results.LOSSES_FILE)) == 6  # epoch 2 logged, not checkpointed
    state = torch.load(run_dir / results.CHECKPOINT_FILE, weights_only=True)
    assert state["monitors"]["Remembering"] == {"epochs_seen": 1}
    Remembering.log = []
    assert execute(tmp_path / "results", mnist, tensorboard=True) == "complete"
    assert Remembering.log[:4] == [("start", 3), ("load", {"epochs_seen": 1}), ("train", 1),
                                   ("epoch", 2)]
    assert Remembering.log[-1] == ("close", 2)
    assert_same_run(run_dir, the_run(base / "whole"))
    capsys.readouterr()


def test_a_checkpoint_without_monitor_states_resumes_to_the_same_run(runs, tmp_path, mnist,
                                                                      capsys):
    """As the code before monitor states wrote it: the monitors start from its row count."""
    base, _ = runs
    shutil.copytree(base / "stopped", tmp_path / "results")
    run_dir = the_run(tmp_path / "results")
    path = run_dir / results.CHECKPOINT_FILE
    state = torch.load(path, weights_only=True)
    del state["monitors"]
    torch.save(state, path)
    Remembering.log = []
    assert execute(tmp_path / "results", mnist, tensorboard=True) == "complete"
    assert Remembering.log[:3] == [("start", 3), ("train", 1), ("epoch", 2)]  # no state loaded
    assert_same_run(run_dir, the_run(base / "whole"))
    capsys.readouterr()


def test_a_finished_run_frees_its_method_at_once(tmp_path, mnist, monkeypatch, capsys):
    """Its monitors hold the run (the checkpoint's save): without the runner letting go of them,
    a run's networks would live on until a garbage collection, beside the next run's."""
    import gc
    import weakref

    import bench.run.runner
    built = []
    original = bench.run.runner.build

    def build(*args):
        method, feed = original(*args)
        built.append(weakref.ref(method))
        return method, feed
    monkeypatch.setattr(bench.run.runner, "build", build)
    gc.disable()
    try:
        assert execute(tmp_path, mnist) == "complete"
        assert built and built[0]() is None
    finally:
        gc.enable()
    capsys.readouterr()
