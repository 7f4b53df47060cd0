"""No function in bench/ takes more than MAX_PARAMETERS parameters (issue 42): a longer list is
state to hold in an object (bench/run/runner.py's Run) or a record (bench/run/train.py's
TrainingPlan). Counted: every parameter, keyword-only ones, *args and **kwargs included; a
method's self or cls is not."""
import ast

from tests.conftest import REPO

MAX_PARAMETERS = 8
Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def is_method(node: Function, parent: ast.AST) -> bool:
    """Defined in a class body and not a staticmethod: its first parameter is self or cls."""
    return (isinstance(parent, ast.ClassDef) and not isinstance(node, ast.Lambda)
            and not any(isinstance(d, ast.Name) and d.id == "staticmethod"
                        for d in node.decorator_list))


def parameter_count(node: Function, parent: ast.AST) -> int:
    arguments = node.args
    count = (len(arguments.posonlyargs) + len(arguments.args) + len(arguments.kwonlyargs)
             + (arguments.vararg is not None) + (arguments.kwarg is not None))
    return count - 1 if is_method(node, parent) and count else count


def too_many_parameters(source: str, where: str) -> list[str]:
    """'<where>:<line> <name> (<count>)' for each function of ``source`` over the limit."""
    found = []
    for parent in ast.walk(ast.parse(source)):
        for node in ast.iter_child_nodes(parent):
            if isinstance(node, Function) and parameter_count(node, parent) > MAX_PARAMETERS:
                found.append((node.lineno, getattr(node, "name", "lambda"),
                              parameter_count(node, parent)))
    return [f"{where}:{line} {name} ({count})" for line, name, count in sorted(found)]


def test_no_function_in_bench_takes_more_than_eight_parameters():
    found = [offender for path in sorted((REPO / "bench").rglob("*.py"))
             for offender in too_many_parameters(path.read_text(), str(path.relative_to(REPO)))]
    assert len(list((REPO / "bench").rglob("*.py"))) > 50  # the walk found the package
    assert found == []


def test_the_count_takes_keyword_only_and_star_parameters_and_leaves_self_out():
    source = '''
def eight(a, b, c, d, e, *, f, g, h): ...
def nine(a, b, c, d, e, *, f, g, h, i): ...
def starred(a, b, c, d, e, f, g, *args, **kwargs): ...
class Held:
    def method(self, a, b, c, d, e, f, g, h): ...
    @classmethod
    def made(cls, a, b, c, d, e, f, g, h): ...
    @staticmethod
    def static(a, b, c, d, e, f, g, h, i): ...
    def outer(self):
        def inner(self, a, b, c, d, e, f, g, h): ...
wide = lambda a, b, c, d, e, f, g, h, i: None
'''
    assert too_many_parameters(source, "x.py") == [
        "x.py:3 nine (9)", "x.py:4 starred (9)", "x.py:10 static (9)", "x.py:12 inner (9)",
        "x.py:13 lambda (9)"]


def test_the_walk_sees_a_function_of_bench_made_too_long(tmp_path):
    """The check itself, on a copy of train.py whose training_steps takes nine parameters."""
    source = (REPO / "bench" / "run" / "train.py").read_text()
    longer = source.replace("hooks: TrainingHooks, stop: StopOnSignal)",
                            "hooks: TrainingHooks, stop: StopOnSignal, a=1, b=2, c=3, d=4)")
    assert longer != source
    assert [line.split()[1] for line in too_many_parameters(longer, "train.py")] == ["training_steps"]
    assert too_many_parameters(source, "train.py") == []

