"""A batch the broker refuses mid-way: the API answers 503 with the ids it had queued, and
Locust, the ledger and the harness's accounting count exactly those, all real processes.

The queue is capped by a policy (max-length, overflow reject-publish), so the broker nacks
the first message past the cap and the API stops that batch there (services/api/app.py).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml

from scalelab.accounting import TaskLedger
from scalelab.procs.rabbitmq import GUEST, RabbitMQNode
from scalelab.scenario import load_scenario
from scalelab.waiting import wait_for
from tests.conftest import QueueNames, ServiceFactory, metric, queue_depth
from tests.load.locust_runs import run_to_end

pytestmark = pytest.mark.slow

CAP = 7       # messages the queue takes
BATCH = 5     # tasks per request: the second batch crosses the cap
TASKS = 10    # two batches


@pytest.mark.timeout(120)
def test_the_queued_part_of_a_refused_batch_is_published_and_accounted(
        tmp_path: Path, rabbitmq: RabbitMQNode, services: ServiceFactory,
        queue_names: QueueNames) -> None:
    amqp_url, queue = rabbitmq.amqp_url, queue_names.tasks
    policy = f"{rabbitmq.management_url}/api/policies/%2F/{quote(queue, safe='')}"
    resp = requests.put(policy, auth=GUEST, timeout=10, json={
        "pattern": f"^{queue}$", "apply-to": "queues", "priority": 10,
        "definition": {"max-length": CAP, "overflow": "reject-publish"}})
    assert resp.status_code in (201, 204), resp.text
    try:
        # /readyz declares the queue; the policy applies to it a moment later
        api = services.api(amqp_url=amqp_url, task_queue=queue, ready_path="/readyz")
        queue_info = f"{rabbitmq.management_url}/api/queues/%2F/{quote(queue, safe='')}"
        wait_for(lambda: requests.get(queue_info, auth=GUEST, timeout=5).json().get("policy"),
                 lambda name: name == queue, what=f"policy on queue {queue}",
                 expected=queue, timeout=30, interval=0.3)

        doc = {"name": "partial-batch", "description": "a batch crosses the queue's cap",
               "manifests": ["manifests/scaling/hpa-cpu.yaml"],
               "workload": {"batch_size": BATCH, "tools": {"io": {"io_ms": 5}}},
               "phases": [{"name": "burst", "duration": 3,
                           "load": {"tasks": TASKS, "rate": 10}}]}
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
        res = run_to_end(api_url=api.url, scenario=load_scenario(tmp_path / "s.yaml"),
                         out_dir=tmp_path / "locust")

        # the API queued CAP tasks and refused the rest with a partial 503
        assert res["requests"] == TASKS // BATCH and res["failures"] >= 1
        assert all("503" in f["error"] and "nack" in f["error"]
                   for f in res["failure_reasons"]), res["failure_reasons"]
        api_m = api.metrics()
        assert metric(api_m, "scalelab_api_tasks_published_total") == CAP
        assert metric(api_m, "scalelab_api_publish_failures_total",
                      reason="nack") == TASKS - CAP
        assert queue_depth(amqp_url, queue) == CAP
        # Locust counts every queued task as published (the partial batch's too)
        assert res["tasks_published"] == CAP and res["tasks_rejected"] == TASKS - CAP

        # the harness's accounting: agents process the queue, the ledger sees each id once
        ledger = TaskLedger(amqp_url=amqp_url, queue=queue_names.results).start()
        try:
            services.agent(amqp_url=amqp_url, task_queue=queue,
                           results_queue=queue_names.results)
            published = set(res["task_ids"])
            assert ledger.wait_processed(published, timeout=60) == set()
            summary = ledger.summary(published)
        finally:
            ledger.stop()
        assert summary["published"] == summary["processed"] == CAP
        assert summary["lost"] == summary["duplicated"] == 0
        assert ledger.processed_ids() == published, "nothing processed that Locust missed"
    finally:
        requests.delete(policy, auth=GUEST, timeout=10)
