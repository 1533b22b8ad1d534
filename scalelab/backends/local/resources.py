"""Per-pod CPU and memory accounting, computed the way metrics-server reports it.

metrics-server scrapes each kubelet's cumulative container CPU counter every
``--metric-resolution`` and publishes the rate between two consecutive scrapes as the
pod's CPU (kubernetes-sigs/metrics-server pkg/storage/pod.go: ``usage = (last - prev) /
(last.ts - prev.ts)``); a pod appears only after its second scrape. This module does the
same over psutil readings: a pod's "container" is its process and every descendant
(``user + system`` time, plus the time of children already reaped), and the memory
working set is approximated by the tree's resident set size (RSS; cAdvisor subtracts
inactive file pages, which a process tree cannot tell us).

The counter (``cpu_seconds``) also feeds the exporter's ``container_cpu_usage_seconds_total``.
Readings and the clock are injected so unit tests control both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psutil

from scalelab.control.view import PodMetric


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One reading of a pod: cumulative CPU seconds and working set at time ``t``."""

    t: float
    cpu_seconds: float
    memory_bytes: int


Reader = Callable[[int], tuple[float, int] | None]


def process_tree_usage(pid: int) -> tuple[float, int] | None:
    """Cumulative CPU seconds and RSS bytes of ``pid`` and its descendants; None if gone."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    cpu = 0.0
    rss = 0
    for proc in tree:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                mem = proc.memory_info()
        except psutil.Error:
            continue  # exited between listing and reading: its time moves to its parent
        cpu += times.user + times.system + times.children_user + times.children_system
        rss += mem.rss
    return cpu, rss


class ResourceAccounting:
    """Collect samples for the running pods; answer metrics-server-like PodMetrics."""

    def __init__(
        self,
        *,
        window: float,
        read: Reader = process_tree_usage,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self._read = read
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: dict[str, Sample] = {}
        self._scraped: dict[str, Sample] = {}     # last "metrics-server scrape" per pod
        self._published: dict[str, PodMetric] = {}

    def sample(self, pods: Mapping[str, int]) -> None:
        """Read every pod (name -> pid); forget pods no longer listed.

        A pod's metric is republished once ``window`` has passed since its last scrape,
        as metrics-server does at each ``--metric-resolution`` tick.
        """
        readings = {}
        for name, pid in pods.items():
            value = self._read(pid)
            if value is not None:
                readings[name] = value
        now = self._clock()
        with self._lock:
            for name in list(self._latest):
                if name not in pods:
                    self._latest.pop(name, None)
                    self._scraped.pop(name, None)
                    self._published.pop(name, None)
            for name, (cpu, rss) in readings.items():
                previous = self._latest.get(name)
                # the tree's sum can dip when a child exits before its parent reaps it
                cpu = max(cpu, previous.cpu_seconds) if previous else cpu
                current = Sample(t=now, cpu_seconds=cpu, memory_bytes=rss)
                self._latest[name] = current
                scraped = self._scraped.get(name)
                if scraped is None:
                    self._scraped[name] = current
                elif current.t - scraped.t >= self.window:
                    elapsed = current.t - scraped.t
                    self._published[name] = PodMetric(
                        pod=name,
                        cpu_milli=round(1000 * (current.cpu_seconds - scraped.cpu_seconds)
                                        / elapsed),
                        memory_bytes=rss,
                        timestamp=current.t,
                        window=elapsed,
                    )
                    self._scraped[name] = current

    def latest(self, pod: str) -> Sample | None:
        """The newest reading (for the exporter's counters)."""
        with self._lock:
            return self._latest.get(pod)

    def metric(self, pod: str) -> PodMetric | None:
        """The published PodMetric, or None before the pod's second scrape."""
        with self._lock:
            return self._published.get(pod)

    def metrics(self, pods: list[str]) -> dict[str, PodMetric]:
        with self._lock:
            return {p: self._published[p] for p in pods if p in self._published}
