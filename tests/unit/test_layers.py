"""Layers import only downward (the order is in the ``clv_pipeline`` package docstring).

Every module of the package is parsed (not run) and each import, function-local ones included,
is checked against the layer of the importing module.
"""

from __future__ import annotations

import ast
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import clv_pipeline

#: Leaf modules: import nothing of clv_pipeline but other leaves; everything may use them.
LEAVES = frozenset({"numeric", "errors", "faults", "paths", "parquet", "parse"})
#: What the contract may import besides itself.
SCHEMA_MAY_IMPORT = frozenset({"numeric", "errors"})
#: Stage packages in pipeline order: each may import earlier stages, the contract and leaves.
STAGES = ("sources", "validation", "features", "models", "valuation", "segments")
#: Publishing, reporting and orchestration: no stage (nor the contract) may import these.
HIGHER = frozenset(
    {
        "publish",
        "report",
        "defs",
        "pipeline",
        "config",
        "cli",
        "runner",
        "operations",
        "status",
        "definitions",
        "runs",
    }
)


def _modules(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    """Every module below ``folder``, found on disk: nothing is imported (``defs`` needs Dagster,
    which ``pkgutil.walk_packages`` would import to look inside the package)."""
    for info in pkgutil.iter_modules([str(folder)], prefix):
        spec = info.module_finder.find_spec(info.name, None)  # type: ignore[call-arg]
        assert spec is not None and spec.origin is not None, info.name
        yield info.name, Path(spec.origin)
        if info.ispkg:
            yield from _modules(folder / info.name.rpartition(".")[2], f"{info.name}.")


def _imports(name: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every clv_pipeline module ``name`` imports, wherever it is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]  # level 1: this package
                base = f"{parent}.{base}" if base else parent
            # the name may be a module (``from clv_pipeline import pipeline``) or an attribute:
            # either way it belongs to the layer of ``base.name``
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target.startswith("clv_pipeline."):
                yield node.lineno, target


def _layer(module: str) -> str:
    """Top-level part of a clv_pipeline module: ``clv_pipeline.segments.kpis`` -> ``segments``."""
    return module.split(".")[1] if module.count(".") else ""


def _allowed(layer: str) -> frozenset[str]:
    if layer == "schema":
        return SCHEMA_MAY_IMPORT | {"schema"}
    if layer in LEAVES:
        return LEAVES
    stage = STAGES.index(layer)
    return LEAVES | {"schema"} | set(STAGES[: stage + 1])


PACKAGE = Path(clv_pipeline.__file__).parent
MODULES = {"clv_pipeline": PACKAGE / "__init__.py", **dict(_modules(PACKAGE, "clv_pipeline."))}
CHECKED = sorted(name for name in MODULES if _layer(name) in {*STAGES, "schema", *LEAVES})


def test_every_layer_is_found() -> None:
    layers = {_layer(name) for name in MODULES}
    assert {*STAGES, "schema", "publish", "report", "pipeline"} <= layers
    assert LEAVES <= layers


@pytest.mark.parametrize("name", CHECKED)
def test_imports_go_downward(name: str) -> None:
    layer = _layer(name)
    allowed = _allowed(layer)
    wrong = []
    for line, target in _imports(name, MODULES[name]):
        imported = _layer(target)
        if imported in HIGHER or imported not in allowed:
            wrong.append(f"line {line}: {target} ({imported} is not below {layer})")
    assert not wrong, f"{name} imports upward:\n" + "\n".join(wrong)


def test_the_check_sees_local_and_relative_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from . import base\n"
        "from ..publish.files import write_parquet\n"
        "import polars as pl\n"
        "def f():\n"
        "    from clv_pipeline import pipeline\n"
        "    import clv_pipeline.report.html\n"
    )
    found = [target for _, target in _imports("clv_pipeline.sources.probe", probe)]
    assert found == [
        "clv_pipeline.sources.base",
        "clv_pipeline.publish.files.write_parquet",
        "clv_pipeline.pipeline",
        "clv_pipeline.report.html",
    ]
    assert [_layer(t) for t in found] == ["sources", "publish", "pipeline", "report"]
