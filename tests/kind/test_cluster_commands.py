"""Command contracts of the kind and existing-cluster backends.

No cluster can run here (no Docker engine), so the seam to the cluster is replaced:

* FAKE AT THE CLUSTER SEAM: ``Recorder`` stands in for the CLIs (kind, kubectl, helm,
  docker): it records each command line and answers with recorded output. pytest-kind's
  real ``KindCluster`` runs, with only its ``subprocess`` module swapped for the recorder.
* FAKE AT THE CLUSTER SEAM: ``Recorder.probe`` answers the version checks check_inputs
  runs before anything starts (``tools.probe``: docker info, kind/kubectl/helm version) with
  versions in the pinned ranges; those checks are tested against real executables in
  ``tests/kind/test_tools.py``.
* FAKE AT THE CLUSTER SEAM: ``FakeApi`` stands in for ``cluster.kube.KubeApi`` and returns
  recorded API objects (``tests/kind/data``, the JSON shape ``kubectl get -o json`` prints).
* FAKE AT THE CLUSTER SEAM: ``Recorder.prometheus`` stands in for the forwarded Prometheus'
  HTTP API in the readiness step: every expected scrape pool up with a sample, unless a test
  sets ``prometheus_answers`` (the parsing is tested on a real Prometheus in
  ``tests/kind/test_readiness.py``). Readiness reads go to ``Recorder.readiness``.
* ``kubectl port-forward`` is replaced by a real listening socket on the chosen local port,
  so the backend's real TCP readiness probe runs.

Everything else (step order, teardown after partial failure, parsing) is the real code.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import port_for
import pytest
import pytest_kind.cluster
import yaml

from scalelab import paths
from scalelab.backends.base import Replicas
from scalelab.backends.cluster.backend import ClusterBackend
from scalelab.backends.cluster.events import parse_time, replicas_from_deployment
from scalelab.backends.cluster.existing import ExistingBackend
from scalelab.backends.cluster.kind import KindBackend
from scalelab.backends.cluster.kube import CommandError, Completed
from scalelab.backends.cluster.render import load_charts
from scalelab.backends.cluster.settings import ClusterSettings
from scalelab.credentials import SECRET_NAME
from scalelab.decisions import ScalingEvent
from scalelab.errors import BackendError, ConfigError, MissingDependencyError, WaitTimeout
from scalelab.settings import StackSettings, TimingProfile
from scalelab.waiting import wait_for
from tests.fakes import FakeClock
from tests.kind.standins import ForwardStandIn

DATA = Path(__file__).parent / "data"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: kind-scalelab, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: kind-scalelab, user: {token: fake}}]
contexts: [{name: kind-scalelab, context: {cluster: kind-scalelab, user: kind-scalelab}}]
current-context: kind-scalelab
"""


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


class Boom(Exception):
    """The injected failure."""


#: Stands in for `kubectl port-forward`: a real server on the local port it was given,
#: answering the watchdog's probes (tests/kind/standins.py).
FakeForward = ForwardStandIn


