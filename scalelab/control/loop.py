"""The driver: runs the emulated HPA controller and KEDA operator against a ClusterView.

Timing follows the cluster: every HPA (from an HPA manifest, or the one KEDA generates
for a ScaledObject) syncs every ``timing.hpa_sync_period``
(kube-controller-manager ``--horizontal-pod-autoscaler-sync-period``); each ScaledObject
is polled for activity every ``pollingInterval`` (kedacore/keda
``pkg/scaling/scale_handler.go`` scale loop). As in KEDA, the External metric a generated
HPA reads is fetched from the scaler *at each HPA sync* (KEDA's metrics server calls the
scaler on every external-metrics request unless ``useCachedMetrics``), not from the last
activity poll.

The decisions come from the pure cores (``scalelab.control.hpa.reconcile``,
``scalelab.control.keda.activate``); this module only reads the view, calls them, writes
``view.scale`` and records events and the exported series.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from scalelab.control import controller_metrics
from scalelab.control import rabbitmq_scaler as rmq
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
    KedaState,
    ScaledObjectSpec,
    TriggerReading,
    activate,
    trigger_authentications,
)
from scalelab.control.view import ClusterView
from scalelab.decisions import ScalingEvent
from scalelab.errors import ConfigError
from scalelab.settings import NAMESPACE, TimingProfile

log = logging.getLogger(__name__)

#: The thread never sleeps longer than this, so ``stop()`` is prompt.
_MAX_NAP = 0.5


@dataclass(kw_only=True)
class _KedaUnit:
    spec: ScaledObjectSpec
    state: KedaState
    next_poll: float = 0.0
    readings: dict[int, TriggerReading] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)


@dataclass(kw_only=True)
class _HPAUnit:
    spec: HPASpec
    state: HPAState = field(default_factory=HPAState)
    owner: _KedaUnit | None = None       # the ScaledObject that generated it
    next_sync: float = 0.0
    last: HPADecision | None = None


def _target_type(kind: str) -> str:
    return {"Utilization": "utilization", "AverageValue": "average", "Value": "value"}[kind]


class ControlLoop:
    """Emulated HPA + KEDA control loops for the scaling objects of one experiment."""

    def __init__(
        self, *, objects: Sequence[Mapping[str, Any]], view: ClusterView, timing: TimingProfile,
        registry: CollectorRegistry, clock: Callable[[], float] = time.time,
        http_get: rmq.HttpGet = rmq.urllib_get,
        amqp_fetch: Callable[[rmq.RabbitMQMetadata], rmq.QueueStatus] | None = None,
        source: str = "<manifest>", namespace: str = NAMESPACE,
    ) -> None:
        self._view = view
        self._clock = clock
        self._http_get = http_get
        self._amqp_fetch = amqp_fetch
        self._settings = HPAControllerSettings.from_timing(timing)
        self._sync_period = timing.hpa_sync_period
        # _step_lock serializes passes; _lock guards the state the exporter and the
        # experiment read, and is never held across a trigger's HTTP poll, so a scrape
        # does not wait for a slow RabbitMQ management API.
        self._step_lock = threading.Lock()
        self._lock = threading.RLock()
        self._events: list[ScalingEvent] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        self._keda: list[_KedaUnit] = []
        self._hpas: list[_HPAUnit] = []
        now = clock()
        auths = trigger_authentications(objects)
        for doc in objects:
            kind = doc.get("kind")
            if kind == "HorizontalPodAutoscaler":
                self._hpas.append(_HPAUnit(spec=HPASpec.from_manifest(doc, source=source)))
            elif kind == "ScaledObject":
                target = doc["spec"]["scaleTargetRef"]["name"]
                so = ScaledObjectSpec.from_manifest(doc, env=view.container_env(target),
                                                    auths=auths, secret=view.secret,
                                                    source=source, namespace=namespace)
                unit = _KedaUnit(spec=so, state=KedaState(created=now))
                self._keda.append(unit)
                hpa = HPASpec.from_manifest(so.hpa_manifest(), source=f"{source} (generated "
                                            f"by {so.object_ref})")
                self._hpas.append(_HPAUnit(spec=hpa, owner=unit))
            elif kind == "TriggerAuthentication":
                continue  # read by the ScaledObjects that reference it (auths above)
            else:
                raise ConfigError(f"unsupported kind {kind!r}", file=source, field="kind",
                                  fix="pass HorizontalPodAutoscaler or ScaledObject documents")
        self._collector = controller_metrics.ControlCollector(self.snapshot)
        self._registry = registry
        registry.register(self._collector)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Run the loops in a daemon thread until ``stop()``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="scalelab-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and unregister the series; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with contextlib.suppress(KeyError):  # already unregistered
            self._registry.unregister(self._collector)

    def __enter__(self) -> ControlLoop:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._clock()
            try:
                self.step(now)
            except Exception as exc:  # keep the controller alive, as kube-controller-manager
                log.exception("control loop step failed")
                with self._lock:
                    self.errors.append(f"{now:.3f}: {exc!r}")
            due = self._next_due() - self._clock()
            self._stop.wait(min(max(due, 0.01), _MAX_NAP))

    def _next_due(self) -> float:
        with self._lock:
            dues = [u.next_poll for u in self._keda] + [h.next_sync for h in self._hpas]
        return min(dues) if dues else self._clock() + _MAX_NAP

    # -- one pass ------------------------------------------------------------------------
    def step(self, now: float | None = None) -> None:
        """Run every poll and sync that is due at ``now`` (default: the clock)."""
        now = self._clock() if now is None else now
        with self._step_lock:
            for unit in self._keda:
                if now >= unit.next_poll:
                    self._poll_keda(unit, now)
                    with self._lock:
                        unit.next_poll = now + unit.spec.polling_interval
            for hpa in self._hpas:
                if now >= hpa.next_sync:
                    self._sync_hpa(hpa, now)
                    with self._lock:
                        hpa.next_sync = now + self._sync_period

    def _read_trigger(self, unit: _KedaUnit, trig: EventTrigger) -> TriggerReading:
        """Poll one trigger (outside the state lock: it is an HTTP or AMQP round trip)."""
        res = rmq.poll(trig.metadata, http_get=self._http_get, amqp_fetch=self._amqp_fetch)
        if res.error is not None:
            log.warning("%s trigger %d: %s", unit.spec.object_ref, trig.index, res.error)
        reading = TriggerReading(index=trig.index, value_milli=res.value_milli,
                                 active=res.active, error=res.error)
        with self._lock:
            if res.error is not None:
                unit.errors[trig.index] = unit.errors.get(trig.index, 0) + 1
            unit.readings[trig.index] = reading
        return reading

    def _poll_keda(self, unit: _KedaUnit, now: float) -> None:
        spec = unit.spec
        readings = [self._read_trigger(unit, t) for t in spec.triggers
                    if isinstance(t, EventTrigger)]
        with self._lock:
            current = self._view.spec_replicas(spec.target)
            action, unit.state = activate(spec, now=now, current_replicas=current,
                                          readings=readings, state=unit.state)
            if action.desired_replicas is not None:
                self._view.scale(spec.target, action.desired_replicas)
                self._record(ScalingEvent(
                    t=now, controller="keda", object=spec.object_ref, from_replicas=current,
                    to_replicas=action.desired_replicas, reason=action.reason,
                    conditions=list(action.conditions)))

    def _sync_hpa(self, hpa: _HPAUnit, now: float) -> None:
        target = hpa.spec.target_name
        external: dict[str, Sequence[int] | None] = {}
        if hpa.owner is not None:
            for t in hpa.owner.spec.triggers:
                if isinstance(t, EventTrigger):
                    r = self._read_trigger(hpa.owner, t)
                    external[t.metric_name] = None if r.value_milli is None \
                        else [r.value_milli]
        with self._lock:
            inputs = HPAInputs(now=now, spec_replicas=self._view.spec_replicas(target),
                               pods=self._view.pods(target),
                               pod_metrics=self._view.pod_metrics(target),
                               external_metrics_milli=external)
            decision, hpa.state = reconcile(hpa.spec, inputs, hpa.state, self._settings)
            hpa.last = decision
            if decision.scaled and decision.desired_replicas != decision.current_replicas:
                self._view.scale(target, decision.desired_replicas)
                self._record(ScalingEvent(
                    t=now, controller="hpa", object=hpa.spec.object_ref,
                    from_replicas=decision.current_replicas,
                    to_replicas=decision.desired_replicas, reason=decision.reason,
                    conditions=decision.conditions_as_dicts()))

    def _record(self, event: ScalingEvent) -> None:
        log.info("%s %s: %d -> %d (%s)", event.controller, event.object, event.from_replicas,
                 event.to_replicas, event.reason)
        self._events.append(event)

    # -- observation -------------------------------------------------------------------
    def events(self, since: float = 0.0) -> list[ScalingEvent]:
        """Every replica change either controller made, oldest first."""
        with self._lock:
            return [e for e in self._events if e.t >= since]

    def hpa_decisions(self) -> dict[str, HPADecision | None]:
        """The last decision per HPA (``HorizontalPodAutoscaler/<name>``)."""
        with self._lock:
            return {h.spec.object_ref: h.last for h in self._hpas}

    def keda_states(self) -> dict[str, KedaState]:
        with self._lock:
            return {u.spec.object_ref: u.state for u in self._keda}

    def snapshot(self) -> controller_metrics.Snapshot:
        """What the exporter publishes (a consistent copy under the lock)."""
        with self._lock:
            hpas = []
            for h in self._hpas:
                s = h.spec
                targets = []
                for m in s.metrics:
                    t = m.target
                    if t.type == "Utilization":
                        v = float(t.average_utilization or 0)
                    elif t.type == "AverageValue":
                        v = (t.average_value_milli or 0) / 1000
                    else:
                        v = (t.value_milli or 0) / 1000
                    targets.append((m.name, _target_type(t.type), v))
                d = h.last
                hpas.append(controller_metrics.HPAStatus(
                    name=s.name, namespace=s.namespace or NAMESPACE,
                    min_replicas=s.min_replicas, max_replicas=s.max_replicas,
                    current_replicas=None if d is None else d.current_replicas,
                    desired_replicas=None if d is None else d.desired_replicas,
                    spec_targets=targets,
                    status_targets=[] if d is None else controller_metrics.hpa_status_targets(
                        d.metric_statuses),
                    conditions=[] if d is None else d.conditions_as_dicts()))
            scalers = []
            for u in self._keda:
                for trig in u.spec.triggers:
                    if not isinstance(trig, EventTrigger):
                        continue
                    r = u.readings.get(trig.index)
                    scalers.append(controller_metrics.ScalerStatus(
                        namespace=u.spec.namespace, scaled_object=u.spec.name,
                        scaler=trig.scaler, trigger_index=trig.index, metric=trig.metric_name,
                        value=None if r is None else r.value,
                        active=False if r is None else r.active,
                        errors=u.errors.get(trig.index, 0)))
            return controller_metrics.Snapshot(hpas=hpas, scalers=scalers)
