"""The experiment: one scenario on one backend → one stored run record, verdicts included.

A visible pipeline, as in esrally: reset → apply scaling → drive load (Locust in its own
process) while observing → drain and account for every task → evaluate expectations →
store (record + Prometheus series). Plain and importable: the pytest in ``experiments/`` is
a thin driver around :func:`run_scenario`, and so can any other orchestrator be.
"""

from __future__ import annotations

import contextlib
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import requests

from scalelab import __version__, record
from scalelab.accounting import TaskLedger
from scalelab.backends.base import Backend
from scalelab.errors import ExperimentError, ProcessStartError, ScalelabError, WaitTimeout
from scalelab.observe import (
    Observer,
    management_session,
    progress_line,
    prom_scalar,
    queue_depth,
)
from scalelab.paths import REPORTS, ROOT
from scalelab.queries import scaling_names
from scalelab.settings import AGENT_DEPLOYMENT
from scalelab.waiting import wait_for


@dataclass(frozen=True, kw_only=True)
class ExperimentSettings:
    """How one scenario is run; the timing profile itself belongs to the backend."""

    run_id: str
    report_dir: Path = REPORTS
    #: After the last phase: how long queued tasks may take to be processed before the
    #: missing ones are reported lost.
    drain_timeout: float = 180.0
    #: Between scenarios: how long the reset may take to reach the baseline replicas.
    settle_timeout: float = 120.0
    #: How much longer than the planned phases Locust may run before it is killed.
    load_grace: float = 60.0
    #: Replicas the agent Deployment is reset to between scenarios. None: the Deployment's
    #: spec, i.e. the stack's ``agent_replicas`` override or ``manifests/base/agent.yaml``.
    baseline_replicas: int | None = None


@dataclass
class _Run:
    """Mutable state of one run; turned into the record at the end, whatever happened."""

    started_at: float
    phases: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] | None = None
    series_start: float | None = None
    manifests: list[dict[str, Any]] = field(default_factory=list)
    locust: dict[str, Any] | None = None
    tasks: dict[str, Any] = field(default_factory=lambda: {
        "published": 0, "processed": 0, "lost": 0, "duplicated": 0})
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    status: str = "error"
    error: dict[str, str] | None = None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def baseline_replicas(backend: Backend, settings: ExperimentSettings) -> int:
    """The agent replicas a scenario starts from: what the Deployment asks for."""
    if settings.baseline_replicas is not None:
        return settings.baseline_replicas
    if backend.settings.agent_replicas is not None:
        return backend.settings.agent_replicas
    from scalelab.backends.local.manifests import load_deployment

    return load_deployment(AGENT_DEPLOYMENT).replicas


