"""pytest plugin for test_bring_up.py: the experiment driver with a slow stand-in backend.

FAKE AT THE BACKEND SEAM: ``SlowBackend`` stands in for a kind cluster whose bring-up takes
long (a cold image pull); it starts nothing. The scenario bodies are replaced by a check that
the stack is up, so only the driver's plumbing (experiments/conftest.py) is under test.
Loaded with ``-p tests.harness.slow_stack_plugin`` before the driver imports ``make_backend``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

import scalelab.backends
from scalelab.backends.base import Backend, Endpoints, Replicas
from scalelab.decisions import ScalingEvent

LOG = Path(os.environ.get("SLOW_STACK_LOG", "/dev/null"))


def _log(line: str) -> None:
    with LOG.open("a") as f:
        f.write(line + "\n")


class SlowBackend(Backend):
    name: ClassVar[str] = "slow"
    bring_up_timeout: ClassVar[float] = 60.0

    def up(self) -> Endpoints:
        self.current_step = "pulling images"
        time.sleep(float(os.environ.get("SLOW_STACK_UP", "3")))
        self.timings["pulling images"] = 3.0
        _log("up")
        return self.endpoints

    def down(self) -> None:
        _log("down")

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(api="http://127.0.0.1:9", prometheus="http://127.0.0.1:9",
                         rabbitmq_management="http://127.0.0.1:9", amqp="amqp://127.0.0.1:9")

    def _unused(self, *args: Any) -> Any:
        raise NotImplementedError("stand-in backend")

    replicas = scaling_events = diagnostics = apply_scaling = _unused  # type: ignore[assignment]
    remove_scaling = scale = purge_queue = _unused  # type: ignore[assignment]


def _make(name: str, *, settings: Any) -> Backend:
    return SlowBackend(settings=settings)


scalelab.backends.make_backend = _make  # type: ignore[assignment]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A per-scenario timeout shorter than the bring-up: it must not count the bring-up.
    for item in items:
        item.add_marker(pytest.mark.timeout(float(os.environ.get("SLOW_STACK_TIMEOUT", "1"))),
                        append=False)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool:
    stack = pyfuncitem.funcargs["stack"]
    assert isinstance(stack, SlowBackend)
    _log(f"scenario {pyfuncitem.callspec.id}")
    return True


# Keep the abstract-method check happy: Replicas/ScalingEvent are the interface's types.
__all__ = ["Replicas", "ScalingEvent", "SlowBackend"]
