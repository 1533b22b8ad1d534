"""The page's component tests (Vitest + Testing Library in jsdom: the Drive form's
validation and error display, the panels' unavailable state and formatting), run from the
suite so ``tox`` runs them too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.frontend.conftest import FRONTEND, _npm


def test_vitest_component_tests_pass(built_frontend: Path) -> None:
    """``built_frontend`` first: it installs node_modules (npm ci) when missing."""
    if shutil.which("npx") is None:
        pytest.skip("npx is not installed (Debian package npm; .ci/run installs it)")
    if not (FRONTEND / "node_modules").is_dir():
        _npm("ci", "--no-audit", "--no-fund")
    done = subprocess.run(["npx", "--no-install", "vitest", "run", "--reporter=dot"],
                          cwd=FRONTEND, capture_output=True, text=True, timeout=300,
                          check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert " passed" in output and "failed" not in output.split("Tests", 1)[-1], output[-2000:]
