"""The shape of the code, held by tests: no import circles in the package, modules and functions
of a size one can read, and one wire contract whose copies beside the backends never drift."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from triton_rerank import protocol
from triton_rerank.serving.layout import DEFAULT_RERANKER_SETTINGS, PROTOCOL_COPY
from triton_rerank.serving.repository import write_configs

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "client" / "triton_rerank"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """The package's modules that ``path`` imports anywhere (at the top or inside a function).
    ``from pkg import name`` runs ``pkg``'s ``__init__`` first, so it imports ``pkg``, and also
    ``pkg.name`` when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in MODULES}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return groups


def test_the_package_has_no_import_circles():
    graph = {name: imported_modules(path) - {name} for name, path in MODULES.items()}
    assert sum(map(len, graph.values())) > 100  # the graph is really read
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_circles():
    """The check above can fail: modules that import each other, directly or not, are one circle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    assert sorted(import_cycles(graph)) == [["a", "b", "c"], ["e", "f"]]


def test_errors_are_a_leaf():
    assert imported_modules(MODULES["triton_rerank.errors"]) == set()
    assert imported_modules(MODULES["triton_rerank.protocol"]) == set()


def source_files() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("*.py")])


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_readable(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name} is over {MAX_MODULE_LINES} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == [], f"{path.name}: functions over {MAX_FUNCTION_LINES} lines"


def test_the_wire_contract_imports_nothing_so_the_backends_can_carry_it():
    tree = ast.parse(Path(protocol.__file__).read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def test_every_copy_of_the_wire_contract_equals_the_package_one(tmp_path):
    """The committed repository links each Python backend's copy to the one source, and an export
    writes a byte-equal copy beside each backend."""
    source = Path(protocol.__file__).read_bytes()
    committed = sorted((ROOT / "model_repository").glob(f"*/1/{PROTOCOL_COPY}"))
    backends = sorted(path.parent for path in (ROOT / "model_repository").glob("*/1/model.py"))
    assert [path.parent for path in committed] == backends and backends
    assert all(path.read_bytes() == source for path in committed)
    write_configs(tmp_path, DEFAULT_RERANKER_SETTINGS)
    written = sorted(tmp_path.glob(f"*/1/{PROTOCOL_COPY}"))
    assert {path.parts[-3] for path in written} == {protocol.TOKENIZER, protocol.AGGREGATOR}
    assert all(path.read_bytes() == source and not path.is_symlink() for path in written)
