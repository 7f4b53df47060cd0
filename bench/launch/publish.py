"""Publishing the campaign's finished runs into the repository's results/paper/, and a study's
runs (bench/spec/studies.py) into results/studies/<study>/ beside it.

A published run is a run folder as bench run wrote it, less what is heavy: its records and every
evaluation's table, the losses as per-epoch means (losses_per_epoch.csv, not the per-iteration
losses.csv) and its training record (training.json: the segments that trained it and its
fingerprint); never its checkpoint. Its figures, the tables that are a figure's data
(Evaluation.figure_data: the t-SNE's tsne.csv, megabytes of points, published gzip-compressed as
tsne.csv.gz, which every reader takes in its place) and its trained networks (model.safetensors,
bench/run/weights.py) come only with the grid's runs of FIGURE_SEEDS, never with a study's, and
the networks only where the run stays within WEIGHTS_BUDGET_MB with them (LORD's per-image codes
count: its runs go without). The binding limit is the repository's: a GPU lease carries at most
64 MiB of its files, so they stay within REPOSITORY_BUDGET_MB, and ``bench campaign publish``
says when they are over. ``load_method`` and ``bench evaluate`` open a published run with weights
as they open any run; ``bench evaluate --evaluations tsne`` recomputes a missing t-SNE from them.

Each run is staged in a temporary folder beside runs/ and renamed into place: an interrupted
publish leaves results/paper/ as it was (a run being replaced is set aside first and put back by
the next publish if the replacement never arrived).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from bench.errors import InputError, UnusableFile
from bench.store import results

TRAINING_FILE, EPOCH_LOSSES_FILE = results.TRAINING_FILE, results.EPOCH_LOSSES_FILE
RECORDS = (results.CONFIG_FILE, results.ENV_FILE, results.STATUS_FILE, results.EVALUATION_FILE,
           results.FIGURES_FILE)
HEAVY_TABLES = (results.LOSSES_FILE,)
FIGURE_SEEDS = (0,)  # the grid's figures (and their data) are published for these seeds only
STAGING_PREFIX, SET_ASIDE_PREFIX = ".staging-", ".replaced-"
WEIGHTS_BUDGET_MB = 3.0  # a published run with its weights (mathieu's networks: 1.6 MB)
# The repository's files (tracked, and untracked ones git does not ignore): a GPU lease carries
# 64 MiB of them in all, with the previous lease's pack (scripts/gpu_evidence.sh packs into what
# is left) and wheels. The code and MNIST take 13.5 MB, the grid's seed-0 runs with weights and
# figures about 22 MB.
REPOSITORY_BUDGET_MB = 44.0
STUDIES_FOLDER = "studies"  # beside results/paper/: results/studies/<study>/


@dataclasses.dataclass(frozen=True)
class Published:
    run_id: str
    label: str
    action: str  # "published", "replaced", "refused: ...", "unchanged"
    folder: Path | None = None  # where it was published (None: refused)


def published_run_ids(paper: Path) -> set[str]:
    runs = results.runs_dir(paper)
    if not runs.is_dir() or runs.is_symlink():
        return set()
    return {p.name for p in runs.iterdir()
            if results.is_plain_name(p.name) and p.is_dir() and not p.is_symlink()
            and results.is_complete(p)}


def published_fingerprint(paper: Path, run_id: str):
    from bench.run.fingerprint import TrainingFingerprint
    path = results.runs_dir(paper) / run_id / TRAINING_FILE
    if path.is_symlink():
        return None
    return TrainingFingerprint.from_dict(results.read_json(path).get("fingerprint"))


def restore_set_aside(paper: Path) -> None:
    """Undo a publish interrupted between setting a run aside and renaming its replacement in;
    remove staging folders of interrupted publishes."""
    finish_interrupted_replacements(results.runs_dir(paper))


def finish_interrupted_replacements(folder: Path) -> None:
    """What ``replace_with_staged`` left in ``folder`` when it was killed: a staging folder
    removed, a folder it had set aside and not replaced put back (links are left alone)."""
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.is_symlink() or not entry.is_dir():
            continue
        if entry.name.startswith(SET_ASIDE_PREFIX):
            target = folder / entry.name[len(SET_ASIDE_PREFIX):].rsplit(".", 1)[0]
            if target.exists():
                shutil.rmtree(entry)
            else:
                os.rename(entry, target)
        elif entry.name.startswith(STAGING_PREFIX):
            shutil.rmtree(entry)


def staging_folder(target: Path) -> Path:
    """Where ``target``'s replacement is written before ``replace_with_staged``."""
    return target.parent / f"{STAGING_PREFIX}{target.name}.{os.getpid()}"


