"""The paper campaign (bench/launch/campaign.py) and publishing (bench/launch/publish.py), on the
smoke preset, each test with its own scratch repository and campaign folder (never the user's
campaign). A scratch repository is the working tree's files (tracked and untracked, not ignored)
committed anew: the campaign trains a committed revision."""
import gzip
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.launch import campaign as campaigning
from bench.launch import publish as publishing
from bench.evaluations import EVALUATIONS
from bench.evaluations.base import is_current
from bench.launch.campaign import Campaign
from bench.report.paper_results import BEGIN, END, paper_table_markdown, with_table
from bench.report.study_results import study_readme_markdown
from bench.run.fingerprint import TrainingFingerprint
from bench.spec.studies import STUDIES, Study, Variant
from bench.store import results
from bench.store.records import load_run
from tests.conftest import REPO

GRID = ["--preset", "smoke", "--methods", "ccvae", "--seeds", "0", "--sizes", "16/16",
        "--fingerprint-iterations", "5"]
# ccvae has studies of its own at the quick preset (minutes a run): a test's campaign trains the
# studies it names, none by default.
NO_STUDIES = ["--studies", "none"]
RUN_ID_PREFIX = "ccvae-mnist-"


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


# What the campaign published and carried (30 MB and more): a scratch repository starts without
# them, as its own campaign's results go there.
NOT_COPIED = ("results/paper/", "results/studies/", "results/campaign/")


def scratch_repository(where: Path) -> Path:
    files = git(REPO, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    repo = where / "repo"
    for name in filter(None, files):
        source = REPO / name
        if source.is_file() and not source.is_symlink() and not name.startswith(NOT_COPIED):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, repo / name)
    git(repo, "init", "-q")
    commit(repo, "scratch")
    return repo


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q",
        "-m", message)


