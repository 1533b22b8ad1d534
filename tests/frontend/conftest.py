"""The built page for the frontend tests: ``services/frontend/dist``, built with npm when
missing or older than its sources (CI's .ci/run builds it first; then this is a no-op)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scalelab import paths

FRONTEND = paths.ROOT / "services" / "frontend"
DIST = FRONTEND / "dist"


def _newest_source() -> float:
    files = [*FRONTEND.joinpath("src").rglob("*"), FRONTEND / "index.html",
             FRONTEND / "package-lock.json", FRONTEND / "vite.config.ts"]
    return max(f.stat().st_mtime for f in files if f.is_file())


def _npm(*args: str) -> None:
    done = subprocess.run(["npm", *args], cwd=FRONTEND, capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        pytest.fail(f"npm {' '.join(args)} in {FRONTEND} exited {done.returncode}:\n{tail}",
                    pytrace=False)


@pytest.fixture(scope="session")
def built_frontend() -> Path:
    index = DIST / "index.html"
    if index.is_file() and index.stat().st_mtime >= _newest_source():
        return DIST
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("the page is not built and Node.js/npm are not installed: install them "
                    "(.ci/run does: apt-get install nodejs npm) or run npm ci && npm run build "
                    "in services/frontend")
    if not (FRONTEND / "node_modules").is_dir():
        _npm("ci", "--no-audit", "--no-fund")
    _npm("run", "build")
    return DIST
