"""The agent's fault file: how a harness makes a pod "slow" (a degraded node) without a
restart, the same way on every backend (local: the harness writes the file; cluster:
``kubectl exec`` writes it inside the container).

The file is JSON ``{"cpu_ms_extra": 100, "until": <unix seconds>}``: until then every task
burns that much more CPU. A missing, unreadable or expired file means no fault, so a
harness that dies mid-fault cannot leave an agent slowed for good.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable


class FaultFile:
    """Reads the fault file at most once per ``min_interval`` seconds (one stat per task)."""

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time,
                 min_interval: float = 0.5) -> None:
        self.path = path
        self.clock = clock
        self.min_interval = min_interval
        self._checked = float("-inf")
        self._mtime: float | None = None
        self._extra = 0
        self._until = 0.0

    def cpu_ms_extra(self) -> int:
        """Extra CPU milliseconds each task costs now (0: no fault)."""
        if not self.path:
            return 0
        now = self.clock()
        if now - self._checked >= self.min_interval:
            self._checked = now
            self._reload()
        return self._extra if now < self._until else 0

    def _reload(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            self._mtime, self._extra, self._until = None, 0, 0.0
            return
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            with open(self.path, encoding="utf-8") as fh:
                doc = json.load(fh)
            self._extra = max(0, int(doc.get("cpu_ms_extra", 0)))
            self._until = float(doc.get("until", 0.0))
        except (OSError, ValueError, TypeError, AttributeError):
            self._extra, self._until = 0, 0.0
