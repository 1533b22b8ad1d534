"""Fixtures for the report tests: a private copy of the committed run records.

The records under ``tests/report/data/`` come from real local runs of ``tox -e scaling``
(real broker, Prometheus, services and Locust; three scenarios of two runs, one of which
failed an expectation, so the diagnostics section is exercised). The tests only read files
(run ids are discovered, not hard-coded).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scalelab import record

DATA = Path(__file__).parent / "data"


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """A writable reports folder holding every committed run."""
    out = tmp_path / "reports"
    shutil.copytree(DATA, out)
    return out


@pytest.fixture
def run_ids(reports: Path) -> list[str]:
    """Run ids, newest first (at least two are needed for history and compare)."""
    ids = [p.name for p in record.find_runs(reports)]
    assert len(ids) >= 2, f"tests/report/data needs two runs, found {ids}"
    return ids
