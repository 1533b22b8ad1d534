"""The cluster fault injector's calls to the Kubernetes API.

Contract tests, not a cluster: a recording stand-in replaces ``KubeApi`` (no cluster can run
here). The NetworkPolicy is validated against the Kubernetes OpenAPI schema, and the broker
listing is parsed from real ``rabbitmqctl`` 3.10.8 output.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from scalelab.backends.cluster.faults import (
    ClusterFaults,
    broker_connections,
    partition_policy,
    running_pods,
)
from scalelab.faults import Kill, Partition, Restart, Slow
from scalelab.procs.rabbitmq import RabbitMQNode, find_server_script

#: ``rabbitmqctl list_connections name peer_host --formatter json --quiet`` as RabbitMQ
#: 3.10.8 (Debian 12's, and the manifests' image) prints it for one client.
LISTING_3_10 = ('[\n{"name":"10.244.0.7:56522 -> 10.244.0.3:5672","peer_host":[10,244,0,7]}'
                ',\n{"name":"10.244.0.9:40000 -> 10.244.0.3:5672","peer_host":[10,244,0,9]}\n]\n')


def _pod(name: str, *, ip: str, created: str, ready: bool = True, phase: str = "Running",
         deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T10:00:00Z"
    return {"metadata": meta, "status": {
        "phase": phase, "podIP": ip,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class RecordingApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pods = {
            "app.kubernetes.io/name=agent": [
                _pod("agent-b", ip="10.244.0.9", created="2026-11-30T09:02:00Z"),
                _pod("agent-a", ip="10.244.0.7", created="2026-11-30T09:01:00Z"),
                _pod("agent-c", ip="10.244.0.8", created="2026-11-30T09:00:00Z", ready=False),
                _pod("agent-d", ip="10.244.0.6", created="2026-11-30T08:00:00Z",
                     deleting=True)],
            "app.kubernetes.io/name=rabbitmq": [
                _pod("rabbitmq-0", ip="10.244.0.3", created="2026-11-30T08:00:00Z")],
        }

    def list_pods(self, *, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        return self.pods.get(label_selector, [])

    def delete_pod(self, **kw: Any) -> bool:
        self.calls.append(("delete_pod", kw))
        return True

    def exec_in_pod(self, **kw: Any) -> str:
        self.calls.append(("exec", kw))
        return LISTING_3_10 if "list_connections" in kw["command"] else ""

    def create_network_policy(self, **kw: Any) -> None:
        self.calls.append(("create_network_policy", kw))

    def delete_network_policy(self, **kw: Any) -> bool:
        self.calls.append(("delete_network_policy", kw))
        return True


@pytest.fixture
def api() -> RecordingApi:
    return RecordingApi()


def test_kill_deletes_ready_oldest_pods_with_zero_grace_for_kill(api: RecordingApi) -> None:
    faults = ClusterFaults(api=api, namespace="ns")
    effect = faults.kill(Kill(deployment="agent", count=2, signal="KILL"))
    assert effect == {"pods": ["agent-a", "agent-b"], "signal": "KILL", "asked": 2}
    assert api.calls == [
        ("delete_pod", {"namespace": "ns", "name": "agent-a", "grace_period_seconds": 0}),
        ("delete_pod", {"namespace": "ns", "name": "agent-b", "grace_period_seconds": 0})]
    api.calls.clear()
    faults.kill(Kill(deployment="agent", count=1, signal="TERM"))
    assert api.calls == [("delete_pod", {"namespace": "ns", "name": "agent-a",
                                         "grace_period_seconds": None})]


def test_restart_stops_and_starts_the_broker_app_in_its_pod(api: RecordingApi) -> None:
    effect = ClusterFaults(api=api, namespace="ns").restart(Restart(service="rabbitmq"))
    assert [c[1]["command"] for c in api.calls] == [["rabbitmqctl", "stop_app"],
                                                   ["rabbitmqctl", "start_app"]]
    assert {c[1]["name"] for c in api.calls} == {"rabbitmq-0"}
    assert effect["pod"] == "rabbitmq-0"


def test_partition_applies_a_deny_egress_policy_and_closes_only_the_agents_connections(
        api: RecordingApi) -> None:
    faults = ClusterFaults(api=api, namespace="ns")
    effect = faults.partition(Partition(deployment="agent", seconds=20), heal=False)
    kinds = [c[0] for c in api.calls]
    assert kinds == ["create_network_policy", "exec", "exec", "exec"]
    closes = [c[1]["command"] for c in api.calls[2:]]
    assert closes == [
        ["rabbitmqctl", "close_connection", "10.244.0.7:56522 -> 10.244.0.3:5672",
         "scalelab fault: partition"],
        ["rabbitmqctl", "close_connection", "10.244.0.9:40000 -> 10.244.0.3:5672",
         "scalelab fault: partition"]]
    assert effect == {"network_policy": "scalelab-partition-agent", "cut": True,
                      "connections_closed": 2}
    api.calls.clear()
    faults.partition(Partition(deployment="agent", seconds=20), heal=True)
    assert api.calls == [("delete_network_policy",
                          {"namespace": "ns", "name": "scalelab-partition-agent"})]


def test_the_partition_policy_is_a_valid_network_policy() -> None:
    body = partition_policy(namespace="ns", deployment="agent")
    kubernetes_validate.validate(body, "1.30", strict=True)
    assert body["spec"] == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "agent"}},
                            "policyTypes": ["Egress"], "egress": []}


def test_slow_writes_the_fault_file_in_each_running_pod_and_heal_removes_it(
        api: RecordingApi) -> None:
    faults = ClusterFaults(api=api, namespace="ns", clock=lambda: 1000.0)
    effect = faults.slow(Slow(deployment="agent", cpu_ms_extra=100, seconds=30), heal=False)
    assert effect == {"pods": ["agent-a", "agent-b", "agent-c"], "cpu_ms_extra": 100}
    script = api.calls[0][1]["command"][2]
    assert api.calls[0][1]["command"][:2] == ["python", "-c"]
    assert '{"cpu_ms_extra": 100, "until": 1030.0}' in script
    assert "/tmp/scalelab-fault.json" in script
    compile(script, "<exec>", "exec")  # the pod runs it with python -c
    api.calls.clear()
    faults.slow(Slow(deployment="agent", cpu_ms_extra=100, seconds=30), heal=True)
    heal = api.calls[0][1]["command"][2]
    compile(heal, "<exec>", "exec")
    assert "os.remove" in heal


def test_running_pods_skip_pending_and_terminating(api: RecordingApi) -> None:
    pods = api.list_pods(namespace="ns", label_selector="app.kubernetes.io/name=agent")
    assert [p["metadata"]["name"] for p in running_pods(pods)] == ["agent-a", "agent-b",
                                                                   "agent-c"]


def test_broker_listing_parses_real_rabbitmqctl_output(rabbitmq: RabbitMQNode) -> None:
    """The listing format checked against the real rabbitmqctl of the Debian package."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.amqp_url))
    try:
        out = subprocess.run(
            [str(Path(find_server_script()).with_name("rabbitmqctl")), "-n", rabbitmq.node_name,
             "list_connections", "name", "peer_host",
             "--formatter", "json", "--quiet"], env=rabbitmq._environment(),
            capture_output=True, text=True, timeout=60, check=True).stdout
    finally:
        connection.close()
    rows = broker_connections(out)
    assert ("127.0.0.1" in {host for _, host in rows}), out
    assert broker_connections(LISTING_3_10) == [
        ("10.244.0.7:56522 -> 10.244.0.3:5672", "10.244.0.7"),
        ("10.244.0.9:40000 -> 10.244.0.3:5672", "10.244.0.9")]
