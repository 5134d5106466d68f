"""The shape of the code, held by tests: the package in floors that import only downwards (so no
import circle), the code that runs inside Triton apart, the build machine's tools outside the
package, modules and functions of a size one can read, and one wire contract whose copies beside
the backends never drift."""

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
# The package's floors, lowest first. A module imports its own floor and those below, never one above:
# what the client needs never pulls in the API, the serving side, training or the command line.
FLOORS = (
    # leaves: the wire contract, the error tree, and helpers that import nothing above them
    ("protocol", "errors", "flags", "metrics", "model_sources", "samples", "analyzers", "blend", "loop", "backends"),
    # the client: Triton over HTTP/gRPC, its options, errors and traces (the wheel without extras)
    (
        "triton_rerank",
        "endpoints",
        "triton_errors",
        "tracing",
        "options",
        "score_cache",
        "transport",
        "base",
        "client",
        "embed",
    ),  # fmt: skip
    # retrieval: Milvus, the first stages, ingest, BEIR collections, the pipeline
    ("documents", "store", "first_stage", "ingest", "beir", "pipeline"),
    # what serves: the rerank HTTP API, and the model repository, its export, the embedded server, deploy
    ("api", "playground", "serving"),
    ("training", "distill"),
    ("evaluation",),
    ("commands", "cli"),
)
BACKENDS = "triton_rerank.backends"  # inside Triton: of the package, only the wire contract


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


def floor(module: str) -> int:
    """The floor of a package module (``triton_rerank.api.routes`` -> the floor of ``api``)."""
    parts = module.split(".")
    room = parts[1] if len(parts) > 1 else parts[0]
    found = [level for level, rooms in enumerate(FLOORS) if room in rooms]
    assert found, f"{module} is on no floor: add its room to FLOORS"
    return found[0]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if floor(target) > floor(module)
    )


def test_the_package_imports_only_downwards_and_the_backends_only_the_wire_contract():
    graph = {name: imported_modules(path) - {name} for name, path in MODULES.items() if not name.startswith(BACKENDS)}
    assert upward_imports(graph) == []
    backends = {name: imported_modules(path) for name, path in MODULES.items() if name.startswith(BACKENDS + ".")}
    assert set(backends) == {
        f"{BACKENDS}.{m}" for m in ("tokenizer_model", "aggregator_model", "runner_model", "cascade_model")
    }
    assert set().union(*backends.values()) <= {"triton_rerank.protocol"}, backends


def test_the_floor_check_finds_an_import_upwards():
    """The check above can fail: the client importing the API, or the store the command line."""
    graph = {"triton_rerank.client": {"triton_rerank.api.service"}, "triton_rerank.store": {"triton_rerank.cli"}}
    assert upward_imports(graph) == [
        "triton_rerank.client -> triton_rerank.api.service",
        "triton_rerank.store -> triton_rerank.cli",
    ]
    assert upward_imports({"triton_rerank.cli": {"triton_rerank.client"}}) == []


def test_the_package_never_imports_the_build_machines_tools_or_the_tests():
    """benchmarks/ and tests/ are not in the wheel: nothing in it may need them."""
    outside = {"benchmarks", "tests", "tiny_models", "conftest", "scripts"}
    found = {
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        for imported in _all_imports(path)
        if imported.split(".")[0] in outside
    }
    assert found == set()


def _all_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_errors_are_a_leaf():
    assert imported_modules(MODULES["triton_rerank.errors"]) == set()
    assert imported_modules(MODULES["triton_rerank.protocol"]) == set()


def source_files() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py")])


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
