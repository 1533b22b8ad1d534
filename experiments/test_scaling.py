"""Each scenario under ``experiments/scenarios/`` as one test: ``pytest -k keda`` picks some.

The test is a thin driver: ``scalelab.experiment.run_scenario`` does the work and writes the
run record; the test passes only if every expectation held. With repetitions (``--repeat N``
or the scenario's ``repeat:``) it runs the scenario N times and passes when at least
``min_pass`` of them did (default: all), saying "k of N" per expectation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scalelab.backends.base import Backend
from scalelab.experiment import ExperimentSettings, run_scenario
from scalelab.experiment import explain as _explain
from scalelab.pytest_options import repetitions
from scalelab.repetitions import k_of_n


def _explain_repetitions(records: list[dict], need: int) -> str:  # type: ignore[type-arg]
    n = len(records)
    passed = sum(1 for r in records if r["status"] == "passed")
    lines = [f"scenario {records[0]['scenario']['name']}: {passed} of {n} repetitions passed, "
             f"{need} needed (min_pass)"]
    for exp_id, (k, m) in k_of_n([r["verdicts"] for r in records]).items():
        lines.append(f"  {exp_id}: held in {k} of {m}")
    first = next(r for r in records if r["status"] != "passed")
    lines.append(f"first failed repetition ({first['repetition']['index']} of {n}):")
    lines.append(_explain(first))
    return "\n".join(lines)


def test_scaling(scenario, stack: Backend, run_id: str, report_dir: Path, say,  # type: ignore[no-untyped-def]
                 request: pytest.FixtureRequest) -> None:
    settings = ExperimentSettings(run_id=run_id, report_dir=report_dir)
    n = repetitions(request.config, scenario.repeat)
    if n == 1:
        record = run_scenario(scenario, stack, settings=settings, progress=say)
        if record["status"] != "passed":
            pytest.fail(_explain(record), pytrace=False)
        return
    need = scenario.min_pass or n
    if need > n:
        pytest.fail(f"{scenario.file}: min_pass {need} is more than the {n} repetitions asked "
                    "for; lower min_pass or raise --repeat", pytrace=False)
    records = [run_scenario(scenario, stack, settings=settings, progress=say,
                            repetition=(k, n)) for k in range(1, n + 1)]
    if sum(1 for r in records if r["status"] == "passed") < need:
        pytest.fail(_explain_repetitions(records, need), pytrace=False)
