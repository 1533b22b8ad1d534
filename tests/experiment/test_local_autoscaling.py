"""The emulated HPA and KEDA on the local backend, end to end through the experiment.

Real broker, real Prometheus, real services and a real Locust process: the agent Deployment
grows under load and returns after it, exactly as the scenario's expectations say, and the
``kube_horizontalpodautoscaler_*`` / ``keda_*`` series the control loop exports reach
Prometheus under the names kube-state-metrics and KEDA use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from scalelab import queries, record
from scalelab.backends.local.backend import LocalBackend
from scalelab.errors import ExperimentError
from scalelab.experiment import ExperimentSettings, reset, run_scenario
from scalelab.observe import prom_scalar
from scalelab.scenario import Scenario, load_scenario
from scalelab.settings import StackSettings
from scalelab.twin import check as twin_check
from scalelab.twin.compare import compare

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalBackend]:
    with LocalBackend(settings=StackSettings()) as backend:
        yield backend


def _prom(stack: LocalBackend, query: str) -> list[dict[str, Any]]:
    resp = requests.get(f"{stack.endpoints.prometheus}/api/v1/query",
                        params={"query": query}, timeout=5)
    resp.raise_for_status()
    return resp.json()["data"]["result"]  # type: ignore[no-any-return]


def _explain(rec: dict[str, Any]) -> str:
    failed = [f"{v['id']}: expected {v['expected']}, observed {v['observed']}"
              for v in rec["verdicts"] if not v["passed"]]
    t0 = rec["started_at"]
    timeline = [f"+{s['t'] - t0:.0f}s {s['spec']}/{s['current']}/{s['ready']} "
                f"q={s['queue_ready']} cpu={s['cpu_utilization']}" for s in rec["timeline"]]
    return "\n".join([f"status {rec['status']} error {rec.get('error')}", *failed, *timeline])


@pytest.mark.parametrize(("name", "hpa"), [("hpa-short", "agent"),
                                           ("keda-short", "keda-hpa-agent")])
def test_scales_out_under_load_and_back_after(stack: LocalBackend, tmp_path: Path,
                                              name: str, hpa: str) -> None:
    scenario = load_scenario(DATA / f"{name}.yaml")
    rec = run_scenario(scenario, stack, progress=print,
                       settings=ExperimentSettings(run_id="test-run", report_dir=tmp_path))

    assert rec["status"] == "passed", _explain(rec)
    assert rec["backend"]["name"] == "local"
    assert "KEDA operator" in rec["backend"]["details"]["emulated"]
    # The stored record is valid against the documented schema and holds the decisions.
    stored = record.load(tmp_path / "test-run" / name)
    ups = [d for d in stored["decisions"] if d["to_replicas"] > d["from_replicas"]]
    assert ups and all(d["reason"] for d in ups), stored["decisions"]
    assert stored["tasks"]["lost"] == 0 and stored["tasks"]["published"] > 0
    # every step of the pipeline ran, in order, timed; the drive lasted the planned phases
    assert [(s["name"], s["outcome"]) for s in stored["steps"]] == [
        (n, "ok") for n in ("reset", "apply", "start load", "drive", "drain", "account",
                            "evaluate", "store")]
    drive = next(s for s in stored["steps"] if s["name"] == "drive")
    assert scenario.duration - 2 <= drive["seconds"] <= scenario.duration + 30, drive

    # The controller's own series, scraped by Prometheus from the backend's exporter.
    desired = _prom(stack, "max_over_time(kube_horizontalpodautoscaler_status_desired_replicas"
                           f'{{namespace="scalelab",horizontalpodautoscaler="{hpa}"}}[10m])')
    assert desired and float(desired[0]["value"][1]) == 4.0, desired
    bounds = _prom(stack, "kube_horizontalpodautoscaler_spec_max_replicas"
                          f'{{horizontalpodautoscaler="{hpa}"}}')
    # Removed with the scaling objects at the end of the run: stale series are gone or 4.
    assert all(float(b["value"][1]) == 4.0 for b in bounds), bounds
    if name.startswith("keda"):
        active = _prom(stack, 'max_over_time(keda_scaler_active{scaledObject="agent"}[10m])')
        assert active and float(active[0]["value"][1]) == 1.0, active

    series = json.loads((tmp_path / "test-run" / name / record.SERIES_FILE).read_text())
    assert series["queries"], "series.json captured no query"
    if name == "keda-short":
        _twin_predicts(scenario, stored)


def _twin_predicts(scenario: Scenario, real: dict[str, Any]) -> None:
    """The twin, calibrated on committed records of *other* scenarios (hpa-cpu and
    keda-queue runs of the local backend), predicts this real run within issue 14's goal:
    ready replicas within +-1 for >= 90 % of the samples, replica-seconds within 10 %. The
    io tasks sleep, so their service time does not hang on the machine's speed."""
    recorded = sorted((Path(__file__).parents[1] / "report" / "data").iterdir())[0]
    pred, _ = twin_check.predict(scenario, [recorded / "hpa-cpu", recorded / "keda-queue"])
    c = compare(pred.result, real)
    figures = (f"twin vs real keda-short: {c.within_one:.0%} of {c.samples} samples within "
               f"+-1 ({c.exact:.0%} exact), replica-seconds {c.real_replica_seconds:.0f} "
               f"real vs {c.predicted_replica_seconds:.0f} predicted "
               f"({c.replica_seconds_error:+.1%}), first scale-up {c.first_scale_up_real}s "
               f"real vs {c.first_scale_up_predicted}s")
    print(figures)
    assert c.samples > 50 and c.meets_goal(), figures


