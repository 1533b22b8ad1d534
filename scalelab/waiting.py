"""The one wait loop: every wait has a timeout and says expected, actual and elapsed.

The clock and the sleep are parameters so unit tests run without real time passing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from scalelab.errors import WaitTimeout

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    *,
    what: str,
    expected: object,
    timeout: float,
    interval: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    fix: str | None = None,
) -> T:
    """Call ``probe`` until ``done(value)``; raise ``WaitTimeout`` with the last value seen.

    ``probe`` may raise to signal "not yet" only via returning a value; exceptions
    propagate so that a dead process fails fast instead of timing out.
    """
    start = clock()
    while True:
        value = probe()
        if done(value):
            return value
        elapsed = clock() - start
        if elapsed >= timeout:
            raise WaitTimeout(what, expected=expected, actual=value, elapsed=elapsed, fix=fix)
        sleep(min(interval, max(0.0, timeout - elapsed)))
