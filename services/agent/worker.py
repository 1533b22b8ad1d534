"""The consume loop: one task at a time (PREFETCH), manual ack after the result is out.

Ordering per task: run tool -> publish completion record to the results queue (confirmed)
-> ack. A crash between the record and the ack gives a duplicate the harness counts,
never a loss. Invalid messages are rejected without requeue (dead-lettered), with a
record too, so nothing disappears unseen.

Threading: pika's BlockingConnection lives in this (main) thread only. Tools run here
and service the connection between CPU slices (``process_data_events(0)``) or sleep via
``connection.sleep`` so heartbeats keep flowing during long tasks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from services.agent.faults import FaultFile
from services.agent.metrics import AgentMetrics
from services.agent.tools import burn_cpu, run_tool
from services.common.amqp import declare_results_queue, declare_task_queue
from services.common.config import AgentConfig
from services.common.tasks import TaskError, make_result, parse_request

LOG = logging.getLogger(__name__)


class Worker:
    """Consume tasks until ``request_stop()``; reconnect with backoff if the broker goes."""

    def __init__(self, *, config: AgentConfig, metrics: AgentMetrics,
                 clock: Callable[[], float] = time.time,
                 backoff_initial: float = 0.2, backoff_max: float = 5.0) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.faults = FaultFile(config.fault_file, clock=clock)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._stop = threading.Event()
        self.connected = False
        #: A basic.consume of the task queue is registered (the broker delivers to us);
        #: ``/readyz`` needs it as well as ``connected``.
        self.consuming = False
        self.current_task: str | None = None
        self.reconnects = 0

    def request_stop(self) -> None:
        """Finish the task in hand, ack it, then leave (SIGTERM)."""
        self._stop.set()

    def health(self) -> dict[str, Any]:
        return {"status": "alive", "connected": self.connected, "consuming": self.consuming,
                "pod": self.config.pod_name, "current_task": self.current_task,
                "stopping": self._stop.is_set()}

    def run(self) -> int:
        delay = self.backoff_initial
        while not self._stop.is_set():
            try:
                self._consume()
            except (pika.exceptions.AMQPError, OSError) as err:
                self.connected = False
                self.reconnects += 1
                LOG.warning("broker connection lost or refused (%s: %s); retrying in %.1fs",
                            type(err).__name__, err, delay)
                self._stop.wait(delay)
                delay = min(self.backoff_max, delay * 2)
                continue
            delay = self.backoff_initial
        LOG.info("stopped")
        return 0

    def _consume(self) -> None:
        params = pika.URLParameters(self.config.amqp_url)
        params.connection_attempts = 1
        params.socket_timeout = 5.0
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            declare_task_queue(channel, self.config.task_queue)
            declare_results_queue(channel, self.config.results_queue)
            channel.basic_qos(prefetch_count=self.config.prefetch)
            self.connected = True
            LOG.info("consuming %s as %s", self.config.task_queue, self.config.pod_name)
            # The generator sends basic.consume and waits for consume-ok on its first
            # next(); from its first yield on (a delivery, or None after 0.5 s idle) the
            # consumer is registered. A consumer the broker cancels (queue deleted) ends
            # the generator: we reconnect and consume again.
            for method, props, body in channel.consume(self.config.task_queue,
                                                       inactivity_timeout=0.5):
                self.consuming = True
                if method is not None:
                    assert props is not None and body is not None
                    self._handle(connection, channel, method, props, body)
                if self._stop.is_set():
                    break
            # requeue anything prefetched but not started, then leave cleanly
            self.consuming = False
            channel.cancel()
        finally:
            self.consuming = False
            self.connected = False
            with contextlib.suppress(Exception):
                connection.close()

    def _record(self, channel: BlockingChannel, record: dict[str, Any]) -> None:
        channel.basic_publish(
            exchange="", routing_key=self.config.results_queue,
            body=json.dumps(record, separators=(",", ":")).encode(),
            properties=pika.BasicProperties(content_type="application/json",
                                            delivery_mode=pika.DeliveryMode.Persistent,
                                            message_id=str(record.get("id"))),
            mandatory=True)

    def _handle(self, connection: pika.BlockingConnection, channel: BlockingChannel,
                method: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        started = self.clock()
        redelivered = bool(method.redelivered)
        try:
            task_id, tool, arguments, enqueued_at = parse_request(body)
        except Exception as exc:  # noqa: BLE001 - a message that kills the parser must
            # not kill the agent: it would be redelivered to the next one, forever.
            err = exc if isinstance(exc, TaskError) else TaskError(
                f"unparseable message: {type(exc).__name__}: {exc}", field="body",
                reason="unparseable")
            LOG.warning("rejecting invalid message %s to the dead-letter queue: %s (%s)",
                        props.message_id, err, err.field)
            self.metrics.dead_lettered.labels(reason=err.reason).inc()
            self._record(channel, {
                "id": props.message_id, "outcome": "rejected", "reason": err.reason,
                "error": str(err), "redelivered": redelivered, "pod": self.config.pod_name,
                "started_at": started, "finished_at": self.clock()})
            channel.basic_reject(delivery_tag=method.delivery_tag, requeue=False)
            return
        if redelivered:
            self.metrics.redeliveries.inc()
        if enqueued_at is None and props.timestamp:
            enqueued_at = float(props.timestamp)
        if enqueued_at is not None:
            self.metrics.queue_wait.observe(max(0.0, started - enqueued_at))
        self.current_task = task_id
        self.metrics.in_progress.inc()
        began = time.monotonic()
        try:
            tick = lambda: connection.process_data_events(0)  # noqa: E731
            extra = self.faults.cpu_ms_extra()
            if extra:  # a "slow" fault: this pod burns more CPU per task (faults.py)
                burn_cpu(extra, tick=tick)
            text = run_tool(tool, arguments, tick=tick, sleep=connection.sleep)
            outcome, response = "ok", make_result(task_id, text)
        except (pika.exceptions.AMQPError, OSError):
            raise  # the connection died mid-task: the broker will redeliver it
        except Exception as err:  # a tool bug: report it, do not requeue forever
            LOG.exception("task %s failed", task_id)
            outcome, response = "error", make_result(task_id, f"{type(err).__name__}: {err}",
                                                     is_error=True)
        finally:
            self.metrics.in_progress.dec()
            self.current_task = None
        self.metrics.duration.labels(tool=tool).observe(time.monotonic() - began)
        self.metrics.processed.labels(tool=tool, outcome=outcome).inc()
        self._record(channel, {
            "id": task_id, "outcome": outcome, "tool": tool, "redelivered": redelivered,
            "pod": self.config.pod_name, "started_at": started, "finished_at": self.clock(),
            # the wait in the queue (publish to start), for the record's exact quantiles
            "queue_wait_s": None if enqueued_at is None else max(0.0, started - enqueued_at),
            "response": response})
        channel.basic_ack(delivery_tag=method.delivery_tag)
