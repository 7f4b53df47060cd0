"""Every place in bench/ that opens a file, found by reading the source (ast): each goes through
``results.open_run_file`` (no link followed, a regular file only, a size cap per kind of file:
``read_run_file``, ``read_run_bytes``, ``read_json``, ``records.read_record`` and the table reader
are built on it) or is in READERS with the reason it may open what it opens. A results folder
may come from someone else (issue 45): a new reader of a run's files that opens them any other
way fails here, until it goes through ``open_run_file`` or is added below with its reason."""
import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# Calls that open or read a file: open(), os.open, Image.open, io.open; Path.read_text,
# read_bytes; json.load, np.load, torch.load, pickle.load; pd.read_csv and the other readers;
# safetensors; h5py.
OPENING = {"open", "fdopen", "read_text", "read_bytes", "load", "read_csv", "read_table",
           "read_json", "read_parquet", "read_pickle", "loadtxt", "genfromtxt", "fromfile",
           "load_file", "safe_open", "File", "imread", "memmap"}
# read_json below is bench's own (results.read_json, built on open_run_file), not pandas'
OURS = {("results", "read_json"), ("", "read_json")}

# (module, function, call) -> why it may open what it opens.
READERS: dict[tuple[str, str, str], str] = {
    ("bench/store/results.py", "open_run_file", "os.open"):
        "the one reader of a run's files: O_NOFOLLOW, a regular file only (fstat), a size cap",
    ("bench/store/results.py", "open_run_file", "os.fdopen"):
        "the descriptor open_run_file checked",
    ("bench/store/results.py", "open_unlinked", "os.open"):
        "the one writer of appended files (run.log, a lock): O_NOFOLLOW, a regular file, one link",
    ("bench/store/results.py", "open_unlinked", "os.fdopen"):
        "the descriptor open_unlinked checked",
    ("bench/run/checkpoints.py", "load_checkpoint", "torch.load"):
        "the file open_run_file opened (no link, a regular file, the checkpoints' cap), "
        "weights_only",
    ("bench/run/checkpoints.py", "read_progress", "torch.load"):
        "the file open_run_file opened (no link, a regular file, the checkpoints' cap), "
        "weights_only",
    ("bench/run/weights.py", "read_weights", "load"):
        "safetensors from the bytes read_run_bytes read",
    ("bench/report/page.py", "load_paper_table", "pd.read_csv"):
        "the paper's table shipped in bench/report/, not a results folder's file",
    ("bench/report/comparison.py", "read_baseline", "pd.read_csv"):
        "a baseline: results/baselines/ of this repository, or the file --baseline names",
    ("bench/report/study_results.py", "update_study_readme", "path.read_text"):
        "results/studies/README.md of this repository (never through a link: not_a_link)",
    ("bench/report/paper_results.py", "update_readme", "readme.read_text"):
        "this repository's README.md",
    ("bench/external_model.py", "sha256_of", "open"):
        "the user's own model file, named on the command line (evaluate-model)",
    ("bench/external_model.py", "load", "torch.jit.load"):
        "the user's own model file, named on the command line (evaluate-model)",
    ("bench/external_model.py", "_not_a_model", "torch.load"):
        "the user's own file, named on the command line, read weights_only to say what it holds",
    ("bench/external_model.py", "_exported_module", "torch.export.load"):
        "the user's own torch.export program, named on the command line (evaluate-model)",
    ("bench/cli/evaluate_model.py", "command_evaluate_model", "load"):
        "bench.external_model.load: the user's own model, named on the command line",
    ("bench/launch/slurm.py", "SlurmOptions.from_sources", "json.loads"):
        "the --slurm-config file the user names",
    ("bench/launch/slurm.py", "SlurmOptions.from_sources", "Path(config_file).read_text"):
        "the --slurm-config file the user names",
    ("bench/run/fingerprint.py", "loaded_sources", "path.read_bytes"):
        "a source file of the suite this process imported (a module's own file)",
    ("bench/run/fingerprint.py", "unchanged_sources", "path.read_bytes"):
        "a source file of the suite's tree (no link: checked), named by the campaign's own record",
    ("bench/launch/campaign.py", "Campaign.holders", "open"):
        "the campaign's own locks in the user's cache folder, not a results folder",
    ("bench/launch/campaign.py", "Campaign.acquire", "os.fdopen"):
        "the campaign's own lock, inherited from the process that exec'd into this one",
    ("bench/launch/campaign.py", "process_cpu_seconds", "Path(f'/proc/{pid}/stat').read_text"):
        "/proc",
    ("bench/lifetime.py", "alive", "open"): "/proc",
    ("bench/cpu_kernels.py", "has_avx2", "open"): "/proc/cpuinfo",
    ("bench/run/environment.py", "device_name", "open"): "/proc/cpuinfo",
    ("bench/evaluations/tsne_fit.py", "main", "np.load"):
        "the points its parent wrote into the worker's own temporary folder (allow_pickle off)",
    ("bench/evaluations/tsne_pool.py", "TsnePool._embed", "np.load"):
        "the embedding its worker wrote into the pool's own temporary folder (allow_pickle off)",
}


