"""The experiment: one scenario on one backend → one stored run record, verdicts included.

A pipeline of named steps, as in esrally: reset → apply → start load → drive → drain →
account → evaluate, then store (always, even after a failure or Ctrl-C). Each step is
timed and recorded by name in the record's ``steps``, and an error names the step it
happened in ("step drain failed after 183 s: ..."). Plain and importable: the pytest in
``experiments/`` is a thin driver around :func:`run_scenario`, and so can any other
orchestrator be.

Time: one ``Clock`` for the whole run (``scalelab.clock``): wall time for what the record
stores (sample and phase times, which Locust logs on the same clock), monotonic time for
every wait's timeout. Locust and the task ledger are seams (``load_run``, ``ledger``) so
a test can run the whole control flow on a fake clock.
"""

from __future__ import annotations

import contextlib
import platform
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, cast

import requests

from scalelab import __version__, expectations, queries, record
from scalelab.accounting import TaskLedger
from scalelab.backends.base import Backend
from scalelab.clock import SYSTEM, Clock
from scalelab.decisions import ScalingEvent
from scalelab.errors import ScalelabError, WaitTimeout
from scalelab.faults import FaultRecord, FaultRunner
from scalelab.load.runner import LocustRun
from scalelab.observe import (
    Observer,
    Sample,
    management_session,
    progress_line,
    prom_scalar,
    queue_depth,
)
from scalelab.paths import REPORTS, ROOT
from scalelab.pipeline import Step, StepFailed, StepRecord, run_steps
from scalelab.repetitions import folder_name
from scalelab.scenario import Scenario
from scalelab.settings import AGENT_DEPLOYMENT
from scalelab.twin import check as twin_check
from scalelab.twin.calibrate import Calibration
from scalelab.twin.predict import Prediction
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
    #: How long Locust may take to boot and start the first phase.
    load_start_timeout: float = 60.0
    #: Replicas the agent Deployment is reset to between scenarios. None: the backend's
    #: ``baseline_replicas`` (the stack's ``agent_replicas`` override or the Deployment's
    #: manifest).
    baseline_replicas: int | None = None


# -- the seams: Locust and the task ledger -------------------------------------------------


class LoadRun(Protocol):
    """What the experiment needs of the load generator (``scalelab.load.runner.LocustRun``)."""

    def start(self) -> object: ...
    def wait_first_phase(self, timeout: float = ...) -> float: ...
    def wait(self, timeout: float) -> int: ...
    def results(self) -> dict[str, Any]: ...
    def stop(self) -> None: ...


class Ledger(Protocol):
    """What the experiment needs of the task accounting (``scalelab.accounting.TaskLedger``)."""

    def start(self) -> object: ...
    def stop(self) -> None: ...
    def wait_processed(self, published: set[str], *, timeout: float,
                       clock: Callable[[], float], sleep: Callable[[float], None]
                       ) -> set[str]: ...
    def summary(self, published: Iterable[str]) -> dict[str, Any]: ...


class LoadRunFactory(Protocol):
    def __call__(self, *, api_url: str, scenario: Scenario, out_dir: Path,
                 clock: Clock) -> LoadRun: ...


class LedgerFactory(Protocol):
    def __call__(self, *, amqp_url: str) -> Ledger: ...


def locust_run(*, api_url: str, scenario: Scenario, out_dir: Path, clock: Clock) -> LoadRun:
    """The real load: Locust in its own process."""
    return LocustRun(api_url=api_url, scenario=scenario, out_dir=out_dir, clock=clock)


def task_ledger(*, amqp_url: str) -> Ledger:
    """The real accounting: the results queue consumed in a background thread."""
    return TaskLedger(amqp_url=amqp_url)


# -- typed run state -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PhaseWindow:
    """A phase's boundaries on the wall clock: planned, then as Locust's shape logged them."""

    name: str
    start: float | None
    end: float | None
    planned_duration: float
    load: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start, "end": self.end,
                "planned_duration": self.planned_duration, "load": self.load}


@dataclass(frozen=True, kw_only=True)
class AppliedManifest:
    """A scaling manifest the run applied: the record's ``manifests[]``."""

    path: str
    objects: list[str]
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "objects": self.objects, "text": self.text}


