"""TaskLedger against a real broker: lost and duplicated tasks are named, not guessed."""

from __future__ import annotations

import json
import uuid

import pika
import pytest

from scalelab.accounting import TaskLedger
from scalelab.waiting import wait_for

pytestmark = pytest.mark.slow


def _publish(amqp_url: str, queue: str, ids: list[str]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()  # on the queue when _publish returns
        ch.queue_declare(queue=queue, durable=True)
        for task_id in ids:
            ch.basic_publish("", queue, json.dumps({"id": task_id, "outcome": "ok"}))
        ch.basic_publish("", queue, b"not json")  # ignored, never crashes the ledger
    finally:
        conn.close()


def test_ledger_counts_processed_lost_and_duplicated(rabbitmq) -> None:  # type: ignore[no-untyped-def]
    queue = f"results-{uuid.uuid4().hex[:8]}"
    published = [f"t{i}" for i in range(50)]
    processed = published[:45] + ["t0", "t1"]  # 5 lost, 2 processed twice
    ledger = TaskLedger(amqp_url=rabbitmq.amqp_url, queue=queue).start()
    try:
        _publish(rabbitmq.amqp_url, queue, processed)
        # everything that was processed arrives (the duplicates were published last) ...
        assert ledger.wait_processed(set(published[:45]), timeout=30) == set()
        wait_for(lambda: ledger.summary(published)["duplicated"], lambda n: n == 2,
                 what="the two duplicate completions", expected=2, timeout=30, interval=0.2)
        # ... and the rest is named lost once the wait runs out
        missing = ledger.wait_processed(set(published), timeout=1)
        assert missing == {f"t{i}" for i in range(45, 50)}
        summary = ledger.summary(published)
    finally:
        ledger.stop()
    assert summary["published"] == 50
    assert summary["processed"] == 45
    assert summary["lost"] == 5 and summary["lost_ids"] == sorted(missing)
    assert summary["duplicated"] == 2 and summary["duplicate_ids"] == ["t0", "t1"]