def _name(node: ast.AST) -> str:
    """A call's callee as written: "open", "os.open", "pd.read_csv", "path.read_text"."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ast.unparse(node)


def in_memory(call: ast.Call) -> bool:
    """Whether ``call`` reads text or bytes already in memory (io.StringIO, io.BytesIO): what
    read_run_file or read_run_bytes read, parsed."""
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Call) and _name(first.func).rpartition(".")[2] in (
        "StringIO", "BytesIO")


def openings(source: str, module: str) -> list[tuple[str, str, str]]:
    """(module, enclosing function's qualified name, callee) of each call in ``source`` that
    opens or reads a file."""
    found = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Call) and not in_memory(child):
                callee = _name(child.func)
                head, _, last = callee.rpartition(".")
                if last in OPENING and (head, last) not in OURS:
                    found.append((module, ".".join(scope) or "<module>", callee))
                elif callee == "json.loads" and any(
                        isinstance(arg, ast.Call) and _name(arg.func).endswith("read_text")
                        for arg in child.args):
                    found.append((module, ".".join(scope) or "<module>", callee))
            visit(child, scope)
    visit(ast.parse(source), [])
    return found


def every_opening() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        module = path.relative_to(REPO).as_posix()
        found += openings(path.read_text(), module)
    return found


def test_every_file_bench_opens_goes_through_the_run_file_reader_or_says_why_not():
    unexplained = [place for place in every_opening() if place not in READERS]
    assert not unexplained, (
        "opened without results.open_run_file (a results folder may come from someone else: "
        f"read it through open_run_file, read_run_file or read_record, or add to READERS why "
        f"not): {unexplained}")


def test_every_entry_of_the_list_is_still_a_reader():
    stale = set(READERS) - set(every_opening())
    assert not stale, f"READERS names calls no longer in bench/: {sorted(stale)}"


@pytest.mark.parametrize("line", [
    "text = (run_dir / 'env.json').read_text()",
    "data = json.load(open(run_dir / 'status.json'))",
    "table = pd.read_csv(run_dir / 'metrics.csv')",
    "state = torch.load(run_dir / 'checkpoint.pt', weights_only=True)",
    "pixels = Image.open(run_dir / 'curves.png')",
    "descriptor = os.open(run_dir / 'run.log', os.O_RDONLY)",
    "data = np.load(run_dir / 'codes.npy')",
])
def test_a_new_reader_of_a_run_file_is_found(line):
    """The readers that opened run files before issue 45, as a new function would write them."""
    source = f"def report_something(run_dir):\n    {line}\n"
    assert openings(source, "bench/report/new.py"), line


def test_the_readers_built_on_open_run_file_are_not_counted():
    source = ("def read(run_dir):\n    results.read_json(run_dir / 'env.json')\n"
              "    results.read_run_file(run_dir / 'x', 10)\n    records.read_record(p, s)\n")
    assert openings(source, "bench/report/new.py") == []
