"""Every function in scalelab/ fits on a screen (under 60 lines), so each step of the
pipeline can be read whole (issue 10). Pure data tables are module constants, not functions."""

from __future__ import annotations

import ast

from scalelab.paths import ROOT

LIMIT = 60


def test_no_function_in_scalelab_is_60_lines_or_longer() -> None:
    long = []
    for path in sorted((ROOT / "scalelab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines >= LIMIT:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, f"functions of {LIMIT}+ lines, split them: {long}"
