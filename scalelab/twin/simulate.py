"""The twin's simulation: queue, pods and CPU in 1 s steps, driving the real controller cores.

Every second ``[t, t+1)``:

1. the controllers due in that second run, on the live loop's order (``loop.ControlLoop``:
   a KEDA poll before an HPA sync due at the same instant): ``keda.activate`` every
   ``pollingInterval`` and ``hpa.reconcile`` every sync period, both fed what they would
   read (``view.PodFacts``, metrics.k8s.io ``view.PodMetric``, External values as KEDA
   serves them, ``rabbitmq_scaler.quantity_milli``), as ``control/trace_replay.py`` builds them.
   Their decision creates pods (ready ``pod_start_s`` later) or removes the newest ones;
2. the second's tasks are published (``workload.Arrivals``), FIFO behind the backlog;
3. the ready pods serve the queue: one task at a time each (the agent's consume loop), a
   tool's task taking ``io_s + cpu_s * cpu_stretch (+ io_overhead_s)`` of wall time, using
   ``cpu_s`` CPU-seconds. Work is fluid (a task may be split across seconds) but never
   runs on more pods than there are tasks;
4. each pod's CPU (fraction of its request) accumulates; the metrics-server emulation
   publishes a pod's average over the last ``metrics_window`` once that window has passed
   since its previous scrape (``backends/local/resources.ResourceAccounting``). The
   broker's depth is what is left plus the tasks in service (the busy pod-seconds of the
   second, Little's law); the scalers read it as of the broker's last statistics refresh
   (every ``queue_stats_interval``).

The model is fluid in the tasks and exact in the controllers: the cores are called, not
re-implemented. See docs/twin.md for what it leaves out.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scalelab.control.hpa import HPAControllerSettings, HPAInputs, HPASpec, HPAState, reconcile
from scalelab.control.keda import (
    EventTrigger,
    KedaState,
    ScaledObjectSpec,
    TriggerReading,
    activate,
)
from scalelab.control.rabbitmq_scaler import QUEUE_LENGTH, quantity_milli
from scalelab.control.trace_replay import KedaHPASpec
from scalelab.control.view import PodFacts, PodMetric
from scalelab.errors import ConfigError
from scalelab.twin.workload import Arrivals

#: CPU request of a simulated pod in milli-units: utilization is a fraction of the request,
#: so the twin counts CPU in "requests" and gives every pod 1000m (1000m = 100 %).
REQUEST_MILLI = 1000
_EPS = 1e-9


@dataclass(frozen=True, kw_only=True)
class TwinParams:
    """The calibrated model (``calibrate.Calibration.params`` says where each comes from)."""

    settings: HPAControllerSettings
    metrics_window: float
    pod_start_s: float
    prefetch: int
    cpu_request_cores: float
    cpu_stretch: float             # wall seconds per CPU-second of a cpu tool's task
    io_overhead_s: float           # wall seconds an io task takes beyond its io_ms
    idle_utilization: float        # percent of request an idle pod shows
    queue_stats_interval: float
    apply_offset: float            # controllers' first pass, s from the first phase (<= 0)
    initial_replicas: int


@dataclass(kw_only=True)
class _Pod:
    created: float
    ready_at: float
    first_scrape: int              # end of the first second it served (metrics-server's
    name: str = ""                 # first sample of it)
    facts_pending: PodFacts | None = None
    facts_ready: PodFacts | None = None


@dataclass(frozen=True, kw_only=True)
class ControlEvent:
    t: float
    controller: str                # hpa | keda
    from_replicas: int
    to_replicas: int
    reason: str


@dataclass(kw_only=True)
class TwinResult:
    """Per-second timelines (value at the end of second ``t``, i.e. at ``t + 1``)."""

    spec: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    queue_ready: list[float] = field(default_factory=list)
    queue_unacked: list[float] = field(default_factory=list)
    cpu_utilization: list[float] = field(default_factory=list)
    processed_total: list[float] = field(default_factory=list)  # cumulative
    backlog: list[float] = field(default_factory=list)  # published, not yet processed
    events: list[ControlEvent] = field(default_factory=list)
    #: (tasks, queue wait s, latency s) of what completed, FIFO chunks.
    completions: list[tuple[float, float, float]] = field(default_factory=list)
    published: float = 0.0
    processed: float = 0.0
    replica_seconds: float = 0.0   # integral of pods that exist (pending ones too)
    floor: int = 0

    @property
    def in_system(self) -> float:
        return self.backlog[-1] if self.backlog else 0.0

    def quantile(self, q: float, *, which: str = "wait") -> float:
        """Weighted quantile of queue waits (``wait``) or latencies (``latency``)."""
        pairs = sorted((w if which == "wait" else lat, n) for n, w, lat in self.completions
                       if n > _EPS)
        total = sum(n for _, n in pairs)
        if total <= 0:
            return 0.0
        acc = 0.0
        for value, n in pairs:
            acc += n
            if acc >= q * total - _EPS:
                return value
        return pairs[-1][0]

    @property
    def replica_changes(self) -> int:
        return sum(1 for a, b in zip(self.spec, self.spec[1:], strict=False) if a != b)

    def first_scale_up(self) -> float | None:
        """Seconds from the start until ready replicas first rise (above every earlier
        count: a start above the floor that is scaled in first does not count)."""
        return first_rise([(float(t + 1), r) for t, r in enumerate(self.ready)])

    def back_to_floor(self) -> float | None:
        """Seconds until ready replicas are back at the floor after the first scale-up."""
        return back_to_floor([(float(t + 1), r) for t, r in enumerate(self.ready)],
                             self.floor, self.first_scale_up())

    def summary(self) -> dict[str, Any]:
        return {
            "seconds": len(self.spec), "published": round(self.published, 1),
            "processed": round(self.processed, 1),
            "replica_seconds": round(self.replica_seconds, 1),
            "replica_changes": self.replica_changes,
            "max_replicas": max(self.spec, default=0),
            "queue_wait_p50_s": round(self.quantile(0.5), 2),
            "queue_wait_p95_s": round(self.quantile(0.95), 2),
            "latency_p95_s": round(self.quantile(0.95, which="latency"), 2),
            "max_queue": round(max((a + b for a, b in zip(self.queue_ready, self.queue_unacked,
                                                          strict=False)), default=0.0), 1),
            "first_scale_up_s": self.first_scale_up(), "back_to_floor_s": self.back_to_floor(),
        }


def first_rise(points: Sequence[tuple[float, int]]) -> float | None:
    """The first time a replica count exceeds its running minimum."""
    low: int | None = None
    for t, r in points:
        if low is not None and r > low:
            return t
        low = r if low is None else min(low, r)
    return None


def back_to_floor(points: Sequence[tuple[float, int]], floor: int, after: float | None
                  ) -> float | None:
    """The first time after ``after`` that the count is at (or below) ``floor``."""
    if after is None:
        return None
    return next((t for t, r in points if t > after and r <= floor), None)


def _event_triggers(so: ScaledObjectSpec) -> list[EventTrigger]:
    trigs = [t for t in so.triggers if isinstance(t, EventTrigger)]
    for t in trigs:
        if t.metadata.mode != QUEUE_LENGTH:
            raise ConfigError(
                f"trigger mode {t.metadata.mode} reads publish/deliver rates the twin does "
                "not model", file=so.source, field=f"spec.triggers[{t.index}].metadata.mode",
                fix="use mode QueueLength for a prediction, or run the scenario for real")
    return trigs


def _check_spec(spec: HPASpec) -> None:
    for i, metric in enumerate(spec.metrics):
        if metric.type == "Resource" and metric.name == "memory":
            raise ConfigError("a memory metric cannot be predicted: the twin models CPU "
                              "and the queue", file=spec.source, field=f"spec.metrics[{i}]",
                              fix="use a cpu or a queue (External) metric")
        if metric.type == "Pods":
            raise ConfigError("Pods metrics are not modelled", file=spec.source,
                              field=f"spec.metrics[{i}]", fix="use a cpu or External metric")


class _Sim:
    """One run of the model; ``run`` returns the timelines.

    Pods are created in order and share one start delay, so the ready ones are always the
    oldest (a prefix of ``pods``), and scale-in removes the newest: the per-second work is
    O(1). A pod's CPU is not summed per pod: every fully ready pod gets the same share each
    second, so the cumulative share of one such pod (``cum``, per integer second) answers
    any pod's metrics-server window as a difference.
    """

    def __init__(self, spec: HPASpec, arrivals: Arrivals, params: TwinParams) -> None:
        _check_spec(spec)
        self.spec = spec
        self.p = params
        self.so = spec.scaled_object if isinstance(spec, KedaHPASpec) else None
        self.triggers = [(t.index, t.metric_name, t.metadata.activation_value,
                          t.metadata.exclude_unacknowledged)
                         for t in (_event_triggers(self.so) if self.so is not None else [])]
        self.arrivals = arrivals
        tools = arrivals.tools
        self.service = [t.io_s + t.cpu_s * params.cpu_stretch
                        + (params.io_overhead_s if t.io_s > 0 else 0.0) for t in tools]
        if any(s <= 0 for s in self.service):
            bad = tools[next(i for i, s in enumerate(self.service) if s <= 0)].name
            raise ConfigError(f"tool {bad!r} takes no time (no cpu_ms nor io_ms)",
                              field=f"workload.tools.{bad}", fix="give cpu_ms or io_ms")
        # request-seconds per wall second of serving a task of each tool
        self.cpu_rate = [t.cpu_s / s / params.cpu_request_cores if t.cpu_s else 0.0
                         for t, s in zip(tools, self.service, strict=True)]
        self.external = [m.name for m in spec.metrics if m.type == "External"]
        # metrics.k8s.io is read only for Resource metrics: skip it for queue-only objects
        self.reads_cpu = any(m.type == "Resource" for m in spec.metrics)
        self.exclude_unacked = {name: excl for _, name, _, excl in self.triggers}
        self.window = max(1, math.ceil(params.metrics_window - _EPS))
        self.pods: list[_Pod] = []
        self.counter = 0
        self.chunks: deque[list[float]] = deque()   # [count, tool index, arrival time]
        self.in_system = 0.0
        self.stats: list[tuple[float, float]] = []  # (messages, messages_ready) at 1 s ends
        self.cum: list[float] = [0.0]               # a fully ready pod's request-seconds
        self.milli: dict[float, int] = {}
        self.res = TwinResult()

    # -- pods ----------------------------------------------------------------------------
    def _resize(self, target: int, now: float) -> None:
        del self.pods[target:]
        while len(self.pods) < target:
            ready_at = now + self.p.pod_start_s
            self.pods.append(_Pod(created=now, ready_at=ready_at,
                                  first_scrape=math.floor(ready_at + _EPS) + 1,
                                  name=f"twin-{self.counter}"))
            self.counter += 1

    def _facts(self, pod: _Pod, now: float) -> PodFacts:
        if now + _EPS >= pod.ready_at:
            if pod.facts_ready is None:
                pod.facts_ready = PodFacts(
                    name=pod.name, phase="Running", ready=True, deleting=False,
                    start_time=pod.created, ready_transition_time=pod.ready_at,
                    cpu_request_milli=REQUEST_MILLI)
            return pod.facts_ready
        if pod.facts_pending is None:
            pod.facts_pending = PodFacts(
                name=pod.name, phase="Pending", ready=False, deleting=False,
                start_time=pod.created, ready_transition_time=pod.created,
                cpu_request_milli=REQUEST_MILLI)
        return pod.facts_pending

    def _metric(self, pod: _Pod, now: float) -> PodMetric | None:
        """The PodMetric metrics-server serves at ``now``: the pod's average over the last
        complete window (scrapes at its first served second's end, then every window)."""
        last = math.floor(now + _EPS)          # the newest second end the model has
        if last < pod.first_scrape + self.window:
            return None
        published = pod.first_scrape + (last - pod.first_scrape) // self.window * self.window
        used = self.cum[published] - self.cum[published - self.window]
        return PodMetric(pod=pod.name, cpu_milli=round(REQUEST_MILLI * used / self.window),
                         memory_bytes=0, timestamp=float(published), window=float(self.window))

    # -- what the scalers read -----------------------------------------------------------
    def _queue_seen(self, now: float) -> tuple[float, float]:
        """(messages, messages_ready) as the management API reports them at ``now``."""
        if not self.stats:
            return 0.0, 0.0
        tick = math.floor(now / self.p.queue_stats_interval + _EPS) * self.p.queue_stats_interval
        idx = int(math.floor(tick + _EPS)) - 1  # stats[i] is the state at time i + 1
        if idx < 0:
            return 0.0, 0.0
        return self.stats[min(idx, len(self.stats) - 1)]

    def _value(self, metric: str, now: float) -> float:
        messages, ready = self._queue_seen(now)
        return ready if self.exclude_unacked.get(metric, False) else messages

    def _quantity(self, value: float) -> int:
        got = self.milli.get(value)
        if got is None:
            got = self.milli[value] = quantity_milli(value)
        return got

    def _keda_poll(self, now: float, state: KedaState) -> KedaState:
        assert self.so is not None
        readings = []
        for index, name, activation, _ in self.triggers:
            value = self._value(name, now)
            readings.append(TriggerReading(index=index, value_milli=self._quantity(value),
                                           active=value > activation))
        current = len(self.pods)
        action, state = activate(self.so, now=now, current_replicas=current,
                                 readings=readings, state=state)
        if action.desired_replicas is not None:
            self._resize(action.desired_replicas, now)
            self.res.events.append(ControlEvent(t=now, controller="keda", from_replicas=current,
                                                to_replicas=action.desired_replicas,
                                                reason=action.reason))
        return state

    def _hpa_sync(self, now: float, state: HPAState) -> HPAState:
        facts = [self._facts(p, now) for p in self.pods]
        metrics = {}
        for pod in self.pods if self.reads_cpu else ():
            metric = self._metric(pod, now)
            if metric is not None:
                metrics[pod.name] = metric
        external: dict[str, Sequence[int] | None] = {
            name: [self._quantity(self._value(name, now))] for name in self.external}
        inputs = HPAInputs(now=now, spec_replicas=len(self.pods), pods=facts,
                           pod_metrics=metrics, external_metrics_milli=external)
        decision, state = reconcile(self.spec, inputs, state, self.p.settings)
        if decision.scaled:
            self._resize(decision.desired_replicas, now)
            self.res.events.append(ControlEvent(
                t=now, controller="hpa", from_replicas=decision.current_replicas,
                to_replicas=decision.desired_replicas, reason=decision.reason))
        return state

    # -- one second of work ----------------------------------------------------------------
    def _serve(self, t: int, capacity: float) -> tuple[float, float]:
        """Serve FIFO for one second with ``capacity`` pod-seconds; return the
        request-seconds of CPU used and the pod-seconds spent serving."""
        cap = min(capacity, self.in_system)
        left = cap
        cpu = 0.0
        res = self.res
        while self.chunks and left > _EPS:
            chunk = self.chunks[0]
            count, k = chunk[0], int(chunk[1])
            s = self.service[k]
            work = count * s
            done_work = min(work, left)
            done = done_work / s
            finish = t + (cap - left + done_work) / cap
            latency = max(finish - chunk[2], s)
            res.completions.append((done, latency - s, latency))
            cpu += done_work * self.cpu_rate[k]
            left -= done_work
            self.in_system -= done
            res.processed += done
            if done_work >= work - _EPS:
                self.chunks.popleft()
            else:
                chunk[0] = count - done
        return cpu, cap - left

    def _capacity(self, t: int) -> tuple[float, int]:
        """Pod-seconds the pods can serve in ``[t, t+1)``, and pods ready at ``t + 1``."""
        capacity = 0.0
        ready = 0
        for pod in self.pods:     # oldest first: stop at the first not ready by t + 1
            if pod.ready_at <= t + _EPS:
                capacity += 1.0
            elif pod.ready_at < t + 1 - _EPS:
                capacity += t + 1 - pod.ready_at
            elif pod.ready_at > t + 1 + _EPS:
                break
            ready += 1
        return capacity, ready

    def run(self) -> TwinResult:
        p, res = self.p, self.res
        res.floor = self.so.effective_min if self.so is not None else self.spec.min_replicas
        self._resize(p.initial_replicas, p.apply_offset - 3600.0)
        for pod in self.pods:
            pod.first_scrape = 0  # up long before: scraped since ever
        hpa_state = HPAState()
        keda_state = KedaState(created=p.apply_offset - 1e-3)
        sync_n = poll_n = 0
        poll = self.so.polling_interval if self.so is not None else math.inf
        sync = p.settings.sync_period
        idle = p.idle_utilization / 100.0
        prefetch = float(p.prefetch)
        next_sync = p.apply_offset
        next_poll = p.apply_offset if self.so is not None else math.inf
        chunks, cum, stats = self.chunks, self.cum, self.stats
        for t, row in enumerate(self.arrivals.per_second):
            # 1. controllers due in [t, t+1): KEDA first on a tie (times are offset + n *
            #    period, not sums, so a poll and a sync that coincide compare equal)
            limit = t + 1 - _EPS
            while next_sync < limit or next_poll < limit:
                if next_poll <= next_sync + _EPS:
                    keda_state = self._keda_poll(next_poll, keda_state)
                    poll_n += 1
                    next_poll = p.apply_offset + poll_n * poll
                else:
                    hpa_state = self._hpa_sync(next_sync, hpa_state)
                    sync_n += 1
                    next_sync = p.apply_offset + sync_n * sync
            # 2. arrivals (mid-second)
            for k, n in enumerate(row):
                if n > 0:
                    chunks.append([n, k, t + 0.5])
                    self.in_system += n
                    res.published += n
            # 3. service by the pods ready during this second
            capacity, ready = self._capacity(t)
            cpu, busy = self._serve(t, capacity) if capacity > 0 and chunks else (0.0, 0.0)
            # 4. a fully ready pod's CPU share (request units) and the queue statistics
            per_pod = cpu / capacity + idle if capacity > 0 else 0.0
            cum.append(cum[-1] + per_pod)
            # the broker's view: what is left plus what the pods were busy with (Little's
            # law: busy pod-seconds per second = tasks in service on average), since the
            # fluid model finishes within the second what an agent holds unacked meanwhile
            in_system = self.in_system + busy
            unacked = min(prefetch * ready, in_system)
            stats.append((in_system, in_system - unacked))
            n_pods = len(self.pods)
            res.spec.append(n_pods)
            res.ready.append(ready)
            res.queue_ready.append(in_system - unacked)
            res.queue_unacked.append(unacked)
            res.processed_total.append(res.processed)
            res.backlog.append(self.in_system)
            res.cpu_utilization.append(100.0 * per_pod)
            res.replica_seconds += n_pods
        return res


def simulate(spec: HPASpec, arrivals: Arrivals, params: TwinParams) -> TwinResult:
    """Predict a scenario's timelines under ``spec`` (an HPA, or a ``KedaHPASpec``)."""
    return _Sim(spec, arrivals, params).run()
