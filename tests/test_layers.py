"""The import graph of toolchain/: no cycles, and every import points down the layers of docs/design.md.

Every ``import``/``from ... import`` in every module counts, at any depth: top level, inside functions (lazy
imports) and under ``TYPE_CHECKING``. A module's layer is that of the longest prefix listed in ``LAYERS``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "toolchain"

#: Bottom to top. A module may import its own layer or any layer below, never one above.
LAYERS: list[tuple[str, list[str]]] = [
    ("core", ["toolchain", "toolchain.errors", "toolchain.registry", "toolchain.fsutil", "toolchain.jsonio",
              "toolchain.typed", "toolchain.progress"]),
    ("facts", ["toolchain.devices", "toolchain.policy"]),
    ("artifact contract", ["toolchain.artifact"]),
    ("runtimes", ["toolchain.runtimes"]),
    ("data, models, metrics", ["toolchain.data", "toolchain.models", "toolchain.evaluate.metrics"]),
    ("training", ["toolchain.train"]),
    ("export", ["toolchain.export"]),
    ("evaluation, compression, benchmarking", ["toolchain.evaluate", "toolchain.compress", "toolchain.bench"]),
    ("report", ["toolchain.report"]),
    ("pipeline", ["toolchain.pipeline"]),
    ("cli", ["toolchain.cli"]),
]


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every toolchain module ``name`` imports (a ``from pkg import mod`` names the module when it is one)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "toolchain"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "toolchain":
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                found.add(full if full in MODULES else base)
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    best, level = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    assert level is not None, f"{module} is in no layer: add it to LAYERS (and to docs/design.md)"
    return level


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module):
    here = layer_of(module)
    up = sorted(f"{dep} ({LAYERS[layer_of(dep)][0]})" for dep in GRAPH[module] if layer_of(dep) > here)
    assert not up, f"{module} ({LAYERS[here][0]}) imports a higher layer: {', '.join(up)}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: every component is one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in MODULES:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(MODULES):
        if m not in index:
            visit(m)
    assert cycles == []


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path):
    """The check itself: an import inside a function or under TYPE_CHECKING is an arrow too."""
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toolchain.cli import app\n"
                   "def f():\n    import toolchain.report.build\n")
    assert _imports("toolchain.fake", src) == {"toolchain.cli", "toolchain.report.build"}
