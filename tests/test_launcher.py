"""scripts/bench, the benchmark from any folder (bench/launcher.py): from a user's own project
folder outside the repository, a model named as package.module:factory is found without
PYTHONPATH, relative paths are the user's, results go to ./results there, and a package of the
user's that the benchmark's hide is said in one line."""
import os
import subprocess
import sys

from bench import launcher
from tests.conftest import REPO

FACTORY = '''
import torch
from torch import nn


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 3 * 4))
        self.decoder = nn.Sequential(nn.Linear(8, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))

    def encode(self, images):
        h = self.encoder(images)
        return h[:, 8:], h[:, :4], h[:, 4:8]

    def decode(self, z, s):
        return self.decoder(torch.cat([z, s], dim=1))


def load():
    torch.manual_seed(0)
    return Linear()
'''


def bench(folder, *argv):
    """scripts/bench run in ``folder`` with this interpreter, no PYTHONPATH."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(REPO / "scripts" / "bench"), *argv], cwd=folder,
                          capture_output=True, text=True, timeout=600,
                          env={**environment, "BENCH_PYTHON": sys.executable})


def test_from_a_users_project_folder(tmp_path):
    """The user's project: its package mymodels (the model's factory) and a package of its own
    named datasets, which the benchmark's hides (said in one line)."""
    project = tmp_path / "project"
    (project / "mymodels").mkdir(parents=True)
    (project / "mymodels" / "__init__.py").write_text("")
    (project / "mymodels" / "linear.py").write_text(FACTORY)
    (project / "datasets").mkdir()
    (project / "datasets" / "__init__.py").write_text("")
    out = subprocess.run([sys.executable, "-m", "bench", "status"], cwd=project,
                         capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode != 0 and "No module named bench" in out.stderr  # what the launcher fixes
    out = bench(project, "evaluate-model", "mymodels.linear:load", "--dataset", "mnist", "--name",
                "linear", "--preset", "smoke", "--device", "cpu", "--evaluations", "probes")
    assert out.returncode == 0, out.stderr[-2000:]
    notes = [line for line in out.stderr.splitlines() if line.startswith("bench: note:")]
    assert len(notes) == 1 and f"datasets ({project / 'datasets'})" in notes[0]
    (run_dir,) = (project / "results" / "runs").iterdir()  # in the user's folder, by default
    assert run_dir.name.startswith("linear-mnist-") and (run_dir / "status.json").is_file()
    log = (run_dir / "run.log").read_text()  # an external run's log: its evaluation's lines
    assert " bench evaluate-model (pid " in log and f"{run_dir.name} probes: started" in log
    out = bench(project / "mymodels", "report", "--results", "../results")  # relative: the user's
    assert out.returncode == 0, out.stderr[-2000:]
    assert (project / "results" / "report.md").is_file()
    assert not (REPO / "results" / "runs" / run_dir.name).exists()


def test_the_repository_comes_first_and_the_working_directory_second(tmp_path):
    path = ["", str(tmp_path), "/usr/lib/python3.11", str(REPO)]
    assert launcher.search_path(path, tmp_path) == [str(REPO), str(tmp_path), "/usr/lib/python3.11"]
    assert launcher.search_path(["", "/x"], REPO) == [str(REPO), "/x"]  # from the root: once


def test_a_collision_is_a_module_or_a_package_not_a_data_folder(tmp_path):
    (tmp_path / "datasets").mkdir()  # data, no __init__.py: nothing to import
    (tmp_path / "methods.py").write_text("")
    found = launcher.collisions([str(REPO), str(tmp_path)])
    assert found == [("methods", str(tmp_path / "methods.py"))]
    assert launcher.collision_line(found).count("\n") == 0
    assert launcher.collisions([str(REPO)]) == []
