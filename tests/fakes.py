"""Test doubles shared across packages (each says what it stands in for)."""

from __future__ import annotations


class FakeClock:
    """A clock and a sleep for code that takes them injected: sleeping advances the time,
    nothing blocks, so waits with real timeouts run instantly in unit tests."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
