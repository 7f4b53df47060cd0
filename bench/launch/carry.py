"""What the campaign carries from one machine to the next through the repository: its unfinished
runs and the fingerprints it computed, in results/campaign/ beside results/paper/.

The campaign's folder is a cache (~/.cache): a working session on a fresh machine starts without
it. A run of the paper preset takes 1.5 to 4 CPU-hours (one thread), more than a session has,
and fingerprinting every published run anew takes two workers about ten minutes. So ``bench
campaign publish`` also writes:

  unfinished/<run id>/  each run the campaign has begun and not finished, once its checkpoint
                        holds half an hour of training (CARRY_FROM_CPU_MINUTES): its checkpoint
                        (checkpoint.pt), its loss log (losses.csv.gz, gzip-compressed),
                        config.json, run.log and its training record (training.json); removed
                        once the run has finished
  fingerprints.json     each run's last computed fingerprint with the SHA-256 of the source files
                        the process that computed it had loaded (the campaign folder's
                        fingerprints/sources.json, each distinct set of sources once)

and a campaign on a machine whose folder lacks a run's checkpoint resumes it from there
(``restore_run``), and reuses a carried fingerprint whose sources are all unchanged. Everything
read back is untrusted, as any results folder: no link is followed, sizes are bounded, the
checkpoint is read with weights_only and checked against the run's config when the run resumes,
the loss log's rows against the checkpoint's, and the record's fingerprint is compared with the
current code's (a run begun by code that trains differently is started again, not resumed).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

from bench.launch.publish import (REPOSITORY_BUDGET_MB, finish_interrupted_replacements,
                                  folder_size, replace_with_staged, repository_bytes,
                                  staging_folder)
from bench.run.live import RUN_LOG
from bench.store import results

CARRY_FOLDER = "campaign"  # results/campaign/, beside results/paper/
UNFINISHED, FINGERPRINTS_FILE = "unfinished", "fingerprints.json"
CARRIED_FILES = (results.CONFIG_FILE, RUN_LOG)  # copied as they are, besides the two below
LOG_BYTES_LIMIT = 4 * 2**20
# A run is carried once its checkpoint holds this much training: a checkpoint is 2.5 to 7.3 MB
# (mathieu: its three optimisers' states), each carry stays in the repository's history, and a
# quick study run (5 to 17 minutes) costs less to train again than to carry.
CARRY_FROM_CPU_MINUTES = 30


def carry_folder(paper: Path) -> Path:
    return Path(paper).parent / CARRY_FOLDER


def unfinished_dir(carried: Path, run_id: str) -> Path:
    return carried / UNFINISHED / run_id


# --- writing (bench campaign publish) ---------------------------------------------------------
def room_to_carry(paper: Path) -> float:
    """The bytes the repository holding ``paper`` has left of REPOSITORY_BUDGET_MB (unbounded
    outside a git checkout)."""
    size = repository_bytes(paper)
    return float("inf") if size is None else REPOSITORY_BUDGET_MB * 2**20 - size


def carry_unfinished(campaign, carried: Path,
                     least_cpu_seconds: float = CARRY_FROM_CPU_MINUTES * 60,
                     room: float = float("inf")) -> list[str]:
    """Copy each of the campaign's unfinished runs whose checkpoint holds at least
    ``least_cpu_seconds`` of training (its record's segments) into ``carried``'s unfinished/
    (replacing its earlier copy) within ``room`` more bytes than ``carried`` holds now (a copy
    replaced or removed frees its own; a run that does not fit is not carried), and remove the
    copies of runs that have finished since; what was done, a line a run."""
    results.not_a_link(carried, carried / UNFINISHED)
    finish_interrupted_replacements(carried / UNFINISHED)
    lines = []
    runs = results.runs_dir(campaign.results)
    for run_dir in sorted(runs.iterdir()) if runs.is_dir() else []:
        run_id = run_dir.name
        if not results.is_plain_name(run_id) or run_dir.is_symlink() or not run_dir.is_dir():
            continue
        copy = unfinished_dir(carried, run_id)
        results.not_a_link(copy)  # removed or replaced below: never what a link points to
        held = folder_size(copy) if copy.is_dir() else 0
        if results.is_complete(run_dir):
            if copy.is_dir():
                shutil.rmtree(copy)
                room += held
                lines.append(f"{run_id}: finished, its carried checkpoint removed")
            continue
        record = campaign.training_record(run_id)
        if record is None or not (run_dir / results.CHECKPOINT_FILE).is_file():
            continue
        if trained_cpu_seconds(record) < least_cpu_seconds:
            lines.append(f"{run_id}: unfinished, not carried ({trained_cpu_seconds(record) / 60:.0f} "
                         f"CPU minutes trained, under {least_cpu_seconds / 60:.0f})")
            continue
        carry = carry_run(run_dir, record, copy, room + held)
        if carry is None:
            continue
        iterations, size = carry
        if iterations is None:
            if copy.is_dir():
                shutil.rmtree(copy)
                room += held
            lines.append(f"{run_id}: unfinished, not carried ({size / 2**20:.1f} MB: the repository "
                         f"would be over its budget of {REPOSITORY_BUDGET_MB:.0f} MB)")
            continue
        room += held - size
        lines.append(f"{run_id}: unfinished, carried at iteration {iterations}")
    return lines


def trained_cpu_seconds(record: dict) -> float:
    segments = record.get("segments")
    return sum(s["cpu_seconds"] for s in segments if isinstance(s, dict) and isinstance(
        s.get("cpu_seconds"), (int, float))) if isinstance(segments, list) else 0.0


def carry_run(run_dir: Path, record: dict, target: Path,
              room: float = float("inf")) -> tuple[int | None, int] | None:
    """``run_dir`` as it stands (a worker may be training it) written into ``target``: the
    checkpoint first, then the loss log, which therefore holds at least the checkpoint's rows
    (the log is written before the checkpoint at an epoch's end; a resumed run drops the rows
    past its checkpoint's). (The iterations carried, its bytes); (None, its bytes) when it takes
    more than ``room`` bytes, and is not written; None when the checkpoint is unreadable."""
    from bench.run.checkpoints import read_progress
    checkpoint = results.read_run_bytes(run_dir / results.CHECKPOINT_FILE,
                                        results.CHECKPOINT_BYTES_LIMIT)
    if checkpoint is None:
        return None
    losses = results.read_run_bytes(run_dir / results.LOSSES_FILE, results.TABLE_BYTES_LIMIT)
    staging = staging_folder(target)
    staging.mkdir(parents=True)
    try:
        (staging / results.CHECKPOINT_FILE).write_bytes(checkpoint)
        if losses is not None:
            (staging / f"{results.LOSSES_FILE}{results.COMPRESSED_SUFFIX}").write_bytes(
                gzip.compress(losses, compresslevel=9, mtime=0))
        for name in CARRIED_FILES:
            data = results.read_run_bytes(run_dir / name, LOG_BYTES_LIMIT)
            if data is not None:
                (staging / name).write_bytes(data)
        results.write_json_atomic(staging / results.TRAINING_FILE, record)
        iterations = read_progress(staging / results.CHECKPOINT_FILE)
        size = folder_size(staging)
        if size > room:
            shutil.rmtree(staging)
            return None, size
        replace_with_staged(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return iterations, size


def carry_fingerprints(campaign, carried: Path, sources_file: str) -> int:
    """The campaign's computed fingerprints (fingerprints/``sources_file``) merged into
    ``carried``'s fingerprints.json (a run's newer entry replaces its carried one); the number of
    runs it holds."""
    computed = results.read_json(campaign.fingerprints / sources_file)
    merged = carried_fingerprints(carried)
    merged.update({run_id: entry for run_id, entry in computed.items()
                   if results.is_plain_name(run_id) and isinstance(entry, dict)
                   and isinstance(entry.get("sources"), dict)})
    sets: dict[str, dict] = {}
    runs = {}
    for run_id, entry in sorted(merged.items()):
        sources = dict(sorted(entry["sources"].items()))
        key = hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:16]
        sets[key] = sources
        runs[run_id] = {"sources": key, "revision": entry.get("revision"),
                        "fingerprint": entry.get("fingerprint")}
    results.not_a_link(carried)
    results.write_json_atomic(carried / FINGERPRINTS_FILE, {"source_sets": sets, "runs": runs})
    return len(runs)


# --- reading (a campaign worker) ---------------------------------------------------------------
def carried_fingerprints(carried: Path) -> dict[str, dict]:
    """Run id -> {"sources": {path: SHA-256}, "revision", "fingerprint"} as carried (the form of
    the campaign folder's sources.json); entries that are not of that form are left out."""
    data = results.read_json(carried / FINGERPRINTS_FILE)
    sets, runs = data.get("source_sets"), data.get("runs")
    if not (isinstance(sets, dict) and isinstance(runs, dict)):
        return {}
    found = {}
    for run_id, entry in runs.items():
        if not (results.is_plain_name(run_id) and isinstance(entry, dict)):
            continue
        sources = sets.get(entry.get("sources")) if isinstance(entry.get("sources"), str) else None
        if isinstance(sources, dict):
            found[run_id] = {"sources": sources, "revision": entry.get("revision"),
                             "fingerprint": entry.get("fingerprint")}
    return found


def carried_record(carried: Path, run_id: str) -> dict | None:
    """The carried training record of ``run_id``, when it is one (its run id, a list of segments
    that are objects, a fingerprint object), else None."""
    folder = unfinished_dir(carried, run_id)
    if not results.is_plain_name(run_id) or folder.is_symlink():
        return None
    record = results.read_json(folder / results.TRAINING_FILE)
    segments = record.get("segments")
    if record.get("run_id") != run_id or not isinstance(record.get("fingerprint"), dict) \
            or not isinstance(segments, list) or not all(isinstance(s, dict) for s in segments):
        return None
    return record


def restore_run(carried: Path, run_id: str, run_dir: Path) -> dict | None:
    """The carried run ``run_id`` written into ``run_dir`` (which holds no checkpoint: it is
    replaced), its loss log unpacked; its training record (a segment left open by the machine it
    was carried from closed, at the carried checkpoint's iterations), or None when nothing usable
    is carried for it."""
    from bench.run.checkpoints import read_progress
    record = carried_record(carried, run_id)
    if record is None:
        return None
    folder = unfinished_dir(carried, run_id)
    checkpoint = results.read_run_bytes(folder / results.CHECKPOINT_FILE,
                                        results.CHECKPOINT_BYTES_LIMIT)
    if checkpoint is None:
        return None
    losses = results.read_table_text(folder / f"{results.LOSSES_FILE}{results.COMPRESSED_SUFFIX}",
                                     results.TABLE_BYTES_LIMIT)
    results.not_a_link(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    for name in CARRIED_FILES:
        data = results.read_run_bytes(folder / name, LOG_BYTES_LIMIT)
        if data is not None:
            results.write_atomic(run_dir / name, lambda tmp, data=data: tmp.write_bytes(data))
    if losses is not None:
        results.write_text_atomic(run_dir / results.LOSSES_FILE, losses)
    results.write_atomic(run_dir / results.CHECKPOINT_FILE, lambda tmp: tmp.write_bytes(checkpoint))
    iterations = read_progress(run_dir / results.CHECKPOINT_FILE)
    for segment in record["segments"]:
        if segment.get("open") is True:
            segment.update({"open": False, "to_iteration": iterations,
                            "ended_by": "carried to another machine through results/campaign/"})
    return record
