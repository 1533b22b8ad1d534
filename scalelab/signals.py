"""Stop signals as Ctrl-C, so every ``finally`` and fixture teardown runs.

A cancelled CI job, ``kill`` or a stopping tox sends SIGTERM; Python's default is to die
on the spot, and the broker, Prometheus, the pods or a kind cluster started by the run
keep running. Turned into ``KeyboardInterrupt`` it unwinds like Ctrl-C instead. Used by
``scalelab up`` (SIGTERM and SIGINT) and the pytest plugin (``scalelab.pytest_options``).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def interrupt_on(*signums: int) -> Iterator[None]:
    """Inside the block the first of ``signums`` raises ``KeyboardInterrupt("signal N")``
    in the main thread; the previous handlers come back when the block exits.

    One-shot: once one has arrived, later ones do nothing, so a second signal (CI runners
    follow a cancel's SIGINT with a SIGTERM; an impatient user presses Ctrl-C twice) cannot
    break into the teardown the first one started. Later signals are swallowed by a handler
    rather than set to ``SIG_IGN``: an ignored disposition is inherited across ``exec``, so
    every process the teardown starts (``helm uninstall``, ``kind delete cluster``) would
    ignore SIGTERM and SIGINT for good. Call from the main thread (``signal.signal`` refuses
    any other).
    """
    fired: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if fired:
            return
        fired.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, interrupt) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            # None: a handler not installed from Python; the default is the closest
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
