"""A Deployment's pods as local processes, kept at ``spec.replicas`` like a ReplicaSet.

Lifecycle of a pod: Pending (created, process not yet spawned) -> Running (process up,
``start_time`` set) -> Ready (its readiness probe answered 2xx; ``ready_transition_time``
set, as the PodReady condition's lastTransitionTime) -> Terminating (``deleting``:
SIGTERM to its process group, ``terminationGracePeriodSeconds``, then SIGKILL; mirakuru
runs the process in its own session and finds stragglers by an env marker).

Probes follow the manifest (httpGet path, periodSeconds, failureThreshold); a liveness
failure kills the process. A pod whose process exits without being deleted is replaced
by a *new* pod, as a ReplicaSet would replace a failed pod. Restart counting (our
choice, documented): the replacement inherits the dead pod's restart count plus one, so
``sum by (deployment) (kube_pod_container_status_restarts_total)`` counts every death of
the Deployment's current lineage and each pod's series stays a counter;
``restarts_total`` counts all deaths of the Deployment.

Scale-down victims are ranked as kubernetes pkg/controller/controller_utils.go
``ActivePodsWithRanks.Less`` ranks them: Pending before Running, not-ready before ready,
ready for less time first, more restarts first, newest first.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalelab.backends.local.deployments import DeploymentSpec, pod_name
from scalelab.control.view import PodFacts
from scalelab.errors import BackendError, ProcessStartError
from scalelab.procs.executor import MarkedExecutor
from scalelab.waiting import wait_for

LOG = logging.getLogger(__name__)

PENDING, RUNNING, FAILED = "Pending", "Running", "Failed"
_PHASE_RANK = {PENDING: 0, "Unknown": 1, RUNNING: 2}


@dataclass(frozen=True, kw_only=True)
class Launch:
    """How to start one pod: resolved env and container port -> local port."""

    env: Mapping[str, str]
    ports: Mapping[int, int]


@dataclass(kw_only=True)
class Pod:
    """One emulated pod. Mutated only by its ``Supervisor`` under the supervisor's lock."""

    name: str
    uid: str
    deployment: str
    created: float
    log_path: Path
    launch: Launch
    phase: str = PENDING
    start_time: float | None = None
    ready: bool = False
    ready_transition_time: float | None = None
    deleting: bool = False
    deletion_time: float | None = None
    restarts: int = 0
    exit_code: int | None = None
    executor: MarkedExecutor | None = field(default=None, repr=False)
    readiness_failures: int = 0
    liveness_failures: int = 0
    next_readiness: float = 0.0
    next_liveness: float = 0.0

    @property
    def pid(self) -> int | None:
        proc = self.executor.process if self.executor else None
        return proc.pid if proc is not None else None

    def port(self, container_port: int | None) -> int | None:
        if container_port is None:
            return None
        return self.launch.ports.get(container_port)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "phase": self.phase, "ready": self.ready,
            "deleting": self.deleting, "created": self.created, "start_time": self.start_time,
            "ready_transition_time": self.ready_transition_time, "restarts": self.restarts,
            "pid": self.pid, "ports": dict(self.launch.ports), "log": str(self.log_path),
        }


def deletion_rank(pod: Pod) -> tuple[float, ...]:
    """Sort key: the pod to delete first sorts first (ActivePodsWithRanks.Less)."""
    return (
        _PHASE_RANK.get(pod.phase, 1),
        1 if pod.ready else 0,
        -(pod.ready_transition_time or 0.0) if pod.ready else 0.0,
        -pod.restarts,
        -pod.created,
    )


