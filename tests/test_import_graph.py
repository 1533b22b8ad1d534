"""The layering of ``scalelab``, read from its source: no import cycle, and the controller
cores (``scalelab/control/``) never import a backend.

Every ``import`` statement of a module counts: at the top, inside a function (the usual
way a cycle is hidden) and under ``if TYPE_CHECKING:`` (a cycle a type checker and a
reader still have to untangle). The graph is read with ``ast``, nothing is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scalelab"


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line`` of ``file``."""

    source: str
    target: str
    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.file.name}:{self.line})"


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _targets(node: ast.Import | ast.ImportFrom, *, module: str, is_package: bool,
             known: Mapping[str, Path]) -> list[str]:
    """The modules of the package one import statement names (``from a import b`` names
    the module ``a.b`` when there is one, else ``a``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
            base = ".".join([*anchor, *([base] if base else [])])
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                 for a in node.names]
    found = []
    for name in names:
        # ``import a.b.c`` depends on the deepest module of the package it names
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name not in found:
            found.append(name)
    return found


def import_graph(root: Path) -> list[Edge]:
    """Every import between modules of the package at ``root``, wherever it stands."""
    known = _modules(root)
    edges = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module=module, known=known,
                                       is_package=path.name == "__init__.py"):
                    if target != module:
                        edges.append(Edge(module, target, path, node.lineno))
    return edges


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """A shortest cycle through each module that is on one, skipping modules an earlier
    cycle already went through (so every group of modules importing each other shows)."""
    out: dict[str, list[Edge]] = {}
    for e in edges:
        out.setdefault(e.source, []).append(e)

    def path(start: str, goal: str) -> list[Edge] | None:
        """Shortest chain of imports from ``start`` to ``goal`` (breadth first)."""
        seen = {start}
        frontier: list[tuple[str, list[Edge]]] = [(start, [])]
        while frontier:
            nxt = []
            for node, chain in frontier:
                for e in out.get(node, []):
                    if e.target == goal:
                        return [*chain, e]
                    if e.target not in seen:
                        seen.add(e.target)
                        nxt.append((e.target, [*chain, e]))
            frontier = nxt
        return None

    found, covered = [], set()
    for module in sorted(out):
        if module in covered:
            continue
        loop = path(module, module)
        if loop:
            found.append(loop)
            covered.update(e.source for e in loop)
    return found


def test_no_import_cycle_among_scalelab_modules() -> None:
    found = cycles(import_graph(PACKAGE))
    if found:
        pytest.fail("import cycles (break each by moving what both sides need into a module "
                    "both import, not by a function-local import):\n" + "\n".join(
                        "  " + " ; ".join(str(e) for e in loop) for loop in found))


def test_the_controller_cores_import_no_backend() -> None:
    """``scalelab.control`` is the pure emulation of HPA and KEDA that every backend may
    use; a backend import there would tie it to one way of running the stack."""
    bad = [e for e in import_graph(PACKAGE)
           if e.source.startswith("scalelab.control")
           and (e.target + ".").startswith("scalelab.backends.")]
    if bad:
        pytest.fail("scalelab/control/ imports scalelab/backends/ (move what both need into "
                    "a module below both, as scalelab.decisions):\n"
                    + "\n".join(f"  {e}" for e in bad))


def test_the_graph_sees_what_it_must() -> None:
    """The reader finds the imports the two tests above rely on (else they pass vacuously)."""
    edges = {(e.source, e.target) for e in import_graph(PACKAGE)}
    assert ("scalelab.control.loop", "scalelab.control.hpa") in edges        # from a import b
    assert ("scalelab.control.keda", "scalelab.control.rabbitmq_scaler") in edges  # as rmq
    assert ("scalelab.backends.local.backend", "scalelab.control.loop") in edges
    assert len(edges) > 100


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A package with imports of every kind: relative, in a function, under TYPE_CHECKING."""
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nimport os\n"
                              "if TYPE_CHECKING:\n    from toy.c import C\n")
    (pkg / "sub" / "b.py").write_text("import toy.a\n\ndef f():\n    from ..c import g\n")
    (pkg / "c.py").write_text("def g():\n    from toy.sub.b import f\n    return f\n")
    return pkg


def test_cycles_hidden_in_functions_and_relative_imports_are_found(toy: Path) -> None:
    edges = import_graph(toy)
    assert {(e.source, e.target) for e in edges} == {
        ("toy.sub", "toy.sub.b"), ("toy.a", "toy.c"), ("toy.sub.b", "toy.a"),
        ("toy.sub.b", "toy.c"), ("toy.c", "toy.sub.b")}
    # a -> c (under TYPE_CHECKING) -> sub.b (in a function) -> a (at the top)
    [loop] = cycles(edges)
    assert [(e.source, e.line) for e in loop] == [("toy.a", 4), ("toy.c", 2), ("toy.sub.b", 1)]
    # without the TYPE_CHECKING import, the relative one inside a function still closes one
    [loop] = cycles([e for e in edges if e.source != "toy.a"])
    assert [(e.source, e.target) for e in loop] == [("toy.c", "toy.sub.b"),
                                                    ("toy.sub.b", "toy.c")]
