"""Reading the base Deployment manifests (the same files the kind backend applies)."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from scalelab.backends.local.deployments import (
    BASE,
    check_broker_env,
    load_deployment,
    pod_name,
    pod_template_hash,
)
from scalelab.credentials import AMQP_URL_KEY, SECRET_NAME
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
                "POD_NAME"):
        assert var in names
    # KEDA reads the management URL through a TriggerAuthentication, not the agent's env
    assert "RABBITMQ_MGMT_URL" not in names


SECRETS = {SECRET_NAME: {AMQP_URL_KEY: "amqp://guest:guest@127.0.0.1:1/%2F"}}


def test_resolve_env_downward_api_secret_and_overrides() -> None:
    spec = load_deployment("agent")
    env = spec.resolve_env(pod="agent-abc-xyz12", secrets=SECRETS,
                           overrides={"METRICS_PORT": "1234"})
    assert env["POD_NAME"] == "agent-abc-xyz12"
    assert env["AMQP_URL"] == "amqp://guest:guest@127.0.0.1:1/%2F"   # from the Secret
    assert env["TASK_QUEUE"] == "agent-tasks" and env["METRICS_PORT"] == "1234"
    check_broker_env(spec)
    check_broker_env(load_deployment("api"))


def test_a_missing_secret_or_key_stops_the_pod_before_it_starts() -> None:
    """kubelet makeEnvironmentVariables: CreateContainerConfigError, unless optional."""
    spec = load_deployment("agent")
    with pytest.raises(ConfigError) as err:
        spec.resolve_env(pod="p", secrets={})
    assert f"Secret {SECRET_NAME!r} does not exist" in str(err.value)
    assert err.value.field == "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef"
    with pytest.raises(ConfigError, match=f"has no key {AMQP_URL_KEY!r}") as err:
        spec.resolve_env(pod="p", secrets={SECRET_NAME: {"password": "x"}})
    assert SECRET_NAME in (err.value.fix or "")
    optional = dataclasses.replace(spec, env=tuple(
        {**e, "valueFrom": {"secretKeyRef": {**e["valueFrom"]["secretKeyRef"],
                                             "optional": True}}}
        if e["name"] == "AMQP_URL" else e for e in spec.env))
    assert "AMQP_URL" not in optional.resolve_env(pod="p", secrets={})


def test_a_literal_amqp_url_is_refused_by_the_local_backend(tmp_path: Path) -> None:
    """A literal in-cluster URL would leave the local pods retrying forever: refused."""
    text = (BASE / "api.yaml").read_text()
    doc = next(d for d in yaml.safe_load_all(text) if d["kind"] == "Deployment")
    env = doc["spec"]["template"]["spec"]["containers"][0]["env"]
    index = next(i for i, e in enumerate(env) if e["name"] == "AMQP_URL")
    env[index] = {"name": "AMQP_URL", "value": "amqp://u:p@rabbitmq.scalelab.svc:5672/%2F"}
    bad = tmp_path / "api.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        check_broker_env(load_deployment("api", path=bad))
    assert err.value.file == str(bad)
    assert err.value.field == f"spec.template.spec.containers[0].env[{index}]"
    assert SECRET_NAME in (err.value.fix or "")


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
