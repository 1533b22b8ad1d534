"""One clock for a run: wall time, monotonic time and sleep, passed to every wait.

Two kinds of time, never mixed up:

- ``wall()`` is unix seconds: what a run record stores (``started_at``, timeline ``t``,
  phase boundaries, which Locust logs on the same clock) and what Prometheus' range
  queries and Kubernetes events are keyed on.
- ``monotonic()`` measures durations and deadlines (``wait_for``'s timeout, a step's
  seconds): it never jumps when NTP corrects the wall clock.

Tests pass a fake ``Clock`` whose ``sleep`` advances both, so a whole scenario's control
flow runs in milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Clock:
    """Wall time (unix seconds), monotonic time (durations) and sleep, as one value."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


#: The real clock.
SYSTEM = Clock()
