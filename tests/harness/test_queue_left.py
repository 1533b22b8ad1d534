"""After the drain, a stale management statistic must not be reported as a leftover task.

The management API is faked here (its lag is what is modelled: readings come from a list);
the real queue depth path is exercised by tests/experiment against a real broker.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from scalelab import experiment
from scalelab.clock import Clock
from scalelab.observe import QueueDepth
from tests.fakes import FakeClock


def _backend() -> Any:
    return SimpleNamespace(endpoints=SimpleNamespace(
        rabbitmq_management="http://guest:guest@127.0.0.1:1"))


def _clock(fake: FakeClock) -> Clock:
    return Clock(wall=fake, monotonic=fake, sleep=fake.sleep)


def _readings(monkeypatch: pytest.MonkeyPatch, values: list[tuple[int, int] | None]) -> None:
    it = iter(values)

    def fake(session: Any, base: str) -> QueueDepth | None:
        v = next(it, values[-1])
        return None if v is None else QueueDepth(ready=v[0], unacked=v[1])

    monkeypatch.setattr(experiment, "queue_depth", fake)


def test_a_stale_reading_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    _readings(monkeypatch, [(0, 4), (0, 4), (0, 0)])
    clock = FakeClock()
    left = experiment._queue_left(_backend(), clock=_clock(clock))
    assert left == {"ready": 0, "unacked": 0} and clock.now == 2.0


def test_a_real_leftover_is_reported_after_the_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    _readings(monkeypatch, [(3, 0)])
    clock = FakeClock()
    left = experiment._queue_left(_backend(), clock=_clock(clock), lag=15.0)
    assert left == {"ready": 3, "unacked": 0} and clock.now >= 15.0


def test_an_unreachable_api_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    _readings(monkeypatch, [None])
    clock = FakeClock()
    assert experiment._queue_left(_backend(), clock=_clock(clock)) is None
