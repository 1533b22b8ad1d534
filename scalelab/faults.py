"""Faults a scenario phase injects while the system scales: what they are, when they fire.

A phase's ``faults:`` list names actions (kill pods, restart the broker, cut agents off the
broker, slow agents down) at offsets into the phase, optionally repeated. This module holds
the typed faults, their semantic checks (the schema in ``scenario.schema.json`` checks the
shapes; here: offsets inside the phase, a timed fault that ends before the scenario does),
the schedule, and the ``FaultRunner`` that fires a schedule at a backend's ``FaultInjector``
in its own thread and heals whatever is still in force when it stops, so a failed run never
leaves a partition or a slowdown behind.

Each backend implements ``FaultInjector`` the way a user would inject the fault there
(local: signals to the pod processes, the broker's own restart, a proxy that drops the
agents' broker connections, the agents' fault file; cluster: the Kubernetes API). The run
record keeps one ``FaultRecord`` per action fired: what, when, on what, and its effect.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scalelab.errors import ConfigError
from scalelab.settings import AGENT_DEPLOYMENT, API_DEPLOYMENT

LOG = logging.getLogger(__name__)

#: Deployments a fault may target (the broker is the ``restart`` action's own target).
DEPLOYMENTS = (AGENT_DEPLOYMENT, API_DEPLOYMENT)
#: Signals ``kill`` may send: KILL (no grace, the task in hand is redelivered) or TERM (the
#: process's own graceful stop, as ``kubectl delete pod`` does). Both backends can send
#: both (a pod deletion sends TERM, or KILL with a zero grace period).
SIGNALS = ("KILL", "TERM")
#: Services ``restart`` can restart.
RESTARTABLE = ("rabbitmq",)
ACTIONS = ("kill", "restart", "partition", "slow")


@dataclass(frozen=True, kw_only=True)
class Kill:
    """Kill ``count`` pods of a Deployment with ``signal``; the Deployment replaces them."""

    deployment: str
    count: int = 1
    signal: str = "KILL"
    kind: str = field(default="kill", init=False)

    @property
    def target(self) -> str:
        return self.deployment


@dataclass(frozen=True, kw_only=True)
class Restart:
    """Restart a service (the broker) with whatever it has queued."""

    service: str = "rabbitmq"
    kind: str = field(default="restart", init=False)

    @property
    def target(self) -> str:
        return self.service


@dataclass(frozen=True, kw_only=True)
class Partition:
    """Cut a Deployment's pods off the broker for ``seconds``, then let them reconnect."""

    deployment: str
    seconds: float
    kind: str = field(default="partition", init=False)

    @property
    def target(self) -> str:
        return self.deployment


@dataclass(frozen=True, kw_only=True)
class Slow:
    """Every task on a Deployment's pods costs ``cpu_ms_extra`` more CPU for ``seconds``."""

    deployment: str
    cpu_ms_extra: int
    seconds: float
    kind: str = field(default="slow", init=False)

    @property
    def target(self) -> str:
        return self.deployment


Action = Kill | Restart | Partition | Slow


