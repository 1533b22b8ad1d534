"""Exact task accounting: every published task is processed, or the run says which were not.

Agents publish a completion record per task to the durable results queue *before* they ack
the task (at-least-once). The ledger consumes that queue for the whole scenario, so the
harness knows every processed id and how often it was processed; Locust records every id the
API accepted. Lost = accepted − processed; duplicated = processed more than once.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import pika
import pika.exceptions

from scalelab.errors import WaitTimeout
from scalelab.settings import RESULTS_QUEUE
from scalelab.waiting import wait_for

#: How many ids a record lists at most (the counts are always exact).
MAX_LISTED_IDS = 100


def wait_quantiles(waits: Iterable[float]) -> dict[str, float | int]:
    """p50, p95 and max of the tasks' queue waits (nearest rank: a wait some task had, as
    the twin's quantile over its completions), with how many tasks reported one."""
    ordered = sorted(waits)
    if not ordered:
        raise ValueError("no waits")

    def rank(q: float) -> float:
        return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]
    return {"p50": round(rank(0.5), 3), "p95": round(rank(0.95), 3),
            "max": round(ordered[-1], 3), "tasks": len(ordered)}


class TaskLedger:
    """Consumes the results queue in a background thread and counts completions per task id."""

    def __init__(self, *, amqp_url: str, queue: str = RESULTS_QUEUE,
                 keep_ids: bool = True) -> None:
        """``keep_ids=False`` keeps only totals (``totals()``): a stack left running for hours
        (``scalelab up``) drains its results queue without holding one entry per task."""
        self._amqp_url = amqp_url
        self._queue = queue
        self._keep_ids = keep_ids
        self._processed_total = 0
        self._redelivered_total = 0
        self._counts: Counter[str] = Counter()
        self._outcomes: Counter[str] = Counter()
        self._rejected = 0
        #: ids processed from a redelivery (an agent died, was cut off or the broker restarted)
        self._redelivered: set[str] = set()
        #: each id's wait in the queue (publish to the start of its first processing)
        self._waits: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The last error consuming the results queue: reported with the summary so that
        #: tasks counted lost because the ledger could not read are not a mystery.
        self._error: str | None = None

    def start(self) -> TaskLedger:
        self._thread = threading.Thread(target=self._run, name="task-ledger", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except (pika.exceptions.AMQPError, OSError) as err:
                # Broker restart or connection loss: reconnect; acks not sent are redelivered.
                self._error = f"{type(err).__name__}: {err}"
                self._stop.wait(1.0)

    def _consume(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self._amqp_url))
        try:
            channel = conn.channel()
            channel.queue_declare(queue=self._queue, durable=True)
            channel.basic_qos(prefetch_count=500)
            while not self._stop.is_set():
                for method, _props, body in channel.consume(
                    self._queue, inactivity_timeout=0.5
                ):
                    if method is None:
                        break
                    self._record(body)
                    channel.basic_ack(method.delivery_tag)
                    if self._stop.is_set():
                        break
            channel.cancel()
        finally:
            if conn.is_open:
                conn.close()

    def _record(self, body: bytes) -> None:
        try:
            doc = json.loads(body)
            task_id = str(doc["id"])
        except (ValueError, KeyError, TypeError):
            return
        outcome = str(doc.get("outcome", "unknown"))
        with self._lock:
            self._outcomes[outcome] += 1
            # "rejected" records are invalid messages sent to the dead-letter queue: they
            # were never accepted tasks, so they do not count as processed.
            if outcome == "rejected":
                self._rejected += 1
                return
            self._processed_total += 1
            self._redelivered_total += 1 if doc.get("redelivered") else 0
            if self._keep_ids:
                self._counts[task_id] += 1
                if doc.get("redelivered"):
                    self._redelivered.add(task_id)
                wait = doc.get("queue_wait_s")
                if isinstance(wait, int | float) and task_id not in self._waits:
                    self._waits[task_id] = float(wait)

    def totals(self) -> dict[str, Any]:
        """Completion records consumed so far (a task processed twice counts twice)."""
        with self._lock:
            return {"processed": self._processed_total, "redelivered": self._redelivered_total,
                    "dead_lettered": self._rejected, "outcomes": dict(self._outcomes),
                    "ids_held": len(self._counts)}

    def processed_ids(self) -> set[str]:
        with self._lock:
            return set(self._counts)

    def missing(self, published: Iterable[str]) -> set[str]:
        """Ids of ``published`` tasks not processed yet."""
        with self._lock:
            return {i for i in published if i not in self._counts}

    def summary(self, published: Iterable[str]) -> dict[str, Any]:
        """The run record's ``tasks`` section for the ids the API accepted."""
        published_ids = set(published)
        with self._lock:
            counts = {i: self._counts[i] for i in published_ids if i in self._counts}
            outcomes = dict(self._outcomes)
            dead_lettered = self._rejected
            redelivered = len(self._redelivered & published_ids)
            waits = [w for i, w in self._waits.items() if i in published_ids]
        lost = sorted(published_ids - counts.keys())
        dups = sorted(i for i, n in counts.items() if n > 1)
        summary: dict[str, Any] = {
            "published": len(published_ids),
            "processed": len(counts),
            "lost": len(lost),
            "duplicated": len(dups),
            "dead_lettered": dead_lettered,
            "redelivered": redelivered,
            "outcomes": outcomes,
            "lost_ids": lost[:MAX_LISTED_IDS],
            "duplicate_ids": dups[:MAX_LISTED_IDS],
        }
        if waits:
            summary["queue_wait_s"] = wait_quantiles(waits)
        if self._error is not None:
            summary["ledger_error"] = self._error
        return summary

    def wait_processed(self, published: set[str], *, timeout: float,
                       clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> set[str]:
        """Wait until every published id is processed or ``timeout``; return those still missing.

        Running out is not an error here: the record reports the missing ids as lost.
        ``clock`` is monotonic (the wait's deadline).
        """
        missing = self.missing(published)

        def count() -> int:
            nonlocal missing
            missing = self.missing(published)
            return len(missing)

        with contextlib.suppress(WaitTimeout):
            wait_for(count, lambda n: n == 0, what="every published task to be processed",
                     expected="0 tasks missing", timeout=timeout, interval=0.5, clock=clock,
                     sleep=sleep)
        return missing
