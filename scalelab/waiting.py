"""The one wait loop: every wait has a timeout and says expected, actual and elapsed.

The clock and the sleep are parameters so unit tests run without real time passing. The
clock is monotonic time (``scalelab.clock.Clock.monotonic``): a timeout is a duration, which
a wall clock corrected by NTP would stretch or cut; callers pass ``clock.monotonic`` and
``clock.sleep`` of the run's one ``Clock``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeVar

from scalelab.errors import WaitTimeout

log = logging.getLogger(__name__)

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


@contextlib.contextmanager
def deadline(seconds: float, *, what: str, expected: object,
             actual: Callable[[], object] = lambda: "not finished",
             clock: Callable[[], float] = time.monotonic, fix: str | None = None
             ) -> Iterator[None]:
    """Bound a block that has no wait loop of its own (a backend's bring-up): after
    ``seconds`` raise ``WaitTimeout`` inside it, naming what it was doing (``actual()``).

    SIGALRM, so the block's own ``finally``/``except BaseException`` cleanup runs, as for
    Ctrl-C. Only the main thread can take signals: elsewhere the block runs unbounded
    and says so in the log.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        if seconds > 0:
            log.warning("%s: no deadline outside the main thread", what)
        yield
        return
    start = clock()

    def _expired(signum: int, frame: FrameType | None) -> None:
        raise WaitTimeout(what, expected=expected, actual=actual(), elapsed=clock() - start,
                          fix=fix)

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
