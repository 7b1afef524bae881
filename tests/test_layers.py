"""The package's shape: every module imports, no import loop (imports inside functions
counted), no module past 450 lines. The wings' direction is import-linter's contract
(`lint-imports`, pyproject.toml); this checks what that contract cannot."""

import ast
import importlib
import pkgutil
from pathlib import Path

import tune_mnist

PACKAGE = Path(tune_mnist.__file__).parent
MAX_LINES = 450


def module_files() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules `name` imports anywhere in its file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "tune_mnist":
                found.add(target)
    return found


def loops(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_every_module_imports():
    for module in pkgutil.walk_packages(tune_mnist.__path__, "tune_mnist."):
        if not module.name.endswith("__main__"):  # that one runs the command
            importlib.import_module(module.name)


def test_no_import_loop_even_inside_functions():
    files = module_files()
    graph = {name: imports_of(name, path, set(files)) for name, path in files.items()}
    assert loops(graph) == []


def test_a_loop_is_found():  # the check above can fail
    assert loops({"a": {"b"}, "b": {"a"}, "c": set()}) == [{"a", "b"}]


def test_no_module_past_the_size_a_reader_takes_in_one_sitting():
    sizes = {name: len(path.read_text().splitlines()) for name, path in module_files().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
