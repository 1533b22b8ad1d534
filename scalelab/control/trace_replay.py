"""Replay a recorded metrics trace through the pure cores: what would the HPA (and KEDA) do?

The simulation keeps its own replica count: every sync period it builds the inputs the
controller would read (simulated pods, metrics.k8s.io CPU samples, external metric values)
from the trace sample in force at that time (sample-and-hold), calls
``scalelab.control.hpa.reconcile`` and applies the decision to its simulated pods.
Trace formats are documented in ``docs/replay.md``.

For a KEDA ScaledObject the generated HPA is replayed *and* KEDA's own scaling: every
``pollingInterval`` the trace's value of each rabbitmq trigger's metric (the same value the
HPA's External metric is fed) becomes a trigger reading for ``scalelab.control.keda.activate``
(kedacore/keda ``pkg/scaling/executor/scale_scaledobjects.go`` ``RequestScale``: activation
0/idle -> max(min, 1), cooldownPeriod, idleReplicaCount), whose decision is applied to the
simulated pods. The two are interleaved on one simulated clock as ``loop.ControlLoop.step``
does: at a time both are due, KEDA polls first. While KEDA holds the target at 0 the HPA
still syncs, and declines (``ScalingDisabled``), as upstream and the live loop do.

Simplifications, stated in the output: pods are Running and Ready the moment they are
created unless ``pod_start`` is set (then Pending for that long); removed pods vanish at
once; CPU work is conserved when the trace says how many pods were ready (utilization is
rescaled to the simulated pod count), otherwise every simulated pod shows the traced
utilization.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from scalelab.control.hpa import (
    HPAControllerSettings,
    HPADecision,
    HPAInputs,
    HPASpec,
    HPAState,
    reconcile,
)
from scalelab.control.keda import (
    EventTrigger,
    KedaAction,
    KedaState,
    ScaledObjectSpec,
    TriggerReading,
    activate,
    trigger_authentications,
)
from scalelab.control.rabbitmq_scaler import QUEUE_LENGTH, quantity_milli
from scalelab.control.view import PodFacts, PodMetric
from scalelab.errors import ConfigError

#: CPU request of a simulated pod (only ratios matter; 1 core keeps percent == milli/10).
SIM_REQUEST_MILLI = 1000
#: Column/key names with a fixed meaning; any other numeric column is an external metric.
_RESERVED = {"t", "cpu_utilization", "cpu_milli", "queue_length", "ready", "external"}
#: How long before its first poll the replayed ScaledObject was created. Upstream the first
#: poll always comes after metadata.creationTimestamp (which is also truncated to the
#: second), and the live loop builds its KedaState before its first step; so a never-active
#: object with initialCooldownPeriod 0 is scaled in at the first poll, not the second.
_CREATED_BEFORE_FIRST_POLL = 1e-3
#: Float slack when comparing simulated times (a poll and a sync "at the same time").
_EPS = 1e-9


@dataclass(frozen=True, kw_only=True)
class TraceSample:
    """One row of a trace: the metric values in force from ``t`` on."""

    t: float
    cpu_utilization: float | None = None        # average percent of request
    cpu_milli: tuple[float, ...] | None = None  # per-pod usage (milli-cores)
    queue_length: float | None = None           # for every External metric without a value
    ready: int | None = None                    # pods ready when recorded (conserves work)
    external: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class KedaEvent:
    """A replica change KEDA made (the live loop records it as a ``controller="keda"`` event)."""

    t: float                 # seconds since the first sample
    action: KedaAction


@dataclass(frozen=True, kw_only=True)
class ReplayStep:
    """One HPA sync of the replay, with the KEDA scale changes since the previous sync."""

    t: float                 # seconds since the first sample
    decision: HPADecision
    sample: TraceSample
    keda: tuple[KedaEvent, ...] = ()   # made before this sync's decision (KEDA polls first)


@dataclass(frozen=True, kw_only=True)
class KedaHPASpec(HPASpec):
    """The HPA KEDA generates for a ScaledObject, carrying that ScaledObject so that
    ``replay`` also runs KEDA's own scaling (callers keep handling a plain ``HPASpec``)."""

    scaled_object: ScaledObjectSpec


