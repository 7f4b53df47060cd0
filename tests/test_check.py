"""bench check: known answers for the verdicts, and the command's exit codes."""
import json

import pandas as pd
import pytest

from bench.cli import main
from bench.errors import Refused
from bench.report import comparison
from bench.report.page import load_paper_table
from bench.store import results
from tests.test_report import accuracies, fake_run

KEYS = dict(dataset="mnist", preset="ci", z_dim=16, s_dim=16)


def table(rows):
    """rows: (method, probe, split, mean[, std]) -> KEY + mean + std + seeds."""
    return pd.DataFrame([dict(method=m, probe=p, split=sp, mean=v, std=(rest[0] if rest else 0.0),
                              seeds=3, **KEYS) for m, p, sp, v, *rest in rows],
                        columns=list(comparison.BASELINE_COLUMNS))


def numbers(rows, seed=7):
    """rows: (method, probe, split, value) of one run -> KEY + seed + value."""
    return pd.DataFrame([dict(method=m, probe=p, split=sp, value=v, seed=seed, computed_on="cpu", **KEYS)
                         for m, p, sp, v, *_ in rows])


def verdicts(baseline, current, tolerance=comparison.Tolerance(2.0, 3.0)):
    """Verdicts of a run whose seed the baseline does not hold: the spread rule."""
    judged = comparison.against_baseline(numbers(current), table(baseline), tolerance)
    assert set(judged.rule[judged.verdict != "MISSING"]) <= {"spread"}
    return dict(zip(zip(judged.method, judged.probe, judged.split), judged.verdict))


def test_directions_s_higher_is_better_z_lower_is_better():
    baseline = [("a", "s", "test", 90.0), ("a", "z_sample", "test", 20.0), ("a", "z_mean", "test", 50.0)]
    assert verdicts(baseline, [("a", "s", "test", 87.0), ("a", "z_sample", "test", 23.0),
                               ("a", "z_mean", "test", 47.0)]) == {
        ("a", "s", "test"): "WORSE", ("a", "z_sample", "test"): "WORSE", ("a", "z_mean", "test"): "better"}
    assert verdicts(baseline, [("a", "s", "test", 93.0), ("a", "z_sample", "test", 17.0),
                               ("a", "z_mean", "test", 51.9)]) == {
        ("a", "s", "test"): "better", ("a", "z_sample", "test"): "better", ("a", "z_mean", "test"): "ok"}


def test_tolerance_is_the_larger_of_absolute_and_spread():
    baseline = [("a", "s", "test", 90.0, 1.0)]  # 3 x spread = 3 points > 2 absolute
    assert verdicts(baseline, [("a", "s", "test", 87.5)])[("a", "s", "test")] == "ok"
    assert verdicts(baseline, [("a", "s", "test", 86.9)])[("a", "s", "test")] == "WORSE"
    narrow = [("a", "s", "test", 90.0, 0.1)]  # absolute 2 points wins
    assert verdicts(narrow, [("a", "s", "test", 88.1)])[("a", "s", "test")] == "ok"
    assert verdicts(narrow, [("a", "s", "test", 87.9)])[("a", "s", "test")] == "WORSE"


def test_a_missing_number_fails_and_an_extra_one_is_ignored():
    result = verdicts([("a", "s", "test", 90.0), ("b", "s", "test", 90.0)],
                      [("a", "s", "test", 90.0), ("c", "s", "test", 10.0)])
    assert result == {("a", "s", "test"): "ok", ("b", "s", "test"): "MISSING"}


def paper_rows(values):
    """Our paper-preset numbers: {method: (z_train, z_test, s_train, s_test)}."""
    rows = []
    for method, (zt, zv, st, sv) in values.items():
        rows += [(method, "z_sample", "train", zt), (method, "z_sample", "test", zv),
                 (method, "s", "train", st), (method, "s", "test", sv)]
    frame = table(rows)
    frame["preset"] = "paper"
    return frame


PAPER_16 = {"szabo": (97.65, 96.08, 98.89, 98.46), "mathieu": (70.85, 66.83, 99.37, 98.52),
            "ccvae": (17.72, 17.56, 99.72, 98.35)}


