"""Confirmed publishing from many request threads.

pika's BlockingConnection is not thread-safe, so each worker thread owns one connection
and one confirm-mode channel (thread-local). After a failure the thread forgets its
connection and waits out an exponential backoff before connecting again, answering
"unavailable" meanwhile: a dead broker costs a request microseconds, not a connect timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from services.common.amqp import declare_task_queue

LOG = logging.getLogger(__name__)


class PublishError(Exception):
    """The broker did not take the message; ``reason`` is a metric label."""

    def __init__(self, reason: str, message: str, *, retry_after: float) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(message)


@dataclass(kw_only=True)
class _ThreadState:
    connection: pika.BlockingConnection | None = None
    channel: BlockingChannel | None = None
    failures: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Publisher:
    """Publish persistent, mandatory, confirmed messages to one durable queue."""

    def __init__(self, *, amqp_url: str, queue: str, backoff_initial: float = 0.1,
                 backoff_max: float = 5.0, connect_timeout: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.amqp_url = amqp_url
        self.queue = queue
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self._clock = clock
        self._local = threading.local()

    def _state(self) -> _ThreadState:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _ThreadState()
        return state

    def _channel(self) -> BlockingChannel:
        state = self._state()
        if state.channel is not None and state.channel.is_open:
            return state.channel
        self._drop(state)
        now = self._clock()
        if now < state.next_attempt:
            raise PublishError("connect", f"broker unavailable ({state.last_error}); "
                               "backing off", retry_after=max(1.0, state.next_attempt - now))
        params = pika.URLParameters(self.amqp_url)
        params.connection_attempts = 1
        params.socket_timeout = self.connect_timeout
        params.blocked_connection_timeout = 10.0
        connection: pika.BlockingConnection | None = None
        try:
            connection = pika.BlockingConnection(params)
            channel = connection.channel()
            channel.confirm_delivery()
            declare_task_queue(channel, self.queue)
        except Exception as err:  # any failure to set up means "broker unavailable"
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()
            delay = min(self.backoff_max, self.backoff_initial * 2 ** state.failures)
            state.failures += 1
            state.next_attempt = now + delay
            state.last_error = f"{type(err).__name__}: {err}"
            LOG.warning("cannot connect to the broker: %s (next try in %.1fs)",
                        state.last_error, delay)
            raise PublishError("connect", f"broker unavailable ({state.last_error})",
                               retry_after=max(1.0, delay)) from err
        state.connection, state.channel = connection, channel
        state.failures = 0
        return channel

    def _drop(self, state: _ThreadState) -> None:
        with contextlib.suppress(Exception):
            if state.connection is not None and state.connection.is_open:
                state.connection.close()
        state.connection = state.channel = None

    def ready(self) -> str | None:
        """None if this thread can publish now, else why not (for /readyz)."""
        try:
            channel = self._channel()
            assert self._state().connection is not None
            self._state().connection.process_data_events(0)  # type: ignore[union-attr]
            channel.queue_declare(queue=self.queue, passive=True)
        except PublishError as err:
            return str(err)
        except Exception as err:
            self._drop(self._state())
            return f"{type(err).__name__}: {err}"
        return None

    def publish(self, message: dict[str, Any], *, message_id: str, timestamp: float) -> None:
        """Publish one message and wait for its confirm; raise PublishError otherwise.

        A connection found dead is replaced once within the call (a broker restart, an
        idle connection dropped by heartbeat): at-least-once, a retried publish may
        duplicate a message the broker had taken, never lose one.
        """
        body = json.dumps(message, separators=(",", ":")).encode()
        props = pika.BasicProperties(
            content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id, timestamp=int(timestamp), type="tools/call",
        )
        for attempt in (1, 2):
            channel = self._channel()
            try:
                channel.basic_publish(exchange="", routing_key=self.queue, body=body,
                                      properties=props, mandatory=True)
                return
            except pika.exceptions.UnroutableError as err:
                self._drop(self._state())  # the queue is gone: redeclare on next connect
                raise PublishError("unroutable", f"queue {self.queue!r} does not exist",
                                   retry_after=1.0) from err
            except pika.exceptions.NackError as err:
                raise PublishError("nack", "the broker refused the message (nack)",
                                   retry_after=1.0) from err
            except (pika.exceptions.AMQPError, OSError) as err:
                self._drop(self._state())
                if attempt == 2:
                    raise PublishError("connection_lost", f"{type(err).__name__}: {err}",
                                       retry_after=1.0) from err
                LOG.info("publish failed (%s), reconnecting once", type(err).__name__)
        raise AssertionError("unreachable")
