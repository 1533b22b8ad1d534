"""Run Locust (its own process, ``LocustRun``) over a scenario until its shape ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scalelab.load.runner import LocustRun
from scalelab.scenario import Scenario


def run_to_end(*, api_url: str, scenario: Scenario, out_dir: Path,
               timeout: float = 40.0) -> dict[str, Any]:
    """Start Locust, wait until its load shape ends it (exit 0), always stop it, and
    return ``LocustRun.results()``."""
    run = LocustRun(api_url=api_url, scenario=scenario, out_dir=out_dir)
    try:
        run.start()
        assert run.wait(timeout=timeout) == 0
    finally:
        run.stop()
    return run.results()
