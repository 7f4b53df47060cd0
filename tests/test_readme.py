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
