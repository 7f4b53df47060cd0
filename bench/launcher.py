"""The benchmark run from any folder: ``scripts/bench <command> ...`` is ``python -m bench
<command> ...`` run where the user is (README, "Run it from your own project").

``python -m bench`` finds the benchmark only from the repository root: elsewhere "No module named
bench". The launcher puts the repository first on the import path and the working directory
second, so that ``package.module:factory`` names the user's own modules as ``python -m`` would,
and stays in the working directory, so that every relative path (``--results``, a model's file,
``--data-dir``) is the user's and results go to ``results/`` there
(bench.store.results.DEFAULT_RESULTS). The benchmark's top-level packages (``bench``, ``methods``,
``datasets``) then take the place of any others of those names: one line says so where the
working directory or the installed packages hold one (HuggingFace's ``datasets`` is common), since
code of the user's that imports it would get the benchmark's. Standard library only: it runs
before anything of the benchmark is imported.
"""
from __future__ import annotations

import importlib.machinery
import os
import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "methods", "datasets")  # the repository's top-level packages


def _same(entry: str, folder: Path) -> bool:
    try:
        return Path(entry or ".").resolve() == folder.resolve()
    except OSError:
        return False


def search_path(path: list[str], cwd: Path) -> list[str]:
    """``path`` (sys.path) with the repository first and the working directory second, each once
    (``python -c`` and ``python -m`` add the working directory as "" first)."""
    rest = [entry for entry in path if not _same(entry, REPO) and not _same(entry, cwd)]
    return [str(REPO), *([] if _same(str(cwd), REPO) else [str(cwd)]), *rest]


def collisions(path: list[str]) -> list[tuple[str, str]]:
    """(name, where) of each module or regular package named as one of PACKAGES that ``path``
    (without the repository) holds: the benchmark's, first on the path, hides it. A folder
    without ``__init__.py`` (a data folder named datasets) is no package of the user's."""
    others = [entry for entry in path if not _same(entry, REPO)]
    found = []
    for name in PACKAGES:
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, others)
        except (ImportError, OSError, ValueError):
            continue
        if spec is not None and spec.origin and os.path.isfile(spec.origin):
            found.append((name, str(Path(spec.origin).parent if spec.submodule_search_locations
                                    else spec.origin)))
    return found


def collision_line(found: list[tuple[str, str]]) -> str:
    """The one line that says which of the user's packages the benchmark's hide."""
    names = ", ".join(f"{name} ({where})" for name, where in found)
    return (f"bench: note: the benchmark's own packages come first on the import path, so these "
            f"of the same name cannot be imported in this process (code of yours that imports "
            f"them gets the benchmark's): {names}")


def main(argv: list[str] | None = None) -> None:
    """Run ``python -m bench`` with ``argv`` (default: the command line) from the working
    directory."""
    argv = sys.argv[1:] if argv is None else argv
    cwd = Path.cwd()
    sys.path[:] = search_path(sys.path, cwd)
    found = collisions(sys.path)
    if found:
        print(collision_line(found), file=sys.stderr)
    sys.argv = ["bench", *argv]
    runpy.run_module("bench", run_name="__main__", alter_sys=True)