def test_paper_check_tolerances_and_leakage_order():
    paper = load_paper_table()
    same = comparison.against_paper(paper_rows(PAPER_16), paper)
    judged, disorder = same
    judged = judged[judged.z_dim == 16]
    assert set(judged.verdict) == {"ok"} and disorder == []
    near = dict(PAPER_16, ccvae=(22.0, 22.5, 98.3, 96.9))  # z +4.3/+4.9 (< 5), s -1.42/-1.45 (< 1.5)
    judged, _ = comparison.against_paper(paper_rows(near), paper)
    assert set(judged[judged.z_dim == 16].verdict) == {"ok"}
    far = dict(PAPER_16, ccvae=(17.0, 23.0, 99.7, 96.7))  # z test +5.44, s test -1.65
    judged, _ = comparison.against_paper(paper_rows(far), paper)
    bad = judged[judged.verdict == "WORSE"]
    assert set(zip(bad.method, bad.probe, bad.split)) == {("ccvae", "z_sample", "test"), ("ccvae", "s", "test")}
    swapped = dict(PAPER_16, mathieu=(70.0, 97.0, 99.4, 98.5))
    _, disorder = comparison.against_paper(paper_rows(swapped), paper)
    assert disorder == ["mnist 16/16: z leakage order mathieu > szabo > ccvae, paper szabo > mathieu > ccvae"]


def test_paper_rows_without_runs_are_missing():
    judged, _ = comparison.against_paper(paper_rows({"ccvae": PAPER_16["ccvae"]}), load_paper_table())
    assert set(judged[judged.method != "ccvae"].verdict) == {"MISSING"}


# --- the command ---------------------------------------------------------------------------

def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def results_with(tmp_path, values):
    """A results folder with one ci run per method: values {method: (z_test, s_test)}."""
    directory = tmp_path / "results"
    for method, (z, s) in values.items():
        fake_run(directory, f"{method}-x", 0, accuracies(z=z, s=s), method=method, preset="ci")
    return directory


@pytest.fixture
def baseline(tmp_path, capsys):
    directory = results_with(tmp_path / "base", {"ccvae": (15.0, 90.0), "szabo": (80.0, 88.0)})
    path = tmp_path / "mnist-ci.csv"
    assert run(["check", "--results", str(directory), "--update-baseline", "--baseline", str(path)],
               capsys)[0] == 0
    return path


def test_unchanged_results_pass(tmp_path, baseline, capsys):
    directory = results_with(tmp_path, {"ccvae": (15.0, 90.0), "szabo": (80.0, 88.0)})
    code, out, _ = run(["check", "--results", str(directory), "--baseline", str(baseline)], capsys)
    assert code == 0 and "check: pass: 12 numbers, 0 worse or missing" in out


def test_degraded_results_fail_and_name_the_rows(tmp_path, baseline, capsys):
    directory = results_with(tmp_path, {"ccvae": (25.0, 90.0), "szabo": (80.0, 80.0)})
    code, out, _ = run(["check", "--results", str(directory), "--baseline", str(baseline)], capsys)
    assert code == 1
    worse = [line.split() for line in out.splitlines() if line.endswith("WORSE")]
    assert {(w[0], w[2], w[3]) for w in worse} == {
        ("ccvae", "z_sample", "train"), ("ccvae", "z_sample", "test"),
        ("szabo", "s", "train"), ("szabo", "s", "test")}
    assert ["ccvae", "16/16", "z_sample", "test", "0", "seed", "15.00", "25.00", "+10.00", "0.50",
            "WORSE"] in worse


def test_improved_results_pass(tmp_path, baseline, capsys):
    directory = results_with(tmp_path, {"ccvae": (11.0, 95.0), "szabo": (70.0, 93.0)})
    code, out, _ = run(["check", "--results", str(directory), "--baseline", str(baseline)], capsys)
    assert code == 0 and "better" in out


def test_a_missing_run_fails_and_is_named(tmp_path, baseline, capsys):
    directory = results_with(tmp_path, {"ccvae": (15.0, 90.0)})
    code, out, _ = run(["check", "--results", str(directory), "--baseline", str(baseline)], capsys)
    assert code == 1
    assert sum(line.startswith("szabo") and line.endswith("MISSING") for line in out.splitlines()) == 6


def test_a_method_the_baseline_lacks_is_not_judged_and_the_check_says_so(tmp_path, baseline, capsys):
    directory = results_with(tmp_path, {"ccvae": (15.0, 90.0), "szabo": (80.0, 88.0),
                                        "lord": (99.0, 10.0)})
    code, out, _ = run(["check", "--results", str(directory), "--baseline", str(baseline)], capsys)
    assert code == 0 and "check: pass: 12 numbers" in out
    assert "note: lord 16/16 has numbers mnist-ci.csv has no row for: not judged" in out
    assert "ccvae 16/16 has numbers" not in out