@dataclass(frozen=True, kw_only=True)
class ReplayResult:
    spec: HPASpec
    steps: tuple[ReplayStep, ...]
    notes: tuple[str, ...]


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


class PlaceholderEnv(Mapping[str, str]):
    """Any env var a KEDA trigger reads (``hostFromEnv``), and any key of any Secret a
    TriggerAuthentication of the file references (``secretTargetRef``), resolves to a dummy
    management API URL: the replay never connects, it only needs the trigger to parse, and
    the http protocol accepts every mode (amqp refuses the rate modes, useRegex, ...)."""

    def __getitem__(self, key: str) -> str:
        return "http://replay:replay@127.0.0.1:15672/"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: str, default: Any = None) -> str:  # type: ignore[override]
        return self[key]


def load_manifest(path: Path) -> tuple[HPASpec, list[str]]:
    """The HPA to replay from a YAML file holding an HPA or a KEDA ScaledObject."""
    source = str(path)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except OSError as err:
        raise ConfigError(f"cannot read: {err}", file=source, fix="check the path") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"is not valid YAML: {err}", file=source,
                          fix="fix the YAML syntax") from None
    notes: list[str] = []
    auths = trigger_authentications([d for d in docs if isinstance(d, dict)])
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == "HorizontalPodAutoscaler":
            return _replayable(HPASpec.from_manifest(doc, source=source)), notes
        if doc.get("kind") == "ScaledObject":
            so = ScaledObjectSpec.from_manifest(doc, env=PlaceholderEnv(), auths=auths,
                                                secret=lambda name: PlaceholderEnv(),
                                                source=source)
            notes.append(f"KEDA ScaledObject/{so.name}: replaying its generated HPA "
                         f"{so.hpa_name} and KEDA's own scaling (activation 0/idle <-> "
                         f"min, cooldownPeriod {so.cooldown_period:g}s), polled every "
                         f"{so.polling_interval:g}s")
            hpa = _replayable(HPASpec.from_manifest(so.hpa_manifest(), source=source))
            return KedaHPASpec(**{f.name: getattr(hpa, f.name) for f in fields(hpa)},
                               scaled_object=so), notes
    raise ConfigError("holds no HorizontalPodAutoscaler or ScaledObject", file=source,
                      field="kind", fix="give an HPA manifest or a KEDA ScaledObject")


def _replayable(spec: HPASpec) -> HPASpec:
    """Refuse what a trace cannot drive (it has no memory column), before anything runs."""
    for i, metric in enumerate(spec.metrics):
        if metric.type == "Resource" and metric.name == "memory":
            raise ConfigError(
                "a memory metric cannot be replayed: traces carry CPU and external metrics "
                "only", file=spec.source, field=f"spec.metrics[{i}]",
                fix="replay a cpu or external metric (the local backend runs memory metrics)")
    return spec


def _num(value: Any, source: str, where: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{value!r} is not a number", file=source, field=where,
                          fix="write a number or leave the cell empty") from None
    if math.isnan(out):
        return None
    return out


