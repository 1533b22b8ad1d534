"""A private Prometheus server: generated config, temp TSDB, 127.0.0.1 only.

Why a real Prometheus: the experiment's PromQL (replicas, CPU, queue depth) must be the
same text on the local and the kind backend, so the local backend scrapes the same kind
of series with the same engine. The config builder (``build_config``) is a pure function
so tests can check the scrape jobs without starting anything.

Agent pods come and go; they are discovered through ``file_sd_configs`` (Prometheus
watches the file with inotify and re-reads it every ``refresh_interval``), and
``write_file_sd`` replaces that file atomically so Prometheus never reads half a file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import port_for
import yaml

from scalelab.errors import MissingDependencyError, ProcessStartError
from scalelab.procs.executor import MarkedExecutor
from scalelab.waiting import wait_for

#: Debian package that provides the binary (named in the "not installed" error).
DEBIAN_PACKAGE = "prometheus"
#: Override the binary's location (tests, non-Debian systems).
BINARY_ENV = "SCALELAB_PROMETHEUS_BIN"


def duration(seconds: float) -> str:
    """A Prometheus duration string (``"5s"``, ``"500ms"``) for a number of seconds."""
    millis = max(1, round(seconds * 1000))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


@dataclass(frozen=True, kw_only=True)
class StaticTarget:
    """One fixed scrape job (the API, RabbitMQ, the backend's own exporter)."""

    job: str
    address: str                                    # host:port
    metrics_path: str = "/metrics"
    params: Mapping[str, Sequence[str]] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    honor_labels: bool = False
    #: ``metric_relabel_configs`` (applied to scraped series, after the target labels).
    metric_relabel_configs: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, kw_only=True)
class FileSDJob:
    """A scrape job whose targets come from a JSON file (``file_sd_configs``)."""

    job: str
    path: Path
    refresh_interval: float = 1.0


def build_config(
    *,
    scrape_interval: float,
    static: Sequence[StaticTarget] = (),
    file_sd: Sequence[FileSDJob] = (),
    external_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the Prometheus configuration (as a dict, dumped to YAML by the server).

    ``scrape_timeout`` is set explicitly (80 % of the interval) because Prometheus
    rejects a timeout longer than the interval and its default is 10 s.
    """
    timeout = duration(scrape_interval * 0.8)
    jobs: list[dict[str, Any]] = []
    for target in static:
        job: dict[str, Any] = {
            "job_name": target.job,
            "metrics_path": target.metrics_path,
            "static_configs": [
                {"targets": [target.address], "labels": dict(target.labels)}
            ],
        }
        if target.params:
            job["params"] = {k: list(v) for k, v in target.params.items()}
        if target.honor_labels:
            job["honor_labels"] = True
        if target.metric_relabel_configs:
            job["metric_relabel_configs"] = [dict(c) for c in target.metric_relabel_configs]
        jobs.append(job)
    for sd in file_sd:
        jobs.append({
            "job_name": sd.job,
            "file_sd_configs": [
                {"files": [str(sd.path)], "refresh_interval": duration(sd.refresh_interval)}
            ],
        })
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": duration(scrape_interval),
            "scrape_timeout": timeout,
            "evaluation_interval": duration(scrape_interval),
        },
        "scrape_configs": jobs,
    }
    if external_labels:
        config["global"]["external_labels"] = dict(external_labels)
    return config


def file_sd_group(*, address: str, labels: Mapping[str, str],
                  metrics_path: str | None = None) -> dict[str, Any]:
    """One target group of a file_sd JSON file (``__metrics_path__`` if not /metrics)."""
    all_labels = dict(labels)
    if metrics_path and metrics_path != "/metrics":
        all_labels["__metrics_path__"] = metrics_path
    return {"targets": [address], "labels": all_labels}


def write_file_sd(path: Path, groups: Sequence[Mapping[str, Any]]) -> None:
    """Replace the file_sd file atomically (temp file in the same dir + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(list(groups), handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def find_binary() -> str:
    """Locate ``prometheus``; raise ``MissingDependencyError`` naming the Debian package."""
    override = os.environ.get(BINARY_ENV)
    candidates = [override] if override else [shutil.which("prometheus"), "/usr/bin/prometheus"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise MissingDependencyError(
        f"the Prometheus server binary was not found ({override or 'prometheus on PATH'})",
        fix=f"install the Debian package '{DEBIAN_PACKAGE}': "
            f"sudo apt-get install -y {DEBIAN_PACKAGE} (or set {BINARY_ENV})",
    )


def _http_status(url: str, *, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (127.0.0.1)
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (OSError, ValueError):
        return None


class PrometheusServer:
    """Start, reload and stop one private Prometheus; fail fast with its log tail."""

    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        workdir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.workdir = Path(workdir)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._config = dict(config)
        self._binary: str | None = None
        self._executor: MarkedExecutor | None = None
        self._log_handle: Any = None

    # -- paths -----------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise ProcessStartError("Prometheus has no port yet", fix="call start() first")
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> PrometheusServer:
        """Write the config, start the server, return once ``/-/ready`` answers 200."""
        self._binary = find_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = port_for.select_random()
        self._write_config()
        tsdb = self.workdir / "tsdb"
        tsdb.mkdir(exist_ok=True)
        command = [
            self._binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={tsdb}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=info",
        ]
        self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self._executor = MarkedExecutor(
            command, cwd=str(self.workdir), timeout=self.stop_timeout,
            stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=subprocess.STDOUT,
        )
        started = time.monotonic()
        self._executor.start()
        try:
            wait_for(
                self._ready_probe, lambda status: status == 200,
                what=f"Prometheus at {self.url}/-/ready", expected="HTTP 200",
                timeout=self.startup_timeout, interval=0.1,
                fix=f"see the log {self.log_path}",
            )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _ready_probe(self) -> int | None:
        executor = self._executor
        if executor is None or not executor.running():
            code = executor.process.returncode if executor and executor.process else None
            raise ProcessStartError(
                f"Prometheus exited during start (exit code {code}); log tail:\n"
                + self.log_tail(),
                fix="read the log above (a port already taken shows 'address already in use')",
            )
        return _http_status(f"{self.url}/-/ready")

    def running(self) -> bool:
        return self._executor is not None and self._executor.running()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``stop_timeout``); idempotent."""
        executor, self._executor = self._executor, None
        if executor is not None:
            try:
                executor.stop()
            except Exception:  # noqa: BLE001 - a crashed server is stopped too
                executor.kill()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    # -- config ----------------------------------------------------------------------
    def _write_config(self) -> None:
        tmp = self.config_path.with_suffix(".yml.tmp")
        tmp.write_text(yaml.safe_dump(self._config, sort_keys=False))
        os.replace(tmp, self.config_path)

    def reload(self, config: Mapping[str, Any]) -> None:
        """Replace the config and ask the running server to reload it (``/-/reload``)."""
        self._config = dict(config)
        self._write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            if resp.status != 200:
                raise ProcessStartError(f"Prometheus reload answered {resp.status}")

    # -- diagnostics -----------------------------------------------------------------
    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def version(self) -> str:
        """``prometheus --version``'s version number (e.g. ``2.42.0+ds``)."""
        binary = self._binary or find_binary()
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10, check=False)
        first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
        parts = first.split()
        return parts[2] if len(parts) > 2 and parts[1] == "version" else first
