"""A baseline records the torch and numpy it was made with; the check notes when they differ."""
import json

import pandas as pd
import pytest

from bench.errors import Refused
from bench.report import comparison
from tests.test_check import table
from tests.test_report import accuracies, fake_run

MADE_WITH = "torch 2.14.1, numpy 2.4.6"


def baseline(libraries=MADE_WITH):
    rows = table([("ccvae", "s", "test", 90.0), ("ccvae", "z_sample", "test", 15.0)])
    return rows if libraries is None else rows.assign(**{comparison.LIBRARIES: libraries})


def test_no_note_when_the_installed_versions_are_the_baselines():
    assert comparison.version_notes(baseline(), {"torch": "2.14.1", "numpy": "2.4.6"}) == []


@pytest.mark.parametrize("installed, now", [
    ({"torch": "2.15.0", "numpy": "2.4.6"}, "torch 2.15.0"),
    ({"torch": "2.14.1", "numpy": "2.5.0"}, "numpy 2.5.0"),
    ({"torch": "2.15.0", "numpy": None}, "torch 2.15.0, numpy not installed"),
])
def test_one_line_names_what_differs(installed, now):
    assert comparison.version_notes(baseline(), installed) == [
        f"note: the baseline was made with {MADE_WITH}; installed: {now} "
        "(numbers may move; a warning, not a failure)"]


def test_no_note_for_a_baseline_without_versions():
    installed = {"torch": "2.15.0", "numpy": "2.5.0"}
    assert comparison.version_notes(baseline(libraries=None), installed) == []  # an older baseline
    assert comparison.version_notes(baseline(libraries=float("nan")), installed) == []


def test_installed_versions_are_the_libraries_that_are_installed():
    installed = comparison.installed_versions()
    assert set(installed) == {"torch", "numpy"} and all(installed.values())
    assert comparison.version_notes(baseline(comparison.libraries_text(installed)), installed) == []


def runs(directory, numpys):
    """One ci run of ccvae per seed, made with torch 2.14.1 and the given numpy versions."""
    for seed, numpy in enumerate(numpys):
        run_dir = fake_run(directory, f"ccvae-{seed}", seed, accuracies(z=15.0, s=90.0), preset="ci")
        env = {"device": "cpu", "torch_threads": 2,
               "libraries": {"torch": "2.14.1", "torchvision": "0.29.1", "numpy": numpy}}
        (run_dir / "env.json").write_text(json.dumps(env))
    return directory


def test_a_baseline_records_the_versions_its_runs_were_made_with(tmp_path):
    path = tmp_path / "mnist-ci.csv"
    comparison.update_baseline(comparison.current_numbers(runs(tmp_path / "r", ["2.4.6", "2.4.6"])), path,
                          force=False)
    written = comparison.read_baseline(path)
    assert set(written[comparison.LIBRARIES]) == {MADE_WITH}
    assert comparison.version_notes(written, {"torch": "2.15.0", "numpy": "2.4.6"})
    assert pd.read_csv(path).columns[-1] == comparison.LIBRARIES


def test_runs_made_with_different_versions_make_no_baseline(tmp_path):
    path = tmp_path / "mnist-ci.csv"
    with pytest.raises(Refused, match="numpy 2.4.5 and with torch 2.14.1, numpy 2.4.6"):
        comparison.update_baseline(comparison.current_numbers(runs(tmp_path / "r", ["2.4.6", "2.4.5"])), path,
                              force=True)
    assert not path.exists()


def test_runs_without_versions_make_a_baseline_without_a_note(tmp_path):
    directory = tmp_path / "r"
    fake_run(directory, "ccvae-0", 0, accuracies(z=15.0, s=90.0), preset="ci")  # env: no libraries
    path = tmp_path / "mnist-ci.csv"
    comparison.update_baseline(comparison.current_numbers(directory), path, force=False)
    assert comparison.version_notes(comparison.read_baseline(path), {"torch": "2.15.0", "numpy": "2.5.0"}) == []