def _sample(row: Mapping[str, Any], source: str, where: str) -> TraceSample:
    t = _num(row.get("t"), source, f"{where}.t")
    if t is None:
        raise ConfigError("has no time", file=source, field=f"{where}.t",
                          fix="give every row a 't' (seconds; any origin)")
    cpu_milli = row.get("cpu_milli")
    per_pod: tuple[float, ...] | None = None
    if isinstance(cpu_milli, list):
        per_pod = tuple(_num(v, source, f"{where}.cpu_milli") or 0.0 for v in cpu_milli)
    elif isinstance(cpu_milli, str) and cpu_milli.strip():
        per_pod = tuple(_num(v, source, f"{where}.cpu_milli") or 0.0
                        for v in cpu_milli.split(";"))
    external: dict[str, float] = {}
    raw_ext = row.get("external")
    if isinstance(raw_ext, Mapping):
        for k, v in raw_ext.items():
            val = _num(v, source, f"{where}.external.{k}")
            if val is not None:
                external[str(k)] = val
    for k, v in row.items():
        if k in _RESERVED or k is None:
            continue
        val = _num(v, source, f"{where}.{k}")
        if val is not None:
            external[str(k)] = val
    ready = _num(row.get("ready"), source, f"{where}.ready")
    return TraceSample(
        t=t, cpu_utilization=_num(row.get("cpu_utilization"), source,
                                  f"{where}.cpu_utilization"),
        cpu_milli=per_pod, queue_length=_num(row.get("queue_length"), source,
                                             f"{where}.queue_length"),
        ready=None if ready is None else int(ready), external=external)


def load_trace(path: Path) -> list[TraceSample]:
    """Samples from a CSV, a JSONL file, or a run record (run.json or its folder)."""
    source = str(path)
    if path.is_dir():
        path = path / "run.json"
        source = str(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read: {err}", file=source, fix="check the path") from None
    samples: list[TraceSample] = []
    if path.suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "t" not in reader.fieldnames:
            raise ConfigError("has no 't' column", file=source, field="t",
                              fix="start the CSV with a header such as t,cpu_utilization")
        for i, row in enumerate(reader, start=2):
            samples.append(_sample(row, source, f"line {i}"))
    elif path.suffix == ".json":
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"is not JSON: {err}", file=source,
                              fix="give a run.json written by scalelab") from None
        timeline = record.get("timeline") if isinstance(record, dict) else None
        if not isinstance(timeline, list):
            raise ConfigError("has no timeline", file=source, field="timeline",
                              fix="give a run record (reports/<run>/<scenario>/run.json)")
        for i, point in enumerate(timeline):
            ready_q, unacked = point.get("queue_ready"), point.get("queue_unacked")
            queue = None if ready_q is None else float(ready_q) + float(unacked or 0)
            samples.append(_sample({"t": point.get("t"),
                                    "cpu_utilization": point.get("cpu_utilization"),
                                    "ready": point.get("ready"), "queue_length": queue},
                                   source, f"timeline[{i}]"))
    else:
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"line {i} is not JSON: {err}", file=source,
                                  field=f"line {i}", fix="one JSON object per line") from None
            if not isinstance(row, dict):
                raise ConfigError("must be a JSON object", file=source, field=f"line {i}",
                                  fix="one JSON object per line")
            samples.append(_sample(row, source, f"line {i}"))
    if not samples:
        raise ConfigError("holds no samples", file=source, fix="give at least one row")
    samples.sort(key=lambda s: s.t)
    return samples


# --------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------


@dataclass
class _SimPod:
    name: str
    created: float


