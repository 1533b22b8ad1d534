"""The tools an agent runs. ``cpu`` burns real CPU in this thread (a CPU-based autoscaler
must see it), ``io`` waits without CPU, ``mixed`` does both.

Both take a callback that keeps the AMQP connection serviced (heartbeats) while the
tool runs in the consumer thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

#: How often (wall seconds) a CPU burn yields to the connection for heartbeats.
TICK_INTERVAL = 0.05


def burn_cpu(cpu_ms: int, *, tick: Callable[[], None]) -> float:
    """Spend ``cpu_ms`` of this thread's CPU time; return the CPU seconds actually used."""
    target = cpu_ms / 1000.0
    start = time.thread_time()
    last_tick = time.monotonic()
    x = 1
    while time.thread_time() - start < target:
        for i in range(2000):
            x = (x * 31 + i) % 1_000_003
        if time.monotonic() - last_tick >= TICK_INTERVAL:
            tick()
            last_tick = time.monotonic()
    return time.thread_time() - start


def run_tool(tool: str, arguments: Mapping[str, int], *, tick: Callable[[], None],
             sleep: Callable[[float], None]) -> str:
    """Run one validated tool call; return the text of the MCP result."""
    parts = []
    if tool in ("cpu", "mixed"):
        used = burn_cpu(arguments["cpu_ms"], tick=tick)
        parts.append(f"burned {used * 1000:.0f} ms CPU")
    if tool in ("io", "mixed"):
        began = time.monotonic()
        sleep(arguments["io_ms"] / 1000.0)
        parts.append(f"waited {(time.monotonic() - began) * 1000:.0f} ms")
    if not parts:
        raise ValueError(f"unknown tool {tool!r}")
    return "; ".join(parts)
