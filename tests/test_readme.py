"""The README's quick start and CI stay in step."""
import re

from tests.conftest import REPO


def readme_test_command():
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\n```\n(.+)\n```", text)
    assert match, "README lost its marked test command"
    return match.group(1)


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert readme_test_command() in ci


def test_readme_main_command_uses_the_bundled_data_and_the_cli():
    text = (REPO / "README.md").read_text()
    assert "python -m bench run --methods all --dataset mnist" in text
    assert "python -m bench report" in text


def test_the_readme_example_of_an_external_model_runs_as_written(tmp_path):
    """"Evaluate your own model": its file, saved as its first line says, and the command that
    line gives, run from the folder holding it, evaluate the model (exit 0, a complete run). The
    command says --preset ci (minutes: numbers worth reading); it runs here at --preset smoke
    (seconds), given last, which the README says."""
    import os
    import shlex
    import subprocess
    import sys

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Evaluate your own model"):]
    code = re.search(r"```python\n(.+?)```", section, re.S).group(1)
    first = code.splitlines()[0]
    file_name, command = re.fullmatch(r"# (\S+); then: (python -m bench .+)", first).groups()
    (tmp_path / file_name).write_text(code)
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "bench", "evaluate-model"]
    assert argv[argv.index("--preset") + 1] == "ci"  # the README starts at ci, never smoke
    assert "`tests/test_readme.py` runs the example as written, at `--preset smoke`" in \
        " ".join(text.split())
    out = subprocess.run([sys.executable, *argv[1:], "--results", str(tmp_path / "results"),
                          "--preset", "smoke"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = (tmp_path / "results" / "runs").iterdir()
    assert (run_dir / "status.json").is_file() and (run_dir / "swap.csv").is_file()
    assert out.stdout.splitlines()[-1].startswith(f"done {run_dir.name}: test accuracy s ")


def test_the_readme_says_what_a_cell_holds_as_the_report_does():
    from bench.sections.experiments import CELL_SENTENCE
    text = " ".join((REPO / "README.md").read_text().split())
    assert CELL_SENTENCE in text
