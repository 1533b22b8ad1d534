"""Each scenario under ``experiments/scenarios/`` as one test: ``pytest -k keda`` picks some.

The test is a thin driver: ``scalelab.experiment.run_scenario`` does the work and writes the
run record; the test passes only if every expectation held.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.backends.base import Backend
from scalelab.experiment import ExperimentSettings, run_scenario


def _explain(record: dict) -> str:  # type: ignore[type-arg]
    lines = [f"scenario {record['scenario']['name']} on backend {record['backend']['name']}: "
             f"{record['status']}"]
    if record.get("error"):
        lines.append(f"error: {record['error']['message']}")
    for v in record["verdicts"]:
        if not v["passed"]:
            lines.append(f"FAILED {v['id']}: expected {v['expected']}, observed {v['observed']}"
                         + (f" (at +{v['at'] - record['started_at']:.0f}s)" if v.get("at") else ""))
    lines.append("replica timeline (t, spec/current/ready, queue, cpu%):")
    t0 = record["started_at"]
    for s in record["timeline"]:
        lines.append(f"  +{s['t'] - t0:6.1f}s {s['spec']}/{s['current']}/{s['ready']} "
                     f"q={s.get('queue_ready')} cpu={s.get('cpu_utilization')}")
    return "\n".join(lines)


def test_scaling(scenario, stack: Backend, run_id: str, report_dir: Path, say) -> None:  # type: ignore[no-untyped-def]
    settings = ExperimentSettings(run_id=run_id, report_dir=report_dir)
    record = run_scenario(scenario, stack, settings=settings, progress=say)
    if record["status"] != "passed":
        pytest.fail(_explain(record), pytrace=False)
