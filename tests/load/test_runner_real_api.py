"""Locust (real process) against the real API and a real RabbitMQ: ids recorded = ids queued."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scalelab.procs.rabbitmq import RabbitMQNode
from scalelab.scenario import load_scenario
from tests.conftest import QueueNames, ServiceFactory, drain_json
from tests.load.locust_runs import run_to_end


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_locust_against_real_api(tmp_path: Path, rabbitmq: RabbitMQNode, services: ServiceFactory,
                                 queue_names: QueueNames) -> None:
    amqp_url = rabbitmq.amqp_url
    api = services.api(amqp_url=amqp_url, task_queue=queue_names.tasks)
    doc = {
        "name": "real-api", "description": "runner against the real API",
        "manifests": ["manifests/scaling/hpa-cpu.yaml"],
        "workload": {"batch_size": 3, "tools": {"io": {"io_ms": 10}, "cpu": {"cpu_ms": 5}}},
        "phases": [{"name": "steady", "duration": 4, "load": {"rate": 9}},
                   {"name": "burst", "duration": 2, "load": {"tasks": 5, "rate": 10}}],
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    res = run_to_end(api_url=api.url, scenario=load_scenario(tmp_path / "s.yaml"),
                     out_dir=tmp_path / "locust")
    assert res["failures"] == 0, res["failure_reasons"]
    assert 25 <= res["tasks_published"] <= 45   # ~36 + 5 at the planned rates
    messages = drain_json(amqp_url, queue_names.tasks, expected=res["tasks_published"],
                          timeout=20)
    assert sorted(m["id"] for m in messages) == res["task_ids"]
    assert {m["params"]["name"] for m in messages} == {"io", "cpu"}
