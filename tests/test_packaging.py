"""pyproject.toml, the requirements files and constraints.txt stay in step."""
from collections import Counter

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.cli import MINIMUM_TORCH
from bench.report import comparison
from tests.conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a requirements file: no comments, blank lines or options (-r)."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def requirement_key(line: str) -> tuple:
    requirement = Requirement(line)
    return (canonicalize_name(requirement.name), tuple(sorted(requirement.extras)),
            str(requirement.specifier), str(requirement.marker or ""))


def differences(listed: list[str], declared: list[str]) -> list[str]:
    """The requirements in only one of the two lists (empty: the same requirements)."""
    first, second = Counter(map(requirement_key, listed)), Counter(map(requirement_key, declared))
    return ([f"only in the first: {key}" for key in sorted(first - second)]
            + [f"only in the second: {key}" for key in sorted(second - first)])


def constraint_problems(text: str) -> list[str]:
    """Lines of a constraints file that are not `name==version` (or a comment), and names pinned
    more than once."""
    problems, names = [], Counter()
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            requirement = Requirement(line)
        except ValueError:
            problems.append(f"not a requirement: {line!r}")
            continue
        specifiers = list(requirement.specifier)
        if (len(specifiers) != 1 or specifiers[0].operator != "==" or requirement.extras
                or requirement.marker or requirement.url or line.strip() != line):
            problems.append(f"not name==version: {line!r}")
        names[canonicalize_name(requirement.name)] += 1
    return problems + [f"pinned {count} times: {name}" for name, count in names.items() if count > 1]


def pins(text: str) -> dict[str, str]:
    return {canonicalize_name(Requirement(line).name): next(iter(Requirement(line).specifier)).version
            for line in requirement_lines(text)}


def project():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def read(name: str) -> str:
    return (REPO / name).read_text()


def test_differences_ignore_spacing_comments_and_name_spelling_but_not_versions():
    listed = requirement_lines("# a comment\n-r other.txt\nscikit_learn >= 1.3  # why\n\n")
    assert listed == ["scikit_learn >= 1.3"]
    assert differences(listed, ["scikit-learn>=1.3"]) == []
    assert differences(["torch>=2.4"], ["torch>=2.5"])
    assert differences(["torch>=2.4", "numpy>=1.24"], ["torch>=2.4"])
    assert differences(["torch>=2.4"], ["torch>=2.4", "torch>=2.4"])


def test_requirements_txt_lists_the_projects_dependencies():
    assert differences(requirement_lines(read("requirements.txt")), project()["dependencies"]) == []


def test_requirements_dev_txt_adds_the_dev_extra():
    text = read("requirements-dev.txt")
    assert "-r requirements.txt" in text.splitlines()
    assert differences(requirement_lines(text), project()["optional-dependencies"]["dev"]) == []


def test_constraint_problems_finds_loose_and_repeated_pins():
    assert constraint_problems("# a comment\n\ntorch==2.14.1\nnumpy==2.4.6\n") == []
    assert constraint_problems("torch>=2.4\n")
    assert constraint_problems("torch==2.14.1,<3\n")
    assert constraint_problems("torch==2.14.1  # why\n")
    assert constraint_problems("numpy==2.4.6\nnumpy==2.4.5\n")


def test_constraints_pin_every_requirement_exactly_once():
    text = read("constraints.txt")
    assert constraint_problems(text) == []
    required = {canonicalize_name(Requirement(line).name)
                for name in ("requirements.txt", "requirements-dev.txt")
                for line in requirement_lines(read(name))}
    assert required - set(pins(text)) == set()


def test_the_readme_and_ci_install_with_the_constraints():
    commands = [line for name in ("README.md", ".ci/run") for line in read(name).splitlines()
                if line.startswith("python3 -m venv")]
    assert len(commands) == 3
    assert all(" -c constraints.txt " in command for command in commands)


def test_the_committed_baseline_was_made_with_the_pinned_torch_and_numpy():
    # Updating the pins means training the ci grid again and writing its baseline anew.
    baseline = comparison.read_baseline(comparison.baseline_path("mnist", "ci"))
    pinned = pins(read("constraints.txt"))
    assert comparison.version_notes(baseline, {name: pinned[name] for name in comparison.VERSIONED}) == []
    assert set(baseline[comparison.LIBRARIES]) == {comparison.libraries_text(pinned)}


def test_the_start_up_refusal_and_the_requirements_share_one_torch_floor():
    """requirements.txt's floor for torch is the one `bench` refuses below at start-up, and it is
    no older than 2.10, whose safe loading of checkpoints the project relies on."""
    (torch,) = [Requirement(line) for line in requirement_lines(read("requirements.txt"))
                if Requirement(line).name == "torch"]
    (floor,) = [spec.version for spec in torch.specifier if spec.operator == ">="]
    assert tuple(int(part) for part in floor.split(".")[:2]) == MINIMUM_TORCH >= (2, 10)
