"""``kubectl port-forward`` to the stack's services, kept alive for the whole run.

``kubectl port-forward svc/...`` binds to one pod and exits when that pod goes away, and
under load it can also stall without exiting: the local port still accepts connections
but nothing comes back (kubernetes/kubernetes#78446). A watchdog therefore checks each
forward two ways every ``check_interval``: is the process running, and does traffic go
through it (a protocol-level probe: an HTTP GET, or the AMQP protocol header). A forward
that exited, or that failed ``probe_failures`` probes in a row while still running, is
stopped and restarted on the same local port, so the endpoints the experiment holds stay
valid. Restarts are counted (and why) and reported in the run's diagnostics.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import port_for

from scalelab.backends.cluster import kube
from scalelab.errors import BackendError
from scalelab.waiting import wait_for

log = logging.getLogger(__name__)

#: The AMQP 0-9-1 protocol header a client opens with; the broker answers Connection.Start.
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"

ProbeKind = Literal["http", "amqp", "tcp"]


@dataclass(frozen=True, kw_only=True)
class Forward:
    """A service to port-forward: ``kubectl port-forward -n namespace svc/service local:port``."""

    key: str
    namespace: str
    service: str
    port: int
    #: How the watchdog checks that traffic goes through: ``http`` (GET ``path``; any HTTP
    #: answer passes, since restarting a forward cannot fix an application's 5xx),
    #: ``amqp`` (the protocol header; any reply passes) or ``tcp`` (connect only, which a
    #: stalled kubectl still accepts: for services that speak neither).
    probe: ProbeKind = "tcp"
    path: str = "/"
    #: A fixed local port (``scalelab grafana``: 3000); None: a free one.
    local_port: int | None = None


def parse_service(spec: str, key: str, *, probe: ProbeKind = "tcp", path: str = "/"
                  ) -> Forward:
    """``namespace/service:port`` (a ``SCALELAB_*_SERVICE`` value) as a ``Forward``."""
    ns, rest = spec.split("/", 1)
    name, port = rest.rsplit(":", 1)
    return Forward(key=key, namespace=ns, service=name, port=int(port), probe=probe, path=path)


def port_open(port: int, *, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    with socket.socket() as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def probe_forward(fwd: Forward, port: int, *, timeout: float, host: str = "127.0.0.1"
                  ) -> str | None:
    """Send one request through a forward; None when an answer came back, else why not."""
    try:
        if fwd.probe == "http":
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                conn.request("GET", fwd.path, headers={"Connection": "close"})
                status = conn.getresponse().status
            finally:
                conn.close()
            log.debug("probe %s: HTTP %d", fwd.key, status)
            return None
        with socket.create_connection((host, port), timeout=timeout) as s:
            if fwd.probe == "amqp":
                s.sendall(AMQP_HEADER)
                if not s.recv(1):
                    return "closed without an AMQP reply"
        return None
    except (OSError, http.client.HTTPException) as err:
        return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class PortForwards:
    """The running forwards of one backend, by key, with their watchdog.

    ``kubectl_cmd`` builds a kubectl command line with the backend's kubeconfig and
    context; ``spawn`` starts it (replaced by a stand-in in tests/kind). ``probe`` is
    ``probe_forward`` (a parameter so a test can count calls).
    """

    def __init__(self, *, kubectl_cmd: Callable[..., list[str]], spawn: kube.Spawner,
                 log_dir: Path, start_timeout: float, check_interval: float,
                 max_restarts: int, probe_timeout: float = 3.0, probe_failures: int = 3,
                 probe: Callable[..., str | None] = probe_forward,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._kubectl_cmd = kubectl_cmd
        self._spawn = spawn
        self._log_dir = log_dir
        self._start_timeout = start_timeout
        self._check_interval = check_interval
        self._max_restarts = max_restarts
        self._probe_timeout = probe_timeout
        self._probe_failures = probe_failures
        self._probe = probe
        self._clock = clock
        self._sleep = sleep
        self._procs: dict[str, kube.Process] = {}
        self._cmds: dict[str, list[str]] = {}
        self._forwards: dict[str, Forward] = {}
        #: Consecutive failed probes of a running forward, by key.
        self._failures: dict[str, int] = {}
        #: Local port of each forward, by key.
        self.ports: dict[str, int] = {}
        #: Forwards restarted by the watchdog, by key (in diagnostics).
        self.restarts: dict[str, int] = {}
        #: Why each restart happened ("exited" or "stalled: <last probe error>"), by key.
        self.restart_reasons: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.watcher: threading.Thread | None = None

    def _log_file(self, key: str) -> Path:
        return self._log_dir / f"port-forward-{key}.log"

    def start(self, forwards: list[Forward]) -> dict[str, int]:
        """Start every forward on its local port and wait until each accepts connections."""
        self._stop.clear()
        for fwd in forwards:
            local = fwd.local_port or port_for.select_random(
                exclude_ports=set(self.ports.values()))
            cmd = self._kubectl_cmd("port-forward", "--namespace", fwd.namespace,
                                    "--address", "127.0.0.1", f"svc/{fwd.service}",
                                    f"{local}:{fwd.port}")
            log_file = self._log_file(fwd.key)
            proc = self._spawn(cmd, log_file=log_file)
            with self._lock:
                self._procs[fwd.key] = proc
                self._cmds[fwd.key] = cmd
                self._forwards[fwd.key] = fwd
                self._failures[fwd.key] = 0
                self.ports[fwd.key] = local

            def probe(p: kube.Process = proc, port: int = local,
                      f: Path = log_file, svc: str = fwd.service) -> str:
                if not p.running():
                    text = f.read_text(errors="replace") if f.exists() else ""
                    tail = text[-1000:].split("\n", 1)[-1] if len(text) > 1000 else text
                    raise BackendError(f"kubectl port-forward to svc/{svc} exited:\n"
                                       f"{tail}", fix="check the service exists and has "
                                       "ready pods")
                return "open" if port_open(port) else "closed"

            wait_for(probe, lambda state: state == "open",
                     what=f"port-forward 127.0.0.1:{local} -> svc/{fwd.service}:{fwd.port}",
                     expected="open", timeout=self._start_timeout,
                     interval=0.2, clock=self._clock, sleep=self._sleep)
        if self.watcher is None:
            self.watcher = threading.Thread(target=self._watch, name="scalelab-port-forwards",
                                            daemon=True)
            self.watcher.start()
        return dict(self.ports)

    def _check(self, key: str, proc: kube.Process) -> str | None:
        """Why the forward needs a restart now, or None."""
        if not proc.running():
            return "exited"
        fwd, port = self._forwards.get(key), self.ports.get(key)
        if fwd is None or port is None:
            return None   # stopped meanwhile
        error = self._probe(fwd, port, timeout=self._probe_timeout)
        with self._lock:
            if error is None:
                self._failures[key] = 0
                return None
            self._failures[key] = self._failures.get(key, 0) + 1
            failures = self._failures[key]
        log.warning("port-forward %s (127.0.0.1:%d): probe %d of %d failed: %s", key,
                    port, failures, self._probe_failures, error)
        if failures < self._probe_failures:
            return None
        return f"stalled: {failures} probes failed, last: {error}"

    def heal(self) -> list[str]:
        """Restart every forward that exited or stalled, on the same local port.

        Returns the keys restarted. A stalled forward's process is stopped first, so the
        new one can bind the port.
        """
        healed: list[str] = []
        with self._lock:
            procs = list(self._procs.items())
        for key, proc in procs:
            if self._stop.is_set() or self.restarts.get(key, 0) >= self._max_restarts:
                continue
            reason = self._check(key, proc)
            if reason is None:
                continue
            with self._lock:
                if self._stop.is_set() or self._procs.get(key) is not proc:
                    continue   # stopped meanwhile, or restarted by another caller
                count = self.restarts.get(key, 0) + 1
                self.restarts[key] = count
                self.restart_reasons.setdefault(key, []).append(reason)
                self._failures[key] = 0
                log.warning("port-forward %s %s; restarting it on 127.0.0.1:%d (%d of at most "
                            "%d)", key, reason, self.ports[key], count, self._max_restarts)
                if reason != "exited":
                    try:
                        proc.stop()
                    except Exception as err:  # noqa: BLE001 - the restart still tries
                        log.warning("stopping stalled port-forward %s: %s", key, err)
                try:
                    self._procs[key] = self._spawn(self._cmds[key],
                                                   log_file=self._log_file(key))
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
            self.watcher.join(timeout=10 + self._probe_timeout * max(1, len(self._procs)))
            self.watcher = None
        with self._lock:
            procs, self._procs = self._procs, {}
            self._forwards, self._cmds, self._failures = {}, {}, {}
        for key, proc in procs.items():
            was_running = proc.running()
            try:
                proc.stop()
            except Exception as err:  # noqa: BLE001 - teardown continues
                # a forward that had already exited reports its exit code here: not news
                (log.warning if was_running else log.debug)("stopping port-forward %s: %s",
                                                            key, err)
        self.ports = {}