def duration_of(action: Action) -> float | None:
    """How long a timed action lasts (None: an instant one)."""
    return action.seconds if isinstance(action, Partition | Slow) else None


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One item of a phase's ``faults``: ``action`` at ``at`` s into the phase, then every
    ``every`` s while the phase lasts."""

    id: str
    phase: str
    action: Action
    at: float
    every: float | None = None

    def offsets(self, phase_duration: float) -> list[float]:
        """Seconds into the phase at which the action fires."""
        if self.every is None:
            return [self.at]
        n = math.floor((phase_duration - self.at) / self.every - 1e-9) + 1
        return [self.at + i * self.every for i in range(max(n, 1))]


@dataclass(frozen=True, kw_only=True)
class Scheduled:
    """One firing (or healing) of a fault at ``t`` seconds after the first phase starts."""

    t: float
    fault: Fault
    heal: bool = False


# -- checking -----------------------------------------------------------------------------

def parse_faults(raw: Sequence[Mapping[str, Any]], *, file: str, where: str, phase: str,
                 phase_duration: float) -> tuple[Fault, ...]:
    """The typed faults of one phase from its schema-valid ``faults`` list.

    ``where`` is the phase's field path (``phases[1]``). Offsets must fall inside the phase;
    a repeated timed fault must end before it fires again.
    """
    out = []
    for i, item in enumerate(raw):
        here = f"{where}.faults[{i}]"

        def error(message: str, fld: str, fix: str, here: str = here) -> ConfigError:
            return ConfigError(message, file=file, field=f"{here}{fld}", fix=fix)

        found = [a for a in ACTIONS if a in item]
        if len(found) != 1:
            raise error(f"a fault needs exactly one action, found {', '.join(found) or 'none'}",
                        "", f"give one of: {', '.join(ACTIONS)}")
        action = _action(found[0], item[found[0]])
        at = float(item.get("at", 0.0))
        if at >= phase_duration:
            raise error(f"the fault fires at {at:g}s, after the phase ends "
                        f"({phase_duration:g}s)", ".at",
                        f"give an offset below {phase_duration:g}, or move the fault to the "
                        "phase it belongs to")
        every = item.get("every")
        lasts = duration_of(action)
        if every is not None and lasts is not None and lasts >= float(every):
            raise error(f"a {action.kind} of {lasts:g}s repeated every {float(every):g}s "
                        "would overlap itself", ".every",
                        f"repeat it less often (every > {lasts:g}) or shorten it")
        out.append(Fault(id=item.get("id") or f"{phase}.{action.kind}-{i}", phase=phase,
                         action=action, at=at,
                         every=float(every) if every is not None else None))
    return tuple(out)


def _action(kind: str, spec: Any) -> Action:
    if kind == "kill":
        return Kill(deployment=spec["deployment"], count=int(spec.get("count", 1)),
                    signal=spec.get("signal", "KILL"))
    if kind == "restart":
        return Restart(service=spec)
    if kind == "partition":
        return Partition(deployment=spec["deployment"], seconds=float(spec["seconds"]))
    return Slow(deployment=spec["deployment"], cpu_ms_extra=int(spec["cpu_ms_extra"]),
                seconds=float(spec["seconds"]))


def check_ends(faults: Sequence[Fault], *, offsets: Mapping[str, tuple[float, float]],
               total: float, file: str, where: Mapping[str, str]) -> None:
    """A timed fault must be healed before the scenario's load ends (the drain that follows
    needs every agent connected at full speed, or "lost" would mean "still cut off")."""
    for f in faults:
        lasts = duration_of(f.action)
        if lasts is None:
            continue
        start = offsets[f.phase][0]
        last_end = start + f.offsets(offsets[f.phase][1] - start)[-1] + lasts
        if last_end > total + 1e-9:
            raise ConfigError(
                f"the {f.action.kind} '{f.id}' lasts until {last_end:g}s, after the "
                f"scenario's last phase ends ({total:g}s)", file=file,
                field=f"{where[f.id]}.{f.action.kind}.seconds",
                fix="shorten it, fire it earlier, or add a phase after it")


def schedule(faults: Sequence[Fault], *, offsets: Mapping[str, tuple[float, float]]
             ) -> list[Scheduled]:
    """Every firing and healing, in time order (seconds after the first phase starts);
    ``offsets`` maps a phase name to its planned (start, end)."""
    out = []
    for f in faults:
        start, end = offsets[f.phase]
        for off in f.offsets(end - start):
            out.append(Scheduled(t=start + off, fault=f))
            lasts = duration_of(f.action)
            if lasts is not None:
                out.append(Scheduled(t=start + off + lasts, fault=f, heal=True))
    return sorted(out, key=lambda s: (s.t, not s.heal))


# -- firing -------------------------------------------------------------------------------

class FaultInjector(Protocol):
    """What a backend does for each action; each returns its effect for the record."""

    def kill(self, action: Kill) -> dict[str, Any]: ...

    def restart(self, action: Restart) -> dict[str, Any]: ...

    def partition(self, action: Partition, *, heal: bool) -> dict[str, Any]: ...

    def slow(self, action: Slow, *, heal: bool) -> dict[str, Any]: ...


@dataclass(kw_only=True)
class FaultRecord:
    """One action as it ran, for the run record's ``faults`` list."""

    id: str
    phase: str
    kind: str
    target: str
    heal: bool
    planned: float
    t: float
    seconds: float = 0.0
    effect: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "phase": self.phase, "kind": self.kind, "target": self.target,
                "heal": self.heal, "planned": self.planned, "t": self.t,
                "seconds": self.seconds, "effect": self.effect, "error": self.error}


def fire(injector: FaultInjector, action: Action, *, heal: bool = False) -> dict[str, Any]:
    """Call the injector's method for ``action``."""
    if isinstance(action, Kill):
        return injector.kill(action)
    if isinstance(action, Restart):
        return injector.restart(action)
    if isinstance(action, Partition):
        return injector.partition(action, heal=heal)
    return injector.slow(action, heal=heal)


class FaultRunner:
    """Fires a schedule at an injector from its own thread, starting at wall time ``start``.

    An action that fails is recorded with its error and the run goes on (a fault harness
    that stops at the first hiccup measures nothing). ``stop()`` heals every timed fault
    still in force, then returns the records: teardown never leaves agents cut off.
    """

    def __init__(self, plan: Sequence[Scheduled], injector: FaultInjector, *, start: float,
                 clock: Callable[[], float], wait: Callable[[float], bool] | None = None
                 ) -> None:
        self.plan = list(plan)
        self.injector = injector
        self.start_at = start
        self.clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._lock = threading.Lock()
        self.records: list[FaultRecord] = []
        self._active: dict[tuple[str, str], Action] = {}
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def begin(self) -> FaultRunner:
        self._thread.start()
        return self

    def _run(self) -> None:
        for item in self.plan:
            while not self._stop.is_set():
                left = self.start_at + item.t - self.clock()
                if left <= 0:
                    break
                self._wait(min(left, 1.0))
            if self._stop.is_set():
                return
            self._fire(item.fault, item.fault.action, heal=item.heal, planned=item.t)

    def _fire(self, fault: Fault, action: Action, *, heal: bool, planned: float) -> None:
        began = self.clock()
        rec = FaultRecord(id=fault.id, phase=fault.phase, kind=action.kind,
                          target=action.target, heal=heal, planned=planned, t=began)
        try:
            rec.effect = fire(self.injector, action, heal=heal)
        except Exception as err:  # noqa: BLE001 - recorded; the run goes on
            LOG.warning("fault %s (%s) failed: %s", fault.id, action.kind, err)
            rec.error = f"{type(err).__name__}: {err}"
        rec.seconds = self.clock() - began
        key = (fault.id, action.kind)
        with self._lock:
            self.records.append(rec)
            if duration_of(action) is not None:
                if heal:
                    self._active.pop(key, None)
                else:
                    self._active[key] = action

    def stop(self, *, timeout: float = 60.0) -> list[FaultRecord]:
        """Stop firing, heal what is in force, return every record (in firing order)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._lock:
            active = list(self._active.items())
        by_id = {s.fault.id: s.fault for s in self.plan}
        for (fid, _), action in active:
            self._fire(by_id[fid], action, heal=True, planned=self.clock() - self.start_at)
        with self._lock:
            return list(self.records)