@pytest.mark.parametrize("content, message", [
    ("method,dataset\nccvae,mnist\n", "missing columns"),
    ("", "malformed baseline"),
    (",".join(comparison.BASELINE_COLUMNS) + "\nccvae,mnist,ci,16,16,s,test,abc,0,1\n", "not one"),
    (",".join(comparison.BASELINE_COLUMNS) + "\nccvae,mnist,ci,16,16,w,test,1,0,1\n", "unknown probe 'w'"),
])
def test_a_malformed_baseline_is_one_line_exit_2(content, message, tmp_path, capsys):
    directory = results_with(tmp_path, {"ccvae": (15.0, 90.0)})
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, _, err = run(["check", "--results", str(directory), "--baseline", str(path)], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_update_refuses_to_make_a_number_worse_without_force(tmp_path, baseline, capsys):
    before = baseline.read_text()
    directory = results_with(tmp_path, {"ccvae": (15.5, 90.0), "szabo": (80.0, 88.0)})
    argv = ["check", "--results", str(directory), "--update-baseline", "--baseline", str(baseline)]
    code, _, err = run(argv, capsys)
    assert code == 2 and "not overwriting" in err and "ccvae 16/16 z_sample test" in err
    assert baseline.read_text() == before
    assert run([*argv, "--force"], capsys)[0] == 0
    assert comparison.read_baseline(baseline).query("method == 'ccvae' and probe == 'z_sample' and split == 'test'")["mean"].item() == 15.5


def test_update_with_better_numbers_needs_no_force(tmp_path, baseline, capsys):
    directory = results_with(tmp_path, {"ccvae": (14.0, 91.0), "szabo": (80.0, 88.0)})
    assert run(["check", "--results", str(directory), "--update-baseline", "--baseline", str(baseline)],
               capsys)[0] == 0


def test_the_same_runs_rewrite_their_baseline_without_force(tmp_path, capsys):
    # Means that are not round at four decimals (s: (90 + 92 + 90) / 3 = 90.6667 as stored)
    # are not "worse" than their own stored value.
    directory = tmp_path / "results"
    for seed, s in enumerate((90.0, 92.0, 90.0)):
        fake_run(directory, f"ccvae-{seed}", seed, accuracies(z=15.0, s=s), preset="ci")
    path = tmp_path / "mnist-ci.csv"
    argv = ["check", "--results", str(directory), "--update-baseline", "--baseline", str(path)]
    assert run(argv, capsys)[0] == 0
    assert "90.6667" in path.read_text()
    assert run(argv, capsys)[0] == 0


def test_no_runs_or_no_baseline_are_usage_errors(tmp_path, capsys):
    assert run(["check", "--results", str(tmp_path / "empty")], capsys)[0] == 2
    directory = results_with(tmp_path, {"ccvae": (15.0, 90.0)})
    code, _, err = run(["check", "--results", str(directory), "--baseline", str(tmp_path / "none.csv")], capsys)
    assert code == 2 and "does not exist" in err


def test_mixed_configs_are_refused(tmp_path):
    directory = results_with(tmp_path, {"ccvae": (15.0, 90.0)})
    other = fake_run(directory, "ccvae-y", 1, accuracies(z=15.0, s=90.0), preset="ci")
    config = (other / "config.json").read_text().replace('"z_dim": 16', '"z_dim": 16, "kl_weight": 0')
    (other / "config.json").write_text(config)
    with pytest.raises(Refused, match="runs of different configs for ccvae"):
        comparison.current_numbers(directory)


def with_z_usage(run_dir, retention, units):
    pd.DataFrame([dict(run_id=run_dir.name, method="ccvae", dataset="mnist", preset="ci", seed=0,
                       z_dim=16, s_dim=16, metric=m, split="test", value=v)
                  for m, v in (("style_retention", retention), ("active_units", units))]
                 ).to_csv(run_dir / "z_usage.csv", index=False)


def test_how_much_z_is_used_is_checked_higher_is_better(tmp_path, capsys):
    base = results_with(tmp_path / "base", {"ccvae": (15.0, 90.0)})
    with_z_usage(results.runs_dir(base) / "ccvae-x", 0.40, 12)
    path = tmp_path / "mnist-ci.csv"
    assert run(["check", "--results", str(base), "--update-baseline", "--baseline", str(path)],
               capsys)[0] == 0
    assert {"style_retention", "active_units"} <= set(pd.read_csv(path).probe)
    collapsed = results_with(tmp_path / "now", {"ccvae": (15.0, 90.0)})
    with_z_usage(results.runs_dir(collapsed) / "ccvae-x", 0.01, 2)
    code, out, _ = run(["check", "--results", str(collapsed), "--baseline", str(path)], capsys)
    worse = {tuple(line.split()[:4]) for line in out.splitlines() if line.endswith("WORSE")}
    assert code == 1 and worse == {("ccvae", "16/16", "style_retention", "test"),
                                   ("ccvae", "16/16", "active_units", "test")}
    assert "0.0050" in next(line for line in out.splitlines() if "style_retention" in line)
    with_z_usage(results.runs_dir(collapsed) / "ccvae-x", 0.396, 12)  # within 0.5 points of seed 0
    assert run(["check", "--results", str(collapsed), "--baseline", str(path)], capsys)[0] == 0


def test_a_baseline_seed_is_held_to_its_own_numbers_and_other_seeds_to_the_spread(tmp_path, capsys):
    base = tmp_path / "base"
    for seed, s in ((0, 90.0), (1, 80.0), (2, 85.0)):  # a wide spread: 5 points
        fake_run(base, f"ccvae-{seed}", seed, accuracies(z=15.0, s=s), preset="ci")
    path = tmp_path / "mnist-ci.csv"
    assert run(["check", "--results", str(base), "--update-baseline", "--baseline", str(path)],
               capsys)[0] == 0
    written = pd.read_csv(path)
    assert {"seed_0", "seed_1", "seed_2"} <= set(written.columns)
    assert written[(written.probe == "s") & (written.split == "test")].seed_1.item() == 80.0

    now = tmp_path / "now"
    fake_run(now, "ccvae-0", 0, accuracies(z=15.0, s=89.0), preset="ci")  # seed 0: -1 point
    code, out, _ = run(["check", "--results", str(now), "--baseline", str(path)], capsys)
    line = next(l for l in out.splitlines() if l.startswith("ccvae") and " s " in l and "test" in l)
    assert code == 1 and line.split()[4:6] == ["0", "seed"] and line.endswith("WORSE")

    other = tmp_path / "other"
    fake_run(other, "ccvae-9", 9, accuracies(z=15.0, s=80.0), preset="ci")  # seed 9: -5 from the mean
    code, out, _ = run(["check", "--results", str(other), "--baseline", str(path)], capsys)
    line = next(l for l in out.splitlines() if l.startswith("ccvae") and " s " in l and "test" in l)
    assert code == 0 and line.split()[4:6] == ["9", "spread"]  # within 3 x 5 points of 85
    assert "seed  rule" in out


def test_a_baseline_without_seed_numbers_still_works_and_says_so(tmp_path, capsys):
    path = tmp_path / "mnist-ci.csv"
    table([("ccvae", "s", "test", 90.0, 0.5), ("ccvae", "z_sample", "test", 15.0, 0.5)]).to_csv(
        path, index=False)
    directory = results_with(tmp_path, {"ccvae": (15.5, 89.0)})
    code, out, _ = run(["check", "--results", str(directory), "--baseline", str(path)], capsys)
    assert code == 0 and "has no per-seed numbers (an older baseline)" in out
    assert sum("has no per-seed numbers" in line for line in out.splitlines()) == 1
    assert {line.split()[5] for line in out.splitlines() if line.startswith("ccvae")} == {"spread"}


def test_a_malformed_seed_column_is_refused(tmp_path, capsys):
    path = tmp_path / "mnist-ci.csv"
    table([("ccvae", "s", "test", 90.0)]).assign(seed_x=1.0).to_csv(path, index=False)
    directory = results_with(tmp_path, {"ccvae": (15.0, 90.0)})
    code, _, err = run(["check", "--results", str(directory), "--baseline", str(path)], capsys)
    assert code == 2 and "column 'seed_x' is not seed_<n>" in err


def test_seed_numbers_from_another_machine_or_thread_count_fall_back_to_the_spread(tmp_path, capsys):
    base = tmp_path / "base"
    fake_run(base, "ccvae-0", 0, accuracies(z=15.0, s=90.0), preset="ci")
    path = tmp_path / "mnist-ci.csv"
    assert run(["check", "--results", str(base), "--update-baseline", "--baseline", str(path)],
               capsys)[0] == 0
    now = tmp_path / "now"
    run_dir = fake_run(now, "ccvae-0", 0, accuracies(z=15.0, s=89.0), preset="ci")
    (run_dir / "env.json").write_text(json.dumps({"device": "cpu", "torch_threads": 1}))
    code, out, _ = run(["check", "--results", str(now), "--baseline", str(path)], capsys)
    assert code == 0 and "1 threads" in out and "judged by the spread rule" in out
    assert {line.split()[5] for line in out.splitlines() if line.startswith("ccvae")} == {"spread"}


def test_the_library_refuses_what_the_check_cannot_compare(tmp_path):
    empty = pd.DataFrame({"preset": ["ci"], "computed_on": ["x"]})
    with pytest.raises(Refused, match=r"no baseline for these runs \(mnist-nowhere\)"):
        comparison.compare_with_baselines(empty, [("mnist", "nowhere")], None, comparison.Tolerance(2, 3, 0.5),
                                     say=print)
    with pytest.raises(Refused, match="--baseline names one file but the runs hold 2"):
        comparison.update_baselines(empty, [("mnist", "ci"), ("mnist", "quick")], tmp_path / "b.csv",
                               force=False)
    with pytest.raises(Refused, match="no complete runs of the paper preset"):
        comparison.compare_with_paper(empty, load_paper_table())
    assert not (tmp_path / "b.csv").exists()


def machine_numbers(machine, seed, s_test):
    return pd.DataFrame([dict(method="ccvae", probe="s", split="test", value=s_test, seed=seed,
                              computed_on=machine, libraries="", **KEYS)])


def test_each_machine_keeps_its_own_per_seed_block_and_the_first_sets_the_spread(tmp_path):
    """A user adds their machine's rows beside the reference rows: runs of either machine are
    held per seed to their own machine's numbers; a third machine falls back to the reference
    machine's mean and spread, never to the added block's."""
    path = tmp_path / "mnist-ci.csv"
    reference = pd.concat([machine_numbers("A", 0, 90.0), machine_numbers("A", 1, 92.0)])
    comparison.update_baseline(reference, path, force=False)
    comparison.update_baseline(machine_numbers("B", 0, 80.0), path, force=False)
    baseline = comparison.read_baseline(path)
    assert comparison.machines(baseline) == ["A", "B"]
    assert comparison.reference_rows(baseline)["mean"].tolist() == [91.0]

    def judged(machine, value):
        row = comparison.against_baseline(machine_numbers(machine, 0, value), baseline,
                                     comparison.Tolerance(2.0, 3.0, 0.5)).iloc[0]
        return row.rule, row.reference, row.verdict

    assert judged("A", 89.0) == ("seed", 90.0, "WORSE")  # A's seed 0, not B's
    assert judged("B", 80.0) == ("seed", 80.0, "ok")
    assert judged("B", 79.0) == ("seed", 80.0, "WORSE")
    assert judged("C", 80.0)[:2] == ("spread", 91.0)  # the reference's mean, not B's 80
    assert judged("C", 80.0)[2] == "WORSE"

    # B's block is replaced in place (refused where it would get worse); A's stays first
    with pytest.raises(Refused, match="ccvae 16/16 s test"):
        comparison.update_baseline(machine_numbers("B", 0, 70.0), path, force=False)
    comparison.update_baseline(machine_numbers("B", 0, 85.0), path, force=False)
    baseline = comparison.read_baseline(path)
    assert comparison.machines(baseline) == ["A", "B"] and len(baseline) == 2
    assert comparison.machine_rows(baseline, "B")["seed_0"].tolist() == [85.0]
    assert comparison.machine_rows(baseline, "A")["seed_1"].tolist() == [92.0]
    # --force: these runs alone, their machine the reference
    comparison.update_baseline(machine_numbers("B", 0, 70.0), path, force=True)
    assert comparison.machines(comparison.read_baseline(path)) == ["B"]


def test_a_row_listed_twice_for_one_machine_is_refused_but_once_per_machine_is_read(tmp_path):
    path = tmp_path / "mnist-ci.csv"
    rows = table([("ccvae", "s", "test", 90.0)]).assign(seed_0=90.0, seeds_computed_on="A")
    pd.concat([rows, rows.assign(seeds_computed_on="B")]).to_csv(path, index=False)
    assert len(comparison.read_baseline(path)) == 2
    pd.concat([rows, rows]).to_csv(path, index=False)
    with pytest.raises(comparison.UnusableFile, match="a row is listed twice"):
        comparison.read_baseline(path)