def _no_tasks() -> dict[str, Any]:
    return {"published": 0, "processed": 0, "lost": 0, "duplicated": 0}


@dataclass(kw_only=True)
class RunState:
    """What one run has gathered so far; turned into the record at the end, whatever
    happened. Times are wall-clock unix seconds."""

    started_at: float
    steps: list[StepRecord] = field(default_factory=list)
    phases: list[PhaseWindow] = field(default_factory=list)
    timeline: list[Sample] = field(default_factory=list)
    #: None until the account step collected them (the record then asks the backend).
    decisions: list[ScalingEvent] | None = None
    series_start: float | None = None
    manifests: list[AppliedManifest] = field(default_factory=list)
    load_start: float | None = None
    locust: dict[str, Any] | None = None
    published: set[str] = field(default_factory=set)
    tasks: dict[str, Any] = field(default_factory=_no_tasks)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    status: str = "error"
    error: dict[str, str] | None = None
    series: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    #: The scenario's faults as they fired (``scalelab.faults``).
    faults: list[FaultRecord] = field(default_factory=list)
    #: The twin's prediction and its comparison (scenario ``twin:``; ``scalelab.twin.check``).
    twin: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class _Prediction:
    """What the predict step made: kept to compare with the run once it is over."""

    prediction: Prediction
    calibration: Calibration
    records: tuple[Path, ...]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def baseline_replicas(backend: Backend, settings: ExperimentSettings) -> int:
    """The agent replicas a scenario starts from: the settings' pin, else the backend's
    baseline (what the agent Deployment asks for on that backend)."""
    if settings.baseline_replicas is not None:
        return settings.baseline_replicas
    return backend.baseline_replicas(AGENT_DEPLOYMENT)


def reset(backend: Backend, *, settings: ExperimentSettings, clock: Clock = SYSTEM) -> None:
    """Bring the stack back to the baseline so scenarios do not leak into each other."""
    target = baseline_replicas(backend, settings)
    backend.remove_scaling()
    backend.purge_queue()
    backend.scale(AGENT_DEPLOYMENT, target)
    wait_for(lambda: backend.replicas(AGENT_DEPLOYMENT),
             lambda r: r.spec == target and r.current == target and r.ready == target,
             what=f"Deployment {AGENT_DEPLOYMENT} to settle at the baseline",
             expected=f"spec=current=ready={target}", timeout=settings.settle_timeout,
             interval=1.0, clock=clock.monotonic, sleep=clock.sleep,
             fix="look at the pod logs in the diagnostics; pods may be failing to start")
    # The next scenario's HPA usually has the same name (agent / keda-hpa-agent): until a
    # scrape has seen the old one go, its last sample would open the new scenario's charts.
    scrape = backend.settings.timing.scrape_interval
    prometheus = backend.endpoints.prometheus.rstrip("/")
    session = requests.Session()
    query = queries.autoscaler_series(namespace=backend.settings.namespace)
    wait_for(lambda: prom_scalar(session, prometheus, query), lambda n: n is None,
             what="the previous scenario's autoscaler series to end in Prometheus",
             expected="no kube_horizontalpodautoscaler_* series",
             timeout=3 * scrape + 15, interval=1.0, clock=clock.monotonic, sleep=clock.sleep,
             fix="check that the scaling objects were deleted (kubectl get hpa,scaledobject)")


