"""The evaluation layer: the registry reaches the run folder and the report, `bench evaluate`
recomputes a run's evaluations from its checkpoint bit for bit, and `load_method` gives the trained
method back."""
import dataclasses
import json
import shutil

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.evaluations import EVALUATIONS, Evaluation, Outcome, ReportTable
from bench.evaluations.base import is_current
from bench.evaluations.swap_grid import SWAP_GRID_FIGURE
from bench.evaluations.tsne import TSNE_FIGURE, TSNE_FILE
from bench.report.document import to_markdown
from bench.report.page import build
from bench.run.trained_method import load_method
from bench.store import results
from bench.store.records import NotARun, load_run

SMOKE = ["run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke", "--device", "cpu"]
SEEN: dict[str, torch.Tensor] = {}


def code_means(context) -> Outcome:
    """A test evaluation: the mean of each code over the test images (and it keeps the codes)."""
    SEEN["s"], SEEN["z_mean"] = context.test.s.clone(), context.test.z_mean.clone()
    return Outcome([dict(code=name, value=round(float(getattr(context.test, name).mean()), 6))
                    for name in ("s", "z_mean")], {"note": "test double"})


EXTRA = Evaluation(name="code_means", version=1, file="code_means.csv", columns=("code", "value"),
                   compute=code_means, title="Code means (a test evaluation)",
                   description="The mean of each code over the test images.",
                   tables=(ReportTable(pivot=("code",), value="value", decimals=4),))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One smoke run of ccvae trained with an extra evaluation registered (for this module only)."""
    directory = tmp_path_factory.mktemp("evaluations")
    EVALUATIONS[EXTRA.name] = EXTRA
    try:
        assert main([*SMOKE, "--results", str(directory)]) == 0
    finally:
        del EVALUATIONS[EXTRA.name]
    (run_dir,) = results.runs_dir(directory).iterdir()
    return run_dir


def copy_results(run_dir, destination):
    shutil.copytree(run_dir.parent.parent, destination)
    return results.runs_dir(destination) / run_dir.name


def test_an_evaluation_added_in_a_test_file_reaches_the_run_folder_and_the_report(trained):
    table = pd.read_csv(trained / "code_means.csv")
    assert list(table.columns) == [*results.RUN_COLUMNS, "code", "value"]
    assert list(table.code) == ["s", "z_mean"] and table.run_id.iloc[0] == trained.name
    assert json.loads((trained / results.EVALUATION_FILE).read_text())["code_means"] == {
        "note": "test double", "version": 1}
    EVALUATIONS[EXTRA.name] = EXTRA
    try:
        text = to_markdown(build(trained.parent.parent), trained.parent.parent)
    finally:
        del EVALUATIONS[EXTRA.name]
    assert "### Code means (a test evaluation)" in text
    s_mean = f"{table.value.iloc[0]:.4f}"
    assert f"| ccvae | 16 / 16 | 1 | {s_mean} (one seed) |" in text


def test_load_method_gives_the_encodings_the_run_evaluated(trained, small_mnist):
    method = load_method(trained, "cpu", small_mnist)
    with torch.no_grad():
        encoding = method.encode(small_mnist.test_images)
    assert torch.equal(encoding.s, SEEN["s"]) and torch.equal(encoding.z_mean, SEEN["z_mean"])
    record = load_run(trained)
    assert record.complete and record.method == "ccvae" and record.seed == 0
    assert record.z_dim == 16 and record.metrics.probe.tolist()[:2] == ["s", "s"]


def test_load_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(NotARun, match="is not a run folder"):
        load_run(tmp_path)


def test_bench_evaluate_reproduces_the_run_files_bit_for_bit(trained, tmp_path, capsys):
    run_dir = copy_results(trained, tmp_path / "copy")
    written = {name: (run_dir / name).read_bytes()
               for name in (results.METRICS_FILE, "z_usage.csv", "swap.csv")}
    for name in written:
        (run_dir / name).unlink()
    assert main(["evaluate", "--results", str(tmp_path / "copy"), "--device", "cpu"]) == 0
    for name, content in written.items():
        assert (run_dir / name).read_bytes() == content, name
    out = capsys.readouterr().out
    assert "evaluate: 1 evaluated of 1 complete run(s)" in out
    log = (run_dir / "run.log").read_text()
    assert log.count("bench evaluate (pid") == 1 and log.index("bench run (pid") < log.index(
        "bench evaluate (pid")  # its lines after the training's
    assert "probes:" in log.split("bench evaluate (pid")[1]

    assert main(["evaluate", "--results", str(tmp_path / "copy"), "--device", "cpu"]) == 0
    assert "up to date" in capsys.readouterr().out  # nothing to recompute at the same version
    assert (run_dir / "run.log").read_text() == log  # nothing evaluated: nothing logged


FIGURE_FILES = (TSNE_FILE, "swap_grid.csv", TSNE_FIGURE, SWAP_GRID_FIGURE, results.FIGURES_FILE)


def test_bench_evaluate_recomputes_the_tsne_and_the_swap_grid(trained, tmp_path, capsys):
    """Both are evaluations: --force redraws them as the run drew them (tables, PNGs and
    figures.json byte for byte), and a plain evaluate brings back a t-SNE whose file and entry
    were removed, alone."""
    run_dir = copy_results(trained, tmp_path / "copy")
    written = {name: (run_dir / name).read_bytes() for name in FIGURE_FILES}
    table = pd.read_csv(run_dir / TSNE_FILE)
    assert list(table.columns) == [*results.RUN_COLUMNS, "code", "index", "label", "x", "y"]
    assert list(table.code.unique()) == ["z_sample", "z_mean"] and len(table) == 2 * 200
    assert (table.run_id == trained.name).all()
    recorded = json.loads((run_dir / results.EVALUATION_FILE).read_text())
    figures = json.loads(written[results.FIGURES_FILE])
    assert recorded["tsne"] == {**figures["tsne"], "version": 1} and figures["tsne"]["points"] == 200
    assert figures["swap_grid"]["s_images"] == pd.read_csv(run_dir / "swap_grid.csv").s_image.tolist()
    for name in FIGURE_FILES:
        (run_dir / name).unlink()
    assert main(["evaluate", "--results", str(tmp_path / "copy"), "--device", "cpu",
                 "--evaluations", "tsne,swap_grid", "--force"]) == 0
    for name, content in written.items():
        assert (run_dir / name).read_bytes() == content, name
    out = capsys.readouterr().out
    assert f"{trained.name} swap_grid: " in out and f"{trained.name} tsne: " in out

    (run_dir / TSNE_FILE).unlink()
    del recorded["tsne"]
    (run_dir / results.EVALUATION_FILE).write_text(json.dumps(recorded))
    assert main(["evaluate", "--results", str(tmp_path / "copy"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"{trained.name} tsne: " in out and f"{trained.name} swap_grid: " not in out
    assert f"{trained.name} probes: " not in out
    for name, content in written.items():
        assert (run_dir / name).read_bytes() == content, name


def test_a_run_folder_from_before_the_tsne_was_an_evaluation_renders_and_is_completed(
        trained, tmp_path, capsys):
    """A folder written when the figures bypassed the registry (tsne.csv without the run columns,
    no swap_grid.csv, no entries in evaluation.json): the report draws it as it is, and a plain
    evaluate computes the two once."""
    run_dir = copy_results(trained, tmp_path / "copy")
    new = (run_dir / TSNE_FILE).read_text()
    old = pd.read_csv(run_dir / TSNE_FILE).drop(columns=list(results.RUN_COLUMNS))
    old.to_csv(run_dir / TSNE_FILE, index=False, float_format="%.4f")
    (run_dir / "swap_grid.csv").unlink()
    recorded = json.loads((run_dir / results.EVALUATION_FILE).read_text())
    del recorded["tsne"], recorded["swap_grid"]
    (run_dir / results.EVALUATION_FILE).write_text(json.dumps(recorded))
    text = to_markdown(build(tmp_path / "copy"), tmp_path / "copy")
    assert "Points: test images, coloured by digit." in text  # the methods' panels, drawn
    assert (tmp_path / "copy" / "figures" / "tsne-mnist-smoke-z16-s16.png").is_file()
    assert "Swap grid: ccvae (z/s 16/16, seed 0)" in text
    assert main(["evaluate", "--results", str(tmp_path / "copy"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"{trained.name} tsne: " in out and f"{trained.name} swap_grid: " in out
    assert (run_dir / TSNE_FILE).read_text() == new
    assert main(["evaluate", "--results", str(tmp_path / "copy"), "--device", "cpu"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_a_new_version_is_recomputed_and_the_others_are_skipped(trained, tmp_path, capsys,
                                                                   monkeypatch):
    run_dir = copy_results(trained, tmp_path / "copy")
    calls = []
    probes = EVALUATIONS["probes"]

    def counted(context):
        calls.append("probes")
        return probes.compute(context)

    monkeypatch.setitem(EVALUATIONS, "probes", dataclasses.replace(probes, version=2, compute=counted))
    assert not is_current(EVALUATIONS["probes"], run_dir) and is_current(EVALUATIONS["swap"], run_dir)
    before = (run_dir / "swap.csv").stat().st_mtime_ns
    assert main(["evaluate", "--results", str(tmp_path / "copy"), "--device", "cpu"]) == 0
    assert calls == ["probes"] and (run_dir / "swap.csv").stat().st_mtime_ns == before
    assert json.loads((run_dir / results.EVALUATION_FILE).read_text())["probes"]["version"] == 2


def test_an_interrupted_evaluate_leaves_the_old_files(trained, tmp_path, monkeypatch):
    run_dir = copy_results(trained, tmp_path / "copy")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}

    def broken(context):
        raise KeyboardInterrupt

    monkeypatch.setitem(EVALUATIONS, "swap", dataclasses.replace(EVALUATIONS["swap"], compute=broken))
    code = main(["evaluate", "--results", str(tmp_path / "copy"), "--evaluations", "probes,swap",
                 "--force", "--device", "cpu"])
    assert code == 130
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert after.keys() == before.keys()  # no temporary file left behind
    assert after["swap.csv"] == before["swap.csv"] and after["metrics.csv"] == before["metrics.csv"]


def test_opt_in_evaluations_are_computed_only_when_named(trained, tmp_path, capsys):
    """A run and a plain `bench evaluate` leave mdl_leakage and probe_sensitivity out; named,
    they are written and the report shows them, and the other files stay as they were."""
    opt_in = ("mdl_leakage", "probe_sensitivity")
    assert not any(EVALUATIONS[name].by_default for name in opt_in)
    assert not (trained / "mdl.csv").exists() and not (trained / "probe_sensitivity.csv").exists()
    run_dir = copy_results(trained, tmp_path / "copy")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert main(["evaluate", "--results", str(tmp_path / "copy"), "--device", "cpu"]) == 0
    assert not (run_dir / "mdl.csv").exists()
    assert main(["evaluate", "--results", str(tmp_path / "copy"), "--device", "cpu",
                 "--evaluations", ",".join(opt_in)]) == 0
    table = pd.read_csv(run_dir / "mdl.csv")
    assert list(table.probe) == ["s", "z_mean", "z_sample"] and (table.bits > 0).all()
    assert ((table.compression - table.uniform_bits / table.bits).abs() < 1e-3 * table.compression).all()
    assert ((table.control_low <= table.control) & (table.control <= table.control_high)).all()
    swept = pd.read_csv(run_dir / "probe_sensitivity.csv")
    assert len(swept) == 3 * 2 * 2  # codes x probes x splits
    assert set(swept.capacity) == {"linear", "knn"} and swept.accuracy.between(0, 100).all()
    recorded = json.loads((run_dir / results.EVALUATION_FILE).read_text())
    assert all(recorded[name]["version"] == EVALUATIONS[name].version for name in opt_in)
    for name, content in before.items():
        if name not in (results.EVALUATION_FILE, "run.log"):  # run.log: the evaluate's lines added
            assert (run_dir / name).read_bytes() == content, name
    text = to_markdown(build(tmp_path / "copy"), tmp_path / "copy")
    assert "### Leakage as description length (MDL, online code)" in text
    assert "### How the probes' numbers depend on the probe" in text
    capsys.readouterr()


@pytest.mark.parametrize("argv, message", [
    (["--evaluations", "nope"], "unknown evaluation 'nope'"),
    (["--runs", "ccvae-mnist-0000000000"], "no run ccvae-mnist-0000000000"),
])
def test_bad_evaluate_input_is_one_line_exit_2(argv, message, trained, capsys):
    code = main(["evaluate", "--results", str(trained.parent.parent), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_compute_together_gives_each_run_its_outcome_and_leaves_a_failure_to_each_run():
    from types import SimpleNamespace
    from bench.evaluations import compute_together
    contexts = [SimpleNamespace(config=SimpleNamespace(run_id=f"run{i}", method=method), data=None)
                for i, method in enumerate(["ccvae", "lord", "ccvae"])]

    def together(chosen):
        return [Outcome([{"value": c.config.run_id}]) for c in chosen]

    def broken(chosen):
        raise RuntimeError("out of memory")

    def short(chosen):  # one outcome too few: no run may be given another's
        return [Outcome([{"value": c.config.run_id}]) for c in chosen[1:]]

    def alone(context):
        raise AssertionError("compute_together never calls compute")

    made = lambda name, **kw: Evaluation(name=name, version=1, file=f"{name}.csv",  # noqa: E731
                                         columns=("value",), compute=alone, title=name,
                                         description=name, **kw)
    evaluations = [made("shared", compute_together=together),
                   made("broken", compute_together=broken),
                   made("short", compute_together=short),
                   made("lord_only", compute_together=together,
                        applies_to_method=lambda method: method == "lord"),
                   made("one_by_one")]
    said = []
    computed = compute_together(evaluations, contexts, say=said.append)
    assert computed == {f"run{i}": {"shared": Outcome([{"value": f"run{i}"}])} for i in range(3)}
    assert any(line.startswith("broken of 3 runs together failed (RuntimeError: out of memory)")
               and line.endswith("each run computes it alone") for line in said)
    assert any(line.startswith("short of 3 runs together failed (ValueError: ")
               and line.endswith("each run computes it alone") for line in said)
    assert any(line.startswith("shared of 3 runs together: ") for line in said)


@pytest.mark.parametrize("error", [
    "interrupted",
    RuntimeError("CUDA error: an illegal memory access was encountered"),
])
def test_compute_together_lets_a_stop_or_a_device_fault_through(error):
    """Neither is the evaluation's failure: computing it again run by run would be wrong (a stop
    must stop; after a device fault every run would meet it again)."""
    from types import SimpleNamespace
    from bench.errors import Interrupted
    from bench.evaluations import compute_together
    raised = Interrupted(15) if error == "interrupted" else error
    contexts = [SimpleNamespace(config=SimpleNamespace(run_id=f"run{i}", method="ccvae"), data=None)
                for i in range(2)]

    def stopped(chosen):
        raise raised
    evaluation = Evaluation(name="probes_like", version=1, file="x.csv", columns=("value",),
                            compute=lambda context: None, title="x", description="x",
                            compute_together=stopped)
    with pytest.raises(type(raised)):
        compute_together([evaluation], contexts, say=lambda line: None)