class Recorder:
    """FAKE AT THE CLUSTER SEAM: records every CLI call, in order, across all channels."""

    def __init__(self, tmp: Path, *, fail_at: int | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.inputs: dict[int, str] = {}
        self.fail_at = fail_at
        self.forwards: list[FakeForward] = []
        #: Stand-ins for kind's host port mappings (extraPortMappings) of created clusters.
        self.node_ports: list[ForwardStandIn] = []
        self.answers: dict[str, str] = {}
        #: `docker port <node> 30080/tcp` finds the reused cluster's NodePort mapping.
        self.node_port_mapped = True
        #: Recorded failures: the first call containing the key exits 1 with this stderr
        #: (each is used once, so a retry of the same command succeeds unless listed again).
        self.failures: dict[str, list[str]] = {}
        self.tmp = tmp
        #: The version checks (tools.probe), kept apart from the command sequence.
        self.probes: list[tuple[str, ...]] = []
        #: The readiness step's reads (APIServices, Prometheus), in order.
        self.readiness: list[tuple[str, ...]] = []
        #: Prometheus' answers by API path; None: healthy answers for the backend's plan.
        self.prometheus_answers: dict[str, Any] | None = None
        self.backend: ClusterBackend | None = None

    # scalelab.backends.cluster.readiness.http_prometheus (the forwarded Prometheus)
    def prometheus(self, url: str) -> Any:
        def get(path: str, params: Any) -> Any:
            self.readiness.append(("prometheus", url, path))
            if self.prometheus_answers is not None:
                return self.prometheus_answers[path]
            assert self.backend is not None
            pools = [p.pool for p in self.backend.readiness_plan().pools]
            if path == "/api/v1/targets":
                return {"status": "success", "data": {"activeTargets": [
                    {"scrapePool": pool, "health": "up", "labels": {"job": pool},
                     "lastError": ""} for pool in pools]}}
            return {"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"job": pool}, "value": [0, "1"]} for pool in pools]}}

        return get

    # scalelab.backends.cluster.tools.probe: what each CLI prints for its version check
    PROBE_ANSWERS = {"docker": "27.3.1", "kind": "kind v0.25.0 go1.22.9 linux/amd64",
                     "kubectl": "Client Version: v1.30.6\nKustomize Version: v5.0.4",
                     "helm": "v3.16.2+g13654a5"}

    def probe(self, cmd: Sequence[str], *, timeout: float = 15.0) -> Completed:
        call = tuple(str(a) for a in cmd)
        self.probes.append(call)
        return Completed(args=call, returncode=0, stdout=self.PROBE_ANSWERS[Path(call[0]).name],
                         stderr="")

    def _record(self, args: Sequence[Any]) -> tuple[str, ...]:
        call = tuple(str(a) for a in args)
        self.calls.append(call)
        if self.fail_at is not None and len(self.calls) - 1 == self.fail_at:
            raise Boom(f"injected failure at call {self.fail_at}: {' '.join(call)}")
        return call

    # scalelab.backends.cluster.kube.run
    def run(self, cmd: Sequence[str], *, input: str | None = None, timeout: float = 600.0,
            env: Any = None) -> Completed:
        call = self._record(cmd)
        if input is not None:
            self.inputs[len(self.calls) - 1] = input
        if Path(call[0]).name == "docker" and call[1:2] == ("port",) and self.node_port_mapped:
            # a reused kind cluster's node maps the API's NodePort to a host port of its own
            port = port_for.select_random()
            self.node_ports.append(ForwardStandIn(port))
            return Completed(args=call, returncode=0, stdout=f"127.0.0.1:{port}\n", stderr="")
        for key, stderrs in self.failures.items():
            if key in " ".join(call) and stderrs:
                raise CommandError(Completed(args=call, returncode=1, stdout="",
                                             stderr=stderrs.pop(0)))
        for key, out in self.answers.items():
            if key in " ".join(call):
                return Completed(args=call, returncode=0, stdout=out, stderr="")
        return Completed(args=call, returncode=0, stdout="", stderr="")

    # scalelab.backends.cluster.kube.spawn
    def spawn(self, cmd: Sequence[str], *, log_file: Path) -> FakeForward:
        call = self._record(cmd)
        fwd = FakeForward(int(call[-1].split(":")[0]))
        self.forwards.append(fwd)
        return fwd

    # pytest_kind.cluster.subprocess (run / check_output), what KindCluster calls
    def subprocess(self) -> SimpleNamespace:
        def check_output(cmd: Sequence[str], **_: Any) -> str:
            self._record(cmd)
            return ""   # `kind get clusters`: none yet

        def run(cmd: Sequence[str], check: bool = False, **_: Any) -> Any:
            call = self._record(cmd)
            if call[1:3] == ("create", "cluster"):   # kind writes the kubeconfig
                kc = next(a.split("=", 1)[1] for a in call if a.startswith("--kubeconfig="))
                Path(kc).write_text(KUBECONFIG)
                # kind maps the API's NodePort to a host port: a stand-in listens there
                config = yaml.safe_load(Path(call[call.index("--config") + 1]).read_text())
                for mapping in config["nodes"][0].get("extraPortMappings") or []:
                    self.node_ports.append(ForwardStandIn(int(mapping["hostPort"])))
            if call[1:3] == ("delete", "cluster"):
                for node_port in self.node_ports:
                    node_port.stop()
            return subprocess.CompletedProcess(call, 0)

        return SimpleNamespace(check_output=check_output, run=run)


class FakeApi:
    """FAKE AT THE CLUSTER SEAM: recorded API objects instead of a kube-apiserver."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.deployments: dict[str, dict[str, Any]] = {}
        for name in ("rabbitmq", "api", "agent"):
            doc = load("deployment-agent.json")
            doc["metadata"]["name"] = name
            doc["spec"]["replicas"] = 2
            doc["status"].update(replicas=2, readyReplicas=2, availableReplicas=2,
                                 updatedReplicas=2)
            self.deployments[name] = doc
        self.hpas: list[list[dict[str, Any]]] = [[]]
        self.events: list[dict[str, Any]] = []
        self.scaled: list[tuple[str, int]] = []
        self.custom: dict[str, list[dict[str, Any]]] = {}

    def get_deployment(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        self.recorder._record(("api", "get", "deployment", namespace, name))
        return self.deployments.get(name)

    def list_hpas(self, *, namespace: str) -> list[dict[str, Any]]:
        return self.hpas.pop(0) if len(self.hpas) > 1 else self.hpas[0]

    def list_events(self, *, namespace: str) -> list[dict[str, Any]]:
        return self.events

    def scale_deployment(self, *, namespace: str, name: str, replicas: int) -> None:
        self.scaled.append((name, replicas))

    def get_apiservice(self, *, name: str) -> dict[str, Any] | None:
        self.recorder.readiness.append(("api", "get", "apiservice", name))
        doc = next(d for d in load("apiservices.json")["items"] if d["metadata"]["name"] == name)
        doc["status"]["conditions"][0].update(status="True", reason="Passed")
        return dict(doc)

    def server_version(self) -> dict[str, Any]:
        return {"gitVersion": "v1.30.4", "major": "1", "minor": "30"}

    def list_custom_objects(self, *, group: str, version: str, namespace: str, plural: str
                            ) -> list[dict[str, Any]]:
        """Recorded custom resources by ``plural`` (none unless a test sets some)."""
        return [o for o in self.custom.get(plural, [])
                if (o.get("metadata") or {}).get("namespace") == namespace]


def make(tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch, *,
         backend: str = "kind", fail_at: int | None = None,
         **cluster: Any) -> tuple[ClusterBackend, Recorder, FakeApi]:
    monkeypatch.chdir(tmp_path)   # KindCluster makes ./.pytest-kind
    rec = Recorder(tmp_path, fail_at=fail_at)
    monkeypatch.setattr(pytest_kind.cluster, "subprocess", rec.subprocess())
    api = FakeApi(rec)
    clock = FakeClock()
    settings = ClusterSettings(work_dir=tmp_path / "work", **cluster)
    kwargs: dict[str, Any] = dict(
        settings=StackSettings(timing=TimingProfile()), cluster=settings, run=rec.run,
        spawn=rec.spawn, api=api, which=lambda n: str(bin_dir / n), clock=clock,
        sleep=clock.sleep, probe=rec.probe, prometheus=rec.prometheus)
    b: ClusterBackend = (KindBackend(**kwargs) if backend == "kind"
                              else ExistingBackend(**kwargs))
    rec.backend = b
    return b, rec, api


def short(call: tuple[str, ...]) -> str:
    """A call without paths to binaries/kubeconfig, for readable sequence assertions."""
    prog = Path(call[0]).name
    rest = [a for a in call[1:]]
    if prog == "kubectl" and rest[:1] == ["--kubeconfig"]:
        rest = rest[2:]
    if prog == "api":
        return "api " + " ".join(rest)
    return " ".join([prog, *rest[:3]])


def test_kind_up_issues_the_expected_sequence_and_down_deletes_the_cluster(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    endpoints = b.up()
    try:
        seq = [short(c) for c in rec.calls]
        assert seq == [
            "kind get clusters",  # ours: is a cluster of that name already there?
            "kind get clusters",  # pytest-kind's, in create()
            "kind create cluster --name=scalelab",
            "docker build --tag scalelab/api:dev",
            "docker build --tag scalelab/agent:dev",
            "kind load docker-image --name",
            "kind load docker-image --name",
            "helm upgrade --install metrics-server",
            "helm upgrade --install kps",
            "helm upgrade --install keda",
            "kubectl get secret rabbitmq-credentials",
            "kubectl apply --server-side --field-manager=scalelab",
            "kubectl apply -k " + str(b.work_dir / "stack"),
            "kubectl apply -f -",
            "kubectl apply --server-side --field-manager=scalelab",
            "api get deployment scalelab rabbitmq",
            "api get deployment scalelab api",
            "api get deployment scalelab agent",
            "kubectl port-forward --namespace monitoring",
            "kubectl port-forward --namespace scalelab",
            "kubectl port-forward --namespace scalelab",
            "kubectl port-forward --namespace monitoring",
        ]
        kc = str(b.kubeconfig)
        # kind and kubectl are the version-checked ones on PATH, never pytest-kind's download
        assert {c[0] for c in rec.calls if Path(c[0]).name == "kind"} == {str(bin_dir / "kind")}
        assert b.kubectl == str(bin_dir / "kubectl")
        create = rec.calls[2]
        assert f"--kubeconfig={kc}" in create
        assert create[create.index("--config") + 1] == str(b.work_dir / "kind-config.yaml")
        assert "horizontal-pod-autoscaler-sync-period: \"5s\"" in \
            (b.work_dir / "kind-config.yaml").read_text()
        build = rec.calls[3]
        assert build[-3:] == ("--file", str(paths.ROOT / "services/api/Dockerfile"),
                              str(paths.ROOT))
        assert rec.calls[5][-1] == "scalelab/api:dev" and rec.calls[6][-1] == "scalelab/agent:dev"
        pinned = {r.name: r for r in load_charts()}
        for call in rec.calls[7:10]:
            release = pinned[call[3]]
            assert call[call.index("--version") + 1] == release.version
            assert call[call.index("--repo") + 1] == release.repo
            assert call[call.index("--namespace") + 1] == release.namespace
            assert call[call.index("--kubeconfig") + 1] == kc
            assert "--wait" in call
            # helm_timeout 600 s, as Go's time.Duration prints it (helm parses a Go duration)
            assert call[call.index("--timeout") + 1] == "10m0s", call
            values = Path(call[call.index("--values") + 1])
            expected = yaml.safe_load((DATA / "helm-values" / f"{release.chart}.yaml")
                                      .read_text())
            assert yaml.safe_load(values.read_text()) == expected, \
                f"{values} differs from data/helm-values/{release.chart}.yaml"
        stack = seq.index("kubectl apply -k " + str(b.work_dir / "stack"))
        dashboards = rec.inputs[stack + 2]
        assert dashboards.count("kind: ConfigMap") == 4
        gets = seq.index("api get deployment scalelab rabbitmq")
        assert [c[2] for c in rec.calls[gets:gets + 3]] == ["deployment"] * 3
        assert [c[-1] for c in rec.calls[gets:gets + 3]] == ["rabbitmq", "api", "agent"]
        # the per-run broker Secret, before the stack that reads it (defect 11)
        creds = b.credentials
        assert creds is not None and creds.username == "scalelab" and len(creds.password) >= 32
        secret_read, secret_apply = rec.calls[stack - 2], rec.calls[stack - 1]
        assert secret_read[-5:] == ("--namespace", "scalelab", "--ignore-not-found",
                                    "--output", "json")
        assert secret_apply[-2:] == ("-f", "-")
        namespace, secret = yaml.safe_load_all(rec.inputs[stack - 1])
        assert (namespace["kind"], namespace["metadata"]["name"]) == ("Namespace", "scalelab")
        assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", SECRET_NAME)
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        host = "rabbitmq.scalelab.svc.cluster.local"
        assert data == {"username": "scalelab", "password": creds.password,
                        "amqp-url": f"amqp://scalelab:{creds.password}@{host}:5672/%2F",
                        "management-url": f"http://scalelab:{creds.password}@{host}:15672"}
        # the password travels on stdin only (the Secret above): never on a command line,
        # never in a file of the work dir
        assert not [c for c in rec.calls if any(creds.password in a for a in c)]
        assert not [f for f in tmp_path.rglob("*") if f.is_file()
                    and creds.password.encode() in f.read_bytes()]
        monitors = list(yaml.safe_load_all(rec.inputs[seq.index("kubectl apply -f -")]))
        assert [m["metadata"]["namespace"] for m in monitors] == ["scalelab", "scalelab"]
        # Locust's load reaches the API through kind's port mapping to its NodePort
        # (kubernetes/kubernetes#78446), not a port-forward
        fwd_calls = [c for c in rec.calls if "port-forward" in c]
        forwarded = [(c[-2], c[-1].split(":")[1]) for c in fwd_calls]
        assert forwarded == [("svc/kps-prometheus", "9090"), ("svc/rabbitmq", "15672"),
                             ("svc/rabbitmq", "5672"), ("svc/kps-grafana", "80")]
        for c in fwd_calls:
            assert c[c.index("--address") + 1] == "127.0.0.1"
        ports = [int(c[-1].split(":")[0]) for c in fwd_calls]
        (node,) = yaml.safe_load((b.work_dir / "kind-config.yaml").read_text())["nodes"]
        (mapping,) = node["extraPortMappings"]
        assert mapping["containerPort"] == 30080 and mapping["listenAddress"] == "127.0.0.1"
        assert endpoints.api == f"http://127.0.0.1:{mapping['hostPort']}"
        assert rec.node_ports[0].answered >= 1, "up() waited for the API's /healthz there"
        overlay = yaml.safe_load((b.work_dir / "stack" / "kustomization.yaml").read_text())
        assert "nodePort: 30080" in overlay["patches"][-1]["patch"]
        assert endpoints.prometheus == f"http://127.0.0.1:{ports[0]}"
        # the harness reaches the forwarded broker as this run's user (no guest/guest)
        assert endpoints.rabbitmq_management == \
            f"http://scalelab:{creds.password}@127.0.0.1:{ports[1]}"
        assert endpoints.amqp == f"amqp://scalelab:{creds.password}@127.0.0.1:{ports[2]}/%2F"
        assert b.grafana_url == f"http://127.0.0.1:{ports[3]}"
        assert b.grafana_login == ("admin", "scalelab")
    finally:
        n = len(rec.calls)
        b.down()
    assert [short(c) for c in rec.calls[n:]] == ["kind delete cluster --name=scalelab"]
    assert all(f.stopped for f in rec.forwards)
    b.down()   # idempotent: nothing more happens
    assert len(rec.calls) == n + 1
    with pytest.raises(BackendError):
        _ = b.endpoints


# The calls of a kind up(), by index (see the test above), and the up() step each belongs
# to (ClusterBackend.steps); fail each one in turn.
KIND_STEPS = {0: ("claim cluster", "provision"), 1: ("kind get clusters", "provision"),
              2: ("kind create", "provision"), 3: ("docker build", "provision"),
              5: ("kind load", "provision"), 7: ("helm metrics-server", "addons"),
              9: ("helm keda", "addons"), 10: ("read secret", "credentials"),
              11: ("apply secret", "credentials"), 12: ("apply stack", "stack"),
              14: ("dashboards", "monitoring"), 15: ("rollout read", "rollout"),
              19: ("second port-forward", "port-forward"),
              21: ("last port-forward", "port-forward")}


@pytest.mark.parametrize("fail_at", list(KIND_STEPS), ids=[d for d, _ in KIND_STEPS.values()])
def test_kind_up_failing_at_any_step_cleans_up(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, fail_at=fail_at)
    with pytest.raises(Boom):
        b.up()
    # Nothing ran after the failure but the diagnostics and the cleanup, which up() did
    # itself: the node logs exported, every port-forward stopped, the cluster deleted
    # (`kind delete cluster` is safe for a cluster that was never fully created).
    # Failing to list the clusters, nothing was created: a cluster that may be someone
    # else's is neither exported nor deleted.
    after = [short(c) for c in rec.calls[fail_at + 1:]]
    if fail_at == 0:
        assert after == []
    else:
        assert after[0].startswith("kind export logs " + str(b.work_dir / "diagnostics"))
        assert after[1:] == ["kind delete cluster --name=scalelab"]
    saved = json.loads((b.work_dir / "diagnostics" / "bring-up-failure.json").read_text())
    step = KIND_STEPS[fail_at][1]
    assert saved["step"] == step, f"expected the failure in step {step}, saved {saved['step']}"
    assert f"injected failure at call {fail_at}" in saved["error"], saved["error"]
    assert all(f.stopped for f in rec.forwards)
    n = len(rec.calls)
    b.down()
    assert len(rec.calls) == n, "down() after a failed up() does nothing more"


def test_kind_cleanup_survives_a_failing_delete(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    b.up()
    rec.fail_at = len(rec.calls)
    b.down()   # never raises
    assert short(rec.calls[-1]) == "kind delete cluster --name=scalelab"
    assert all(f.stopped for f in rec.forwards)


def test_a_rollout_that_never_completes_times_out_with_expected_actual_elapsed(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch, rollout_timeout=60.0)
    api.deployments["agent"]["status"]["availableReplicas"] = 1
    with pytest.raises(WaitTimeout) as err:
        b.up()
    msg = str(err.value)
    assert "Deployment scalelab/agent to roll out" in msg
    assert "expected all replicas updated and available" in msg
    assert "available 1/2" in msg
    assert err.value.elapsed >= 60.0
    assert short(rec.calls[-1]) == "kind delete cluster --name=scalelab"


def test_keep_cluster_deletes_only_the_namespace(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, keep_cluster=True)
    b.up()
    n = len(rec.calls)
    b.down()
    assert [short(c) for c in rec.calls[n:]] == [
        "kubectl delete namespace scalelab", "kubectl delete configmap --namespace"]
    # waits up to rollout_timeout (300 s) for the namespace, as a Go duration
    assert rec.calls[n][-2:] == ("--wait=true", "--timeout=5m0s"), rec.calls[n]


def test_preflight_refuses_before_anything_runs(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    (bin_dir / "helm").unlink()
    b._which = lambda n: str(bin_dir / n) if (bin_dir / n).exists() else None
    with pytest.raises(MissingDependencyError, match="helm"):
        b.up()
    assert rec.calls == []
    b2, rec2, _ = make(tmp_path, bin_dir, monkeypatch)
    b2.settings = StackSettings(namespace="Not_A_Namespace")
    with pytest.raises(ConfigError) as err:
        b2.up()
    assert err.value.field == "namespace"
    assert rec2.calls == []


@pytest.mark.parametrize("tool", ["kind", "kubectl"])
def test_kind_or_kubectl_missing_is_refused_never_downloaded(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch, tool: str) -> None:
    """pytest-kind downloads kind v0.17 / kubectl 1.25 when not given a path: never."""
    def no_download(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"pytest-kind tried to download: {args}")

    monkeypatch.setattr(pytest_kind.cluster.requests, "get", no_download)
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    (bin_dir / tool).unlink()
    b._which = lambda n: str(bin_dir / n) if (bin_dir / n).exists() else None
    with pytest.raises(MissingDependencyError, match=f"{tool}: not found on PATH"):
        b.up()
    assert rec.calls == []


def test_kind_out_of_range_is_refused_before_anything_runs(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    monkeypatch.setitem(rec.PROBE_ANSWERS, "kind", "kind v0.17.0 go1.19.2 linux/amd64")
    with pytest.raises(MissingDependencyError, match=r"is v0\.17\.0, scalelab needs >= v0\.25"):
        b.up()
    assert rec.calls == []
    assert [Path(p[0]).name for p in rec.probes] == ["docker", "kind", "kubectl", "helm"]


def test_existing_uses_the_context_registry_images_and_deletes_only_the_namespace(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing", context="prod-lab",
                     image_prefix="ghcr.io/me", image_tag="v1")
    b.up()
    seq = [short(c) for c in rec.calls]
    assert seq[:7] == [
        "kubectl --context prod-lab config",
        "kubectl --context prod-lab get",     # APIServices: metrics / KEDA already there?
        "helm list --all-namespaces --output",
        "kubectl --context prod-lab get",     # a Prometheus operator already there?
        "helm upgrade --install metrics-server",
        "helm upgrade --install kps",
        "helm upgrade --install keda",
    ]
    applies = [c[3:] for c in rec.calls if c[3:4] == ("apply",)]
    assert applies[-3][:2] == ("apply", "-k"), "the stack, then monitors and dashboards"
    assert applies[-2] == ("apply", "-f", "-")
    assert applies[-1][:2] == ("apply", "--server-side")
    assert not any(Path(c[0]).name in ("kind", "docker") for c in rec.calls)
    for c in rec.calls:
        if Path(c[0]).name == "helm":
            assert c[c.index("--kube-context") + 1] == "prod-lab"
            assert "--kubeconfig" not in c
    overlay = (b.work_dir / "stack" / "kustomization.yaml").read_text()
    assert "newName: ghcr.io/me/scalelab/api" in overlay and "newTag: v1" in overlay
    n = len(rec.calls)
    b.down()
    assert [short(c) for c in rec.calls[n:]] == [
        "kubectl --context prod-lab delete", "kubectl --context prod-lab delete"]
    assert rec.calls[n][3:6] == ("delete", "namespace", b.settings.namespace)
    assert b.settings.namespace.startswith("scalelab-"), "a namespace of the run's own"
    b.down()
    assert len(rec.calls) == n + 2


def test_existing_failing_before_apply_deletes_nothing(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing", fail_at=2)
    with pytest.raises(Boom):
        b.up()
    assert len(rec.calls) == 3   # the namespace was never applied: nothing to delete


def test_existing_without_addons_skips_helm_and_monitoring(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing", install_addons=False,
                     prometheus_service="observability/prometheus:9090")
    b.up()
    try:
        assert not any(Path(c[0]).name == "helm" for c in rec.calls), rec.calls
        fwd = [c for c in rec.calls if "port-forward" in c]
        assert len(fwd) == 4
        assert fwd[1][-2:-1] == ("svc/prometheus",) and "observability" in fwd[1]
    finally:
        b.down()


# -- image loading (kubernetes-sigs/kind#3795) ---------------------------------------------
#: What kind v0.2x prints when Docker's containerd image store exported an index whose
#: other platforms were never pulled (quoted from kubernetes-sigs/kind#3845, a #3795 dup).
CONTAINERD_STORE_STDERR = (
    'ERROR: failed to load image: command "docker exec --privileged -i scalelab-control-plane '
    'ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -" '
    "failed with error: exit status 1\nCommand Output: ctr: content digest "
    "sha256:82014a3cbf22d2e03382cd9b123f4151d956986e727340a466406a206408b7a2: not found")


def test_a_failing_kind_load_falls_back_to_docker_save_and_image_archive(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Contract test, not a cluster: the recorded failure is kind's own message."""
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    rec.failures["load docker-image"] = [CONTAINERD_STORE_STDERR]
    rec.answers["image inspect"] = "linux/arm64/v8\n"
    archive = b.work_dir / "images" / "scalelab_api_dev.tar"
    kind = str(bin_dir / "kind")
    with caplog.at_level("WARNING"):
        b._load_image(kind, "scalelab/api:dev")
    assert rec.calls == [
        (kind, "load", "docker-image", "--name", "scalelab", "scalelab/api:dev"),
        ("docker", "image", "inspect", "--format",
         "{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}", "scalelab/api:dev"),
        ("docker", "save", "--output", str(archive), "--platform", "linux/arm64/v8",
         "scalelab/api:dev"),
        (kind, "load", "image-archive", str(archive), "--name", "scalelab"),
    ]
    assert "kubernetes-sigs/kind#3795" in caplog.text
    assert archive.parent.is_dir() and not archive.exists(), "the archive is removed after"
    # Any other failure of `kind load docker-image` takes the same way, logged as such.
    rec.calls.clear()
    caplog.clear()
    rec.failures["load docker-image"] = ["ERROR: something else"]
    with caplog.at_level("WARNING"):
        b._load_image(kind, "scalelab/agent:dev")
    assert [c[1:3] for c in rec.calls] == [("load", "docker-image"), ("image", "inspect"),
                                            ("save", "--output"), ("load", "image-archive")]
    assert "unrecognised failure" in caplog.text


def test_a_docker_without_save_platform_saves_the_whole_image(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Contract test, not a cluster: Docker < 28 refuses `docker save --platform`."""
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    rec.failures["load docker-image"] = [CONTAINERD_STORE_STDERR]
    rec.failures["--platform"] = ["unknown flag: --platform\nSee 'docker save --help'."]
    rec.answers["image inspect"] = "linux/amd64"
    b._load_image("kind", "scalelab/api:dev")
    archive = str(b.work_dir / "images" / "scalelab_api_dev.tar")
    assert rec.calls[2][-3:] == ("--platform", "linux/amd64", "scalelab/api:dev")
    assert rec.calls[3:] == [
        ("docker", "save", "--output", archive, "scalelab/api:dev"),
        ("kind", "load", "image-archive", archive, "--name", "scalelab")]


def test_an_image_that_loads_neither_way_is_one_error_naming_both(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    rec.failures["load docker-image"] = [CONTAINERD_STORE_STDERR]
    rec.failures["load image-archive"] = ["ERROR: no nodes found for cluster \"scalelab\""]
    with pytest.raises(BackendError) as err:
        b._load_image("kind", "scalelab/api:dev")
    msg = str(err.value)
    assert "scalelab/api:dev" in msg and "both ways" in msg
    assert "content digest sha256:82014a" in msg and "no nodes found" in msg
    assert "fix:" in msg
    assert not list((b.work_dir / "images").iterdir()), "no archive left behind"


def test_a_load_that_works_needs_no_fallback_and_other_errors_are_not_swallowed(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    b._load_image("kind", "scalelab/api:dev")
    assert rec.calls == [("kind", "load", "docker-image", "--name", "scalelab",
                          "scalelab/api:dev")]
    b2, rec2, _ = make(tmp_path, bin_dir, monkeypatch, fail_at=0)
    with pytest.raises(Boom):   # not a CLI's non-zero exit: no fallback hides it
        b2._load_image("kind", "scalelab/api:dev")
    assert len(rec2.calls) == 1


# -- control and observation ---------------------------------------------------------------
def test_apply_scaling_runs_kubectl_apply_and_returns_kind_slash_name(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch)
    manifest = paths.SCALING_MANIFESTS / "keda-hybrid.yaml"
    rec.answers["apply"] = (DATA / "apply-keda-hybrid.json").read_text()
    assert b.apply_scaling(manifest) == ["ScaledObject/agent"]
    (call,) = rec.calls
    assert call[-7:] == ("apply", "--namespace", "scalelab", "-f", "-", "-o", "json")
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(rec.inputs[0])} == \
        {"scalelab"}
    # remove_scaling deletes what was applied, then waits for KEDA's HPA to be collected
    api.hpas = [[{"metadata": {"name": "keda-hpa-agent"}}]] * 3 + [[]]
    b.remove_scaling()
    delete = rec.calls[1]
    assert delete[3:7] == ("delete", "--namespace", "scalelab", "scaledobject.keda.sh/agent")
    assert "--ignore-not-found" in delete
    b.remove_scaling()   # nothing applied any more: no command
    assert len(rec.calls) == 2


def test_apply_scaling_parses_a_list_of_objects(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, api = make(tmp_path, bin_dir, monkeypatch)
    rec.answers["apply"] = (DATA / "apply-two-objects.json").read_text()
    refs = b.apply_scaling(paths.SCALING_MANIFESTS / "hpa-cpu.yaml")
    assert refs == ["TriggerAuthentication/rabbitmq-auth", "HorizontalPodAutoscaler/agent"]
    api.hpas = [[{"metadata": {"name": "agent"}}]]   # never goes away
    with pytest.raises(WaitTimeout) as err:
        b.remove_scaling()
    assert "['agent']" in str(err.value) and "expected none" in str(err.value)
    assert rec.calls[1][6:8] == ("triggerauthentication.keda.sh/rabbitmq-auth",
                                 "horizontalpodautoscaler.autoscaling/agent")


def test_apply_scaling_refuses_a_bad_manifest_before_kubectl(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
                   "metadata: {name: agent, namespace: elsewhere}\n")
    with pytest.raises(ConfigError) as err:
        b.apply_scaling(bad)
    assert err.value.field == "metadata.namespace"
    assert rec.calls == []


def test_a_failing_kubectl_apply_raises_with_its_stderr(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, _, _ = make(tmp_path, bin_dir, monkeypatch)
    webhook = ('Error from server (Forbidden): admission webhook "vscaledobject.kb.io" denied '
               "the request: the workload 'agent' of type 'apps/v1.Deployment' is already "
               "managed by the hpa 'agent'")

    def failing(cmd: Sequence[str], **_: Any) -> Completed:
        raise CommandError(Completed(args=tuple(cmd), returncode=1, stdout="", stderr=webhook))

    b._run = failing
    with pytest.raises(CommandError, match="already managed by the hpa"):
        b.apply_scaling(paths.SCALING_MANIFESTS / "keda-queue.yaml")


def test_a_dead_port_forward_is_restarted_on_the_same_port(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl port-forward exits when its pod goes away; the endpoints must survive that.
    (The existing backend port-forwards the API; kind reaches it through a NodePort.)"""
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, backend="existing",
                     max_forward_restarts=2)
    endpoints = b.up()
    try:
        spawned = [c for c in rec.calls if "port-forward" in c]
        api_cmd = next(c for c in spawned if "svc/api" in c)
        assert b.heal_forwards() == [], "nothing to heal while every forward runs"
        api_fwd = rec.forwards[spawned.index(api_cmd)]
        api_fwd.stop()   # the pod behind it went away
        assert b.heal_forwards() == ["api"]
        assert rec.calls[-1] == api_cmd, "restarted with the same command and local port"
        assert b.endpoints == endpoints
        port = int(endpoints.api.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        assert b.diagnostics()["port_forward_restarts"] == {"api": 1}
        rec.forwards[-1].stop()
        assert b.heal_forwards() == ["api"]
        rec.forwards[-1].stop()
        assert b.heal_forwards() == [], "gives up after max_forward_restarts"
        assert b.forward_restarts == {"api": 2}
    finally:
        b.down()
    assert all(f.stopped for f in rec.forwards)


def test_the_port_forward_watchdog_runs_until_down(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch, forward_check_interval=0.05)
    b.up()
    try:
        rec.forwards[0].stop()
        wait_for(lambda: sum(b.forward_restarts.values()), lambda n: n == 1,
                 what="the watchdog to restart a dead port-forward", expected=1,
                 timeout=10.0, interval=0.05)
        assert not rec.forwards[-1].stopped
        watcher = b.port_forwards.watcher
        assert watcher is not None and watcher.is_alive()
    finally:
        b.down()
    watcher.join(timeout=5)
    assert not watcher.is_alive(), "down() stops the watchdog"
    assert all(f.stopped for f in rec.forwards), "down() stops every forward, restarted ones too"


def test_replicas_from_a_recorded_deployment(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, _, api = make(tmp_path, bin_dir, monkeypatch)
    api.deployments["agent"] = load("deployment-agent.json")
    assert b.replicas("agent") == Replicas(spec=4, current=4, ready=2)
    scaled_to_zero = load("deployment-agent.json")
    scaled_to_zero["spec"]["replicas"] = 0
    scaled_to_zero["status"] = {"observedGeneration": 4}   # zero fields are omitted
    assert replicas_from_deployment(scaled_to_zero) == Replicas(spec=0, current=0, ready=0)
    with pytest.raises(BackendError, match="not found"):
        b.replicas("missing")
    b.scale("agent", 3)
    assert api.scaled == [("agent", 3)]


def test_scaling_events_from_recorded_hpa_and_events(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, _, api = make(tmp_path, bin_dir, monkeypatch)
    api.events = load("events.json")["items"]
    api.hpas = [[load("hpa-agent.json")]]
    events = b.scaling_events()
    t0 = parse_time("2024-11-20T10:02:05Z")
    assert t0 is not None
    reason = "cpu resource utilization (percentage of request) above target"
    assert [(e.t - t0, e.controller, e.object, e.from_replicas, e.to_replicas)
            for e in events] == [
        (0.0, "hpa", "HorizontalPodAutoscaler/agent", 2, 3),       # from: ScalingReplicaSet
        (60.0, "hpa", "HorizontalPodAutoscaler/agent", 3, 4),      # from: previous rescale
        (175.0, "keda", "ScaledObject/agent", 1, 0),
        (pytest.approx(235.123456), "keda", "ScaledObject/agent", 0, 1),
    ]
    assert events[0].reason == reason and events[0].conditions == []
    # the HPA's current conditions go with its latest decision
    assert [c["reason"] for c in events[1].conditions] == \
        ["ReadyForNewScale", "ValidMetricFound", "TooManyReplicas"]
    assert events[3].reason.startswith("KEDAScaleTargetActivated: Scaled apps/v1.Deployment")
    later = b.scaling_events(since=t0 + 30)
    assert [e.to_replicas for e in later] == [4, 0, 1]
    assert later[0].from_replicas == 3, "history before `since` still gives the old size"
    assert all(isinstance(e, ScalingEvent) for e in later)


def test_versions_report_server_and_charts(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    rec.answers["helm list"] = json.dumps([
        {"name": "keda", "namespace": "keda", "chart": "keda-2.16.0", "app_version": "2.16.0",
         "status": "deployed"},
        {"name": "kps", "namespace": "monitoring", "chart": "kube-prometheus-stack-66.3.0",
         "app_version": "v0.78.2", "status": "deployed"}])
    v = b.versions()
    assert v["kubernetes"] == "v1.30.4"
    assert v["keda"] == "2.16.0"
    assert v["chart/kube-prometheus-stack"] == "66.3.0"
    assert v["chart/metrics-server"] == "3.12.2"   # pinned, not yet reported by helm
    d = b.details()
    assert d["cluster"] == "scalelab" and d["addons_installed_by_scalelab"] is True
    assert d["images"] == "scalelab/*:dev" and d["kubeconfig"] == str(b.kubeconfig)


def test_settings_from_env_name_the_variable_on_bad_input() -> None:
    s = ClusterSettings.from_env({"SCALELAB_IMAGE_PREFIX": "ghcr.io/me",
                                       "SCALELAB_KUBE_CONTEXT": "lab",
                                       "SCALELAB_INSTALL_ADDONS": "0"})
    assert (s.image_prefix, s.context, s.install_addons) == ("ghcr.io/me", "lab", False)
    with pytest.raises(ConfigError) as err:
        ClusterSettings.from_env({"SCALELAB_KEEP_CLUSTER": "maybe"})
    assert err.value.field == "SCALELAB_KEEP_CLUSTER"
    with pytest.raises(ConfigError) as err:
        ClusterSettings.from_env({"SCALELAB_PROMETHEUS_SERVICE": "prometheus"})
    assert err.value.field == "SCALELAB_PROMETHEUS_SERVICE"
    with pytest.raises(ConfigError) as err:
        ClusterSettings.from_env({"SCALELAB_ROLLOUT_TIMEOUT": "-3"})
    assert err.value.field == "SCALELAB_ROLLOUT_TIMEOUT"


def test_make_backend_builds_the_cluster_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    from scalelab.backends import make_backend

    monkeypatch.delenv("SCALELAB_KUBE_CONTEXT", raising=False)
    assert isinstance(make_backend("kind", settings=StackSettings()), KindBackend)
    assert isinstance(make_backend("existing", settings=StackSettings()), ExistingBackend)


def test_a_broken_podmonitor_stops_bring_up_before_anything_runs(
        tmp_path: Path, bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import scalelab.backends.cluster.backend as cluster_backend

    broken = tmp_path / "cluster"
    broken.mkdir()
    text = (cluster_backend.CLUSTER_DIR / "monitors.yaml").read_text()
    text = text.replace("podMetricsEndpoints", "podMetricEndpoints", 1)
    (broken / "monitors.yaml").write_text(text)
    monkeypatch.setattr(cluster_backend, "CLUSTER_DIR", broken)
    b, rec, _ = make(tmp_path, bin_dir, monkeypatch)
    with pytest.raises(ConfigError) as err:
        b.up()
    assert "monitors.yaml" in str(err.value) and "podMetricEndpoints" in str(err.value)
    assert rec.calls == [], "nothing ran"
