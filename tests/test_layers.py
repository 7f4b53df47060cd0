"""The layers of bench/ (docs/architecture.md), read from the import graph of the source: every
import, at module level or inside a function, is an edge, and so is a registry's import of every
module of its package (importlib over pkgutil.iter_modules). Imports go one way, down the ranks of
RANKS, so a module can be read knowing only the layers below it."""
import ast
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("bench", "methods", "datasets")


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_registry(tree: ast.Module) -> bool:
    """A package __init__ that imports every module of its package by name at run time."""
    calls = {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and isinstance(n.func.value, ast.Name)}
    return {"importlib.import_module", "pkgutil.iter_modules"} <= calls


def imports(path: Path, root: Path = REPO) -> list[tuple[str, bool]]:
    """The project modules ``path`` imports, each with whether the import is at module level."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root) if path.name == "__init__.py" else module_name(path, root).rpartition(".")[0]
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
    if path.name == "__init__.py" and is_registry(tree):
        found += [(f"{package}.{p.stem}", True) for p in path.parent.glob("*.py")
                  if p.name != "__init__.py"]
    return found


def source_modules(root: Path = REPO) -> dict[str, Path]:
    return {module_name(p, root): p for package in PACKAGES for p in (root / package).rglob("*.py")}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name belongs to (``bench.store.results.X`` -> its module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def graph(level_only: bool = False, root: Path = REPO) -> dict[str, set[str]]:
    modules = source_modules(root)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported, at_top in imports(path, root):
            target = resolve(imported, modules)
            # a module's own packages are initialised before it in any case: not an edge
            if target and not name.startswith(target + ".") and target != name \
                    and (at_top or not level_only):
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


# Every layer's rank, top to bottom (docs/architecture.md, "The import rule"). A module may import
# its own layer and the layers of lower rank; two layers of one rank never import each other. The
# utilities (rank 0) are below every layer; methods and datasets below bench altogether.
RANKS = {
    "bench.__main__": 10, "bench.launcher": 10,  # python -m bench; scripts/bench's way to it
    "bench.cli": 9,
    "bench.launch": 8,
    "bench.run": 7, "bench.report": 7,  # training and reading results: neither needs the other
    "bench.evaluations": 6,
    # a user's model's protocol | matplotlib figures | what the report's sections are made of
    "bench.external_model": 5, "bench.drawing": 5, "bench.sections": 5,
    "bench.metrics": 4,
    "bench.store": 3,
    "bench.spec": 2,
    "bench": 0, "bench.errors": 0, "bench.progress": 0, "bench.terminal": 0, "bench.lifetime": 0,
    "bench.cpu_kernels": 0, "bench.heap": 0,
    "methods": -1, "datasets": -1,
}
# Edges that go up or across, each with its reason. Keep it short.
ALLOWED: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> str:
    """The layer a module belongs to: the longest prefix of it that RANKS names."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in RANKS:
            return ".".join(parts[:end])
    raise KeyError(module)


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Every edge from a module to a layer that is not below its own (the same layer is fine)."""
    wrong = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            a, b = layer_of(module), layer_of(target)
            if a != b and RANKS[b] >= RANKS[a] and (module, target) not in ALLOWED:
                wrong.append(f"{module} ({a}, rank {RANKS[a]}) imports {target} ({b}, rank {RANKS[b]})")
    return wrong


def test_every_module_has_a_layer():
    unranked = [m for m in source_modules() if not any(in_layer(m, layer) for layer in RANKS)]
    assert unranked == []


def test_imports_go_down_the_ranks():
    assert violations(graph()) == []


def test_a_registry_counts_as_importing_its_modules():
    edges = graph()
    assert "bench.evaluations.probes" in edges["bench.evaluations"]
    assert "methods.ccvae" in edges["methods"]


# The violations issue 42 found, each applied to a scratch copy of the source (file, line added)
SCRATCH_VIOLATIONS = {
    "store imports report": ("bench/store/records.py", "from bench.report import page\n"),
    "an evaluation imports cli": ("bench/evaluations/swap.py", "from bench.cli import run\n"),
    "an evaluation imports launch": ("bench/evaluations/swap.py",
                                     "from bench.launch import executors\n"),
    "a cycle through the registry": ("bench/evaluations/swap.py",
                                     "def _f():\n    from bench.report import page\n"),
}


@pytest.mark.parametrize("violation", SCRATCH_VIOLATIONS)
def test_each_violation_found_before_makes_the_layering_fail(tmp_path, violation):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "data", "*.csv"))
    file, line = SCRATCH_VIOLATIONS[violation]
    target = tmp_path / file
    target.write_text(target.read_text() + line)
    edges = graph(root=tmp_path)
    assert violations(edges) != []
    if "cycle" in violation:
        cycle = find_cycle(edges)
        assert cycle is not None and "bench.report.page" in cycle and "bench.evaluations" in cycle


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


TORCH_FREE = ("bench.store", "bench.report", "bench.sections", "bench.evaluations.base",
              "bench.evaluations", "bench.errors", "bench.cli")


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
