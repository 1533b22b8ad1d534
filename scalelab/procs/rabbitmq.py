"""A private RabbitMQ node: own ports, own epmd, own node name, own data dir.

Why private: tests and the local backend must never touch (or be confused by) a system
RabbitMQ, and several of them run on one machine at once. Everything the Debian
``rabbitmq-server`` would take from ``/etc/rabbitmq`` or ``/var/lib/rabbitmq`` is
pointed at a temp dir through the documented ``RABBITMQ_*`` environment variables
(https://www.rabbitmq.com/configure.html#supported-environment-variables).

The process is run by mirakuru, which marks it and every descendant (including the
``epmd -daemon`` that ``erl`` spawns in its own session) with an environment variable,
so ``stop()`` can find and end all of them; the marker is ``MarkedExecutor``'s, which no
other process's exit can match (see ``scalelab.procs.executor``). ``ExistingRabbitMQ``
gives the same attributes for a broker someone else runs (pytest-postgresql's "start it or
attach").
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol
from urllib.parse import quote, urlsplit

import pika
import port_for
import psutil
import requests
from mirakuru.exceptions import ProcessFinishedWithError

from scalelab.errors import BackendError, MissingDependencyError, ProcessStartError
from scalelab.procs.executor import MarkedExecutor, kill_marked
from scalelab.waiting import wait_for

LOG = logging.getLogger(__name__)

#: Where the Debian package puts the real start script (``/usr/sbin/rabbitmq-server`` is a
#: wrapper that insists on root/rabbitmq and redirects output to /var/log).
SERVER_SCRIPT_CANDIDATES = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/usr/sbin/rabbitmq-server",
)
DEBIAN_PACKAGE = "rabbitmq-server"
INSTALL_FIX = f"sudo apt-get install -y {DEBIAN_PACKAGE}"
PLUGINS = ("rabbitmq_management", "rabbitmq_prometheus")
#: The user the Debian package runs the broker as; we drop to it when we are root
#: (Erlang refuses nothing as root, but files it writes must not be root-owned in a
#: shared tree, and this mirrors how the package runs it).
SERVICE_USER = "rabbitmq"
GUEST = ("guest", "guest")


def find_server_script() -> str:
    """Return the path of the rabbitmq-server start script or raise MissingDependencyError."""
    for candidate in SERVER_SCRIPT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("rabbitmq-server")
    if found:
        return found
    raise MissingDependencyError(
        "rabbitmq-server is not installed (looked in "
        + ", ".join(SERVER_SCRIPT_CANDIDATES) + " and $PATH); the local backend and the "
        f"service tests need a real broker (Debian package '{DEBIAN_PACKAGE}')",
        fix=INSTALL_FIX,
    )


@dataclass(frozen=True, kw_only=True)
class QueueState:
    """One queue's counts as the broker holds them (``rabbitmqctl list_queues``)."""

    name: str
    ready: int
    unacked: int
    consumers: int

    @property
    def in_flight(self) -> bool:
        """Messages a consumer holds, or ready ones a consumer will take."""
        return self.unacked > 0 or (self.consumers > 0 and self.ready > 0)


class RabbitMQ(Protocol):
    """What users of a broker need, whether we started it or attach to it."""

    amqp_url: str
    management_url: str
    prometheus_url: str
    amqp_port: int
    management_port: int
    prometheus_port: int

    def start(self) -> RabbitMQ: ...
    def stop(self) -> None: ...
    def running(self) -> bool: ...
    def version(self) -> str: ...


def _free_port(host: str, taken: set[int]) -> int:
    """A free TCP port not already picked for this node (port_for checks availability)."""
    while True:
        port = int(port_for.select_random())
        if port not in taken and port_for.is_available(port):
            taken.add(port)
            return port


def _amqp_probe(url: str) -> str | None:
    """None when an AMQP connection opens and closes cleanly, else the reason."""
    params = pika.URLParameters(url)
    # A plain TCP connect first: pika logs every refused attempt at ERROR level.
    try:
        socket.create_connection((params.host, params.port), timeout=2.0).close()
    except OSError as err:
        return f"amqp port {params.port}: {err.strerror or type(err).__name__}"
    params.connection_attempts = 1
    params.socket_timeout = 2.0
    params.blocked_connection_timeout = 2.0
    try:
        conn = pika.BlockingConnection(params)
    except Exception as err:  # noqa: BLE001 - any failure means "not ready yet"
        return f"amqp: {type(err).__name__}"
    with contextlib.suppress(Exception):
        conn.close()
    return None


