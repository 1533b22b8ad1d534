"""TaskLedger against a real broker: lost and duplicated tasks are named, not guessed."""

from __future__ import annotations

import json
import uuid

import pika
import pytest

from scalelab.accounting import TaskLedger, wait_quantiles
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


def test_wait_quantiles_are_nearest_rank_waits_some_task_had() -> None:
    waits = [i / 100 for i in range(100)]  # 0.00 .. 0.99
    assert wait_quantiles(waits) == {"p50": 0.49, "p95": 0.94, "max": 0.99, "tasks": 100}
    assert wait_quantiles([3.0]) == {"p50": 3.0, "p95": 3.0, "max": 3.0, "tasks": 1}
    with pytest.raises(ValueError):
        wait_quantiles([])


def test_ledger_reports_the_published_tasks_queue_waits(rabbitmq) -> None:  # type: ignore[no-untyped-def]
    """Each task's wait from its first completion record; tasks the API did not accept and
    records without a wait (older agents) are left out."""
    queue = f"results-{uuid.uuid4().hex[:8]}"
    ledger = TaskLedger(amqp_url=rabbitmq.amqp_url, queue=queue).start()
    records = [{"id": f"t{i}", "outcome": "ok", "queue_wait_s": i / 10} for i in range(20)]
    records += [{"id": "t0", "outcome": "ok", "queue_wait_s": 99.0},   # redelivered later
                {"id": "stray", "outcome": "ok", "queue_wait_s": 50.0},
                {"id": "t20", "outcome": "ok"}]
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.amqp_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue=queue, durable=True)
        for rec in records:
            ch.basic_publish("", queue, json.dumps(rec))
    finally:
        conn.close()
    published = {f"t{i}" for i in range(21)}
    try:
        assert ledger.wait_processed(published, timeout=30) == set()
        wait_for(lambda: ledger.totals()["processed"], lambda n: n == len(records),
                 what="every completion record", expected=len(records), timeout=30,
                 interval=0.2)
        summary = ledger.summary(published)
    finally:
        ledger.stop()
    assert summary["queue_wait_s"] == {"p50": 0.9, "p95": 1.8, "max": 1.9, "tasks": 20}