def replay(
    spec: HPASpec,
    samples: Sequence[TraceSample],
    *,
    settings: HPAControllerSettings,
    pod_start: float = 0.0,
    metrics_window: float = 60.0,
    initial_replicas: int | None = None,
) -> ReplayResult:
    """Run ``reconcile`` every ``settings.sync_period`` over the trace, and for a
    ``KedaHPASpec`` also ``keda.activate`` every ``pollingInterval`` (KEDA first when both
    are due, as ``ControlLoop.step``). Polls after the last sync are not run: no step
    would report them."""
    so = _check_replay(spec, samples)
    t0 = samples[0].t
    end = samples[-1].t
    replicas = initial_replicas if initial_replicas is not None else spec.min_replicas
    replicas = max(0, replicas)
    sim = _SimPods()
    sim.resize(replicas, t0 - 3600.0)
    # With instant readiness a sample must count at once: a zero window makes it so.
    window = metrics_window if pod_start > 0 else 0.0
    state = HPAState()
    keda_state = KedaState(created=t0 - _CREATED_BEFORE_FIRST_POLL)
    steps: list[ReplayStep] = []
    idx = 0

    def sample_at(now: float) -> TraceSample:  # sample-and-hold; ``now`` never decreases
        nonlocal idx
        while idx + 1 < len(samples) and samples[idx + 1].t <= now:
            idx += 1
        return samples[idx]

    n_sync = n_poll = 0
    # Times are t0 + n * period (not summed), so a poll and a sync that coincide compare equal.
    while (now := t0 + n_sync * settings.sync_period) <= end + _EPS:
        keda_events: list[KedaEvent] = []
        while so is not None and (poll := t0 + n_poll * so.polling_interval) <= now + _EPS:
            current = len(sim.pods)
            readings = _trigger_readings(so, sample_at(poll))
            action, keda_state = activate(so, now=poll, current_replicas=current,
                                          readings=readings, state=keda_state)
            if action.desired_replicas is not None:
                sim.resize(action.desired_replicas, poll)
                keda_events.append(KedaEvent(t=poll - t0, action=action))
            n_poll += 1
        sample = sample_at(now)
        inputs = _inputs(spec, sample, sim.pods, now, pod_start, window, len(sim.pods))
        decision, state = reconcile(spec, inputs, state, settings)
        if decision.scaled:
            sim.resize(decision.desired_replicas, now)
        steps.append(ReplayStep(t=now - t0, decision=decision, sample=sample,
                                keda=tuple(keda_events)))
        n_sync += 1
    return ReplayResult(spec=spec, steps=tuple(steps), notes=_notes(so, pod_start))


def _check_replay(spec: HPASpec, samples: Sequence[TraceSample]) -> ScaledObjectSpec | None:
    """Refuse what cannot be replayed; the ScaledObject of a KEDA replay, else None."""
    if not samples:
        raise ConfigError("the trace holds no samples", fix="give at least one row")
    so = spec.scaled_object if isinstance(spec, KedaHPASpec) else None
    if so is not None and so.polling_interval <= 0:
        raise ConfigError("must be positive", file=so.source, field="spec.pollingInterval",
                          fix="give the polling interval in seconds (KEDA's default is 30)")
    return so


def _notes(so: ScaledObjectSpec | None, pod_start: float) -> tuple[str, ...]:
    """What the replay assumed, printed with its result."""
    notes = [
        "pods are Running and Ready as soon as they are created" if pod_start <= 0
        else f"pods are Pending for {pod_start:g}s after creation, then Ready",
        "removed pods disappear at once (no termination grace period)",
    ]
    if so is not None:
        notes.append(f"ScaledObject/{so.name} is created at the first sample; a trigger is "
                     "active when its traced value is above activationValue")
        other = sorted({t.metadata.mode for t in so.triggers
                        if isinstance(t, EventTrigger) and t.metadata.mode != QUEUE_LENGTH})
        if other:
            notes.append(f"mode {', '.join(other)}: activity is judged from the traced "
                         "metric value alone (the trace carries no queue depth or rates)")
    return tuple(notes)


@dataclass
class _SimPods:
    """The simulated target: pods by creation order; scale-in removes the newest."""

    pods: list[_SimPod] = field(default_factory=list)
    counter: int = 0

    def resize(self, target: int, now: float) -> None:
        while len(self.pods) > target:
            self.pods.pop()
        while len(self.pods) < target:
            self.pods.append(_SimPod(f"pod-{self.counter}", now))
            self.counter += 1