def replace_with_staged(staging: Path, target: Path) -> bool:
    """``staging`` renamed into ``target``'s place, an existing ``target`` set aside first and
    removed after (``finish_interrupted_replacements`` undoes a kill in between); whether a
    folder was replaced."""
    if not target.exists():
        os.rename(staging, target)
        return False
    aside = target.parent / f"{SET_ASIDE_PREFIX}{target.name}.{os.getpid()}"
    os.rename(target, aside)
    os.rename(staging, target)
    shutil.rmtree(aside)
    return True


def trained_from_a_clean_tree(run_dir: Path) -> str | None:
    """None when the run's env.json names a commit and a tree without changes, else why not."""
    git = results.read_json(run_dir / results.ENV_FILE).get("git")
    if not isinstance(git, dict) or not isinstance(git.get("revision"), str) \
            or git.get("revision") == "unknown":
        return "its revision is unknown"
    if git.get("dirty") is not False:
        return (f"it was trained from a modified tree (revision {git['revision'][:12]} with "
                "changes or untracked files)")
    return None


def epoch_losses(losses_csv: Path) -> str:
    """losses.csv's per-iteration rows as one row per epoch: the epoch, its iteration count and
    each term's mean."""
    import io

    import pandas as pd
    text = results.read_run_file(losses_csv, results.TABLE_BYTES_LIMIT)
    if text is None:
        raise UnusableFile(results.not_readable(losses_csv, "table", results.TABLE_BYTES_LIMIT))
    losses = pd.read_csv(io.StringIO(text))
    grouped = losses.drop(columns=["iteration"]).groupby("epoch", sort=True)
    table = grouped.mean()
    table.insert(0, "iterations", grouped.size())
    return table.reset_index().to_csv(index=False, float_format="%.6g")


def figure_data_tables() -> set[str]:
    """The tables that are a figure's data (Evaluation.figure_data), published with the figures."""
    from bench.evaluations import EVALUATIONS
    return {evaluation.file for evaluation in EVALUATIONS.values() if evaluation.figure_data}


def copied_files(run_dir: Path, with_figures: bool) -> list[str]:
    """The files of ``run_dir`` published as they are: its records and tables, less the heavy
    ones and a figure's data (``stage`` compresses it), and its figures only ``with_figures``."""
    left_out = set(HEAVY_TABLES) | figure_data_tables()
    names = list(RECORDS) + sorted(p.name for p in run_dir.glob("*.csv") if p.name not in left_out)
    if with_figures:
        names += sorted(p.name for p in run_dir.glob("*.png"))
    return list(dict.fromkeys(names))


def publishes_figures_and_weights(folder: Path, paper: Path, seed) -> bool:
    """Whether a run of ``seed`` is published into ``folder`` with its figures and weights: a
    grid run of FIGURE_SEEDS (a study's never: its README shows the probes alone, and its config
    retrains it)."""
    return folder == paper and seed in FIGURE_SEEDS


