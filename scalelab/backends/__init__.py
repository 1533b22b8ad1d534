"""Backends: where the stack runs. ``base.Backend`` is the interface; ``make_backend`` picks one."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from scalelab.backends.base import Backend
from scalelab.errors import ConfigError
from scalelab.settings import StackSettings

BACKEND_NAMES = ("auto", "local", "kind", "existing")


@dataclass(frozen=True, kw_only=True)
class BackendChoice:
    name: str
    reason: str


def docker_answers(*, timeout: float = 5.0) -> bool:
    """True when a Docker daemon answers (``docker info``), not merely when the CLI exists."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def choose_backend(requested: str) -> BackendChoice:
    """Resolve ``auto``: kind when a Docker daemon answers and kind is installed, else local."""
    if requested not in BACKEND_NAMES:
        raise ConfigError(f"unknown backend {requested!r}", field="--backend",
                          fix=f"use one of {', '.join(BACKEND_NAMES)}")
    if requested != "auto":
        return BackendChoice(name=requested, reason=f"--backend {requested}")
    if docker_answers() and shutil.which("kind"):
        return BackendChoice(name="kind", reason="a Docker daemon answers and kind is installed")
    return BackendChoice(
        name="local",
        reason="no Docker daemon answers (or kind is not installed): using the local backend "
               "(real RabbitMQ and Prometheus, emulated HPA/KEDA controllers)",
    )


def make_backend(name: str, *, settings: StackSettings) -> Backend:
    """Instantiate a resolved backend by name (not ``auto``)."""
    if name == "local":
        from scalelab.backends.local.backend import LocalBackend

        return LocalBackend(settings=settings)
    if name in ("kind", "existing"):
        from scalelab.backends.cluster import make_cluster_backend

        return make_cluster_backend(name, settings=settings)
    raise ConfigError(f"unknown backend {name!r}", field="--backend",
                      fix=f"use one of {', '.join(BACKEND_NAMES[1:])}")


#: Seconds the whole bring-up may take, overriding the backend's own bound.
BRING_UP_TIMEOUT_ENV = "SCALELAB_BRING_UP_TIMEOUT"


def bring_up_timeout(backend: Backend | type[Backend],
                     env: Mapping[str, str] = os.environ) -> float:
    """The backend's own bound, or ``SCALELAB_BRING_UP_TIMEOUT`` seconds; the pytest driver
    and the Dagster resource both read it here (checked before anything starts)."""
    raw = env.get(BRING_UP_TIMEOUT_ENV)
    if not raw:
        return backend.bring_up_timeout
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{raw!r} is not a positive number of seconds",
                          field=BRING_UP_TIMEOUT_ENV,
                          fix=f"e.g. {BRING_UP_TIMEOUT_ENV}={backend.bring_up_timeout:g}")
    return value
