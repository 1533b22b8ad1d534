"""The local backend's ``FaultInjector``: each fault as a user would cause it on this machine.

- ``kill``: the signal to the pod's process; the Deployment's supervisor sees the exit and
  creates a replacement, as a ReplicaSet replaces a pod whose container died
  (``scalelab.backends.local.pods.Supervisor``).
- ``restart``: the private RabbitMQ node restarts in place (same data directory, so durable
  queues and persistent messages survive, as a broker pod with a volume).
- ``partition``: the Deployment's pods reach the broker through a ``TcpProxy``; a cut ends
  their connections and accepts no new ones until healed (``scalelab.procs.tcp_proxy``).
- ``slow``: the Deployment's fault file (``services/agent/faults.py``), read by every pod of
  it, new ones included: a degraded node under the whole Deployment.
"""

from __future__ import annotations

import json
import os
import signal as signals
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from scalelab.errors import BackendError
from scalelab.faults import Kill, Partition, Restart, Slow
from scalelab.procs.tcp_proxy import TcpProxy


class _Supervisor(Protocol):
    def pods(self) -> list[Any]: ...


class _Broker(Protocol):
    def restart(self) -> None: ...


def victims(pods: list[Any], count: int) -> list[Any]:
    """The pods a kill takes: running ones, ready first, oldest first (a fault that hits a
    pod still starting would measure the start, not the loss)."""
    alive = [p for p in pods if not p.deleting and p.pid is not None and p.phase == "Running"]
    alive.sort(key=lambda p: (not p.ready, p.created, p.name))
    return alive[:count]


class LocalFaults:
    """Fires faults at one local stack. Built by the local backend, which owns the parts."""

    def __init__(self, *, supervisor: Callable[[str], _Supervisor], broker: _Broker,
                 proxies: Mapping[str, TcpProxy], fault_files: Mapping[str, Path],
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.supervisor = supervisor
        self.broker = broker
        self.proxies = proxies
        self.fault_files = fault_files
        self.clock = clock
        self.monotonic = monotonic

    def kill(self, action: Kill) -> dict[str, Any]:
        pods = victims(self.supervisor(action.deployment).pods(), action.count)
        sig = getattr(signals, f"SIG{action.signal}")
        killed = []
        for pod in pods:
            try:
                os.kill(pod.pid, sig)
                killed.append(pod.name)
            except ProcessLookupError:
                continue  # it died on its own meanwhile: not ours to count
        return {"pods": killed, "signal": action.signal, "asked": action.count}

    def restart(self, action: Restart) -> dict[str, Any]:
        began = self.monotonic()
        self.broker.restart()
        return {"service": action.service, "downtime_s": round(self.monotonic() - began, 3)}

    def partition(self, action: Partition, *, heal: bool) -> dict[str, Any]:
        proxy = self.proxies.get(action.deployment)
        if proxy is None:
            raise BackendError(f"Deployment {action.deployment} does not reach the broker "
                               "through a proxy on this stack",
                               fix="partition the agent Deployment")
        if heal:
            proxy.restore()
            return {"cut": False}
        return {"connections_closed": proxy.cut(), "cut": True}

    def slow(self, action: Slow, *, heal: bool) -> dict[str, Any]:
        path = self.fault_files.get(action.deployment)
        if path is None:
            raise BackendError(f"Deployment {action.deployment} reads no fault file",
                               fix="slow the agent Deployment")
        if heal:
            path.unlink(missing_ok=True)
            return {"cpu_ms_extra": 0}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        # "until" bounds the slowdown even if the heal never comes (the harness died)
        tmp.write_text(json.dumps({"cpu_ms_extra": action.cpu_ms_extra,
                                   "until": self.clock() + action.seconds}))
        os.replace(tmp, path)
        return {"cpu_ms_extra": action.cpu_ms_extra, "file": str(path)}
