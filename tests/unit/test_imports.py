"""Module structure: no import cycle in clv_pipeline; stages and unit tests need no Dagster."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import clv_pipeline
from tests.unit.test_layers import _modules as find_modules

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(clv_pipeline.__file__).parent
# the Dagster layer: wiring, run bookkeeping, the entry points
DAGSTER_LAYER = (
    "clv_pipeline.defs",
    "clv_pipeline.runs",
    "clv_pipeline.definitions",
    "clv_pipeline.cli",
)


def _modules() -> dict[str, Path]:
    """Every module of clv_pipeline, found on disk (the finder the layer test uses)."""
    return {"clv_pipeline": PACKAGE / "__init__.py", **dict(find_modules(PACKAGE, "clv_pipeline."))}


def _runtime_nodes(tree: ast.AST) -> list[ast.stmt]:
    """Every import statement that runs (function-local ones included, TYPE_CHECKING excluded)."""
    found: list[ast.stmt] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the clv_pipeline modules it imports (``from pkg import sub`` counts as pkg.sub)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                assert node.level == 0, f"{name}: use absolute imports"
                base = node.module or ""
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_clv_pipeline() -> None:
    graph = import_graph()
    assert len(graph) > 40 and "clv_pipeline.runs.operations" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_stages_and_unit_tests_import_without_dagster() -> None:
    stages = sorted(m for m in _modules() if not m.startswith(DAGSTER_LAYER))
    assert {"clv_pipeline.config", "clv_pipeline.pipeline", "clv_pipeline.models.clv"} <= set(
        stages
    )
    unit_tests = sorted(
        "tests.unit." + ".".join(p.relative_to(ROOT / "tests" / "unit").with_suffix("").parts)
        for p in (ROOT / "tests" / "unit").rglob("test_*.py")
    )
    code = "\n".join(
        [
            "import importlib, sys",
            "sys.modules['dagster'] = None  # any import of dagster now fails",
            f"for name in {stages + unit_tests!r}:",
            "    importlib.import_module(name)",
            "assert sys.modules['dagster'] is None",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_dagster_layer_really_needs_dagster() -> None:
    """The check above would catch a stage importing Dagster (it is not vacuous)."""
    code = (
        "import sys; sys.modules['dagster'] = None\n"
        "try:\n    import clv_pipeline.defs\nexcept ImportError:\n    sys.exit(0)\nsys.exit(1)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=300).returncode == 0


def test_no_module_writes_the_environment() -> None:
    """Configuration is passed down, never through os.environ (flags used to be written there)."""
    writes = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            target = None
            if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
                targets = (
                    node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                )
                target = next((t for t in targets if isinstance(t, ast.Subscript)), None)
                target = target.value if target is not None else None
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in {"setdefault", "update", "pop", "putenv", "unsetenv"}:
                    target = node.func.value if node.func.attr != "putenv" else node.func
            if target is not None and ast.unparse(target) in {"os.environ", "os.putenv", "os"}:
                writes.append(f"{name}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert writes == []