def stage(run_dir: Path, staging: Path, training: dict, with_figures_and_weights: bool) -> None:
    """The published form of ``run_dir`` written into ``staging``; ``with_figures_and_weights``:
    with its figures, their data, and its weights if the run stays within WEIGHTS_BUDGET_MB with
    them."""
    from bench.run.trained_method import load_method
    from bench.run.weights import WEIGHTS_FILE, save_weights
    staging.mkdir(parents=True)
    for name in copied_files(run_dir, with_figures_and_weights):
        source = run_dir / name
        if source.is_file() and not source.is_symlink():
            shutil.copyfile(source, staging / name)
    if with_figures_and_weights:
        for name in sorted(figure_data_tables()):
            compress_table(run_dir / name, staging / f"{name}{results.COMPRESSED_SUFFIX}")
    results.write_text_atomic(staging / EPOCH_LOSSES_FILE, epoch_losses(run_dir / results.LOSSES_FILE))
    results.write_json_atomic(staging / TRAINING_FILE, training)
    if with_figures_and_weights:
        save_weights(load_method(run_dir), staging / WEIGHTS_FILE)
        if folder_size(staging) > WEIGHTS_BUDGET_MB * 2**20:
            (staging / WEIGHTS_FILE).unlink()


def compress_table(source: Path, target: Path) -> None:
    """``source`` (a figure's data: tsne.csv, 1.6 MB of points at the paper preset) written
    gzip-compressed into ``target`` (a seventh of it), reproducibly (no time in the header); the
    readers take either (results.table_file). Nothing when ``source`` is absent."""
    import gzip
    data = results.read_run_bytes(source, results.TABLE_BYTES_LIMIT)
    if data is not None:
        results.write_atomic(target, lambda tmp: Path(tmp).write_bytes(
            gzip.compress(data, compresslevel=9, mtime=0)))


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and not p.is_symlink())


def publish(campaign, paper: Path, current_fingerprints: dict | None = None,
            folders: dict[str, set[Path]] | None = None) -> list[Published]:
    """Copy every finished campaign run that is not yet in its folder (or whose published copy was
    trained by other code) there: a study's run into results/studies/<study>/ beside ``paper``
    (its training record names the study, ``folders`` too: run id -> the folders the campaign's
    schedule publishes it into), any other into ``paper``. A run trained from a modified tree, or
    stale at HEAD (``current_fingerprints``: run id -> fingerprint at HEAD, where known), is
    refused."""
    prepare(paper)
    done = []
    source_runs = results.runs_dir(campaign.results)
    for run_dir in sorted(source_runs.iterdir()) if source_runs.is_dir() else []:
        if not results.is_complete(run_dir):
            continue
        config = results.read_json(run_dir / results.CONFIG_FILE)
        run_id, seed = run_dir.name, config.get("seed")
        label = f"{config.get('method')} {config.get('method_config', {}).get('z_dim')}/" \
                f"{config.get('method_config', {}).get('s_dim')} seed {seed}"
        training = campaign.training_record(run_id)
        if still_open(training):
            done.append(Published(run_id, label, "waiting: its worker has not yet closed its "
                                                 "training record (the next publish takes it)"))
            continue
        refused = refusal(run_dir, training, (current_fingerprints or {}).get(run_id))
        if refused:
            done.append(Published(run_id, label, f"refused: {refused}"))
            continue
        for folder in sorted(destinations(paper, training, (folders or {}).get(run_id, set()))):
            if folder != paper:
                results.not_a_link(folder.parent)  # results/studies/
            action = publish_into(folder, run_dir, training,
                                  publishes_figures_and_weights(folder, paper, seed))
            done.append(Published(run_id, label, action, folder))
    return done


def destinations(paper: Path, training: dict, scheduled: set[Path]) -> set[Path]:
    """The folders a run is published into: the study its training record names and those of
    the schedule, else ``paper``."""
    study = training.get("study")
    named = {paper.parent / STUDIES_FOLDER / study} if results.is_plain_name(study) else set()
    return (named | scheduled) or {paper}


def still_open(training: dict | None) -> bool:
    """Whether a segment of the training record is open: the run's status says complete, but its
    worker has not yet written the segment's end (its CPU time, its exit code), or was killed
    before it could (the next start of the campaign closes it)."""
    segments = (training or {}).get("segments")
    return isinstance(segments, list) and any(isinstance(s, dict) and s.get("open") is True
                                              for s in segments)


