"""Reading the base Deployment manifests (the same files the kind backend applies)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scalelab.backends.local.manifests import (
    BASE,
    load_deployment,
    pod_name,
    pod_template_hash,
)
from scalelab.errors import ConfigError


@pytest.mark.parametrize("file", sorted(p.name for p in BASE.glob("*.yaml")
                                        if p.name != "kustomization.yaml"))
def test_base_manifests_are_valid_kubernetes(file: str) -> None:
    for doc in yaml.safe_load_all((BASE / file).read_text()):
        kubernetes_validate.validate(doc, "1.29", strict=True)


def test_agent_spec_from_manifest() -> None:
    spec = load_deployment("agent")
    assert spec.replicas == 2
    assert spec.cpu_request_milli == 250
    assert spec.cpu_limit_milli == 1000
    assert spec.memory_request_bytes == 128 * 2**20
    assert spec.termination_grace_period == 30
    # ready = consuming the task queue (defect 10: /healthz answers 200 whenever it serves)
    assert spec.readiness is not None and spec.readiness.path == "/readyz"
    assert spec.readiness.port == 9100            # the named port resolved
    assert spec.liveness is not None and spec.liveness.path == "/healthz"
    assert spec.scrape_port == 9100
    assert spec.image == "scalelab/agent:dev"
    names = [e["name"] for e in spec.env]
    for var in ("AMQP_URL", "TASK_QUEUE", "PREFETCH", "METRICS_PORT", "RESULTS_QUEUE",
                "POD_NAME", "RABBITMQ_MGMT_URL"):
        assert var in names


def test_resolve_env_downward_api_and_overrides() -> None:
    spec = load_deployment("agent")
    env = spec.resolve_env(pod="agent-abc-xyz12",
                           overrides={"AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F"})
    assert env["POD_NAME"] == "agent-abc-xyz12"
    assert env["AMQP_URL"] == "amqp://guest:guest@127.0.0.1:1/%2F"
    assert env["TASK_QUEUE"] == "agent-tasks"


def test_api_spec() -> None:
    spec = load_deployment("api")
    assert spec.replicas == 1
    assert spec.readiness is not None and spec.readiness.path == "/readyz"


def test_pod_names_look_like_kubernetes() -> None:
    spec = load_deployment("agent")
    name = pod_name("agent", spec.template_hash, rng=random.Random(1))
    chars = "[bcdfghjklmnpqrstvwxz2456789]"
    assert re.fullmatch(rf"agent-{chars}{{6,10}}-{chars}{{5}}", name)
    assert pod_template_hash({"a": 1}) != pod_template_hash({"a": 2})


def test_bad_quantity_names_file_and_field(tmp_path: Path) -> None:
    text = (BASE / "agent.yaml").read_text().replace("cpu: 250m", "cpu: lots", 1)
    bad = tmp_path / "agent.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_deployment("agent", path=bad)
    assert err.value.file == str(bad)
    assert err.value.field == "spec.template.spec.containers[0].resources.requests.cpu"
    assert "250m" in str(err.value)


def test_missing_deployment_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_deployment("agent", path=BASE / "api.yaml")
    assert err.value.field == "metadata.name"
    with pytest.raises(ConfigError):
        load_deployment("agent", path=tmp_path / "missing.yaml")