class _StopAfter:
    """A progress sink that raises at the ``n``-th sample line of a phase (each follows a
    timeline sample): a user's Ctrl-C, or a crash, mid-run however slow the machine."""

    PHASES = tuple(f"[hpa-short] {name} " for name in ("baseline", "load", "cooldown"))

    def __init__(self, n: int, exc: BaseException) -> None:
        self.n = n
        self.exc = exc
        self.samples = 0

    def __call__(self, line: str) -> None:
        if line.startswith(self.PHASES):
            self.samples += 1
            if self.samples >= self.n:
                raise self.exc


def _locust_processes() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "locust" in " ".join(p.info["cmdline"] or []) and "-f" in (p.info["cmdline"] or [])]


@pytest.mark.parametrize(("exc", "raised", "status"), [
    (KeyboardInterrupt(), KeyboardInterrupt, "interrupted"),
    (RuntimeError("boom"), ExperimentError, "error"),
])
def test_interrupted_or_crashed_run_still_writes_its_record(
        stack: LocalBackend, tmp_path: Path, exc: BaseException, raised: type[BaseException],
        status: str) -> None:
    scenario = load_scenario(DATA / "hpa-short.yaml")
    before = set(_locust_processes())
    with pytest.raises(raised):
        run_scenario(scenario, stack, progress=_StopAfter(2, exc),
                     settings=ExperimentSettings(run_id="cut", report_dir=tmp_path))
    rec = record.load(tmp_path / "cut" / "hpa-short")
    assert rec["status"] == status
    assert rec["error"] and rec["error"]["message"]
    assert rec["timeline"], "the samples taken before the stop are kept"
    # the step that was cut is named, and the record was still stored
    assert [(s["name"], s["outcome"]) for s in rec["steps"]][-2:] == [
        ("drive", "interrupted" if status == "interrupted" else "failed"), ("store", "ok")]
    if status == "error":
        assert rec["error"]["step"] == "drive"
        assert "step drive failed after" in rec["error"]["message"]
    assert set(_locust_processes()) <= before, "the Locust process was left running"
    # The stack is still usable: the next scenario's reset brings it back to the baseline,
    # without the interrupted run's HPA, whose series are gone from Prometheus too.
    reset(stack, settings=ExperimentSettings(run_id="next", report_dir=tmp_path))
    r = stack.replicas("agent")
    assert (r.spec, r.current, r.ready) == (2, 2, 2)
    assert prom_scalar(requests.Session(), stack.endpoints.prometheus,
                       queries.autoscaler_series(namespace=stack.settings.namespace)) is None
