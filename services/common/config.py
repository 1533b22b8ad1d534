"""Environment configuration of the services, parsed once at start into frozen dataclasses.

Why: a typo in an env var must stop the process at start with the variable's name and
the fix, not surface as a strange failure under load.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_TASK_QUEUE = "agent-tasks"
DEFAULT_RESULTS_QUEUE = "agent-results"
#: The Grafana dashboards the live view's panels are read from, and the built page: in the
#: repository and, at the same places under /app, in the API image.
DEFAULT_DASHBOARDS_DIR = str(Path(__file__).resolve().parents[2] / "manifests" / "grafana")
DEFAULT_FRONTEND_DIR = str(Path(__file__).resolve().parents[1] / "frontend" / "dist")


class ConfigError(Exception):
    """A bad environment variable; the message names it and says how to fix it."""

    def __init__(self, variable: str, message: str, *, fix: str) -> None:
        self.variable = variable
        self.fix = fix
        super().__init__(f"environment variable {variable}: {message}\n  fix: {fix}")


def _number(env: Mapping[str, str], name: str, default: float, *, low: float, high: float,
            parse: type[int] | type[float], what: str) -> float:
    """A bounded number from ``env``: the default when unset, else a ConfigError that names
    the variable and the accepted range."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    fix = f"set {name} to {what} in [{low:g}, {high:g}]"
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(name, f"{raw!r} is not {'an integer' if parse is int else 'a number'}",
                          fix=fix) from None
    if not low <= value <= high:
        raise ConfigError(name, f"{value:g} is out of range", fix=fix)
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    return int(_number(env, name, default, low=low, high=high, parse=int, what="an integer"))


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name)
    return default if raw is None or raw.strip() == "" else raw.strip()


def _float(env: Mapping[str, str], name: str, default: float, *, low: float,
           high: float) -> float:
    return _number(env, name, default, low=low, high=high, parse=float,
                   what="a number of seconds")


def _http_url(env: Mapping[str, str], name: str) -> str:
    url = _str(env, name, "")
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(name, f"{url!r} is not an HTTP URL",
                          fix=f"set {name} to http://HOST:PORT (or leave it unset)")
    return url


def _amqp_url(env: Mapping[str, str]) -> str:
    url = _str(env, "AMQP_URL", DEFAULT_AMQP_URL)
    if not url.startswith(("amqp://", "amqps://")):
        raise ConfigError("AMQP_URL", f"{url!r} is not an AMQP URL",
                          fix="use amqp://USER:PASS@HOST:PORT/VHOST, e.g. " + DEFAULT_AMQP_URL)
    return url


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """Settings of ``python -m services.api`` (env var names in comments)."""

    amqp_url: str = DEFAULT_AMQP_URL        # AMQP_URL
    task_queue: str = DEFAULT_TASK_QUEUE    # TASK_QUEUE
    port: int = 8080                        # PORT
    bind: str = "127.0.0.1"                 # BIND
    batch_max: int = 100                    # BATCH_MAX: most tasks in one POST /tasks/batch
    threads: int = 8                        # THREADS: gunicorn gthread threads (one worker)
    max_body_bytes: int = 64 * 1024         # request bodies above this answer 413
    # The live view (/api/status, /api/series; services/api/live.py):
    prometheus_url: str = ""                # PROMETHEUS_URL: "" = panels say unavailable
    namespace: str = "scalelab"             # NAMESPACE: the dashboards' $namespace
    scrape_interval: float = 15.0           # SCRAPE_INTERVAL: for $__rate_interval and steps
    prometheus_timeout: float = 1.0         # one answer's whole budget (issue 11: within 1 s)
    dashboards_dir: str = DEFAULT_DASHBOARDS_DIR   # DASHBOARDS_DIR
    frontend_dir: str = DEFAULT_FRONTEND_DIR       # FRONTEND_DIR: the built page (vite build)
    control_url: str = ""                   # CONTROL_URL: scalelab up's scaling control

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiConfig:
        return cls(
            amqp_url=_amqp_url(env),
            task_queue=_str(env, "TASK_QUEUE", DEFAULT_TASK_QUEUE),
            port=_int(env, "PORT", 8080, low=1, high=65535),
            bind=_str(env, "BIND", "127.0.0.1"),
            batch_max=_int(env, "BATCH_MAX", 100, low=1, high=10_000),
            threads=_int(env, "THREADS", 8, low=1, high=256),
            prometheus_url=_http_url(env, "PROMETHEUS_URL"),
            namespace=_str(env, "NAMESPACE", "scalelab"),
            scrape_interval=_float(env, "SCRAPE_INTERVAL", 15.0, low=0.1, high=600.0),
            dashboards_dir=_str(env, "DASHBOARDS_DIR", DEFAULT_DASHBOARDS_DIR),
            frontend_dir=_str(env, "FRONTEND_DIR", DEFAULT_FRONTEND_DIR),
            control_url=_http_url(env, "CONTROL_URL"),
        )


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Settings of ``python -m services.agent`` (env var names in comments)."""

    amqp_url: str = DEFAULT_AMQP_URL            # AMQP_URL
    task_queue: str = DEFAULT_TASK_QUEUE        # TASK_QUEUE
    results_queue: str = DEFAULT_RESULTS_QUEUE  # RESULTS_QUEUE
    prefetch: int = 1                           # PREFETCH
    metrics_port: int = 9100                    # METRICS_PORT
    metrics_bind: str = "127.0.0.1"             # METRICS_BIND
    pod_name: str = "agent"                     # POD_NAME (default: hostname)
    fault_file: str = ""                        # FAULT_FILE (services/agent/faults.py)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentConfig:
        return cls(
            amqp_url=_amqp_url(env),
            task_queue=_str(env, "TASK_QUEUE", DEFAULT_TASK_QUEUE),
            results_queue=_str(env, "RESULTS_QUEUE", DEFAULT_RESULTS_QUEUE),
            prefetch=_int(env, "PREFETCH", 1, low=1, high=1000),
            metrics_port=_int(env, "METRICS_PORT", 9100, low=1, high=65535),
            metrics_bind=_str(env, "METRICS_BIND", "127.0.0.1"),
            pod_name=_str(env, "POD_NAME", socket.gethostname()),
            fault_file=_str(env, "FAULT_FILE", ""),
        )


#: Every env var each service reads (the Dockerfile consistency test checks these).
API_ENV_VARS = ("AMQP_URL", "TASK_QUEUE", "PORT", "BIND", "BATCH_MAX", "THREADS",
                "PROMETHEUS_URL", "NAMESPACE", "SCRAPE_INTERVAL", "DASHBOARDS_DIR",
                "FRONTEND_DIR", "CONTROL_URL")
AGENT_ENV_VARS = ("AMQP_URL", "TASK_QUEUE", "RESULTS_QUEUE", "PREFETCH", "METRICS_PORT",
                  "METRICS_BIND", "POD_NAME", "FAULT_FILE")
