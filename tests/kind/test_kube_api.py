"""``cluster.kube.KubeApi`` through the real ``kubernetes`` client, against a fake API server.

FAKE AT THE CLUSTER SEAM: a small HTTP server on 127.0.0.1 answers the Kubernetes REST
paths with recorded objects (tests/kind/data) in place of a kube-apiserver, which cannot
run here. The client, its kubeconfig loading, deserialization and our re-serialization to
kubectl-shaped JSON are all real.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scalelab.backends.base import Replicas
from scalelab.backends.cluster.events import replicas_from_deployment, scaling_events_from
from scalelab.backends.cluster.kube import KubeApi
from scalelab.errors import BackendError

DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


class FakeApiServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.patches: list[tuple[str, str, Any]] = []
        hpa = load("hpa-agent.json")
        self.routes: dict[str, Any] = {
            "/apis/apps/v1/namespaces/scalelab/deployments/agent": load("deployment-agent.json"),
            "/apis/autoscaling/v2/namespaces/scalelab/horizontalpodautoscalers": {
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscalerList",
                "metadata": {}, "items": [hpa]},
            "/api/v1/namespaces/scalelab/events": {
                "apiVersion": "v1", "kind": "EventList", "metadata": {},
                "items": load("events.json")["items"]},
            # the client asks for /version/ (trailing slash)
            "/version/": {"major": "1", "minor": "30", "gitVersion": "v1.30.4",
                         "gitCommit": "a51b3b711150f57ffc1f526a640ec058514ed596",
                         "gitTreeState": "clean", "buildDate": "2024-08-14T19:04:58Z",
                         "goVersion": "go1.22.5", "compiler": "gc", "platform": "linux/amd64"},
        }


class Handler(BaseHTTPRequestHandler):
    server: FakeApiServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in self.server.routes:
            self._send(200, self.server.routes[path])
        elif path.endswith("/events") or path.endswith("/pods"):
            self._send(200, {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []})
        else:
            self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "reason": "NotFound", "code": 404, "message": "not found"})

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.patches.append((self.path, self.headers["Content-Type"], body))
        if self.path.endswith("/deployments/agent/scale"):
            self._send(200, {"apiVersion": "autoscaling/v1", "kind": "Scale",
                             "metadata": {"name": "agent", "namespace": "scalelab"},
                             "spec": body["spec"], "status": {"replicas": 4}})
        else:
            self._send(404, {"kind": "Status", "apiVersion": "v1", "code": 404,
                             "reason": "NotFound"})


def test_deployment_round_trips_to_kubectl_shaped_json(
        api_server: tuple[KubeApi, FakeApiServer]) -> None:
    client, _ = api_server
    doc = client.get_deployment(namespace="scalelab", name="agent")
    assert doc is not None
    assert doc["status"]["readyReplicas"] == 2            # camelCase, as kubectl prints
    assert replicas_from_deployment(doc) == Replicas(spec=4, current=4, ready=2)
    assert client.get_deployment(namespace="scalelab", name="nope") is None


def test_scale_patches_the_scale_subresource(api_server: tuple[KubeApi, FakeApiServer]) -> None:
    client, server = api_server
    client.scale_deployment(namespace="scalelab", name="agent", replicas=3)
    ((path, _ctype, body),) = server.patches
    assert path == "/apis/apps/v1/namespaces/scalelab/deployments/agent/scale"
    assert body == {"spec": {"replicas": 3}}
    with pytest.raises(BackendError, match="does not exist"):
        client.scale_deployment(namespace="scalelab", name="ghost", replicas=1)


def test_hpas_and_events_feed_scaling_events(api_server: tuple[KubeApi, FakeApiServer]) -> None:
    client, _ = api_server
    hpas = client.list_hpas(namespace="scalelab")
    events = client.list_events(namespace="scalelab")
    assert [h["metadata"]["name"] for h in hpas] == ["agent"]
    assert {e["reason"] for e in events} >= {"SuccessfulRescale", "KEDAScaleTargetActivated"}
    found = scaling_events_from(events=events, hpas=hpas)
    assert [(e.controller, e.from_replicas, e.to_replicas) for e in found] == [
        ("hpa", 2, 3), ("hpa", 3, 4), ("keda", 1, 0), ("keda", 0, 1)]
    assert found[1].conditions[-1]["type"] == "ScalingLimited"
    assert client.server_version()["gitVersion"] == "v1.30.4"
