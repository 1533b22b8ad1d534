"""Broker operations every backend shares (over AMQP, so a port-forward works as well)."""

from __future__ import annotations

import contextlib

import pika
import pika.exceptions

from scalelab.errors import BackendError


def purge_queue(amqp_url: str, queue: str) -> int:
    """Drop every ready message of ``queue``; return how many. A missing queue holds none."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        try:
            frame = channel.queue_purge(queue)
        except pika.exceptions.ChannelClosedByBroker as err:
            if err.reply_code == 404:   # never declared: nothing to drop
                return 0
            raise BackendError(f"purging {queue} failed: {err}") from err
        return int(frame.method.message_count)
    finally:
        with contextlib.suppress(Exception):
            connection.close()
