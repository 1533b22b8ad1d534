"""``kubectl port-forward`` to the stack's services, kept alive for the whole run.

``kubectl port-forward svc/...`` binds to one pod and exits when that pod goes away
(kubernetes/kubernetes#78446 also documents forwards that stall without exiting), so a
watchdog restarts a dead forward on the same local port: the endpoints the experiment holds
stay valid. Restarts are counted and reported in the run's diagnostics.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import port_for

from scalelab.backends.cluster import kube
from scalelab.errors import BackendError
from scalelab.waiting import wait_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Forward:
    """A service to port-forward: ``kubectl port-forward -n namespace svc/service local:port``."""

    key: str
    namespace: str
    service: str
    port: int


def parse_service(spec: str, key: str) -> Forward:
    """``namespace/service:port`` (a ``SCALELAB_*_SERVICE`` value) as a ``Forward``."""
    ns, rest = spec.split("/", 1)
    name, port = rest.rsplit(":", 1)
    return Forward(key=key, namespace=ns, service=name, port=int(port))


def port_open(port: int, *, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    with socket.socket() as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


class PortForwards:
    """The running forwards of one backend, by key, with their watchdog.

    ``kubectl_cmd`` builds a kubectl command line with the backend's kubeconfig and
    context; ``spawn`` starts it (replaced by a recorder in tests/kind).
    """

    def __init__(self, *, kubectl_cmd: Callable[..., list[str]], spawn: kube.Spawner,
                 log_dir: Path, start_timeout: float, check_interval: float,
                 max_restarts: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._kubectl_cmd = kubectl_cmd
        self._spawn = spawn
        self._log_dir = log_dir
        self._start_timeout = start_timeout
        self._check_interval = check_interval
        self._max_restarts = max_restarts
        self._clock = clock
        self._sleep = sleep
        self._procs: dict[str, kube.Process] = {}
        self._cmds: dict[str, list[str]] = {}
        #: Local port of each forward, by key.
        self.ports: dict[str, int] = {}
        #: Forwards restarted by the watchdog, by key (in diagnostics).
        self.restarts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.watcher: threading.Thread | None = None

    def _log_file(self, key: str) -> Path:
        return self._log_dir / f"port-forward-{key}.log"

    def start(self, forwards: list[Forward]) -> dict[str, int]:
        """Start every forward on a free local port and wait until each accepts connections."""
        for fwd in forwards:
            local = port_for.select_random(exclude_ports=set(self.ports.values()))
            cmd = self._kubectl_cmd("port-forward", "--namespace", fwd.namespace,
                                    "--address", "127.0.0.1", f"svc/{fwd.service}",
                                    f"{local}:{fwd.port}")
            log_file = self._log_file(fwd.key)
            proc = self._spawn(cmd, log_file=log_file)
            self._procs[fwd.key] = proc
            self._cmds[fwd.key] = cmd
            self.ports[fwd.key] = local

            def probe(p: kube.Process = proc, port: int = local,
                      f: Path = log_file, svc: str = fwd.service) -> str:
                if not p.running():
                    tail = f.read_text(errors="replace")[-1000:] if f.exists() else ""
                    raise BackendError(f"kubectl port-forward to svc/{svc} exited:\n"
                                       f"{tail}", fix="check the service exists and has "
                                       "ready pods")
                return "open" if port_open(port) else "closed"

            wait_for(probe, lambda state: state == "open",
                     what=f"port-forward 127.0.0.1:{local} -> svc/{fwd.service}:{fwd.port}",
                     expected="open", timeout=self._start_timeout,
                     interval=0.2, clock=self._clock, sleep=self._sleep)
        self._stop.clear()
        self.watcher = threading.Thread(target=self._watch, name="scalelab-port-forwards",
                                        daemon=True)
        self.watcher.start()
        return dict(self.ports)

    def heal(self) -> list[str]:
        """Restart every forward that exited, on the same local port; return their keys."""
        healed: list[str] = []
        with self._lock:
            for key, proc in list(self._procs.items()):
                if proc.running():
                    continue
                count = self.restarts.get(key, 0)
                if count >= self._max_restarts:
                    continue
                self.restarts[key] = count + 1
                log.warning("port-forward %s exited; restarting it (%d of at most %d)", key,
                            count + 1, self._max_restarts)
                try:
                    self._procs[key] = self._spawn(self._cmds[key], log_file=self._log_file(key))
                except Exception as err:  # noqa: BLE001 - retried on the next check
                    log.warning("restarting port-forward %s: %s", key, err)
                    continue
                healed.append(key)
        return healed

    def _watch(self) -> None:
        while not self._stop.wait(self._check_interval):
            try:
                self.heal()
            except Exception:  # noqa: BLE001 - the watchdog must outlive one bad check
                log.exception("port-forward watchdog")

    def stop(self) -> None:
        """Stop the watchdog, then every forward; idempotent, never raises."""
        self._stop.set()
        if self.watcher is not None:
            self.watcher.join(timeout=10)
            self.watcher = None
        with self._lock:
            procs, self._procs = self._procs, {}
        for key, proc in procs.items():
            try:
                proc.stop()
            except Exception as err:  # noqa: BLE001 - teardown continues
                log.warning("stopping port-forward %s: %s", key, err)
        self.ports = {}