def run_scenario(
    scenario: Scenario,
    backend: Backend,
    *,
    settings: ExperimentSettings,
    progress: Callable[[str], None] = print,
    clock: Clock = SYSTEM,
    load_run: LoadRunFactory = locust_run,
    ledger: LedgerFactory = task_ledger,
    repetition: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` on an already-up ``backend``; write and return its run record.

    ``repetition`` (k, N) marks the run as the k-th of N: its record goes to the folder
    ``scalelab.repetitions.folder_name`` gives and says so in ``repetition``.

    The record is written even when a step fails or the run is interrupted; the exception
    is re-raised after that (a step's error as ``StepFailed`` naming the step, Ctrl-C as
    itself). Failed expectations are not exceptions: see ``record['status']``.
    """
    run = _Experiment(scenario=scenario, backend=backend, settings=settings,
                      progress=progress, clock=clock, load_run=load_run, ledger=ledger,
                      repetition=repetition)
    try:
        run_steps(run.steps(), clock=clock, done=run.state.steps,
                  what=f"scenario {scenario.name}")
    except BaseException as err:
        run.state.status, run.state.error = _failure(err)
        raise
    finally:
        doc = run.store()
    return doc


def explain(rec: Mapping[str, Any]) -> str:
    """Why a scenario failed, from its record: the status, the error, each failed
    expectation (expected, observed, when) and the replica timeline. What the pytest driver
    fails the test with and what a failed Dagster materialization says."""
    lines = [f"scenario {rec['scenario']['name']} on backend {rec['backend']['name']}: "
             f"{rec['status']}"]
    if rec.get("error"):
        lines.append(f"error: {rec['error']['message']}")
    for v in rec["verdicts"]:
        if not v["passed"]:
            lines.append(f"FAILED {v['id']}: expected {v['expected']}, observed {v['observed']}"
                         + (f" (at +{v['at'] - rec['started_at']:.0f}s)" if v.get("at") else ""))
    lines.append("replica timeline (t, spec/current/ready, queue, cpu%):")
    t0 = rec["started_at"]
    for s in rec["timeline"]:
        lines.append(f"  +{s['t'] - t0:6.1f}s {s['spec']}/{s['current']}/{s['ready']} "
                     f"q={s.get('queue_ready')} cpu={s.get('cpu_utilization')}")
    return "\n".join(lines)


def _failure(err: BaseException) -> tuple[str, dict[str, str]]:
    """The record's ``status`` and ``error`` for what stopped the run."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", {"type": "KeyboardInterrupt", "message": "interrupted by the user"}
    if isinstance(err, StepFailed):
        message = str(err)
        if not isinstance(err.cause, ScalelabError):  # a bug: keep where it happened
            message += "\n" + "".join(traceback.format_exception(err.cause, limit=8))
        return "error", {"type": type(err.cause).__name__, "message": message,
                         "step": err.step}
    # e.g. pytest-timeout's Failed, SystemExit
    return "error", {"type": type(err).__name__, "message": str(err) or repr(err)}


class _Experiment:
    """One run's steps over its typed state; ``store`` turns the state into the record."""

    def __init__(self, *, scenario: Scenario, backend: Backend, settings: ExperimentSettings,
                 progress: Callable[[str], None], clock: Clock,
                 load_run: LoadRunFactory, ledger: LedgerFactory,
                 repetition: tuple[int, int] | None = None) -> None:
        self.scenario = scenario
        self.backend = backend
        self.settings = settings
        self.progress = progress
        self.clock = clock
        self.make_load_run = load_run
        self.make_ledger = ledger
        self.repetition = repetition
        index = repetition[0] if repetition else 1
        self.dir = settings.report_dir / settings.run_id / folder_name(scenario.name, index)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = RunState(started_at=clock.wall())
        self.names = queries.scaling_names(scenario.scaling_objects)
        self.load: LoadRun | None = None
        self.ledger: Ledger | None = None
        self.faults: FaultRunner | None = None
        self.prediction: _Prediction | None = None

    def say(self, line: str) -> None:
        rep = f" r{self.repetition[0]}/{self.repetition[1]}" if self.repetition else ""
        self.progress(f"[{self.scenario.name}{rep}] {line}")

    def steps(self) -> list[Step]:
        first: list[Step] = [("predict", self.predict)] if self.scenario.twin_calibrate_on \
            else []
        return [*first, ("reset", self.reset), ("apply", self.apply),
                ("start load", self.start_load), ("drive", self.drive), ("drain", self.drain),
                ("account", self.account), ("evaluate", self.evaluate)]

    # -- the steps ---------------------------------------------------------------------
    def predict(self) -> None:
        """The twin's prediction, made before the run starts (``twin:``; a record to
        calibrate on that is missing or lacks a field fails here, before any load)."""
        records = twin_check.calibration_records(
            self.scenario, run_dir=self.settings.report_dir / self.settings.run_id,
            reports_dir=self.settings.report_dir)
        pred, calibration = twin_check.predict(self.scenario, records)
        self.prediction = _Prediction(prediction=pred, calibration=calibration,
                                      records=tuple(records))
        self.state.twin = twin_check.section(pred, calibration, records=records, run=None,
                                             rel=_rel)
        s = pred.result.summary()
        self.say(f"twin: predicts {s['replica_seconds']:.0f} replica-seconds, queue wait p95 "
                 f"{s['queue_wait_p95_s']:.1f}s, {s['replica_changes']} replica changes "
                 f"(calibrated on {', '.join(self.state.twin['calibrated_on'])})")

    def reset(self) -> None:
        self.say(f"reset: baseline {baseline_replicas(self.backend, self.settings)} "
                 "replicas, queue purged, scaling objects removed")
        reset(self.backend, settings=self.settings, clock=self.clock)
        # Graphs start here: before it, the previous scenario's tail and the reset.
        self.state.series_start = self.clock.wall()

    def apply(self) -> None:
        for path in self.scenario.manifests:
            objects = self.backend.apply_scaling(path)
            self.state.manifests.append(AppliedManifest(
                path=_rel(path), objects=objects, text=Path(path).read_text()))
            self.say(f"applied {_rel(path)}: {', '.join(objects)}")

    def start_load(self) -> None:
        """The ledger first (it must see every result), then Locust until its first phase,
        then the scenario's faults on their schedule from that moment."""
        endpoints = self.backend.endpoints
        # before any load: a backend that cannot fire the faults refuses here
        injector = self.backend.fault_injector() if self.scenario.faults else None
        self.ledger = self.make_ledger(amqp_url=endpoints.amqp)
        self.ledger.start()
        self.load = self.make_load_run(api_url=endpoints.api, scenario=self.scenario,
                                       out_dir=self.dir / "locust", clock=self.clock)
        self.load.start()
        start = self.load.wait_first_phase(timeout=self.settings.load_start_timeout)
        self.state.load_start = start
        self.state.phases = _plan_phases(self.scenario, start)
        if injector is not None:
            plan = self.scenario.fault_schedule()
            self.say(f"faults: {len(plan)} action(s) scheduled")
            self.faults = FaultRunner(plan, injector, start=start, clock=self.clock.wall)
            self.faults.begin()

    def drive(self) -> None:
        """Observe until the last phase ends: one timeline sample and progress line per poll
        (the last one at the planned end)."""
        assert self.state.load_start is not None, "the start load step runs before"
        timing = self.backend.settings.timing
        observer = Observer(backend=self.backend, metrics_window=timing.metrics_window,
                            clock=self.clock.wall, hpas=self.names.hpas,
                            namespace=self.backend.settings.namespace)
        end = self.state.load_start + sum(p.planned_duration for p in self.state.phases)

        def sample() -> Sample:
            s = observer.sample()
            self.state.timeline.append(s)
            self.progress(self._progress_line(s))
            return s

        def sleep(seconds: float) -> None:  # never past the end: the last sample is at it
            self.clock.sleep(max(0.0, min(seconds, end - self.clock.wall())))

        wait_for(sample, lambda s: s.t >= end, what="the last phase to end",
                 expected=f"a sample at or after {end:.0f} (wall clock)",
                 timeout=end - self.clock.wall() + 3 * timing.poll_interval + 60,
                 interval=timing.poll_interval, clock=self.clock.monotonic, sleep=sleep,
                 fix="the wall clock jumped or sampling is slower than the phases")
        self._stop_faults()

    def _stop_faults(self) -> None:
        """Stop firing and heal what is in force (also when a step failed)."""
        if self.faults is not None:
            self.state.faults = self.faults.stop()
            self.faults = None
            failed = [r for r in self.state.faults if r.error]
            self.say(f"faults: {len(self.state.faults)} action(s) fired"
                     + (f", {len(failed)} failed: {failed[0].error}" if failed else ""))

    def _progress_line(self, s: Sample) -> str:
        phases, load_start = self.state.phases, self.state.load_start or s.t
        current = next((p for p in phases if p.start is not None and p.end is not None
                        and p.start <= s.t < p.end), phases[-1])
        start = current.start if current.start is not None else load_start
        end = current.end if current.end is not None else s.t
        return progress_line(
            scenario=self.scenario.name, phase=current.name,
            phase_elapsed=min(s.t, end) - start, phase_duration=current.planned_duration,
            total_elapsed=s.t - load_start,
            total_duration=sum(p.planned_duration for p in phases), sample=s)

    def drain(self) -> None:
        """Locust ends by itself after its last phase; then every published task must be
        processed within ``drain_timeout`` (the missing ones are reported lost)."""
        assert self.load is not None and self.ledger is not None
        self.load.wait(timeout=self.settings.load_grace)
        results = self.load.results()
        self.state.published = set(results.get("task_ids", []))
        self.state.locust = {k: v for k, v in results.items() if k != "task_ids"}
        self.state.phases = _actual_phase_times(self.state.phases,
                                                self.state.locust.get("phases") or [])
        self.say(f"draining: {len(self.state.published)} tasks published, waiting for every "
                 f"one to be processed (timeout {self.settings.drain_timeout:.0f}s)")
        missing = self.ledger.wait_processed(
            self.state.published, timeout=self.settings.drain_timeout,
            clock=self.clock.monotonic, sleep=self.clock.sleep)
        if missing:
            self.say(f"{len(missing)} tasks not processed after drain")

    def account(self) -> None:
        assert self.ledger is not None
        tasks = self.ledger.summary(self.state.published)
        tasks["queue_left"] = _queue_left(self.backend, clock=self.clock)
        self.state.tasks = tasks
        self.state.decisions = self.backend.scaling_events(since=self.state.started_at)

    def evaluate(self) -> None:
        state = self.state
        if self.prediction is not None:
            p = self.prediction
            state.twin = twin_check.section(
                p.prediction, p.calibration, records=p.records, rel=_rel,
                run={"phases": [w.as_dict() for w in state.phases],
                     "timeline": [s.as_dict() for s in state.timeline]})
        state.verdicts = expectations.evaluate(
            self.scenario, timeline=[s.as_dict() for s in state.timeline],
            phases=[p.as_dict() for p in state.phases], tasks=state.tasks,
            locust=state.locust, decisions=[e.as_dict() for e in state.decisions or []],
            faults=[f.as_dict() for f in state.faults], twin=state.twin)
        state.status = "passed" if all(v["passed"] for v in state.verdicts) else "failed"

    # -- store: always, whatever happened ------------------------------------------------
    def store(self) -> dict[str, Any]:
        """Stop what runs, capture the series, write the record (the ``store`` step's time
        covers all but the file write itself)."""
        ended = self.clock.wall()
        done: list[StepRecord] = []
        try:
            run_steps([("store", lambda: self._collect(ended))], clock=self.clock, done=done)
        finally:
            self.state.steps.extend(done)
            doc = self._record(ended)
            record.write(self.dir, doc, self.state.series)
            self.say(f"{self.state.status}: record {self.dir / record.RUN_FILE}")
        return doc

    def _collect(self, ended: float) -> None:
        self._stop_faults()
        if self.load is not None:
            self.load.stop()
        if self.ledger is not None:
            self.ledger.stop()
        state, backend = self.state, self.backend
        try:
            state.series = queries.capture_series(
                backend.endpoints.prometheus, start=state.series_start or state.started_at,
                end=ended, scenario=self.scenario.to_dict(),
                scrape_interval=backend.settings.timing.scrape_interval,
                queries=queries.build_queries(namespace=backend.settings.namespace,
                                              hpas=self.names.hpas,
                                              scaled_objects=self.names.scaled_objects))
        except Exception as err:  # a report without graphs beats no record at all
            self.say(f"could not capture Prometheus series: {err}")
        try:
            if state.decisions is None:  # the run stopped before it collected them
                state.decisions = backend.scaling_events(since=state.started_at)
            if state.status != "passed":
                state.diagnostics = backend.diagnostics()
        except (ScalelabError, WaitTimeout, OSError) as err:
            state.diagnostics = {"error": f"could not collect diagnostics: {err}"}

    def _record(self, ended: float) -> dict[str, Any]:
        state, backend = self.state, self.backend
        return {
            "schema_version": record.SCHEMA_VERSION,
            "run_id": self.settings.run_id,
            "status": state.status,
            "scenario": {**self.scenario.to_dict(), "file": _rel(self.scenario.file)},
            "backend": {"name": backend.name, "details": _details(backend)},
            "versions": _versions(backend),
            "timing_profile": backend.settings.timing.as_dict(),
            "manifests": [m.as_dict() for m in state.manifests],
            "started_at": state.started_at,
            "ended_at": ended,
            "steps": [s.as_dict() for s in state.steps],
            "phases": [p.as_dict() for p in state.phases],
            "timeline": [s.as_dict() for s in state.timeline],
            "decisions": [e.as_dict() for e in state.decisions or []],
            "locust": state.locust,
            "tasks": state.tasks,
            "verdicts": state.verdicts,
            "error": state.error,
            "diagnostics": state.diagnostics,
            **({"faults": [f.as_dict() for f in state.faults]} if state.faults else {}),
            **({"twin": state.twin} if state.twin is not None else {}),
            **({"repetition": {"index": self.repetition[0], "of": self.repetition[1],
                               "min_pass": self.scenario.min_pass or self.repetition[1]}}
               if self.repetition else {}),
        }


def _versions(backend: Backend) -> dict[str, str | None]:
    versions: dict[str, str | None] = {
        "scalelab": __version__, "python": platform.python_version(),
        "locust": _version("locust"),
    }
    with contextlib.suppress(ScalelabError):
        versions.update(backend.versions())
    return versions


def _details(backend: Backend) -> dict[str, Any]:
    try:
        return backend.details()
    except Exception as err:  # noqa: BLE001 - the record is written whatever happens
        return {"error": f"{type(err).__name__}: {err}"}


def _rel(path: Path | str) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def _plan_phases(scenario: Scenario, start: float) -> list[PhaseWindow]:
    """Phase boundaries on the wall clock; Locust's shape follows the same plan."""
    return [PhaseWindow(name=phase.name, start=start + begin, end=start + end,
                        planned_duration=phase.duration, load=phase.load_dict())
            for phase, begin, end in scenario.phase_offsets()]


def _actual_phase_times(planned: list[PhaseWindow],
                        actual: list[dict[str, Any]]) -> list[PhaseWindow]:
    """The planned boundaries, replaced by the ones Locust's shape logged where it did."""
    by_name = {p["name"]: p for p in actual}
    out = []
    for phase in planned:
        seen = by_name.get(phase.name) or {}
        start, end = seen.get("start"), seen.get("end")
        out.append(replace(phase, start=phase.start if start is None else float(start),
                           end=phase.end if end is None else float(end)))
    return out


#: The management API refreshes queue stats every collect_statistics_interval (5 s by
#: default): a reading right after the drain may still show the last tasks.
QUEUE_STATS_LAG = 15.0


def _queue_left(backend: Backend, *, clock: Clock = SYSTEM,
                lag: float = QUEUE_STATS_LAG) -> dict[str, int] | None:
    """What is left in the task queue after the drain: the first empty reading, or the last
    one after ``lag`` seconds (a real leftover stays; a stale statistic clears)."""
    session, base = management_session(backend.endpoints.rabbitmq_management)

    def left() -> dict[str, int] | None:
        depth = queue_depth(session, base)
        return None if depth is None else {"ready": depth.ready, "unacked": depth.unacked}

    try:
        return wait_for(left, lambda v: v is not None and v["ready"] + v["unacked"] == 0,
                        what="the task queue's statistics to show it empty",
                        expected="ready+unacked == 0", timeout=lag, interval=1.0,
                        clock=clock.monotonic, sleep=clock.sleep)
    except WaitTimeout as err:   # a real leftover: the record shows it
        return cast("dict[str, int] | None", err.actual)
