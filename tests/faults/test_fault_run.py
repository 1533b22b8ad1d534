"""Faults in a whole run on the local backend: real broker, Prometheus, agents and Locust.

The scenario (data/faults-short.yaml) cuts the agents off the broker, SIGKILLs two of them
and restarts the broker while KEDA scales; the run must record each action with its effect,
heal the partition, lose nothing and count the redeliveries.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scalelab import record
from scalelab.backends.local.backend import LocalBackend
from scalelab.experiment import ExperimentSettings, run_scenario
from scalelab.scenario import load_scenario
from scalelab.settings import StackSettings

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalBackend]:
    with LocalBackend(settings=StackSettings()) as backend:
        yield backend


def test_a_run_with_faults_records_them_heals_them_and_loses_nothing(
        stack: LocalBackend, tmp_path: Path) -> None:
    scenario = load_scenario(DATA / "faults-short.yaml")
    rec = run_scenario(scenario, stack, progress=print,
                       settings=ExperimentSettings(run_id="faults", report_dir=tmp_path))
    stored = record.load(tmp_path / "faults" / "faults-short")
    faults = stored["faults"]
    seen = [(f["id"], f["kind"], f["heal"], f["error"]) for f in faults]
    assert seen == [("cut", "partition", False, None), ("cut", "partition", True, None),
                    ("kill", "kill", False, None), ("kill", "kill", False, None),
                    ("broker", "restart", False, None)], seen
    t0 = stored["phases"][0]["start"]
    for f in faults:  # each fired within a few seconds of its plan
        assert -0.5 <= f["t"] - t0 - f["planned"] <= 5, f
    assert faults[0]["effect"]["connections_closed"] >= 1, faults[0]
    assert all(len(f["effect"]["pods"]) == 1 for f in faults if f["kind"] == "kill"), faults
    assert faults[-1]["effect"]["downtime_s"] > 0
    assert not stack.proxies["agent"].is_cut, "the partition was healed"

    verdicts = {v["id"]: v for v in rec["verdicts"]}
    assert verdicts["no-task-loss"]["passed"], verdicts["no-task-loss"]
    assert verdicts["back-after-kill"]["passed"], verdicts["back-after-kill"]
    tasks = stored["tasks"]
    assert tasks["lost"] == 0 and tasks["published"] > 0
    assert tasks["redelivered"] >= 1, "agents held tasks when cut off and when killed"
    # the killed pods were replaced: none of them is among the pods at the end
    killed = {p for f in faults if f["kind"] == "kill" for p in f["effect"]["pods"]}
    alive = {p.name for p in stack.supervisors["agent"].pods()}
    assert not killed & alive