def refusal(run_dir: Path, training: dict | None, now: dict | None) -> str | None:
    """Why a finished run is not published (``now``: its fingerprint at HEAD), or None."""
    from bench.run.fingerprint import TrainingFingerprint
    if training is None:
        return "no training record (not trained by the campaign)"
    unclean = trained_from_a_clean_tree(run_dir)
    if unclean:
        return unclean
    started = TrainingFingerprint.from_dict(training.get("fingerprint"))
    current = TrainingFingerprint.from_dict(now)
    if started is not None and current is not None and started.matches(current) is False:
        return "stale (HEAD trains it differently; the campaign retrains it)"
    return None


def prepare(folder: Path) -> Path:
    """``folder``'s runs/, made, not a link, with what an interrupted publish left undone."""
    results.not_a_link(folder, results.runs_dir(folder))
    results.runs_dir(folder).mkdir(parents=True, exist_ok=True)
    restore_set_aside(folder)
    return results.runs_dir(folder)


def publish_into(folder: Path, run_dir: Path, training: dict,
                 with_figures_and_weights: bool) -> str:
    """Publish ``run_dir`` into ``folder``'s runs/ (with its figures, their data and its weights
    if ``with_figures_and_weights``: ``stage``); what was done ("published", "replaced",
    "unchanged")."""
    runs = prepare(folder)
    run_id = run_dir.name
    target = runs / run_id
    if target.is_dir() and results.is_complete(target):
        same_training = (results.read_json(target / TRAINING_FILE).get("segments")
                         == training.get("segments"))
        if same_training and published_fingerprint(folder, run_id) is not None:
            return "unchanged"
    staging = staging_folder(target)
    try:
        stage(run_dir, staging, training, with_figures_and_weights)
        return "replaced" if replace_with_staged(staging, target) else "published"
    except BaseException:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        raise


def check_budget(paper: Path) -> list[str]:
    """Published runs of ``paper`` over WEIGHTS_BUDGET_MB."""
    over = []
    for run_dir in sorted(results.runs_dir(paper).glob("*")) if results.runs_dir(paper).is_dir() else []:
        size = folder_size(run_dir)
        if size > WEIGHTS_BUDGET_MB * 2**20:
            over.append(f"{run_dir.name}: {size / 2**20:.1f} MB (budget {WEIGHTS_BUDGET_MB:.0f} MB a run)")
    return over


def repository_bytes(inside: Path) -> int | None:
    """The bytes of the files a GPU lease carries from the git checkout holding ``inside``: its
    tracked files and the untracked ones git does not ignore (links as links); None outside a
    checkout."""
    import subprocess
    inside = next(p for p in (Path(inside).absolute(), *Path(inside).absolute().parents) if p.is_dir())
    try:
        top = subprocess.run(["git", "-C", str(inside), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=60)
        if top.returncode != 0:
            return None
        root = Path(top.stdout.strip())
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    total = 0
    for name in set(listed.stdout.decode("utf-8", "surrogateescape").split("\0")) - {""}:
        try:
            total += (root / name).lstat().st_size
        except OSError:  # tracked and deleted
            continue
    return total


def repository_over_budget(inside: Path) -> str | None:
    """A line when the repository holding ``inside`` is over REPOSITORY_BUDGET_MB, else None."""
    size = repository_bytes(inside)
    if size is None or size <= REPOSITORY_BUDGET_MB * 2**20:
        return None
    return (f"the repository's files: {size / 2**20:.1f} MB (budget {REPOSITORY_BUDGET_MB:.0f} MB: "
            f"a GPU lease carries 64 MiB with its pack)")


def refuse_unknown_campaign(campaign) -> None:
    if not campaign.results.is_dir():
        raise InputError(f"no campaign results in {campaign.folder}: python -m bench campaign start")
