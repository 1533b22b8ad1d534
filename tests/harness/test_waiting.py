"""wait_for: the one wait loop. A fake clock keeps these instant."""

from __future__ import annotations

import pytest

from scalelab.errors import WaitTimeout
from scalelab.waiting import wait_for
from tests.fakes import FakeClock


def test_returns_the_value_that_satisfied_the_condition() -> None:
    clock = FakeClock()
    values = iter([1, 2, 3])
    got = wait_for(lambda: next(values), lambda v: v == 3, what="three", expected=3,
                   timeout=10, interval=1, clock=clock, sleep=clock.sleep)
    assert got == 3
    assert clock.now == 2.0


def test_timeout_names_expected_actual_and_elapsed() -> None:
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as info:
        wait_for(lambda: 1, lambda v: v == 2, what="replicas", expected="ready=2",
                 timeout=5, interval=1, clock=clock, sleep=clock.sleep, fix="check the pods")
    err = info.value
    assert (err.expected, err.actual) == ("ready=2", 1)
    assert err.elapsed == pytest.approx(5.0)
    text = str(err)
    assert "replicas" in text and "expected ready=2" in text and "saw 1" in text
    assert "5.0s" in text and "fix: check the pods" in text


def test_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    with pytest.raises(WaitTimeout):
        wait_for(lambda: 0, lambda v: False, what="x", expected=1, timeout=2.5, interval=1,
                 clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(2.5)


def test_probe_errors_propagate_instead_of_timing_out() -> None:
    def probe() -> int:
        raise RuntimeError("process died")

    with pytest.raises(RuntimeError, match="process died"):
        wait_for(probe, lambda v: True, what="x", expected=1, timeout=100)
