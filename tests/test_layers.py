"""The layers of bench/ (docs/architecture.md), read from the import graph of the source: every
import, at module level or inside a function, is an edge. Imports go one way, so a module can be
read knowing only the layers below it."""
import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("bench", "methods", "datasets")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """The project modules ``path`` imports, each with whether the import is at module level."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                found.append((name, id(node) in top))
    return found


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name belongs to (``bench.store.results.X`` -> its module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def graph(level_only: bool = False) -> dict[str, set[str]]:
    modules = source_modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported, at_top in imports(path):
            target = resolve(imported, modules)
            if target and target != name and (at_top or not level_only):
                # importing a package's module also runs the package's __init__
                edges[name].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def in_layer(name: str, *layers: str) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in layers)


def test_the_import_graph_has_no_cycle():
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()))


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_metrics_import_nothing_else_from_the_project():
    edges = graph()
    wrong = {m: sorted(t for t in targets if not in_layer(t, "bench.metrics"))
             for m, targets in edges.items() if in_layer(m, "bench.metrics")}
    assert not any(wrong.values()), wrong


def test_methods_and_datasets_never_import_bench():
    edges = graph()
    wrong = {m: sorted(t for t in targets if in_layer(t, "bench"))
             for m, targets in edges.items() if in_layer(m, "methods", "datasets")}
    assert not any(wrong.values()), wrong


def test_store_and_report_import_no_run_layer():
    # what reads a results folder never trains: it needs neither the run layer nor methods
    edges = graph()
    wrong = {m: sorted(t for t in targets
                       if in_layer(t, "bench.run", "bench.launch", "bench.cli", "methods"))
             for m, targets in edges.items() if in_layer(m, "bench.store", "bench.report")}
    assert not any(wrong.values()), wrong


TORCH_FREE = ("bench.store", "bench.report", "bench.evaluations.base", "bench.evaluations",
              "bench.errors", "bench.cli")


@pytest.mark.parametrize("layer", TORCH_FREE)
def test_layers_that_read_results_do_not_import_torch_at_module_level(layer):
    """Checked by importing, in a fresh interpreter, every module of the layer: a module-level
    import anywhere below them would load torch."""
    import subprocess
    import sys
    names = sorted(m for m in source_modules() if in_layer(m, layer)
                   and (layer != "bench.evaluations" or m == "bench.evaluations"))
    code = ("import sys\n" + "".join(f"import {n}\n" for n in names) +
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", (names, out.stdout)
