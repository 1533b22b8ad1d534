"""A stack left up (``scalelab up``) drains its results queue and keeps only totals: the
broker does not pile up completion records and the harness holds no entry per task."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pika
import requests

from scalelab.accounting import TaskLedger
from scalelab.paths import ROOT
from scalelab.procs.rabbitmq import RabbitMQNode
from scalelab.settings import RESULTS_QUEUE, TASK_QUEUE
from scalelab.waiting import wait_for
from tests.conftest import QueueNames, queue_depth


def test_a_totals_only_ledger_counts_every_record_and_holds_no_ids(
        rabbitmq: RabbitMQNode, queue_names: QueueNames) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.amqp_url))
    channel = connection.channel()
    channel.queue_declare(queue=queue_names.results, durable=True)
    n = 3000
    for i in range(n):
        doc = {"id": f"t{i % 2900}", "outcome": "ok" if i % 100 else "error",
               "redelivered": i % 500 == 0}
        channel.basic_publish(exchange="", routing_key=queue_names.results,
                              body=json.dumps(doc))
    channel.basic_publish(exchange="", routing_key=queue_names.results,
                          body=json.dumps({"id": "bad", "outcome": "rejected"}))
    connection.close()
    ledger = TaskLedger(amqp_url=rabbitmq.amqp_url, queue=queue_names.results,
                        keep_ids=False).start()
    try:
        wait_for(lambda: ledger.totals()["processed"], lambda x: x >= n,
                 what="every completion record counted", expected=n, timeout=60,
                 interval=0.1)
    finally:
        ledger.stop()
    totals = ledger.totals()
    assert totals == {"processed": n, "redelivered": 6, "dead_lettered": 1,
                      "outcomes": {"ok": 2970, "error": 30, "rejected": 1}, "ids_held": 0}
    assert queue_depth(rabbitmq.amqp_url, queue_names.results) == 0


def test_scalelab_up_drains_the_results_queue(tmp_path: Path) -> None:
    """A real ``scalelab up`` (local backend): tasks posted to its API are processed and
    their completion records do not stay on the results queue."""
    proc = subprocess.Popen([sys.executable, "-m", "scalelab.cli", "up", "--json"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        urls = json.loads(line)
        for _ in range(4):
            resp = requests.post(f"{urls['api']}/tasks/batch", timeout=10, json={
                "tasks": [{"tool": "io", "arguments": {"io_ms": 10}}] * 50})
            assert resp.status_code == 202, resp.text
        wait_for(lambda: (queue_depth(urls["amqp"], TASK_QUEUE),
                          queue_depth(urls["amqp"], RESULTS_QUEUE)),
                 lambda depths: depths == (0, 0),
                 what="the tasks processed and their results drained",
                 expected="(0 tasks, 0 results) queued", timeout=60, interval=0.5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        last = json.loads(proc.stdout.readline())
        assert last["results_drained"]["processed"] == 200, last
        assert last["results_drained"]["ids_held"] == 0, last
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
