"""The cluster's ``FaultInjector``: each fault through the Kubernetes API, as an operator
would cause it (everything goes through ``KubeApi``, the one module that talks to a cluster).

- ``kill``: delete the chosen pods, ``gracePeriodSeconds: 0`` for KILL (the kubelet sends
  SIGKILL), the pod's own grace period for TERM; the ReplicaSet creates replacements.
- ``restart: rabbitmq``: ``rabbitmqctl stop_app`` then ``start_app`` in the broker's pod: the
  node restarts in place with its queues and persistent messages (deleting the pod would
  also delete its ``emptyDir`` data, which is a different fault: data loss).
- ``partition``: a NetworkPolicy that selects the Deployment's pods and allows no egress
  (the agents only open connections to the broker; Prometheus' scrapes are ingress, so the
  pods stay observed), then the broker closes the connections it has from those pods
  (``rabbitmqctl close_connection``): kind's kindnet (kube-network-policies) judges only a
  connection's first packet, so a policy alone would leave established connections up.
  The local backend's proxy cuts the same way. Healing deletes the policy; the agents
  reconnect on their own.
- ``slow``: the fault file written by ``kubectl exec`` in each pod of the Deployment present
  at that moment (pods created later are not slowed, unlike on the local backend, where
  every pod of the Deployment reads one file).
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from scalelab.errors import BackendError
from scalelab.faults import Kill, Partition, Restart, Slow

#: The agent's fault file inside its container (manifests/base/agent.yaml env FAULT_FILE).
FAULT_FILE = "/tmp/scalelab-fault.json"
NAME_LABEL = "app.kubernetes.io/name"


class Api(Protocol):
    def list_pods(self, *, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        ...

    def delete_pod(self, *, namespace: str, name: str, grace_period_seconds: int | None = None
                   ) -> bool: ...

    def exec_in_pod(self, *, namespace: str, name: str, command: list[str],
                    container: str | None = None) -> str: ...

    def create_network_policy(self, *, namespace: str, body: dict[str, Any]) -> None: ...

    def delete_network_policy(self, *, namespace: str, name: str) -> bool: ...


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def running_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Running pods not being deleted, ready first, oldest first (the local rule)."""
    alive = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
             and not (p.get("metadata") or {}).get("deletionTimestamp")]
    return sorted(alive, key=lambda p: (not _ready(p), p["metadata"].get("creationTimestamp")
                                        or "", p["metadata"]["name"]))


def partition_policy(*, namespace: str, deployment: str) -> dict[str, Any]:
    """The NetworkPolicy a partition applies: the Deployment's pods may open no connection."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"scalelab-partition-{deployment}", "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "scalelab",
                                "scalelab.io/fault": "partition"}},
        "spec": {"podSelector": {"matchLabels": {NAME_LABEL: deployment}},
                 "policyTypes": ["Egress"], "egress": []},
    }


def _host(peer: Any) -> str:
    """An Erlang IP tuple as rabbitmqctl's JSON prints it ([10,244,0,5]) as text."""
    if isinstance(peer, list) and len(peer) == 4:
        return ".".join(str(int(x)) for x in peer)
    if isinstance(peer, list) and len(peer) == 8:
        return str(ipaddress.IPv6Address(b"".join(int(x).to_bytes(2, "big") for x in peer)))
    return str(peer)


def broker_connections(listing: str) -> list[tuple[str, str]]:
    """(name, peer address) of each connection in ``rabbitmqctl list_connections name
    peer_host --formatter json`` output."""
    try:
        rows = json.loads(listing or "[]")
    except ValueError as err:
        raise BackendError(f"rabbitmqctl list_connections printed no JSON: {listing[:200]!r}",
                           fix="check the broker pod runs RabbitMQ >= 3.8") from err
    return [(str(r["name"]), _host(r.get("peer_host"))) for r in rows]


class ClusterFaults:
    """Fires faults at the stack in ``namespace``."""

    def __init__(self, *, api: Api, namespace: str,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.namespace = namespace
        self.clock = clock
        self.monotonic = monotonic

    def _pods(self, app: str) -> list[dict[str, Any]]:
        return running_pods(self.api.list_pods(namespace=self.namespace,
                                               label_selector=f"{NAME_LABEL}={app}"))

    def kill(self, action: Kill) -> dict[str, Any]:
        grace = 0 if action.signal == "KILL" else None
        killed = []
        for pod in self._pods(action.deployment)[: action.count]:
            name = pod["metadata"]["name"]
            if self.api.delete_pod(namespace=self.namespace, name=name,
                                   grace_period_seconds=grace):
                killed.append(name)
        return {"pods": killed, "signal": action.signal, "asked": action.count}

    def restart(self, action: Restart) -> dict[str, Any]:
        pods = self._pods(action.service)
        if not pods:
            raise BackendError(f"no running {action.service} pod in {self.namespace}",
                               fix="bring the stack up (`scalelab up`) before faults fire")
        name = pods[0]["metadata"]["name"]
        began = self.monotonic()
        for step in ("stop_app", "start_app"):
            self.api.exec_in_pod(namespace=self.namespace, name=name, container="rabbitmq",
                                 command=["rabbitmqctl", step])
        return {"service": action.service, "pod": name,
                "downtime_s": round(self.monotonic() - began, 3)}

    def partition(self, action: Partition, *, heal: bool) -> dict[str, Any]:
        body = partition_policy(namespace=self.namespace, deployment=action.deployment)
        name = body["metadata"]["name"]
        if heal:
            self.api.delete_network_policy(namespace=self.namespace, name=name)
            return {"network_policy": name, "cut": False}
        self.api.create_network_policy(namespace=self.namespace, body=body)
        ips = {(p.get("status") or {}).get("podIP") for p in self._pods(action.deployment)}
        broker = self._pods("rabbitmq")
        closed = []
        if broker:
            pod = broker[0]["metadata"]["name"]
            listing = self.api.exec_in_pod(
                namespace=self.namespace, name=pod, container="rabbitmq",
                command=["rabbitmqctl", "list_connections", "name", "peer_host",
                         "--formatter", "json", "--quiet"])
            for conn, host in broker_connections(listing):
                if host in ips:
                    self.api.exec_in_pod(namespace=self.namespace, name=pod,
                                         container="rabbitmq",
                                         command=["rabbitmqctl", "close_connection", conn,
                                                  "scalelab fault: partition"])
                    closed.append(conn)
        return {"network_policy": name, "cut": True, "connections_closed": len(closed)}

    def slow(self, action: Slow, *, heal: bool) -> dict[str, Any]:
        doc = json.dumps({"cpu_ms_extra": action.cpu_ms_extra,
                          "until": self.clock() + action.seconds})
        script = (f"import os; os.remove({FAULT_FILE!r}) if os.path.exists({FAULT_FILE!r}) "
                  "else None" if heal else
                  f"open({FAULT_FILE!r} + '.tmp', 'w').write({doc!r}); "
                  f"__import__('os').replace({FAULT_FILE!r} + '.tmp', {FAULT_FILE!r})")
        pods = [p["metadata"]["name"] for p in self._pods(action.deployment)]
        for name in pods:
            self.api.exec_in_pod(namespace=self.namespace, name=name,
                                 container=action.deployment, command=["python", "-c", script])
        return {"pods": pods, "cpu_ms_extra": 0 if heal else action.cpu_ms_extra}