def _trigger_readings(so: ScaledObjectSpec, sample: TraceSample) -> list[TriggerReading]:
    """One KEDA poll of every rabbitmq trigger, answered from the trace.

    The value is the one ``_inputs`` feeds the HPA for that metric (its own column, else
    ``queue_length``). Activity is rabbitmq_scaler.go ``GetMetricsAndActivity``'s rule for
    QueueLength, value > activationValue; a missing value is a failed poll (inactive, with
    an error), which KEDA's ``RequestScale`` never scales on.
    """
    readings = []
    for trig in so.triggers:
        if not isinstance(trig, EventTrigger):
            continue  # cpu/memory: activate() treats them as always active
        value = sample.external.get(trig.metric_name, sample.queue_length)
        if value is None:
            readings.append(TriggerReading(
                index=trig.index, value_milli=None, active=False,
                error=f"the trace has no value for {trig.metric_name} (nor queue_length)"))
        else:
            readings.append(TriggerReading(index=trig.index, value_milli=quantity_milli(value),
                                           active=value > trig.metadata.activation_value))
    return readings


def _inputs(spec: HPASpec, sample: TraceSample, pods: list[_SimPod], now: float,
            pod_start: float, window: float, spec_replicas: int) -> HPAInputs:
    facts = []
    ready_names = []
    for pod in pods:
        started = now >= pod.created + pod_start
        facts.append(PodFacts(
            name=pod.name, phase="Running" if started else "Pending", ready=started,
            deleting=False, start_time=pod.created,
            ready_transition_time=(pod.created + pod_start) if started else pod.created,
            cpu_request_milli=SIM_REQUEST_MILLI))
        if started:
            ready_names.append(pod.name)
    pod_metrics: dict[str, PodMetric] = {}
    usage = _cpu_per_pod(sample, len(ready_names))
    if usage is not None:
        for name, milli in zip(ready_names, usage, strict=False):
            pod_metrics[name] = PodMetric(pod=name, cpu_milli=int(round(milli)),
                                          memory_bytes=0, timestamp=now, window=window)
    external: dict[str, Sequence[int] | None] = {}
    for metric in spec.metrics:
        if metric.type != "External":
            continue
        value = sample.external.get(metric.name, sample.queue_length)
        # Served as KEDA serves a scaler's value (the only External source a local stack has).
        external[metric.name] = None if value is None else [quantity_milli(value)]
    return HPAInputs(now=now, spec_replicas=spec_replicas, pods=facts, pod_metrics=pod_metrics,
                     external_metrics_milli=external)


def _cpu_per_pod(sample: TraceSample, ready: int) -> list[float] | None:
    """Per-pod CPU (milli) for ``ready`` simulated pods, conserving the traced total work
    when the trace says how many pods carried it."""
    if ready == 0:
        return []
    if sample.cpu_milli is not None:
        total = sum(sample.cpu_milli)
        if sample.ready is None and len(sample.cpu_milli) == ready:
            return list(sample.cpu_milli)
        return [total / ready] * ready
    if sample.cpu_utilization is None:
        return None
    per_pod = sample.cpu_utilization * SIM_REQUEST_MILLI / 100.0
    if sample.ready:
        per_pod = per_pod * sample.ready / ready
    return [per_pod] * ready


def step_as_dict(step: ReplayStep) -> dict[str, Any]:
    """One JSONL line of ``scalelab replay --json``."""
    d = step.decision
    out: dict[str, Any] = {
        "t": round(step.t, 3), "current": d.current_replicas, "desired": d.desired_replicas,
        "scaled": d.scaled, "reason": d.reason, "proposal": d.metric_proposal,
        "metrics": [{k: v for k, v in vars(m).items() if v is not None}
                    for m in d.metric_statuses],
        "conditions": d.conditions_as_dicts(),
    }
    if step.keda:  # only ScaledObject replays have the key, and only when KEDA scaled
        out["keda"] = [{"t": round(e.t, 3), "from": e.action.current_replicas,
                        "to": e.action.desired_replicas, "reason": e.action.reason}
                       for e in step.keda]
    return out