def reset(backend: Backend, *, settings: ExperimentSettings,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> None:
    """Bring the stack back to the baseline so scenarios do not leak into each other."""
    target = baseline_replicas(backend, settings)
    backend.remove_scaling()
    backend.purge_queue()
    backend.scale(AGENT_DEPLOYMENT, target)

    def settled(r: Any) -> bool:
        return bool(r.spec == target and r.current == target and r.ready == target)

    wait_for(lambda: backend.replicas(AGENT_DEPLOYMENT), settled,
             what=f"Deployment {AGENT_DEPLOYMENT} to settle at the baseline",
             expected=f"spec=current=ready={target}", timeout=settings.settle_timeout,
             interval=1.0, clock=clock, sleep=sleep,
             fix="look at the pod logs in the diagnostics; pods may be failing to start")
    # The next scenario's HPA usually has the same name (agent / keda-hpa-agent): until a
    # scrape has seen the old one go, its last sample would open the new scenario's charts.
    scrape = backend.settings.timing.scrape_interval
    prometheus = backend.endpoints.prometheus.rstrip("/")
    session = requests.Session()
    wait_for(lambda: prom_scalar(session, prometheus, AUTOSCALER_SERIES.format(
                 ns=backend.settings.namespace)), lambda n: n is None,
             what="the previous scenario's autoscaler series to end in Prometheus",
             expected="no kube_horizontalpodautoscaler_* series",
             timeout=3 * scrape + 15, interval=1.0, clock=clock, sleep=sleep,
             fix="check that the scaling objects were deleted (kubectl get hpa,scaledobject)")


#: Any HPA series left in the namespace (empty once the objects are gone). KEDA's own
#: ``keda_scaler_*`` series are not waited for: KEDA 2.16 never deletes them when a
#: ScaledObject goes (kedacore/keda pkg/metricscollector/prommetrics.go has no delete;
#: KEDA 2.17's fix for kedacore/keda#6617 clears them only when a live object is
#: reconciled), so on a cluster they would never end. Its
#: generated HPA ``keda-hpa-<name>`` is an HPA, gone with the ScaledObject, so a KEDA
#: scenario's end is still seen here; the report's KEDA queries are scoped to the
#: scenario's ScaledObject names, which KEDA updates on its first poll.
AUTOSCALER_SERIES = (
    'count(kube_horizontalpodautoscaler_spec_max_replicas{{namespace="{ns}"}})'
)


def run_scenario(
    scenario: Any,
    backend: Backend,
    *,
    settings: ExperimentSettings,
    progress: Callable[[str], None] = print,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run ``scenario`` on an already-up ``backend``; write and return its run record.

    The record is written even when the run fails or is interrupted; the exception is
    re-raised after that. Failed expectations are not exceptions: see ``record['status']``.
    """
    from scalelab import expectations, queries
    from scalelab.load.runner import LocustRun

    timing = backend.settings.timing
    scenario_dir = settings.report_dir / settings.run_id / scenario.name
    scenario_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(started_at=clock())
    ledger: TaskLedger | None = None
    locust: Any = None
    series: dict[str, Any] | None = None
    endpoints = backend.endpoints
    try:
        progress(f"[{scenario.name}] reset: baseline "
                 f"{baseline_replicas(backend, settings)} replicas, "
                 "queue purged, scaling objects removed")
        reset(backend, settings=settings)
        # Graphs start here: before it, the previous scenario's tail and the reset.
        run.series_start = clock()
        ledger = TaskLedger(amqp_url=endpoints.amqp).start()
        for path in scenario.manifests:
            objects = backend.apply_scaling(path)
            run.manifests.append({"path": _rel(path), "objects": objects,
                                  "text": Path(path).read_text()})
            progress(f"[{scenario.name}] applied {_rel(path)}: {', '.join(objects)}")

        locust = LocustRun(api_url=endpoints.api, scenario=scenario,
                           out_dir=scenario_dir / "locust")
        locust.start()
        # The plan starts when Locust's shape starts its first phase (Locust takes a second
        # or two to boot); the phases' wall-clock boundaries are what the expectations use.
        first = wait_for(lambda: _first_phase(locust), bool,
                         what="Locust to start the first phase",
                         expected="a phase start in phases.jsonl",
                         timeout=60.0, interval=0.2, sleep=sleep,
                         fix="see the Locust log in the scenario's locust/ folder")
        load_start = float(first[0]["start"])
        run.phases = _plan_phases(scenario, load_start)
        _drive(scenario, backend, run, timing=timing, load_start=load_start,
               progress=progress, clock=clock, sleep=sleep)
        locust.wait(timeout=settings.load_grace)
        run.locust = locust.results()
        published = set(run.locust.get("task_ids", []))
        run.locust = {k: v for k, v in run.locust.items() if k != "task_ids"}
        _actual_phase_times(run.phases, run.locust.get("phases") or [])

        progress(f"[{scenario.name}] draining: {len(published)} tasks published, waiting for "
                 f"every one to be processed (timeout {settings.drain_timeout:.0f}s)")
        missing = ledger.wait_processed(published, timeout=settings.drain_timeout, sleep=sleep)
        run.tasks = ledger.summary(published)
        run.tasks["queue_left"] = _queue_left(backend, clock=clock, sleep=sleep)
        if missing:
            progress(f"[{scenario.name}] {len(missing)} tasks not processed after drain")
        run.decisions = [e.as_dict() for e in backend.scaling_events(since=run.started_at)]
        run.verdicts = expectations.evaluate(
            scenario, timeline=run.timeline, phases=run.phases, tasks=run.tasks,
            locust=run.locust, decisions=run.decisions)
        run.status = "passed" if all(v["passed"] for v in run.verdicts) else "failed"
    except KeyboardInterrupt:
        run.status = "interrupted"
        run.error = {"type": "KeyboardInterrupt", "message": "interrupted by the user"}
        raise
    except ScalelabError as err:
        run.status = "error"
        run.error = {"type": type(err).__name__, "message": str(err)}
        raise
    except Exception as err:
        run.status = "error"
        run.error = {"type": type(err).__name__,
                     "message": f"{err}\n{traceback.format_exc(limit=8)}"}
        raise ExperimentError(f"scenario {scenario.name} failed to run: {err}") from err
    except BaseException as err:  # e.g. pytest-timeout's Failed, SystemExit
        run.status = "error"
        run.error = {"type": type(err).__name__, "message": str(err) or repr(err)}
        raise
    finally:
        ended = clock()
        if locust is not None:
            locust.stop()
        if ledger is not None:
            ledger.stop()
        try:
            series = queries.capture_series(
                endpoints.prometheus, start=run.series_start or run.started_at, end=ended,
                scenario=scenario.to_dict(), scrape_interval=timing.scrape_interval,
                queries=_scoped_queries(run.manifests, namespace=backend.settings.namespace))
        except Exception as err:  # a report without graphs beats no record at all
            progress(f"[{scenario.name}] could not capture Prometheus series: {err}")
        doc = _record(scenario, backend, run, settings=settings, ended=ended)
        record.write(scenario_dir, doc, series)
        progress(f"[{scenario.name}] {run.status}: record {scenario_dir / record.RUN_FILE}")
    return doc


def _details(backend: Backend) -> dict[str, Any]:
    try:
        return backend.details()
    except Exception as err:  # noqa: BLE001 - the record is written whatever happens
        return {"error": f"{type(err).__name__}: {err}"}


def _scoped_queries(manifests: list[dict[str, Any]], *, namespace: str) -> tuple[Any, ...]:
    """The report's queries, limited to the stack's namespace (an existing cluster's run
    has its own) and the autoscalers this scenario applied."""
    from scalelab.queries import build_queries

    names = scaling_names(manifests)
    return build_queries(namespace=namespace, hpas=names.hpas,
                         scaled_objects=names.scaled_objects)


def _rel(path: Path | str) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def _plan_phases(scenario: Any, start: float) -> list[dict[str, Any]]:
    """Phase boundaries on the experiment's clock; Locust's shape follows the same plan."""
    phases = []
    t = start
    for phase in scenario.phases:
        phases.append({"name": phase.name, "start": t, "end": t + phase.duration,
                       "planned_duration": phase.duration, "load": phase.load_dict()})
        t += phase.duration
    return phases


def _first_phase(locust: Any) -> list[dict[str, Any]]:
    """Locust's logged phases so far; a Locust that already exited fails fast with its log."""
    times: list[dict[str, Any]] = locust.phase_times()
    if not times and not locust.running():
        raise ProcessStartError(
            f"Locust exited (code {locust.exit_code}) before starting the first phase:\n"
            f"{locust.log_tail()}", fix="see the Locust log in the scenario's locust/ folder")
    return times


def _actual_phase_times(planned: list[dict[str, Any]], actual: list[dict[str, Any]]) -> None:
    """Replace planned boundaries by the ones Locust's shape logged, where it logged them."""
    by_name = {p["name"]: p for p in actual}
    for phase in planned:
        seen = by_name.get(phase["name"])
        if seen is None:
            continue
        if seen.get("start") is not None:
            phase["start"] = float(seen["start"])
        if seen.get("end") is not None:
            phase["end"] = float(seen["end"])


def _drive(scenario: Any, backend: Backend, run: _Run, *, timing: Any, load_start: float,
           progress: Callable[[str], None], clock: Callable[[], float],
           sleep: Callable[[float], None]) -> None:
    """Observe until the last phase ends; one timeline sample and progress line per poll."""
    observer = Observer(backend=backend, metrics_window=timing.metrics_window, clock=clock,
                        hpas=scaling_names(run.manifests).hpas,
                        namespace=backend.settings.namespace)
    total = sum(p["planned_duration"] for p in run.phases)
    end = load_start + total
    while True:
        now = clock()
        sample = observer.sample()
        run.timeline.append(sample)
        current = next((p for p in run.phases if p["start"] <= now < p["end"]), run.phases[-1])
        progress(progress_line(
            scenario=scenario.name, phase=current["name"],
            phase_elapsed=min(now, current["end"]) - current["start"],
            phase_duration=current["planned_duration"], total_elapsed=now - load_start,
            total_duration=total, sample=sample))
        if now >= end:
            break
        sleep(max(0.0, min(timing.poll_interval, end - clock())))


#: The management API refreshes queue stats every collect_statistics_interval (5 s by
#: default): a reading right after the drain may still show the last tasks.
QUEUE_STATS_LAG = 15.0


def _queue_left(backend: Backend, *, clock: Callable[[], float] = time.time,
                sleep: Callable[[float], None] = time.sleep,
                lag: float = QUEUE_STATS_LAG) -> dict[str, int] | None:
    """What is left in the task queue after the drain: the first empty reading, or the last
    one after ``lag`` seconds (a real leftover stays; a stale statistic clears)."""
    session, base = management_session(backend.endpoints.rabbitmq_management)
    deadline = clock() + lag
    while True:
        depth = queue_depth(session, base)
        left = None if depth is None else {"ready": depth.ready, "unacked": depth.unacked}
        if (left is not None and left["ready"] + left["unacked"] == 0) or clock() >= deadline:
            return left
        sleep(1.0)


def _record(scenario: Any, backend: Backend, run: _Run, *, settings: ExperimentSettings,
            ended: float) -> dict[str, Any]:
    versions: dict[str, str | None] = {
        "scalelab": __version__, "python": platform.python_version(),
        "locust": _version("locust"),
    }
    with contextlib.suppress(ScalelabError):
        versions.update(backend.versions())
    diagnostics = None
    decisions = run.decisions or []
    try:
        if run.decisions is None:  # the run stopped before it collected them
            decisions = [e.as_dict() for e in backend.scaling_events(since=run.started_at)]
        if run.status != "passed":
            diagnostics = backend.diagnostics()
    except (ScalelabError, WaitTimeout, OSError) as err:
        diagnostics = {"error": f"could not collect diagnostics: {err}"}
    return {
        "schema_version": record.SCHEMA_VERSION,
        "run_id": settings.run_id,
        "status": run.status,
        "scenario": {**scenario.to_dict(), "file": _rel(scenario.file)},
        "backend": {"name": backend.name, "details": _details(backend)},
        "versions": versions,
        "timing_profile": backend.settings.timing.as_dict(),
        "manifests": run.manifests,
        "started_at": run.started_at,
        "ended_at": ended,
        "phases": run.phases,
        "timeline": run.timeline,
        "decisions": decisions,
        "locust": run.locust,
        "tasks": run.tasks,
        "verdicts": run.verdicts,
        "error": run.error,
        "diagnostics": diagnostics,
    }