def http_ok(url: str, *, timeout: float) -> bool:
    """A kubelet httpGet probe: success is a status in [200, 400)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (127.0.0.1)
            return 200 <= int(resp.status) < 400
    except urllib.error.HTTPError as err:
        return 200 <= err.code < 400
    except (OSError, ValueError):
        return False


class Supervisor:
    """Keep ``replicas`` pods of one Deployment running; a background thread reconciles."""

    def __init__(
        self,
        *,
        spec: DeploymentSpec,
        command: Sequence[str],
        launch: Callable[[str], Launch],
        workdir: Path,
        replicas: int | None = None,
        grace_period: float | None = None,
        cwd: Path | None = None,
        host: str = "127.0.0.1",
        tick: float = 0.2,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.command = list(command)
        self._launch = launch
        self.workdir = Path(workdir)
        self.replicas = spec.replicas if replicas is None else replicas
        self.grace_period = (grace_period if grace_period is not None
                             else spec.termination_grace_period or 30.0)
        self.cwd = cwd
        self.host = host
        self.tick = tick
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.RLock()
        self._pods: list[Pod] = []
        self._terminating: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts_total = 0
        self.deaths: list[dict[str, Any]] = []   # for diagnostics: name, exit code, log tail

    @property
    def name(self) -> str:
        return self.spec.name

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Create the pods and start reconciling in the background."""
        (self.workdir / "pods").mkdir(parents=True, exist_ok=True)
        self.reconcile()
        self._thread = threading.Thread(target=self._run, name=f"supervisor-{self.name}",
                                         daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.reconcile()
            except Exception:  # noqa: BLE001 - keep reconciling; the error is logged
                LOG.exception("reconcile of %s failed", self.name)

    def shutdown(self) -> None:
        """Delete every pod (graceful, concurrently) and stop reconciling; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            self.replicas = 0
            for pod in list(self._pods):
                if not pod.deleting:
                    self._delete(pod)
            threads = list(self._terminating.values())
        for thread in threads:
            thread.join(timeout=self.grace_period + 10)
        with self._lock:
            for pod in self._pods:  # belt and braces: nothing may outlive shutdown
                if pod.executor is not None:
                    pod.executor.kill()
            self._pods.clear()

    # -- desired state ---------------------------------------------------------------
    def scale(self, replicas: int) -> None:
        """Set spec.replicas; pods are created/deleted at once (then by the reconciler)."""
        if replicas < 0:
            raise BackendError(f"cannot scale {self.name} to {replicas} replicas",
                               fix="give a non-negative number")
        with self._lock:
            self.replicas = replicas
        self.reconcile()

    # -- reconcile -------------------------------------------------------------------
    def reconcile(self) -> None:
        """One pass: reap dead processes, run due probes, create/delete pods."""
        changed = False
        with self._lock:
            now = self._clock()
            for pod in list(self._pods):
                if pod.deleting or pod.executor is None:
                    continue
                code = pod.executor.process.poll() if pod.executor.process else -1
                if code is not None:
                    self._died(pod, code)
                    changed = True
            due = [p for p in self._pods if not p.deleting and p.phase == RUNNING
                   and (p.next_readiness <= now or p.next_liveness <= now)]
        results = [(pod, *self._probe(pod, now)) for pod in due]
        with self._lock:
            now = self._clock()
            for pod, readiness, liveness in results:
                if pod.deleting or pod not in self._pods:
                    continue
                changed |= self._apply_probe(pod, readiness, liveness, now)
            active = [p for p in self._pods if not p.deleting]
            if len(active) < self.replicas:
                for _ in range(self.replicas - len(active)):
                    self._create(restarts=0)
                changed = True
            elif len(active) > self.replicas:
                for victim in sorted(active, key=deletion_rank)[: len(active) - self.replicas]:
                    self._delete(victim)
                changed = True
            for pod in self._pods:
                if pod.phase == PENDING and not pod.deleting:
                    self._spawn(pod)
                    changed = True
        if changed and self._on_change is not None:
            self._on_change()

    def _probe(self, pod: Pod, now: float) -> tuple[bool | None, bool | None]:
        readiness = liveness = None
        spec = self.spec
        if spec.readiness and pod.next_readiness <= now:
            port = pod.port(spec.readiness.port)
            readiness = http_ok(f"http://{self.host}:{port}{spec.readiness.path}",
                                timeout=spec.readiness.timeout)
        if spec.liveness and pod.next_liveness <= now:
            port = pod.port(spec.liveness.port)
            liveness = http_ok(f"http://{self.host}:{port}{spec.liveness.path}",
                               timeout=spec.liveness.timeout)
        return readiness, liveness

    def _apply_probe(self, pod: Pod, readiness: bool | None, liveness: bool | None,
                     now: float) -> bool:
        changed = False
        if readiness is not None and self.spec.readiness:
            pod.next_readiness = now + self.spec.readiness.period
            if readiness:
                pod.readiness_failures = 0
                if not pod.ready:
                    pod.ready, pod.ready_transition_time, changed = True, now, True
            else:
                pod.readiness_failures += 1
                # kubelet: not ready until the first success; a ready pod turns not ready
                # after failureThreshold consecutive failures
                if pod.ready and pod.readiness_failures >= self.spec.readiness.failure_threshold:
                    pod.ready, pod.ready_transition_time, changed = False, now, True
        if liveness is not None and self.spec.liveness:
            pod.next_liveness = now + self.spec.liveness.period
            pod.liveness_failures = 0 if liveness else pod.liveness_failures + 1
            if pod.liveness_failures >= self.spec.liveness.failure_threshold \
                    and pod.executor is not None:
                LOG.warning("pod %s failed its liveness probe; killing it", pod.name)
                pod.executor.kill(wait=False)
        return changed

    def _create(self, *, restarts: int) -> Pod:
        name = pod_name(self.name, self.spec.template_hash)
        while any(p.name == name for p in self._pods):
            name = pod_name(self.name, self.spec.template_hash)
        pod = Pod(
            name=name, uid=str(uuid.uuid4()), deployment=self.name, created=self._clock(),
            log_path=self.workdir / "pods" / f"{name}.log", launch=self._launch(name),
            restarts=restarts,
        )
        self._pods.append(pod)
        return pod

    def _spawn(self, pod: Pod) -> None:
        env = {**pod.launch.env, "PYTHONUNBUFFERED": "1"}
        log = open(pod.log_path, "ab")  # noqa: SIM115 - the child keeps its own copy
        try:
            executor = MarkedExecutor(
                self.command, cwd=str(self.cwd) if self.cwd else None,
                timeout=self.grace_period, envvars=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )
            executor.start()
        finally:
            log.close()
        now = self._clock()
        pod.executor = executor
        pod.phase = RUNNING
        pod.start_time = now
        initial = self.spec.readiness.initial_delay if self.spec.readiness else 0.0
        pod.next_readiness = now + initial
        pod.next_liveness = now + (self.spec.liveness.initial_delay if self.spec.liveness
                                   else 0.0)

    def _died(self, pod: Pod, code: int) -> None:
        LOG.warning("pod %s exited with %s; replacing it", pod.name, code)
        pod.phase, pod.exit_code, pod.ready = FAILED, code, False
        if pod.executor is not None:
            pod.executor.kill()  # reap and end any descendants left behind
        self._pods.remove(pod)
        self.restarts_total += 1
        self.deaths.append({"pod": pod.name, "exit_code": code, "t": self._clock(),
                            "log_tail": pod.log_tail()})
        self._create(restarts=pod.restarts + 1)

    def _delete(self, pod: Pod) -> None:
        pod.deleting = True
        pod.deletion_time = self._clock()
        if pod.executor is None:
            self._pods.remove(pod)
            return
        thread = threading.Thread(target=self._terminate, args=(pod,),
                                  name=f"terminate-{pod.name}", daemon=True)
        self._terminating[pod.name] = thread
        thread.start()

    def _terminate(self, pod: Pod) -> None:
        """SIGTERM, wait the grace period, SIGKILL (mirakuru's stop with its timeout)."""
        executor = pod.executor
        try:
            if executor is not None:
                executor.stop()
        except Exception:  # noqa: BLE001 - exit code other than 0/-15 is still "stopped"
            if executor is not None:
                executor.kill()
        finally:
            with self._lock:
                if pod in self._pods:
                    self._pods.remove(pod)
                self._terminating.pop(pod.name, None)
            if self._on_change is not None:
                self._on_change()

    # -- observation -----------------------------------------------------------------
    def pods(self) -> list[Pod]:
        """A snapshot (copies) of every pod, including Pending and Terminating ones."""
        with self._lock:
            return [Pod(**{k: getattr(p, k) for k in Pod.__dataclass_fields__})
                    for p in self._pods]

    def facts(self) -> list[PodFacts]:
        with self._lock:
            return [
                PodFacts(
                    name=p.name, phase=p.phase, ready=p.ready, deleting=p.deleting,
                    start_time=p.start_time, ready_transition_time=p.ready_transition_time,
                    cpu_request_milli=self.spec.cpu_request_milli,
                    memory_request_bytes=self.spec.memory_request_bytes,
                )
                for p in self._pods
            ]

    def counts(self) -> tuple[int, int, int]:
        """(spec, status.replicas, status.readyReplicas); terminating pods excluded
        (ReplicaSet status counts ``FilterActivePods``)."""
        with self._lock:
            active = [p for p in self._pods if not p.deleting]
            return self.replicas, len(active), sum(1 for p in active if p.ready)

    def pids(self) -> dict[str, int]:
        with self._lock:
            return {p.name: p.pid for p in self._pods if p.pid is not None}

    def wait_ready(self, *, timeout: float) -> None:
        """Wait until ``replicas`` pods are ready; a pod dying meanwhile fails fast."""
        deaths_before = len(self.deaths)

        def probe() -> tuple[int, int]:
            if len(self.deaths) > deaths_before:
                death = self.deaths[deaths_before]
                raise ProcessStartError(
                    f"pod {death['pod']} of Deployment {self.name} exited with code "
                    f"{death['exit_code']} during start; its log tail:\n{death['log_tail']}",
                    fix="fix the error in the log above",
                )
            spec, _, ready = self.counts()
            return ready, spec

        wait_for(probe, lambda v: v[0] >= v[1], what=f"Deployment {self.name} ready pods",
                 expected=f"{self.replicas} ready", timeout=timeout, interval=0.1)