def _http_probe(url: str, *, auth: tuple[str, str] | None = None) -> str | None:
    """None when the URL answers 200, else the reason."""
    try:
        resp = requests.get(url, auth=auth, timeout=2.0)
    except requests.RequestException as err:
        return f"{url}: {type(err).__name__}"
    if resp.status_code != 200:
        return f"{url}: HTTP {resp.status_code}"
    return None


def _overview(management_url: str) -> dict[str, object]:
    resp = requests.get(f"{management_url}/api/overview", auth=GUEST, timeout=5.0)
    resp.raise_for_status()
    data: dict[str, object] = resp.json()
    return data


class RabbitMQNode:
    """A RabbitMQ broker we start, own and tear down completely.

    Ports are picked once, in ``__init__``, and kept across ``restart()`` so clients can
    reconnect to the same URL (that is what a broker restart looks like to a service).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        workdir: Path | None = None,
        extra_config: Mapping[str, str] | None = None,
        exclude_ports: Iterable[int] = (),
    ) -> None:
        """``exclude_ports``: ports the caller picked for its own servers, not bound yet."""
        self.host = host
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_config = dict(extra_config or {})
        taken: set[int] = set(exclude_ports)
        self.amqp_port = _free_port(host, taken)
        self.management_port = _free_port(host, taken)
        self.prometheus_port = _free_port(host, taken)
        self.dist_port = _free_port(host, taken)
        self.epmd_port = _free_port(host, taken)
        self.node_name = f"scalelab-{uuid.uuid4().hex[:12]}@localhost"
        self.amqp_url = f"amqp://guest:guest@{host}:{self.amqp_port}/%2F"
        self.management_url = f"http://{host}:{self.management_port}"
        self.prometheus_url = f"http://{host}:{self.prometheus_port}"
        self._own_workdir = workdir is None
        self._workdir_arg = workdir
        self.workdir: Path | None = None
        self._executor: MarkedExecutor | None = None
        self._console: IO[str] | None = None
        #: Seconds from spawn to ready, for the last start (benchmarks print it).
        self.startup_seconds: float | None = None

    # -- paths -------------------------------------------------------------------------
    @property
    def console_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "log" / "console.log"

    @property
    def broker_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "log" / "rabbit.log"

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> RabbitMQNode:
        """Spawn the broker and return when AMQP, management and prometheus all answer."""
        if self.running():
            return self
        script = find_server_script()
        if self.workdir is None:
            self._prepare_workdir()
        assert self.workdir is not None
        command = [script]
        run_as = self._service_user()
        if run_as is not None:
            command = ["setpriv", f"--reuid={run_as.pw_uid}", f"--regid={run_as.pw_gid}",
                       "--init-groups", "--", *command]
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        self._console = open(self.console_log, "a", encoding="utf-8")  # noqa: SIM115
        self._executor = MarkedExecutor(
            command,
            cwd=str(self.workdir),
            timeout=self.stop_timeout,
            envvars=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
        )
        began = time.monotonic()
        LOG.info("starting RabbitMQ node %s (amqp %d, management %d, prometheus %d)",
                 self.node_name, self.amqp_port, self.management_port, self.prometheus_port)
        self._executor.start()
        try:
            wait_for(
                self._readiness, lambda reason: reason == "ready",
                what=f"RabbitMQ node {self.node_name} to accept connections",
                expected="AMQP connection, GET /api/overview and GET /metrics succeed",
                timeout=self.startup_timeout, interval=0.2,
                fix=f"read the broker log: {self.broker_log}",
            )
        except BaseException:
            self._halt()
            raise
        self.startup_seconds = time.monotonic() - began
        LOG.info("RabbitMQ node %s ready in %.1fs", self.node_name, self.startup_seconds)
        return self

    def stop(self) -> None:
        """Stop the broker and everything it spawned, then remove the temp dir. Idempotent."""
        self._halt()
        if self.workdir is not None and self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def restart(self) -> None:
        """Stop and start again on the same ports and data dir (messages on disk survive)."""
        self._halt()
        self.start()

    def running(self) -> bool:
        return self._executor is not None and self._executor.running()

    def died(self) -> str | None:
        """None while the broker we started runs (or after we stopped it); else how it ended
        by itself, with its log tail: say so once, rather than as every client's failure."""
        executor = self._executor
        if executor is None or executor.process is None:
            return None
        code = executor.process.poll()
        if code is None:
            return None
        how = f"code {code}"
        if code < 0:
            how = f"signal {signal.Signals(-code).name}"
            if code == -signal.SIGKILL:
                how += " (killed from outside: the broker never SIGKILLs itself)"
        return (f"RabbitMQ node {self.node_name} ({self.amqp_url}) exited with {how} after "
                f"it was ready:\n{self.log_tail()}")

    def queues(self, *, timeout: float = 30.0) -> list[QueueState]:
        """Every queue of the default vhost with its counts, exact at the time of the call.

        Asked with ``rabbitmqctl`` (about 0.5 s): the management API's counts come from
        statistics collected every ``collect_statistics_interval`` (5 s), so right after an
        ack they still show it unacknowledged, or the queue not at all.
        """
        ctl = str(Path(find_server_script()).with_name("rabbitmqctl"))
        command = [ctl, "-n", self.node_name, "list_queues", "-q", "--no-table-headers",
                   "name", "messages_ready", "messages_unacknowledged", "consumers"]
        try:
            done = subprocess.run(command, env={**os.environ, **self._environment()},
                                  capture_output=True, text=True, timeout=timeout,
                                  check=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            stderr = err.stderr if isinstance(err.stderr, str) else ""
            raise BackendError(
                f"rabbitmqctl list_queues on {self.node_name} failed: {err}\n"
                + "\n".join(stderr.splitlines()[-10:]),
                fix=f"is the node running? read its log: {self.broker_log}") from None
        states = []
        for line in done.stdout.splitlines():
            name, ready, unacked, consumers = line.rsplit("\t", 3)
            states.append(QueueState(name=name, ready=int(ready), unacked=int(unacked),
                                     consumers=int(consumers)))
        return states

    def version(self) -> str:
        """The broker's version: asked from the running node, else read from the install."""
        if self.running():
            return str(_overview(self.management_url)["rabbitmq_version"])
        for entry in sorted(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*")):
            return entry.name.removeprefix("rabbitmq_server-")
        return "unknown"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the console output and the broker log, for error messages."""
        if self.workdir is None:
            return "(no log: node not started)"
        parts = []
        for path in (self.console_log, self.broker_log):
            try:
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            parts.append(f"--- {path} (last {lines} lines) ---")
            parts.extend(text[-lines:])
        return "\n".join(parts) if parts else "(no log written)"

    def __enter__(self) -> RabbitMQNode:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"RabbitMQNode({self.node_name}, {self.amqp_url}, {state})"

    # -- internals ---------------------------------------------------------------------
    def _readiness(self) -> str:
        """One probe: 'ready', or why not; raises ProcessStartError if the broker died."""
        assert self._executor is not None and self._executor.process is not None
        code = self._executor.process.poll()
        if code is not None:
            raise ProcessStartError(
                f"rabbitmq-server exited with code {code} while starting "
                f"(node {self.node_name}):\n{self.log_tail()}",
                fix="see the log above; a port clash or a bad rabbitmq.conf are the usual causes",
            )
        for reason in (
            _amqp_probe(self.amqp_url),
            _http_probe(f"{self.management_url}/api/overview", auth=GUEST),
            _http_probe(f"{self.prometheus_url}/metrics"),
        ):
            if reason is not None:
                return reason
        return "ready"

    def _halt(self) -> None:
        """Stop the processes (graceful SIGTERM, then SIGKILL) and sweep any leftovers."""
        executor, self._executor = self._executor, None
        if executor is not None:
            marker = executor.marker
            try:
                executor.stop()
            except ProcessFinishedWithError as err:
                LOG.info("rabbitmq-server exited with %s on stop", err.exit_code)
            except (OSError, psutil.Error) as err:
                # psutil.AccessDenied: mirakuru's sweep met another user's process (non-root)
                LOG.warning("stopping rabbitmq-server: %s", err)
                with contextlib.suppress(OSError, psutil.Error):
                    executor.kill()
            # epmd daemonizes into its own session: not in the process group, but it
            # carries mirakuru's marker. SIGKILL whatever is left.
            kill_marked(marker)
        if self._console is not None:
            self._console.close()
            self._console = None

    def _service_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return None  # no such user: run as root rather than fail

    def _prepare_workdir(self) -> None:
        if self._workdir_arg is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="scalelab-rabbitmq-"))
        else:
            self.workdir = self._workdir_arg
            self.workdir.mkdir(parents=True, exist_ok=True)
        wd = self.workdir
        for sub in ("log", "mnesia", "plugins-expand", "home"):
            (wd / sub).mkdir(exist_ok=True)
        (wd / "enabled_plugins").write_text("[" + ",".join(PLUGINS) + "].\n", encoding="utf-8")
        (wd / "rabbitmq-env.conf").write_text("# intentionally empty: see environment\n",
                                             encoding="utf-8")
        (wd / "rabbitmq.conf").write_text(self._config_text(), encoding="utf-8")
        user = self._service_user()
        if user is not None:
            os.chown(wd, user.pw_uid, user.pw_gid)
            for root, dirs, files in os.walk(wd):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)

    def _config_text(self) -> str:
        settings = {
            "listeners.tcp.default": f"{self.host}:{self.amqp_port}",
            "management.tcp.ip": self.host,
            "management.tcp.port": str(self.management_port),
            "prometheus.tcp.ip": self.host,
            "prometheus.tcp.port": str(self.prometheus_port),
            "loopback_users.guest": "true",
            # small test disks must not trip the disk alarm and block publishers
            "disk_free_limit.absolute": "50MB",
            "log.console": "false",
            "log.file.level": "info",
        }
        settings.update(self.extra_config)
        return "".join(f"{key} = {value}\n" for key, value in settings.items())

    def _environment(self) -> dict[str, str]:
        assert self.workdir is not None
        wd = self.workdir
        return {
            "HOME": str(wd / "home"),  # the Erlang cookie goes here
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # the distribution listener (RABBITMQ_DIST_PORT) binds every interface unless
            # told; the CLI tools' own short-lived nodes likewise
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": _LOOPBACK_DIST,
            "RABBITMQ_CTL_ERL_ARGS": _LOOPBACK_DIST,
            "RABBITMQ_CONFIG_FILE": str(wd / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(wd / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(wd / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(wd / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(wd / "plugins-expand"),
            "RABBITMQ_MNESIA_BASE": str(wd / "mnesia"),
            "RABBITMQ_LOG_BASE": str(wd / "log"),
            "RABBITMQ_LOGS": str(wd / "log" / "rabbit.log"),
            "RABBITMQ_PID_FILE": str(wd / "rabbit.pid"),
        }


#: erl flag: Erlang distribution listens on loopback only (kernel app, inet_dist_use_interface).
_LOOPBACK_DIST = "-kernel inet_dist_use_interface {127,0,0,1}"


class ExistingRabbitMQ:
    """A broker somebody else runs, with the same attributes as ``RabbitMQNode``.

    ``start()`` only checks that it answers; ``stop()`` does nothing (not ours to stop).
    """

    def __init__(
        self,
        *,
        amqp_url: str,
        management_url: str,
        prometheus_url: str,
        timeout: float = 10.0,
    ) -> None:
        self.amqp_url = amqp_url
        self.management_url = management_url.rstrip("/")
        self.prometheus_url = prometheus_url.rstrip("/")
        self.timeout = timeout
        self.amqp_port = urlsplit(amqp_url).port or 5672
        self.management_port = urlsplit(management_url).port or 15672
        self.prometheus_port = urlsplit(prometheus_url).port or 15692
        self._checked = False

    @classmethod
    def from_host(cls, *, host: str = "127.0.0.1", amqp_port: int = 5672,
                  management_port: int = 15672, prometheus_port: int = 15692,
                  user: str = "guest", password: str = "guest") -> ExistingRabbitMQ:
        """The usual ports of a stock broker on ``host``."""
        return cls(
            amqp_url=f"amqp://{quote(user)}:{quote(password)}@{host}:{amqp_port}/%2F",
            management_url=f"http://{host}:{management_port}",
            prometheus_url=f"http://{host}:{prometheus_port}",
        )

    def start(self) -> ExistingRabbitMQ:
        def probe() -> str:
            return (_amqp_probe(self.amqp_url)
                    or _http_probe(f"{self.management_url}/api/overview", auth=GUEST)
                    or "ready")

        wait_for(probe, lambda r: r == "ready", what=f"existing RabbitMQ at {self.amqp_url}",
                 expected="AMQP and management API answer", timeout=self.timeout,
                 fix="check the URLs and that the management plugin is enabled")
        self._checked = True
        return self

    def stop(self) -> None:
        self._checked = False

    def restart(self) -> None:
        raise BackendError("cannot restart a RabbitMQ broker we did not start",
                           fix="use RabbitMQNode for broker-restart experiments")

    def running(self) -> bool:
        return _amqp_probe(self.amqp_url) is None

    def version(self) -> str:
        return str(_overview(self.management_url)["rabbitmq_version"])

    def log_tail(self, lines: int = 40) -> str:
        return "(log not available: broker not started by scalelab)"

    def __enter__(self) -> ExistingRabbitMQ:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