def bench(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def wait_idle(campaign: Campaign, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while campaign.holder() is not None:
        assert time.monotonic() < deadline, campaign.log_path.read_text()[-3000:]
        time.sleep(0.5)


def run_campaign(repo: Path, folder: Path, studies: tuple[str, ...] = tuple(NO_STUDIES)) -> Campaign:
    out = bench("campaign", "start", "--dir", str(folder), *GRID, *studies, cwd=repo)
    assert out.returncode == 0, out.stderr
    campaign = Campaign(folder)
    wait_idle(campaign)
    return campaign


def publish(repo: Path, folder: Path, *more: str):
    return bench("campaign", "publish", "--dir", str(folder), "--paper",
                 str(repo / "results" / "paper"), "--readme", str(repo / "README.md"), *more,
                 cwd=repo)


def tables(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.glob("*.csv"))
            if p.name not in ("losses.csv", "losses_per_epoch.csv")}


def the_run(folder: Path) -> Path:
    (run_dir,) = results.runs_dir(folder).glob(f"{RUN_ID_PREFIX}*")
    return run_dir


def test_a_campaign_killed_resumes_publishes_weights_that_reevaluate_alike_and_retrains_stale_runs(tmp_path):
    repo = scratch_repository(tmp_path)
    folder = tmp_path / "campaign"
    started = bench("campaign", "start", "--dir", str(folder), *GRID, *NO_STUDIES, cwd=repo)
    assert started.returncode == 0, started.stderr
    again = bench("campaign", "start", "--dir", str(folder), cwd=repo)
    assert "already running" in again.stdout
    campaign = Campaign(folder)
    deadline = time.monotonic() + 300
    # once the run has its folder (it is training or evaluating), the campaign is killed
    while not list(results.runs_dir(campaign.results).glob(f"{RUN_ID_PREFIX}*/config.json")):
        assert time.monotonic() < deadline and campaign.holder() is not None, \
            campaign.log_path.read_text()[-3000:]
        time.sleep(0.05)
    child = json.loads(campaign.current_path.read_text())["pid"]
    os.kill(campaign.holder(), signal.SIGKILL)
    deadline = time.monotonic() + 120
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:  # ends with its parent
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists()
    run_campaign(repo, folder)  # resumes

    run_dir = the_run(campaign.results)
    assert results.is_complete(run_dir)
    reference = tmp_path / "reference"
    alone = bench("run", "--methods", "ccvae", "--dataset", "mnist", "--preset", "smoke", "--seeds",
                  "0", "--z-dim", "16", "--s-dim", "16", "--results", str(reference), "--device", "cpu",
                  "--no-together", cwd=repo, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert alone.returncode == 0, alone.stderr
    assert tables(run_dir) == tables(the_run(reference))
    segments = campaign.training_record(run_dir.name)["segments"]
    assert len(segments) == 2 and not any(s["open"] for s in segments)
    assert segments[0]["revision"] == git(repo, "rev-parse", "HEAD").strip()

    status = bench("campaign", "status", "--dir", str(folder), cwd=repo)
    assert "finished: python -m bench campaign publish" in status.stdout, status.stdout

    out = publish(repo, folder)
    assert out.returncode == 0, out.stdout + out.stderr
    published = results.runs_dir(repo / "results" / "paper") / run_dir.name
    assert (published / "model.safetensors").is_file() and not (published / "checkpoint.pt").exists()
    assert not (published / "losses.csv").exists() and (published / "losses_per_epoch.csv").is_file()
    assert sum(p.stat().st_size for p in published.iterdir()) < 3 * 2**20
    assert not (published / "tsne.csv").exists()  # compressed: every reader takes tsne.csv.gz
    assert load_run(published).table("tsne.csv").equals(load_run(run_dir).table("tsne.csv"))
    assert is_current(EVALUATIONS["tsne"], published)
    readme = (repo / "README.md").read_text()
    assert with_table(readme, paper_table_markdown(repo / "results" / "paper", repo)) == readme
    assert "| ccvae | 16 / 16 | 1 |" in readme
    assert "published" in bench("campaign", "status", "--dir", str(folder), cwd=repo).stdout

    again = publish(repo, folder)
    assert "unchanged" in again.stdout
    evaluated = bench("evaluate", "--results", str(repo / "results" / "paper"), "--force",
                      "--device", "cpu", cwd=repo)
    assert evaluated.returncode == 0, evaluated.stderr
    assert tables(published) == tables(run_dir)  # the weights alone give the run's own numbers

    # Stale or not: a change that keeps the numbers leaves the published run alone, one that
    # changes them has it retrained and replaced.
    run_id = run_dir.name

    def fingerprints_computed() -> int:
        return campaign.log_path.read_text().count("fingerprinting ")

    computed = fingerprints_computed()
    (repo / "docs" / "a-note.md").write_text("A document: no source file a fingerprint ran.\n")
    commit(repo, "a document")
    run_campaign(repo, folder)
    assert fingerprints_computed() == computed  # reused: every source file is unchanged

    method = repo / "methods" / "ccvae.py"
    method.write_text(method.read_text() + "# a comment: the same numbers\n")
    commit(repo, "a refactor")
    run_campaign(repo, folder)
    assert fingerprints_computed() > computed  # computed again, and equal
    assert len(campaign.training_record(run_id)["segments"]) == 2  # not retrained
    status = bench("campaign", "status", "--dir", str(folder), cwd=repo).stdout
    assert f"{run_id}  published" in status and "STALE" not in status, status

    text = method.read_text()
    changed = text.replace('x1.numel()}', 'x1.numel() * 1.001}')
    assert changed != text
    method.write_text(changed)
    commit(repo, "another KL")
    published_before = publishing.published_fingerprint(repo / "results" / "paper", run_id)
    run_campaign(repo, folder)  # retrains the stale run
    status = bench("campaign", "status", "--dir", str(folder), cwd=repo).stdout
    assert "STALE" in status, status
    record = campaign.training_record(run_id)
    assert len(record["segments"]) == 1
    assert TrainingFingerprint.from_dict(record["fingerprint"]).matches(published_before) is False
    out = publish(repo, folder)
    assert "replaced" in out.stdout, out.stdout + out.stderr
    status = bench("campaign", "status", "--dir", str(folder), cwd=repo).stdout
    assert "STALE" not in status, status


def fake_finished_run(campaign: Campaign, run_id: str, dirty: bool) -> Path:
    run_dir = results.runs_dir(campaign.results) / run_id
    run_dir.mkdir(parents=True)
    results.write_json_atomic(run_dir / results.CONFIG_FILE, {"method": "ccvae", "seed": 0,
                                                              "method_config": {"z_dim": 16, "s_dim": 16}})
    results.write_json_atomic(run_dir / results.ENV_FILE, {"git": {"revision": "a" * 40, "dirty": dirty}})
    results.write_json_atomic(run_dir / results.STATUS_FILE, {"state": "complete"})
    campaign.write_training_record(run_id, {"run_id": run_id, "segments": []})
    return run_dir


def test_publish_refuses_a_run_trained_from_a_modified_tree(tmp_path):
    campaign = Campaign(tmp_path / "campaign")
    fake_finished_run(campaign, "ccvae-mnist-0000000000", dirty=True)
    done = publishing.publish(campaign, tmp_path / "paper")
    assert [d.action for d in done] == ["refused: it was trained from a modified tree (revision "
                                        "aaaaaaaaaaaa with changes or untracked files)"]
    assert list(results.runs_dir(tmp_path / "paper").iterdir()) == []


def test_publish_waits_for_a_finished_runs_worker_to_close_its_training_record(tmp_path):
    """The run's status says complete a moment before its worker writes the segment's end (its
    CPU time): published then, the copy would say less than the run took."""
    campaign = Campaign(tmp_path / "campaign")
    fake_finished_run(campaign, "ccvae-mnist-0000000000", dirty=False)
    campaign.write_training_record("ccvae-mnist-0000000000", {
        "run_id": "ccvae-mnist-0000000000", "segments": [{"open": True, "cpu_seconds": 84.0}]})
    (done,) = publishing.publish(campaign, tmp_path / "paper")
    assert done.action.startswith("waiting: its worker has not yet closed its training record")
    assert list(results.runs_dir(tmp_path / "paper").iterdir()) == []


def test_the_dirty_flag_counts_untracked_files(tmp_path, monkeypatch):
    from bench.run import environment
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    commit(repo, "one file")
    monkeypatch.setattr(environment, "REPO_ROOT", repo)
    assert environment.git_revision()["dirty"] is False
    (repo / "new.py").write_text("y = 2\n")
    assert environment.git_revision()["dirty"] is True


def test_an_interrupted_publish_leaves_results_paper_as_it_was(tmp_path, monkeypatch):
    campaign = Campaign(tmp_path / "campaign")
    fake_finished_run(campaign, "ccvae-mnist-0000000001", dirty=False)
    paper = tmp_path / "paper"
    old = results.runs_dir(paper) / "ccvae-mnist-0000000001"
    old.mkdir(parents=True)
    (old / "metrics.csv").write_text("old numbers\n")
    results.write_json_atomic(old / results.STATUS_FILE, {"state": "complete"})

    def dies_halfway(run_dir, staging, training, with_figures, weights_within_budget=False):
        staging.mkdir(parents=True)
        (staging / "metrics.csv").write_text("new numbers\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(publishing, "stage", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        publishing.publish(campaign, paper)
    assert sorted(p.name for p in results.runs_dir(paper).iterdir()) == [old.name]
    assert (old / "metrics.csv").read_text() == "old numbers\n"

    # killed between setting the old copy aside and renaming the new one in: put back
    os.rename(old, results.runs_dir(paper) / f".replaced-{old.name}.12345")
    publishing.restore_set_aside(paper)
    assert (old / "metrics.csv").read_text() == "old numbers\n"


def with_files_of_a_trained_run(run_dir: Path, seed: int) -> Path:
    """``run_dir`` (fake_finished_run) of ``seed``, with a metric's table, the t-SNE's table and
    figure, and two iterations of losses."""
    config = results.read_json(run_dir / results.CONFIG_FILE)
    results.write_json_atomic(run_dir / results.CONFIG_FILE, {**config, "seed": seed})
    (run_dir / results.METRICS_FILE).write_text("probe,accuracy\ns,99.0\n")
    (run_dir / "tsne.csv").write_text("code,index,label,x,y\nz_mean,0,7,0.1,0.2\n")
    (run_dir / "tsne.png").write_bytes(b"\x89PNG")
    (run_dir / results.LOSSES_FILE).write_text("iteration,epoch,loss\n1,1,2.0\n2,1,1.0\n")
    return run_dir


def test_the_figures_their_data_and_the_weights_are_published_with_the_grids_seed_0_only(tmp_path, monkeypatch):
    from bench.run import trained_method, weights
    campaign = Campaign(tmp_path / "campaign")
    for run_id, seed in (("ccvae-mnist-0000000005", 0), ("ccvae-mnist-0000000006", 1),
                         ("ccvae-mnist-0000000007", 0)):
        with_files_of_a_trained_run(fake_finished_run(campaign, run_id, dirty=False), seed)
    campaign.write_training_record("ccvae-mnist-0000000007", {"segments": [], "study": "tiny"})
    monkeypatch.setattr(trained_method, "load_method", lambda run_dir: None)
    monkeypatch.setattr(weights, "save_weights", lambda method, path: path.write_bytes(b"weights"))
    paper = tmp_path / "results" / "paper"
    done = publishing.publish(campaign, paper)
    assert [d.action for d in done] == ["published"] * 3

    def published(folder: Path, run_id: str) -> set[str]:
        return {p.name for p in (results.runs_dir(folder) / run_id).iterdir()}

    figures = published(paper, "ccvae-mnist-0000000005")
    assert {"metrics.csv", "tsne.csv.gz", "tsne.png"} <= figures and "tsne.csv" not in figures
    packed = results.runs_dir(paper) / "ccvae-mnist-0000000005" / "tsne.csv.gz"
    assert gzip.decompress(packed.read_bytes()) == (
        results.runs_dir(campaign.results) / "ccvae-mnist-0000000005" / "tsne.csv").read_bytes()
    assert "model.safetensors" in figures
    for folder, run_id in ((paper, "ccvae-mnist-0000000006"),
                           (tmp_path / "results" / "studies" / "tiny", "ccvae-mnist-0000000007")):
        files = published(folder, run_id)
        assert "metrics.csv" in files and "training.json" in files, files
        assert not {"tsne.csv", "tsne.csv.gz", "tsne.png", "model.safetensors"} & files, (run_id, files)
    assert publishing.figure_data_tables() == {"tsne.csv"}  # the registry's: Evaluation.figure_data


def test_the_readme_shows_the_table_of_results_paper():
    readme = (REPO / "README.md").read_text()
    assert BEGIN in readme and END in readme
    table = paper_table_markdown(REPO / "results" / "paper", REPO)
    assert with_table(readme, table) == readme, (
        "README.md's paper table is not results/paper's: python -m bench campaign publish "
        "(or bench report --results results/paper) rewrites it")


def test_the_paper_table_says_what_its_marks_mean(tmp_path):
    """szabo's z is deterministic: its row is marked, and the mark explained under the table."""
    from bench.report.page import DETERMINISTIC_NOTE
    from bench.sections.experiments import DETERMINISTIC_MARK
    paper = tmp_path / "paper"
    for run in ("ccvae-mnist-444445ef4b", "szabo-mnist-c42b732628"):
        shutil.copytree(results.runs_dir(REPO / "results" / "paper") / run, results.runs_dir(paper) / run)
    table = paper_table_markdown(paper, REPO)
    assert f"| szabo {DETERMINISTIC_MARK} |" in table and DETERMINISTIC_NOTE in table
    shutil.rmtree(results.runs_dir(paper) / "szabo-mnist-c42b732628")
    table = paper_table_markdown(paper, REPO)
    assert DETERMINISTIC_MARK not in table and DETERMINISTIC_NOTE not in table


def test_runs_published_without_figures_are_trained_without_the_tsne():
    """A study's run and a grid run beyond FIGURE_SEEDS: every default evaluation but the one whose
    table is a figure's data, which publishing leaves out of them; a grid run of seed 0: all."""
    from bench.evaluations import by_default
    study = STUDIES[0]
    without = [e.name for e in by_default() if e.name != "tsne"]
    assert campaigning.evaluation_arguments(campaigning.GridRun("ccvae", 16, 16, 0)) == []
    for run in (campaigning.GridRun("ccvae", 16, 16, 1),
                campaigning.StudyRun(study, study.variants[0], 0)):
        assert campaigning.evaluation_arguments(run) == ["--evaluations", ",".join(without)]


def test_a_fingerprints_sources_are_the_suites_files_it_loaded(tmp_path, monkeypatch):
    from bench.run.fingerprint import loaded_sources, unchanged_sources
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "pkg" / "loss.py").write_text("WEIGHT = 1.0\n")
    (tree / ".venv").mkdir()
    (tree / ".venv" / "dependency.py").write_text("")
    monkeypatch.syspath_prepend(str(tree))
    for name in ("pkg.loss", "dependency"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    __import__("pkg.loss")
    monkeypatch.syspath_prepend(str(tree / ".venv"))
    __import__("dependency")
    (tree / "bench" / "launch").mkdir(parents=True)
    (tree / "bench" / "launch" / "schedule_of_runs.py").write_text("RUNS = 3\n")
    monkeypatch.delitem(sys.modules, "bench.launch.schedule_of_runs", raising=False)
    spec = importlib.util.spec_from_file_location("bench.launch.schedule_of_runs",
                                                  tree / "bench" / "launch" / "schedule_of_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "bench.launch.schedule_of_runs", module)
    sources = loaded_sources(tree)
    # not the environment's, nor the campaign's (it picks the run, not what the run computes)
    assert set(sources) == {"pkg/__init__.py", "pkg/loss.py"}
    assert unchanged_sources(sources, tree)
    (tree / "pkg" / "loss.py").write_text("WEIGHT = 2.0\n")
    assert not unchanged_sources(sources, tree)
    (tree / "pkg" / "loss.py").write_text("WEIGHT = 1.0\n")
    assert unchanged_sources(sources, tree)
    (tree / "pkg" / "loss.py").unlink()
    (tree / "pkg" / "loss.py").symlink_to(tree / "pkg" / "__init__.py")
    assert not unchanged_sources(sources, tree)
    for record in ({}, [], {"../x.py": "0"}, {"pkg/__init__.py": 1}):
        assert not unchanged_sources(record, tree)  # read from a file: anything


def test_fingerprints_compare_only_when_computed_alike():
    base = TrainingFingerprint("a" * 64, 200, "2.14.1", "160c608b", "AVX2", 10.0)
    assert base.matches(TrainingFingerprint("a" * 64, 200, "2.14.1", "160c608b", "AVX2", 12.0))
    assert base.matches(TrainingFingerprint("b" * 64, 200, "2.14.1", "160c608b", "AVX2", 10.0)) is False
    assert base.matches(TrainingFingerprint("b" * 64, 200, "2.15.0", "160c608b", "AVX2", 10.0)) is None
    assert base.matches(TrainingFingerprint("b" * 64, 200, "2.14.1", "ffffffff", "AVX2", 10.0)) is None
    assert TrainingFingerprint.from_dict({**base.to_dict(), "iterations": "200"}) is None
    assert TrainingFingerprint.from_dict([1, 2]) is None


def test_publish_refuses_a_finished_run_the_campaign_has_no_training_record_of(tmp_path):
    campaign = Campaign(tmp_path / "campaign")
    fake_finished_run(campaign, "ccvae-mnist-0000000002", dirty=False)
    (campaign.training / "ccvae-mnist-0000000002.json").unlink()
    done = publishing.publish(campaign, tmp_path / "paper")
    assert [d.action for d in done] == ["refused: no training record (not trained by the campaign)"]


# --- studies (bench/spec/studies.py) ---------------------------------------------------------------
# A study of two variants and one seed, a few iterations each: appended to a scratch repository's
# table, as a new study is added.
TINY_STUDY = """
STUDIES += (Study("tiny", question="Does a lighter KL weight change a smoke run?", method="ccvae",
                  epochs=2, seeds=(0,), variants=(Variant("defaults"),
                                                  Variant("KL weight 1.5", {"kl_weight": 1.5}))),)
"""


def test_a_campaign_trains_a_study_after_the_first_row_and_publishes_it_with_its_readme(tmp_path):
    repo = scratch_repository(tmp_path)
    table = repo / "bench" / "spec" / "studies.py"
    table.write_text(table.read_text() + TINY_STUDY)
    commit(repo, "a tiny study")
    folder = tmp_path / "campaign"
    campaign = run_campaign(repo, folder, ("--studies", "tiny"))
    log = campaign.log_path.read_text()
    trained = [line.split("training ", 1)[1].split(" (")[0] for line in log.splitlines()
               if "] training " in line]
    assert trained == ["ccvae 16/16 seed 0", "tiny: defaults, seed 0",
                       "tiny: KL weight 1.5, seed 0"], log[-3000:]
    study_ids = [re.search(r"\((ccvae-mnist-\w+)\)", line).group(1) for line in log.splitlines()
                 if "] training tiny:" in line]
    assert len(set(study_ids)) == 2  # a run of its own per variant
    for run_id in study_ids:  # the campaign's config of the run is what bench run trained
        assert results.is_complete(results.runs_dir(campaign.results) / run_id)

    status = bench("campaign", "status", "--dir", str(folder), cwd=repo).stdout
    assert "study tiny: ccvae, 2 epochs, published into results/studies/tiny/" in status, status
    assert status.count("finished: python -m bench campaign publish") == 3, status

    out = publish(repo, folder)
    assert out.returncode == 0, out.stdout + out.stderr
    studies = repo / "results" / "studies" / "tiny"
    assert sorted(p.name for p in results.runs_dir(studies).iterdir()) == sorted(study_ids)
    assert not (results.runs_dir(studies) / study_ids[0] / "model.safetensors").exists()
    grid_run = campaigning.GridRun("ccvae", 16, 16, 0, "smoke").config().run_id
    assert [p.name for p in results.runs_dir(repo / "results" / "paper").iterdir()] == [grid_run]
    readme = (studies / "README.md").read_text()
    assert "Does a lighter KL weight change a smoke run?" in readme
    assert "## KL weight 1.5" in readme and "Settings: kl_weight=1.5." in readme
    assert readme.count("| probe | train | test |") == 2
    assert readme.count("(one seed)") == 2 * 6 and "partial" not in readme, readme
    status = bench("campaign", "status", "--dir", str(folder), cwd=repo).stdout
    assert status.count("  published") == 3, status
    assert "unchanged" in publish(repo, folder).stdout


@pytest.fixture
def holding_gvae_and_lord(monkeypatch):
    monkeypatch.setitem(campaigning.HELD, "gvae", "held by the test")
    monkeypatch.setitem(campaigning.HELD, "lord", "held by the test")


def test_studies_follow_the_unheld_seed_0_runs_and_precede_seed_1_even_for_a_held_method(
        holding_gvae_and_lord):
    order = campaigning.trainable(campaigning.schedule({}))
    labels = [run.label for run in order]
    unheld = [m for m in campaigning.METHOD_ORDER if m not in campaigning.HELD]
    first_row = [f"{m} 16/16 seed 0" for m in unheld]
    study_labels = [f"{study.name}: {variant.label}, seed {seed}" for study in STUDIES
                    for seed in study.seeds for variant in study.variants]
    assert labels[:len(first_row)] == first_row
    assert labels[len(first_row):len(first_row) + len(study_labels)] == study_labels
    assert labels[len(first_row) + len(study_labels)] == f"{unheld[0]} 16/16 seed 1"
    assert "gvae-likelihood-scale: Hosoya's scale 5.27, seed 0" in labels  # gvae is held
    assert not any(label.startswith(("gvae 16/16", "lord 16/16")) for label in labels)
    assert labels.index("gvae-likelihood-scale: Hosoya's scale 5.27, seed 0") \
        < labels.index("gvae-likelihood-scale: squared error weight 1 (default), seed 1")


def study_named(name):
    return next(study for study in STUDIES if study.name == name)


def test_a_smaller_campaign_takes_the_studies_of_its_methods_or_those_it_names():
    assert {r.study.name for r in campaigning.study_runs({"methods": ["ccvae"]})} == {"ccvae-draws"}
    assert campaigning.study_runs({"studies": []}) == []
    assert [s.name for s in campaigning.campaign_studies({"methods": ["gvae", "lord"],
                                                          "studies": ["lord-weights"]})] \
        == ["lord-weights"]
    # A study without a budget of its own trains at the campaign's preset; one with (quick) at its.
    runs = campaigning.study_runs({"preset": "smoke"})
    assert {r.preset for r in runs if r.study.preset is None} == {"smoke"}
    assert all(r.preset == r.study.preset for r in runs if r.study.preset is not None)


def test_each_variant_of_a_study_is_a_run_of_its_own_at_the_study_budget():
    grid = {run.config().run_id for run in campaigning.paper_grid()}
    for study in STUDIES:
        preset = study.preset_in("paper")
        configs = [study.config(v, seed, preset) for v in study.variants for seed in study.seeds]
        assert {c.preset for c in configs} == {preset}
        assert len({c.run_id for c in configs}) == len(configs), study.name
        assert not grid & {c.run_id for c in configs}, study.name
        assert {c.method_config.epochs for c in configs} == {study.epochs}
        assert {(c.method_config.z_dim, c.method_config.s_dim) for c in configs} == {(16, 16)}
    scale = study_named("gvae-likelihood-scale")
    hosoya = scale.config(scale.variants[1], 0, "paper")
    assert hosoya.method_config.reconstruction_weight == 5.27
    lord = study_named("lord-weights")
    assert lord.config(lord.variants[0], 0, "paper").method_config.training_epochs == 40


def test_a_study_refuses_a_first_variant_with_settings_or_one_that_sets_the_epochs():
    with pytest.raises(ValueError, match="default"):
        Study("x", "?", "ccvae", 1, (0,), (Variant("a", {"kl_weight": 1.0}),))
    with pytest.raises(ValueError, match="epochs"):
        Study("x", "?", "ccvae", 1, (0,), (Variant("a"), Variant("b", {"epochs": 3})))


def fake_study_runs(folder: Path, study: Study, accuracies: dict[tuple[int, int], float]) -> None:
    """Published runs of ``study`` (smoke preset) with these s test accuracies, by (variant index,
    seed); every other probe at 50 %."""
    for (index, seed), s_test in accuracies.items():
        config = study.config(study.variants[index], seed, "smoke")
        run_dir = results.runs_dir(folder) / config.run_id
        run_dir.mkdir(parents=True)
        results.write_json_atomic(run_dir / results.CONFIG_FILE,
                                  {**config.to_dict(), "run_id": config.run_id,
                                   "variational_z": True})
        results.write_json_atomic(run_dir / results.STATUS_FILE, {"state": "complete"})
        rows = [{"run_id": config.run_id, "method": "ccvae", "dataset": "mnist", "preset": "smoke",
                 "seed": seed, "z_dim": 16, "s_dim": 16, "probe": probe, "split": split,
                 "accuracy": s_test if (probe, split) == ("s", "test") else 50.0}
                for probe in ("s", "z_sample", "z_mean") for split in ("train", "test")]
        results.write_table(run_dir / results.METRICS_FILE, results.METRICS_COLUMNS, rows)


def test_a_study_readme_gives_each_variant_its_interval_and_marks_missing_seeds(tmp_path):
    study = Study("three", "Which KL weight?", "ccvae", 1, (0, 1, 2),
                  (Variant("defaults"), Variant("KL 1.5", {"kl_weight": 1.5}),
                   Variant("KL 2", {"kl_weight": 2.0})))
    fake_study_runs(tmp_path, study, {(0, 0): 90.0, (0, 1): 92.0, (0, 2): 91.0,
                                      (1, 0): 98.0, (1, 1): 100.0, (2, 0): 80.0})
    readme = study_readme_markdown(study, tmp_path, "smoke")
    defaults, rest = readme.split("## defaults\n", 1)[1].split("## KL 1.5 (partial)\n", 1)
    two_seeds, one_seed = rest.split("## KL 2 (partial)\n", 1)
    # three seeds of 90, 92, 91: std 1, t(0.975, 2) = 4.303, half width 4.303 / sqrt(3) = 2.48
    assert "| s: the s probe (higher is better) | 50.00 [50.00, 50.00] | 91.00 [88.52, 93.48] |" \
        in defaults
    assert "Seeds published: 0, 1, 2." in defaults
    # two seeds of 98 and 100: half width t(0.975, 1) = 12.71, cut at 100 %
    assert "| 99.00 [86.29, 100.00] |" in two_seeds
    assert "Seeds published: 0, 1; partial: seed 2 still to come." in two_seeds
    assert "Settings: kl_weight=1.5." in two_seeds
    assert "80.00 (one seed)" in one_seed
    assert "Seeds published: 0; partial: seeds 1, 2 still to come." in one_seed


def test_a_study_run_is_published_into_the_folder_its_training_record_names(tmp_path, monkeypatch):
    campaign = Campaign(tmp_path / "campaign")
    fake_finished_run(campaign, "ccvae-mnist-0000000003", dirty=False)
    campaign.write_training_record("ccvae-mnist-0000000003", {"segments": [], "study": "tiny"})
    fake_finished_run(campaign, "ccvae-mnist-0000000004", dirty=False)
    campaign.write_training_record("ccvae-mnist-0000000004", {"segments": [], "study": "../up"})

    def stage(run_dir, staging, training, with_figures, weights_within_budget=False):
        staging.mkdir(parents=True)
        results.write_json_atomic(staging / results.STATUS_FILE, {"state": "complete"})

    monkeypatch.setattr(publishing, "stage", stage)
    done = publishing.publish(campaign, tmp_path / "results" / "paper")
    assert [(d.run_id, d.folder) for d in done] == [
        ("ccvae-mnist-0000000003", tmp_path / "results" / "studies" / "tiny"),
        ("ccvae-mnist-0000000004", tmp_path / "results" / "paper")]  # not a plain name: the paper's
    assert publishing.published_run_ids(tmp_path / "results" / "studies" / "tiny") == \
        {"ccvae-mnist-0000000003"}


def test_status_lists_each_study_under_its_heading(tmp_path, holding_gvae_and_lord):
    campaign = Campaign(tmp_path / "campaign")
    campaign.folder.mkdir()
    results.write_json_atomic(campaign.state_path, {"source": str(tmp_path / "no-repository"),
                                                    "methods": ["gvae"], "seeds": [0],
                                                    "sizes": [[16, 16]]})
    study = study_named("gvae-likelihood-scale")
    finished = study.config(study.variants[1], 2, "paper").run_id
    (results.runs_dir(campaign.results) / finished).mkdir(parents=True)
    results.write_json_atomic(results.runs_dir(campaign.results) / finished / results.STATUS_FILE,
                              {"state": "complete"})
    lines = campaigning.status_lines(campaign)
    heading = lines.index(f"study {study.name}: gvae, 20 epochs, published into "
                          f"results/studies/{study.name}/")
    grid_gvae = next(line for line in lines if line.strip().startswith("gvae 16/16 seed 0"))
    assert grid_gvae.endswith("held: held by the test")
    rows = lines[heading + 1:heading + 7]
    other_gvae_runs = sum(len(s.variants) * len(s.seeds) for s in STUDIES
                          if s.method == "gvae" and s is not study)
    assert rows[0].startswith("  squared error weight 1 (default), seed 0 gvae-mnist-")
    assert [row.rsplit("  ", 1)[1] for row in rows] == ["to do"] * 5 + [
        "finished: python -m bench campaign publish"]
    assert lines[-1] == f"1 held, {5 + other_gvae_runs} to do, 1 finished"


@pytest.mark.parametrize("threads", ["0", "-1", str((os.cpu_count() or 1) + 1)])
def test_start_refuses_threads_beyond_this_machines_cores_in_one_line(tmp_path, capsys, threads):
    from bench.cli import main
    assert main(["campaign", "start", "--threads", threads, "--dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--threads must be 1 to {os.cpu_count() or 1}" in err, err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("workers", ["0", str((os.cpu_count() or 1) + 1)])
def test_start_refuses_more_workers_than_cores_in_one_line(tmp_path, capsys, workers):
    from bench.cli import main
    assert main(["campaign", "start", "--workers", workers, "--dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--workers must be 1 to {os.cpu_count() or 1}" in err, err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("minutes", ["-1", "nan", "inf"])
def test_publish_refuses_a_carry_threshold_that_is_no_number_of_minutes(tmp_path, capsys, minutes):
    from bench.cli import main
    paper = tmp_path / "results" / "paper"
    assert main(["campaign", "publish", "--carry-from-minutes", minutes, "--dir",
                 str(tmp_path / "c"), "--paper", str(paper)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--carry-from-minutes must be 0 or more" in err, err
    assert not (tmp_path / "results").exists()


def test_a_run_is_claimed_by_one_worker_at_a_time(tmp_path):
    first, second = Campaign(tmp_path), Campaign(tmp_path)
    claim = first.claim("ccvae-mnist-0123456789")
    assert claim is not None and second.claim("ccvae-mnist-0123456789") is None
    assert second.claim("ccvae-mnist-9876543210") is not None  # another run is free
    claim.close()
    assert second.claim("ccvae-mnist-0123456789") is not None


def test_a_worker_moving_to_a_newer_revision_keeps_its_slot_throughout(tmp_path):
    """What serve does before exec'ing into a newer revision: the lock's descriptor goes to the
    new program, which holds the same slot; the slot is never free in between."""
    results.write_json_atomic(tmp_path / "state.json", {"workers": 2})
    old = Campaign(tmp_path)
    assert old.acquire("a" * 40) and old.slot == 0
    environment = old.hand_over_lock()
    descriptor = int(environment[campaigning.LOCK_HANDOVER].split(":")[1])
    program = ("import sys; from bench.launch.campaign import Campaign; c = Campaign(sys.argv[1]); "
               "print(c.acquire('b' * 40), c.slot, flush=True); sys.stdin.read()")
    new = subprocess.Popen([sys.executable, "-c", program, str(tmp_path)], env=environment,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                           pass_fds=(descriptor,), cwd=REPO)
    try:
        assert new.stdout.readline().split() == ["True", "0"]
        old._lock.close()  # the old program is gone (exec): only the inherited descriptor holds it
        assert Campaign(tmp_path).holders() == {0: (new.pid, "b" * 40)}
        other = Campaign(tmp_path)
        assert other.acquire("c" * 40) and other.slot == 1  # the next free slot, not slot 0
        other.release()
    finally:
        new.stdin.close()
        new.wait(timeout=60)
    assert Campaign(tmp_path).holders() == {}


def test_two_workers_train_two_runs_at_once_each_once(tmp_path):
    repo = scratch_repository(tmp_path)
    folder = tmp_path / "campaign"
    grid = [*GRID[:GRID.index("--seeds")], "--seeds", "0,1", *GRID[GRID.index("--seeds") + 2:]]
    out = bench("campaign", "start", "--dir", str(folder), "--workers", "2", *grid, *NO_STUDIES,
                cwd=repo)
    assert out.returncode == 0 and "2 worker(s)" in out.stdout, out.stdout + out.stderr
    campaign = Campaign(folder)
    autogroups = [Path(f"/proc/{pid}/autogroup") for pid, _ in campaign.holders().values()]
    if Path("/proc/sys/kernel/sched_autogroup_enabled").is_file() and \
            Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
        deadline = time.monotonic() + 60  # each worker lowers its session's group once it runs
        while not all(a.read_text().strip().endswith("nice 19") for a in autogroups):
            assert time.monotonic() < deadline, [a.read_text() for a in autogroups]
            time.sleep(0.1)
    deadline, both_shown = time.monotonic() + 600, False
    while campaign.holders():
        assert time.monotonic() < deadline, campaign.log_path.read_text()[-3000:]
        lines = campaigning.status_lines(campaign)
        both_shown |= all(any(line.startswith(f"worker {slot}: training: ccvae 16/16 seed ")
                              for line in lines) for slot in (0, 1))
        time.sleep(0.2)
    log = campaign.log_path.read_text()
    trained = sorted(line.split("training ", 1)[1].split(" (")[0] for line in log.splitlines()
                     if "] training " in line)
    assert trained == ["ccvae 16/16 seed 0", "ccvae 16/16 seed 1"], log[-3000:]
    records = [campaign.training_record(p.name) for p in results.runs_dir(campaign.results).iterdir()]
    assert all(results.is_complete(results.runs_dir(campaign.results) / r["run_id"]) for r in records)
    (first,), (second,) = (r["segments"] for r in records)
    assert {first["worker"], second["worker"]} == {0, 1}
    assert first["started"] < second["ended"] and second["started"] < first["ended"]  # at once
    assert both_shown, "status never showed both workers' runs"


def test_status_expects_the_end_at_the_last_epochs_rate_not_the_segments(tmp_path):
    """The segment's rate mixes busy hours (the campaign yields) with idle ones: the expected end
    follows the last epoch's rate, where the record has one."""
    import datetime
    campaign = Campaign(tmp_path)
    now = datetime.datetime.now().astimezone()
    segment = {"from_iteration": 0, "to_iteration": 1000, "open": True,
               "started": (now - datetime.timedelta(seconds=1000)).isoformat(timespec="seconds"),
               "checkpointed": now.isoformat(timespec="seconds"), "last_epoch_rate": 10.0}
    campaign.write_training_record("ccvae-mnist-0123456789", {"segments": [segment]})
    current = {"run_id": "ccvae-mnist-0123456789", "label": "ccvae 16/16 seed 0",
               "revision": "a" * 40, "iterations_per_epoch": 100, "total_iterations": 37000,
               "fingerprint_seconds": 10.0, "fingerprint_iterations": 50}
    lines = campaigning.current_run_lines(campaign, current)
    assert "10.00 iterations/s in its last epoch, 1.00 in this segment" in lines[1], lines
    end = datetime.datetime.strptime(lines[1].split("training ends about ")[1][:16], "%Y-%m-%d %H:%M")
    expected = now + datetime.timedelta(seconds=36000 / 10.0)  # one hour, not ten
    assert abs(end.replace(tzinfo=now.tzinfo) - expected) < datetime.timedelta(minutes=2), lines
    segment.pop("last_epoch_rate")
    campaign.write_training_record("ccvae-mnist-0123456789", {"segments": [segment]})
    assert "at the segment's rate" in campaigning.current_run_lines(campaign, current)[1]


def test_a_grid_run_keeps_its_weights_only_within_the_budget(tmp_path, monkeypatch):
    """3 MB a run: LORD's per-image codes (3.8 MB at z 16) count, so its runs go without."""
    from bench.run import trained_method, weights
    campaign = Campaign(tmp_path / "campaign")
    for run_id in ("ccvae-mnist-0000000011", "ccvae-mnist-0000000013"):  # 13's weights are light
        with_files_of_a_trained_run(fake_finished_run(campaign, run_id, dirty=False), 0)
    monkeypatch.setattr(trained_method, "load_method", lambda run_dir: run_dir.name)
    monkeypatch.setattr(weights, "save_weights", lambda name, path: path.write_bytes(
        b"w" * (2**10 if name.endswith("13") else 4 * 2**20)))
    paper = tmp_path / "results" / "paper"
    assert [d.action for d in publishing.publish(campaign, paper)] == ["published"] * 2
    assert not (results.runs_dir(paper) / "ccvae-mnist-0000000011" / "model.safetensors").exists()
    assert (results.runs_dir(paper) / "ccvae-mnist-0000000011" / "metrics.csv").is_file()
    assert (results.runs_dir(paper) / "ccvae-mnist-0000000013" / "model.safetensors").is_file()
    assert publishing.check_budget(paper) == []
    (results.runs_dir(paper) / "ccvae-mnist-0000000013" / "model.safetensors").write_bytes(b"w" * 3 * 2**20)
    assert publishing.check_budget(paper) == ["ccvae-mnist-0000000013: 3.0 MB (budget 3 MB a run)"]


def test_the_repository_budget_counts_what_a_lease_carries(tmp_path):
    """Tracked files and untracked ones git does not ignore, as the device tool sends them; not
    ignored ones, not a deleted tracked one; none outside a checkout."""
    repo = tmp_path / "repo"
    (repo / "results").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("ignored/\n")
    (repo / "tracked").write_bytes(b"t" * 1000)
    (repo / "gone").write_bytes(b"g" * 10)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    (repo / "gone").unlink()
    (repo / "results" / "untracked").write_bytes(b"u" * 100)
    (repo / "ignored").mkdir()
    with open(repo / "ignored" / "big", "wb") as big:
        big.truncate(100 * 2**20)
    assert publishing.repository_bytes(repo / "results") == 1000 + 100 + len("ignored/\n")
    assert publishing.repository_over_budget(repo / "results") is None
    with open(repo / "results" / "untracked", "wb") as big:
        big.truncate(int(publishing.REPOSITORY_BUDGET_MB * 2**20))
    assert publishing.repository_over_budget(repo).startswith("the repository's files: 44.0 MB")
    assert publishing.repository_bytes(tmp_path) is None


def test_this_repository_fits_a_gpu_lease():
    """A lease carries 64 MiB of the repository's files, with the last lease's pack and wheels:
    the published runs and carried checkpoints must leave room for those."""
    size = publishing.repository_bytes(REPO)
    if size is None:
        pytest.skip("not a git checkout")
    assert size <= publishing.REPOSITORY_BUDGET_MB * 2**20, (
        f"{size / 2**20:.1f} MB: the largest folders of results/ are the first to look at")


@pytest.mark.parametrize("packed", [b"not gzip at all", gzip.compress(b"x" * 4096)[:-12],
                                    gzip.compress(b"code,index\n" + b"0" * (2 * 2**20))],
                         ids=["not gzip", "cut short", "unpacks over the limit"])
def test_a_compressed_table_that_is_not_one_is_named_not_unpacked(tmp_path, monkeypatch, packed):
    """A results folder may come from someone else: a .gz table is unpacked up to the table limit
    and no further (a few kilobytes can unpack to gigabytes), and anything else is an error line."""
    from bench.errors import UnusableFile
    monkeypatch.setattr(results, "TABLE_BYTES_LIMIT", 2**20)
    (tmp_path / "tsne.csv.gz").write_bytes(packed)
    assert results.read_table_text(tmp_path / "tsne.csv.gz", results.TABLE_BYTES_LIMIT) is None
    published = results.runs_dir(REPO / "results" / "paper") / "ccvae-mnist-444445ef4b"
    run_dir = tmp_path / published.name
    run_dir.mkdir()
    for name in (results.CONFIG_FILE, results.STATUS_FILE):
        shutil.copyfile(published / name, run_dir / name)
    (run_dir / "tsne.csv.gz").write_bytes(packed)
    with pytest.raises(UnusableFile, match="tsne.csv.gz: not a table bench wrote"):
        load_run(run_dir).table("tsne.csv")


def test_workers_share_the_fingerprints_instead_of_each_computing_all(tmp_path, monkeypatch):
    """One worker computes the fingerprints no other is computing, then takes the rest from the
    others; it never computes the one another worker holds the claim of."""
    import threading

    from bench.run import fingerprint as fingerprinting
    campaign = Campaign(tmp_path)
    results.write_json_atomic(campaign.state_path, {"source": str(tmp_path / "repository")})
    runs = [campaigning.GridRun("ccvae", 16, 16, seed) for seed in (0, 1, 2)]
    ids = [run.config().run_id for run in runs]
    computed, fake = [], TrainingFingerprint("f" * 64, 5, "torch", "numerics", "AVX2", 1.0)

    def compute(config, data, iterations):
        computed.append(config.run_id)
        return fake
    monkeypatch.setattr(fingerprinting, "training_fingerprint", compute)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    server = campaigning.Server(campaign, runs)  # it takes over SIGTERM and SIGINT: given back
    for number, handler in handlers.items():
        signal.signal(number, handler)
    server.load_data = lambda: None
    others_claim = Campaign(tmp_path).claim(ids[0], campaigning.FINGERPRINT_CLAIM)
    worker = threading.Thread(target=server.share_fingerprints, args=(runs,))
    worker.start()
    deadline = time.monotonic() + 60
    while len(computed) < 2:
        assert time.monotonic() < deadline and worker.is_alive(), computed
        time.sleep(0.05)
    time.sleep(0.3)
    assert computed == ids[1:] and worker.is_alive()  # waiting for the other worker's
    rev_file = campaign.fingerprints / f"{server.revision}.json"
    results.write_json_atomic(rev_file, {**results.read_json(rev_file), ids[0]: fake.to_dict()})
    others_claim.close()
    worker.join(timeout=60)
    assert not worker.is_alive() and computed == ids[1:]
    assert set(results.read_json(rev_file)) == set(ids)


# Seed 1: a run published without figures, trained without the t-SNE (a third of its time)
SEED_1 = [*GRID[:GRID.index("--seeds")], "--seeds", "1", *GRID[GRID.index("--seeds") + 2:]]


def test_an_unfinished_run_carried_in_the_repository_resumes_on_a_fresh_machine(tmp_path):
    """A campaign stopped mid-run, its folder lost (a fresh machine): the run it carried in
    results/campaign/ comes back byte for byte (checkpoint, loss log, config, training record),
    and the next campaign resumes it from there (that a resumed run ends as one never stopped is
    tests/test_reliability.py's); the carried fingerprints are reused, not computed again; the
    carried copy goes once the run has finished."""
    from bench.launch import carry as carrying
    repo = scratch_repository(tmp_path)
    presets = repo / "bench" / "spec" / "presets.py"  # two epochs of 100 iterations: a stop lands
    text = presets.read_text()                         # inside the run's training
    presets.write_text(text.replace('"smoke": {"epochs": 1, "iterations_per_epoch": 3',
                                    '"smoke": {"epochs": 2, "iterations_per_epoch": 100'))
    assert presets.read_text() != text
    commit(repo, "a longer smoke preset")
    first = tmp_path / "first-machine"
    out = bench("campaign", "start", "--dir", str(first), *SEED_1, *NO_STUDIES, cwd=repo)
    assert out.returncode == 0, out.stderr
    campaign = Campaign(first)
    deadline = time.monotonic() + 300
    while not any(len(p.read_text().splitlines()) > 100 for p in
                  results.runs_dir(campaign.results).glob(f"*/{results.LOSSES_FILE}")):
        assert time.monotonic() < deadline and campaign.holder(), campaign.log_path.read_text()[-3000:]
        time.sleep(0.05)
    assert bench("campaign", "stop", "--dir", str(first), cwd=repo).returncode == 0
    run_id = the_run(campaign.results).name
    assert not results.is_complete(the_run(campaign.results))

    carried = repo / "results" / carrying.CARRY_FOLDER
    lines = carrying.carry_unfinished(campaign, carried)  # seconds of training: not worth carrying
    assert lines == [f"{run_id}: unfinished, not carried (0 CPU minutes trained, under 30)"]
    lines = carrying.carry_unfinished(campaign, carried, 0, room=1000)  # no room in the repository
    assert re.fullmatch(rf"{run_id}: unfinished, not carried \([0-9.]+ MB: the repository would be "
                        r"over its budget of 44 MB\)", lines[0]), lines
    assert not carrying.unfinished_dir(carried, run_id).exists()
    assert 44 * 2**20 - carrying.room_to_carry(repo / "results" / "paper") == publishing.repository_bytes(repo)
    out = publish(repo, first, "--carry-from-minutes", "0")
    unfinished = carrying.unfinished_dir(carried, run_id)
    assert f"{run_id}: unfinished, carried at iteration" in out.stdout, out.stdout + out.stderr
    assert {p.name for p in unfinished.iterdir()} == {"checkpoint.pt", "losses.csv.gz", "config.json",
                                                      "run.log", "training.json"}
    assert run_id in carrying.carried_fingerprints(carried)
    stopped = the_run(campaign.results)
    restored = tmp_path / "restored" / run_id
    record = carrying.restore_run(carried, run_id, restored)
    assert record == campaign.training_record(run_id)
    for name in (results.CHECKPOINT_FILE, results.LOSSES_FILE, results.CONFIG_FILE):
        assert (restored / name).read_bytes() == (stopped / name).read_bytes(), name
    commit(repo, "the campaign's unfinished run, carried")

    second = tmp_path / "second-machine"  # nothing of the first machine's folder
    second.mkdir()
    shutil.copyfile(first / "state.json", second / "state.json")  # the grid, not its runs
    status = bench("campaign", "status", "--dir", str(second), cwd=repo).stdout
    assert f"{run_id}  checkpointed at iteration {record['segments'][-1]['to_iteration']} (carried" \
        in status, status
    out = bench("campaign", "start", "--dir", str(second), *SEED_1, *NO_STUDIES, cwd=repo)
    assert out.returncode == 0, out.stderr
    wait_idle(Campaign(second))
    log = Campaign(second).log_path.read_text()
    assert "resuming the checkpoint carried in the repository (iteration 1" in log, log[-3000:]
    assert "fingerprinting" not in log, log[-3000:]
    resumed = the_run(Campaign(second).results)
    assert results.is_complete(resumed)
    logged = (stopped / results.LOSSES_FILE).read_text().splitlines()
    assert (resumed / results.LOSSES_FILE).read_text().splitlines()[:len(logged)] == logged
    segments = Campaign(second).training_record(run_id)["segments"]
    assert len(segments) == 2 and segments[1]["from_iteration"] == segments[0]["to_iteration"] > 100

    out = publish(repo, second)
    assert f"{run_id}: finished, its carried checkpoint removed" in out.stdout, out.stdout
    assert not unfinished.exists()
    published = results.runs_dir(repo / "results" / "paper") / run_id
    assert len(json.loads((published / "training.json").read_text())["segments"]) == 2


def test_a_carried_run_or_fingerprint_that_is_not_one_is_left_alone(tmp_path):
    """results/campaign/ is read as any results folder: a link, a record of other types or a
    name that is not plain restores nothing and writes nothing."""
    from bench.launch import carry as carrying
    carried, run_id = tmp_path / "campaign", "ccvae-mnist-0123456789"
    folder = carrying.unfinished_dir(carried, run_id)
    folder.mkdir(parents=True)
    record = {"run_id": run_id, "fingerprint": {}, "segments": [{"open": True}]}
    (tmp_path / "elsewhere.pt").write_bytes(b"not a checkpoint of this run")
    (folder / "checkpoint.pt").symlink_to(tmp_path / "elsewhere.pt")
    results.write_json_atomic(folder / "training.json", record)
    run_dir = tmp_path / "runs" / run_id
    assert carrying.restore_run(carried, run_id, run_dir) is None  # the checkpoint is a link
    (folder / "checkpoint.pt").unlink()
    (folder / "checkpoint.pt").write_bytes(b"bytes")
    for bad in ({**record, "segments": "many"}, {**record, "segments": [1]},
                {**record, "run_id": "another"}, {**record, "fingerprint": "f"}):
        results.write_json_atomic(folder / "training.json", bad)
        assert carrying.restore_run(carried, run_id, run_dir) is None, bad
    assert carrying.restore_run(carried, "../" + run_id, run_dir) is None
    assert not run_dir.exists()
    for bad in ({"source_sets": [], "runs": {}}, {"source_sets": {}, "runs": {"../x": {}}},
                {"source_sets": {"k": {"a.py": "0"}}, "runs": {run_id: {"sources": ["k"]}}}):
        results.write_json_atomic(carried / "fingerprints.json", bad)
        assert carrying.carried_fingerprints(carried) == {}, bad


def test_a_carry_interrupted_by_a_kill_is_finished_by_the_next(tmp_path):
    from bench.launch import carry as carrying
    unfinished = tmp_path / "campaign" / carrying.UNFINISHED
    (unfinished / ".staging-ccvae-mnist-0123456789.77").mkdir(parents=True)  # killed while staging
    (unfinished / ".replaced-mathieu-mnist-0123456789.78").mkdir()  # killed between its renames
    (unfinished / ".replaced-szabo-mnist-0123456789.79").mkdir()   # ... after the second
    (unfinished / "szabo-mnist-0123456789").mkdir()
    publishing.finish_interrupted_replacements(unfinished)
    assert sorted(p.name for p in unfinished.iterdir()) == ["mathieu-mnist-0123456789",
                                                           "szabo-mnist-0123456789"]


def test_a_narrowed_campaign_still_rewrites_every_published_studys_readme(tmp_path, monkeypatch):
    """A start with --methods lord leaves GVAE's studies out of its schedule: their runs finished
    before it are published under their study's label, and its README is rewritten."""
    from bench.cli import campaign as campaign_cli
    from bench.report import study_results
    folder = Campaign(tmp_path / "campaign")
    folder.folder.mkdir(parents=True)
    results.write_json_atomic(folder.state_path, {"methods": ["lord"]})
    study = next(s for s in STUDIES if s.method == "gvae")
    written = []
    monkeypatch.setattr(publishing, "published_run_ids", lambda where: {"x"} if study.name in str(where) else set())
    monkeypatch.setattr(study_results, "update_study_readme",
                        lambda s, where, preset: written.append((s.name, preset)) or True)
    lines = campaign_cli.publish_studies(folder, tmp_path / "results" / "paper")
    assert written == [(study.name, study.preset_in("paper"))], lines
    assert study.name not in {s.name for s in campaigning.campaign_studies(folder.state())}


def test_a_narrowed_campaign_is_widened_again_by_methods_all():
    import argparse
    from bench.cli import campaign as campaign_cli
    options = dict(methods=None, seeds=None, sizes=None, studies=None, fingerprint_iterations=None,
                   preset=None)
    assert campaign_cli.grid_options(argparse.Namespace(**{**options, "methods": "lord"})) == {
        "methods": ["lord"]}
    widened = campaign_cli.grid_options(argparse.Namespace(**{**options, "methods": "all"}))
    assert widened == {"methods": list(campaigning.METHOD_ORDER)}
    assert campaigning.paper_grid(widened) == campaigning.paper_grid({})


def test_a_carried_copy_no_run_of_this_machine_replaces_keeps_its_room(tmp_path):
    """On a fresh machine a carried run may not be restored yet: its copy stays, so it counts
    against the room left to carry others (a copy frees its room only when replaced or removed)."""
    from bench.launch import carry as carrying
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    paper = repo / "results" / "paper"
    paper.mkdir(parents=True)
    copy = carrying.unfinished_dir(carrying.carry_folder(paper), "ccvae-mnist-0000000001")
    copy.mkdir(parents=True)
    (copy / "checkpoint.pt").write_bytes(b"c" * 5000)
    assert carrying.room_to_carry(paper) == publishing.REPOSITORY_BUDGET_MB * 2**20 - 5000
    campaign = Campaign(tmp_path / "campaign")
    assert carrying.carry_unfinished(campaign, carrying.carry_folder(paper), 0, room=0) == []
    assert (copy / "checkpoint.pt").is_file()  # not this machine's run: left as it was


def test_a_carried_copy_that_is_a_link_is_refused_in_one_line_and_its_target_kept(tmp_path):
    """results/campaign/unfinished/ comes with the repository, maybe from someone else: a run's
    carried copy that is a link is named (UnusablePath), and what it points to is left as it was,
    whether the run has finished (its copy would be removed) or not (replaced)."""
    from bench.errors import UnusablePath
    from bench.launch import carry as carrying
    campaign = Campaign(tmp_path / "campaign")
    run_dir = results.runs_dir(campaign.results) / "ccvae-mnist-0000000001"
    run_dir.mkdir(parents=True)
    results.write_json_atomic(run_dir / results.STATUS_FILE, {"state": results.COMPLETE})
    carried = tmp_path / "repo" / "results" / carrying.CARRY_FOLDER
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not bench's")
    carrying.unfinished_dir(carried, run_dir.name).parent.mkdir(parents=True)
    carrying.unfinished_dir(carried, run_dir.name).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnusablePath, match="is a symbolic link"):
        carrying.carry_unfinished(campaign, carried, 0)
    assert (elsewhere / "keep.txt").read_text() == "not bench's"
    assert carrying.unfinished_dir(carried, run_dir.name).is_symlink()
