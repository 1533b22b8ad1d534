"""The kind and existing-cluster backends: the stack on real Kubernetes, real HPA and KEDA.

``kind`` creates a cluster with pytest-kind's ``KindCluster`` from a config rendered from the
timing profile (kube-controller-manager HPA flags), builds and loads the two images,
installs metrics-server, kube-prometheus-stack and KEDA with Helm (pinned chart versions,
``manifests/cluster/charts.yaml``), applies ``manifests/base``, waits for the rollouts and
port-forwards the API, Prometheus, RabbitMQ and Grafana to free local ports.
``existing`` does the same against the current kubeconfig context, without creating a
cluster or building images (they are pulled from ``SCALELAB_IMAGE_PREFIX``).

Everything that touches a cluster goes through ``scalelab.kube`` (``KubeApi``, ``run``,
``spawn``), so the commands this module issues are asserted offline (tests/kind).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import jinja2
import port_for
import yaml

from scalelab import kube, paths
from scalelab.backends.base import Backend, Endpoints, Replicas, ScalingEvent
from scalelab.backends.broker import purge_queue
from scalelab.errors import BackendError, ConfigError, MissingDependencyError
from scalelab.manifests import load_scaling
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
    NAMESPACE,
    TASK_QUEUE,
    StackSettings,
    TimingProfile,
)
from scalelab.waiting import wait_for

log = logging.getLogger(__name__)

CLUSTER_DIR = paths.MANIFESTS / "cluster"
GRAFANA_DIR = paths.MANIFESTS / "grafana"
BASE_DIR = paths.MANIFESTS / "base"
#: The namespace manifests/base hard-codes (service URLs in the env carry it too).
BASE_NAMESPACE = NAMESPACE
MONITORING_NAMESPACE = "monitoring"
RABBITMQ_DEPLOYMENT = "rabbitmq"
#: kind node image: Kubernetes 1.30 (kubeadm v1beta3, whose extraArgs is a string map);
#: needs kind >= v0.24. KEDA 2.16 supports Kubernetes 1.29 - 1.31.
DEFAULT_NODE_IMAGE = "kindest/node:v1.30.4"
MIN_KIND_VERSION = (0, 24, 0)
#: Images built from the repo root (build context) and the Dockerfile of each service.
IMAGES: dict[str, tuple[str, Path]] = {
    API_DEPLOYMENT: ("scalelab/api", paths.ROOT / "services" / "api" / "Dockerfile"),
    AGENT_DEPLOYMENT: ("scalelab/agent", paths.ROOT / "services" / "agent" / "Dockerfile"),
}
IMAGE_TAG = "dev"
#: kube-prometheus-stack with fullnameOverride "kps" (values template) names these.
DEFAULT_PROMETHEUS_SERVICE = f"{MONITORING_NAMESPACE}/kps-prometheus:9090"
GRAFANA_SERVICE = f"{MONITORING_NAMESPACE}/kps-grafana:80"
DASHBOARD_LABEL = "grafana_dashboard"
PART_OF = {"app.kubernetes.io/part-of": "scalelab"}


# -- rendering (pure) ----------------------------------------------------------------------
def go_duration(seconds: float) -> str:
    """A Go ``time.ParseDuration`` string: 5.0 -> "5s", 0.5 -> "500ms"."""
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def check_timing(timing: TimingProfile) -> None:
    """Reject profile values the real components would refuse, before anything starts."""
    if timing.metrics_window < 10:
        raise ConfigError(f"metrics_window {timing.metrics_window}s is below 10s",
                          field="timing.metrics_window",
                          fix="metrics-server's --metric-resolution must be at least 10s")
    for name in ("scrape_interval", "hpa_sync_period"):
        if getattr(timing, name) <= 0:
            raise ConfigError(f"{name} must be positive", field=f"timing.{name}",
                              fix="use a value in seconds, e.g. 5")
    if not 0 <= timing.hpa_tolerance < 1:
        raise ConfigError(f"hpa_tolerance {timing.hpa_tolerance} is outside [0, 1)",
                          field="timing.hpa_tolerance", fix="use e.g. 0.1 (the default)")


def _jinja() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(CLUSTER_DIR)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


def timing_context(timing: TimingProfile) -> dict[str, str]:
    """Template variables for the timing profile, formatted as the components parse them."""
    return {
        "scrape_interval": go_duration(timing.scrape_interval),
        "metrics_window": go_duration(timing.metrics_window),
        "hpa_sync_period": go_duration(timing.hpa_sync_period),
        "hpa_tolerance": f"{timing.hpa_tolerance:g}",
        "hpa_cpu_initialization_period": go_duration(timing.hpa_cpu_initialization_period),
        "hpa_initial_readiness_delay": go_duration(timing.hpa_initial_readiness_delay),
        "hpa_downscale_stabilization": go_duration(timing.hpa_downscale_stabilization),
    }


def render_kind_config(*, timing: TimingProfile, cluster_name: str = "scalelab",
                       node_image: str = DEFAULT_NODE_IMAGE) -> str:
    """The kind cluster config (kind.x-k8s.io/v1alpha4) for a timing profile."""
    check_timing(timing)
    return _jinja().get_template("kind-config.yaml.j2").render(
        cluster_name=cluster_name, node_image=node_image,
        profile_name=", ".join(f"{k}={v:g}" for k, v in timing.as_dict().items()),
        **timing_context(timing))


@dataclass(frozen=True, kw_only=True)
class ChartRelease:
    """One pinned Helm release from ``manifests/cluster/charts.yaml``."""

    name: str
    namespace: str
    repo: str
    chart: str
    version: str
    values: str  # template path relative to manifests/cluster


def load_charts(path: Path = CLUSTER_DIR / "charts.yaml") -> list[ChartRelease]:
    doc = yaml.safe_load(path.read_text())
    releases = []
    for i, entry in enumerate(doc.get("releases") or []):
        try:
            release = ChartRelease(**{k: str(v) for k, v in entry.items()})
        except TypeError as err:
            raise ConfigError(str(err), file=str(path), field=f"releases[{i}]",
                              fix="each release needs name, namespace, repo, chart, version, "
                                  "values") from None
        if not re.fullmatch(r"\d+\.\d+\.\d+", release.version):
            raise ConfigError(f"version {release.version!r} is not pinned", file=str(path),
                              field=f"releases[{i}].version", fix="use an exact x.y.z version")
        releases.append(release)
    return releases


def render_values(release: ChartRelease, *, timing: TimingProfile) -> str:
    """A release's Helm values for a timing profile."""
    check_timing(timing)
    return _jinja().get_template(release.values).render(**timing_context(timing))


def dashboard_files() -> list[Path]:
    return sorted(GRAFANA_DIR.glob("*.json"))


def grafana_configmaps(*, namespace: str = MONITORING_NAMESPACE) -> list[dict[str, Any]]:
    """The dashboards as ConfigMaps the kube-prometheus-stack Grafana sidecar provisions."""
    maps = []
    for path in dashboard_files():
        maps.append({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"scalelab-dashboard-{path.stem}",
                "namespace": namespace,
                "labels": {DASHBOARD_LABEL: "1", **PART_OF},
            },
            "data": {path.name: path.read_text()},
        })
    return maps


def image_ref(deployment: str, *, prefix: str = "", tag: str = IMAGE_TAG) -> str:
    name = IMAGES[deployment][0]
    return f"{prefix.rstrip('/')}/{name}:{tag}" if prefix else f"{name}:{tag}"


def render_overlay(*, overlay_dir: Path, image_prefix: str = "", image_tag: str = IMAGE_TAG,
                   agent_replicas: int | None = None) -> dict[str, Any]:
    """A kustomization over manifests/base: image names and the agent's replica count."""
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE_DIR, overlay_dir)],
    }
    if image_prefix or image_tag != IMAGE_TAG:
        kustomization["images"] = [
            {"name": IMAGES[d][0],
             "newName": image_ref(d, prefix=image_prefix).rsplit(":", 1)[0],
             "newTag": image_tag}
            for d in (API_DEPLOYMENT, AGENT_DEPLOYMENT)]
    if agent_replicas is not None:
        kustomization["replicas"] = [{"name": AGENT_DEPLOYMENT, "count": agent_replicas}]
    return kustomization


# -- interpreting cluster JSON (pure) ------------------------------------------------------
def replicas_from_deployment(doc: Mapping[str, Any]) -> Replicas:
    """``Replicas`` from a Deployment as ``kubectl get deploy -o json`` prints it.

    The API server omits zero-valued status fields (``readyReplicas`` of a Deployment with
    no ready pod), and ``spec.replicas`` defaults to 1 (apps/v1 defaults.go).
    """
    spec = doc.get("spec") or {}
    status = doc.get("status") or {}
    return Replicas(spec=int(spec.get("replicas", 1)), current=int(status.get("replicas", 0)),
                    ready=int(status.get("readyReplicas", 0)))


@dataclass(frozen=True, kw_only=True)
class RolloutState:
    """What ``kubectl rollout status`` checks (kubectl pkg/polymorphichelpers/rollout_status.go)."""

    exists: bool
    generation_observed: bool = False
    spec: int = 0
    updated: int = 0
    current: int = 0
    available: int = 0

    @property
    def complete(self) -> bool:
        return (self.exists and self.generation_observed and self.updated == self.spec
                and self.current == self.updated and self.available == self.spec)

    def __str__(self) -> str:
        if not self.exists:
            return "no such Deployment"
        return (f"updated {self.updated}/{self.spec}, available {self.available}/{self.spec}, "
                f"total {self.current}, generation observed: {self.generation_observed}")


def rollout_state(doc: Mapping[str, Any] | None) -> RolloutState:
    if doc is None:
        return RolloutState(exists=False)
    meta, status = doc.get("metadata") or {}, doc.get("status") or {}
    return RolloutState(
        exists=True,
        generation_observed=int(status.get("observedGeneration", 0))
        >= int(meta.get("generation", 1)),
        spec=int((doc.get("spec") or {}).get("replicas", 1)),
        updated=int(status.get("updatedReplicas", 0)),
        current=int(status.get("replicas", 0)),
        available=int(status.get("availableReplicas", 0)))


def parse_time(value: str | None) -> float | None:
    """RFC 3339 (``2024-05-01T10:00:00Z``, micro-time too) to unix seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def event_time(event: Mapping[str, Any]) -> float | None:
    """When an Event last happened: lastTimestamp, else eventTime, else firstTimestamp."""
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        t = parse_time(event.get(key))
        if t is not None:
            return t
    return parse_time((event.get("metadata") or {}).get("creationTimestamp"))


#: kubernetes pkg/controller/podautoscaler/horizontal.go: reason "SuccessfulRescale",
#: message "New size: %d; reason: %s".
_HPA_RESCALE = re.compile(r"New size: (\d+); reason: (.*)", re.S)
#: kubernetes pkg/controller/deployment/sync.go: reason "ScalingReplicaSet",
#: message "Scaled %s replica set %s to %d from %d".
_RS_SCALED = re.compile(r"Scaled (?:up|down) replica set \S+ to (\d+) from (\d+)")
#: kedacore/keda pkg/scaling/executor/scale_scaledobjects.go: KEDAScaleTargetActivated
#: "Scaled %s %s/%s from %d to %d[, triggered by ...]", KEDAScaleTargetDeactivated
#: "Deactivated %s %s/%s from %d to %d".
_KEDA_SCALED = re.compile(r"from (\d+) to (\d+)(?:, (.*))?")
KEDA_REASONS = ("KEDAScaleTargetActivated", "KEDAScaleTargetDeactivated")
#: A ScalingReplicaSet event this close to an HPA rescale is taken as its effect.
MATCH_WINDOW = 10.0


def hpa_conditions(hpa: Mapping[str, Any]) -> list[dict[str, str]]:
    """status.conditions (AbleToScale, ScalingActive, ScalingLimited) as plain strings."""
    out = []
    for c in (hpa.get("status") or {}).get("conditions") or []:
        out.append({k: str(c.get(k, "")) for k in ("type", "status", "reason", "message")})
    return out


def scaling_events_from(*, events: Sequence[Mapping[str, Any]],
                        hpas: Sequence[Mapping[str, Any]], since: float = 0.0
                        ) -> list[ScalingEvent]:
    """Autoscaler decisions from a namespace's Events and HPAs, oldest first.

    HPA rescales come from ``SuccessfulRescale`` events (they carry only the new size: the
    previous size is taken from the Deployment's matching ``ScalingReplicaSet`` event, else
    from the HPA's previous rescale, else -1 for unknown). KEDA's own 0 <-> N activations
    come from ``KEDAScaleTargetActivated``/``Deactivated`` events on the ScaledObject. The
    HPA's current status conditions are attached to its latest event. Repeated identical
    events are aggregated by the API server (count, lastTimestamp): only the last of them
    is seen.
    """
    targets = {str((h.get("metadata") or {}).get("name")):
               str(((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name", ""))
               for h in hpas}
    conditions = {str((h.get("metadata") or {}).get("name")): hpa_conditions(h) for h in hpas}
    rs_events: list[tuple[float, str, int, int]] = []
    for e in events:
        obj = e.get("involvedObject") or {}
        m = _RS_SCALED.search(str(e.get("message", "")))
        t = event_time(e)
        if e.get("reason") == "ScalingReplicaSet" and m and t is not None:
            rs_events.append((t, str(obj.get("name")), int(m.group(1)), int(m.group(2))))

    def previous_size(t: float, deployment: str, new: int) -> int | None:
        near = [(abs(rt - t), old) for rt, name, to, old in rs_events
                if name == deployment and to == new and abs(rt - t) <= MATCH_WINDOW]
        return min(near)[1] if near else None

    found: list[ScalingEvent] = []
    last_size: dict[str, int] = {}
    ordered = sorted((e for e in events if event_time(e) is not None),
                     key=lambda e: event_time(e) or 0.0)
    for e in ordered:
        t = event_time(e) or 0.0
        obj = e.get("involvedObject") or {}
        name = str(obj.get("name", ""))
        message = str(e.get("message", ""))
        if e.get("reason") == "SuccessfulRescale" and obj.get("kind") == "HorizontalPodAutoscaler":
            m = _HPA_RESCALE.match(message)
            if not m:
                continue
            new = int(m.group(1))
            old = previous_size(t, targets.get(name, AGENT_DEPLOYMENT), new)
            if old is None:
                old = last_size.get(name, -1)
            last_size[name] = new
            if t >= since:
                found.append(ScalingEvent(t=t, controller="hpa",
                                          object=f"HorizontalPodAutoscaler/{name}",
                                          from_replicas=old, to_replicas=new,
                                          reason=m.group(2).strip()))
        elif e.get("reason") in KEDA_REASONS and obj.get("kind") == "ScaledObject":
            m = _KEDA_SCALED.search(message)
            if m and t >= since:
                found.append(ScalingEvent(t=t, controller="keda", object=f"ScaledObject/{name}",
                                          from_replicas=int(m.group(1)),
                                          to_replicas=int(m.group(2)),
                                          reason=f"{e.get('reason')}: {message}"))
    for hpa_name, conds in conditions.items():
        mine = [i for i, ev in enumerate(found)
                if ev.object == f"HorizontalPodAutoscaler/{hpa_name}"]
        if mine and conds:
            i = mine[-1]
            ev = found[i]
            found[i] = ScalingEvent(t=ev.t, controller=ev.controller, object=ev.object,
                                    from_replicas=ev.from_replicas, to_replicas=ev.to_replicas,
                                    reason=ev.reason, conditions=conds)
    return found


@dataclass(frozen=True, kw_only=True)
class AppliedObject:
    kind: str
    api_version: str
    name: str
    namespace: str

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def resource(self) -> str:
        """``kind.group/name``, unambiguous for ``kubectl delete``."""
        group = self.api_version.split("/")[0] if "/" in self.api_version else ""
        return f"{self.kind.lower()}{'.' + group if group else ''}/{self.name}"


def parse_applied(stdout: str) -> list[AppliedObject]:
    """Objects from ``kubectl apply -o json`` output (one object, or a List of them)."""
    try:
        doc = yaml.safe_load(stdout) if stdout.strip() else None
    except yaml.YAMLError as err:
        raise BackendError(f"cannot read `kubectl apply -o json` output: {err}") from err
    if not isinstance(doc, dict):
        raise BackendError(f"`kubectl apply -o json` printed no object: {stdout[:200]!r}")
    items = doc.get("items") or [] if doc.get("kind") == "List" else [doc]
    return [AppliedObject(kind=str(i.get("kind")), api_version=str(i.get("apiVersion")),
                          name=str((i.get("metadata") or {}).get("name")),
                          namespace=str((i.get("metadata") or {}).get("namespace", "")))
            for i in items]


# -- settings --------------------------------------------------------------------------------
def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{raw!r} is not a boolean", field=name, fix=f"set {name}=1 or {name}=0")


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{raw!r} is not a positive number of seconds", field=name,
                          fix=f"set {name} to seconds, e.g. {default:g}")
    return value


@dataclass(frozen=True, kw_only=True)
class ClusterSettings:
    """How the cluster backends reach and build the cluster (``SCALELAB_*`` variables)."""

    #: kind cluster name (SCALELAB_KIND_CLUSTER).
    cluster_name: str = "scalelab"
    #: kind node image (SCALELAB_KIND_NODE_IMAGE).
    node_image: str = DEFAULT_NODE_IMAGE
    #: existing: kubeconfig context (SCALELAB_KUBE_CONTEXT; default: the current context).
    context: str | None = None
    #: existing: kubeconfig file (KUBECONFIG; default: kubectl's ~/.kube/config).
    kubeconfig: Path | None = None
    #: Registry path the images are pulled from (SCALELAB_IMAGE_PREFIX), e.g.
    #: ``ghcr.io/me`` -> ``ghcr.io/me/scalelab/api:dev``. Empty: the local names.
    image_prefix: str = ""
    #: Image tag (SCALELAB_IMAGE_TAG).
    image_tag: str = IMAGE_TAG
    #: Install metrics-server, kube-prometheus-stack and KEDA (SCALELAB_INSTALL_ADDONS).
    install_addons: bool = True
    #: kind: keep the cluster on ``down()``, delete only the namespace (SCALELAB_KEEP_CLUSTER).
    keep_cluster: bool = False
    #: Prometheus service to port-forward, ``namespace/service:port``
    #: (SCALELAB_PROMETHEUS_SERVICE), for clusters with their own Prometheus.
    prometheus_service: str = DEFAULT_PROMETHEUS_SERVICE
    #: Rendered configs, overlay and port-forward logs (SCALELAB_CLUSTER_WORKDIR).
    work_dir: Path = field(default_factory=lambda: paths.ROOT / ".scalelab" / "cluster")
    #: Timeouts in seconds: a Deployment rollout, a helm install, a port-forward.
    rollout_timeout: float = 300.0
    helm_timeout: float = 600.0
    port_forward_timeout: float = 30.0
    #: How often a dead port-forward is looked for, and how many times one is restarted
    #: before the backend gives up on it (kubectl port-forward ends when the pod it picked
    #: goes away, e.g. a rolled or evicted RabbitMQ pod).
    forward_check_interval: float = 2.0
    max_forward_restarts: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClusterSettings:
        env = os.environ if env is None else env
        d = cls()
        prom = env.get("SCALELAB_PROMETHEUS_SERVICE") or d.prometheus_service
        if not re.fullmatch(r"[a-z0-9-]+/[a-z0-9-]+:\d+", prom):
            raise ConfigError(f"{prom!r} is not namespace/service:port",
                              field="SCALELAB_PROMETHEUS_SERVICE",
                              fix="e.g. SCALELAB_PROMETHEUS_SERVICE=monitoring/prometheus:9090")
        return cls(
            cluster_name=env.get("SCALELAB_KIND_CLUSTER") or d.cluster_name,
            node_image=env.get("SCALELAB_KIND_NODE_IMAGE") or d.node_image,
            context=env.get("SCALELAB_KUBE_CONTEXT") or None,
            kubeconfig=Path(env["KUBECONFIG"]) if env.get("KUBECONFIG") else None,
            image_prefix=env.get("SCALELAB_IMAGE_PREFIX", ""),
            image_tag=env.get("SCALELAB_IMAGE_TAG") or d.image_tag,
            install_addons=_env_bool(env, "SCALELAB_INSTALL_ADDONS", d.install_addons),
            keep_cluster=_env_bool(env, "SCALELAB_KEEP_CLUSTER", d.keep_cluster),
            prometheus_service=prom,
            work_dir=Path(env["SCALELAB_CLUSTER_WORKDIR"])
            if env.get("SCALELAB_CLUSTER_WORKDIR") else d.work_dir,
            rollout_timeout=_env_float(env, "SCALELAB_ROLLOUT_TIMEOUT", d.rollout_timeout),
            helm_timeout=_env_float(env, "SCALELAB_HELM_TIMEOUT", d.helm_timeout),
            port_forward_timeout=d.port_forward_timeout,
        )


@dataclass(frozen=True, kw_only=True)
class Forward:
    """A service to port-forward: ``kubectl port-forward -n namespace svc/service local:port``."""

    key: str
    namespace: str
    service: str
    port: int


def _service(spec: str, key: str) -> Forward:
    ns, rest = spec.split("/", 1)
    name, port = rest.rsplit(":", 1)
    return Forward(key=key, namespace=ns, service=name, port=int(port))


# -- the backends ----------------------------------------------------------------------------
class ClusterBackend(Backend):
    """What kind and existing share: addons, stack, rollouts, port-forwards, observation."""

    name: ClassVar[str] = "cluster"

    def __init__(
        self, *, settings: StackSettings, cluster: ClusterSettings | None = None,
        run: kube.Runner = kube.run, spawn: kube.Spawner = kube.spawn,
        api: kube.KubeApi | None = None, which: Callable[[str], str | None] = shutil.which,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings=settings)
        self.cluster = ClusterSettings.from_env() if cluster is None else cluster
        self._run = run
        self._spawn = spawn
        self._which = which
        self._clock = clock
        self._sleep = sleep
        self.work_dir = self.cluster.work_dir / self.cluster.cluster_name
        self.kubectl = "kubectl"
        self.api = api if api is not None else kube.KubeApi(
            kubeconfig=self.kubeconfig, context=self.cluster.context)
        self._forwards: dict[str, kube.Process] = {}
        self._forward_cmds: dict[str, list[str]] = {}
        self._ports: dict[str, int] = {}
        #: Port-forwards restarted by the watchdog, by key (in diagnostics).
        self.forward_restarts: dict[str, int] = {}
        self._forward_lock = threading.Lock()
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._endpoints: Endpoints | None = None
        self._applied: list[AppliedObject] = []
        self._stack_touched = False
        self.timings: dict[str, float] = {}

    # -- things subclasses decide ----------------------------------------------------------
    @property
    def kubeconfig(self) -> Path | None:
        return self.cluster.kubeconfig

    def _required_binaries(self) -> tuple[str, ...]:
        return ("kubectl", "helm") if self.cluster.install_addons else ("kubectl",)

    def _provision(self) -> None:
        """Make a cluster reachable (kind: create it, build and load images)."""

    def _teardown_cluster(self) -> None:
        """Remove what ``up`` created in the cluster (existing: the namespace only)."""
        self._delete_namespace()

    # -- command helpers --------------------------------------------------------------------
    def _kube_args(self) -> list[str]:
        args: list[str] = []
        if self.kubeconfig is not None:
            args += ["--kubeconfig", str(self.kubeconfig)]
        if self.cluster.context:
            args += ["--context", self.cluster.context]
        return args

    def kubectl_cmd(self, *args: str) -> list[str]:
        return [self.kubectl, *self._kube_args(), *args]

    def _kubectl(self, *args: str, input: str | None = None, timeout: float = 120.0
                 ) -> kube.Completed:
        return self._run(self.kubectl_cmd(*args), input=input, timeout=timeout)

    def helm_cmd(self, release: ChartRelease, values_file: Path) -> list[str]:
        cmd = ["helm", "upgrade", "--install", release.name, release.chart,
               "--repo", release.repo, "--version", release.version,
               "--namespace", release.namespace, "--create-namespace",
               "--values", str(values_file), "--wait",
               "--timeout", go_duration(self.cluster.helm_timeout)]
        if self.kubeconfig is not None:
            cmd += ["--kubeconfig", str(self.kubeconfig)]
        if self.cluster.context:
            cmd += ["--kube-context", self.cluster.context]
        return cmd

    # -- lifecycle ---------------------------------------------------------------------------
    def check_inputs(self) -> None:
        """Bad input fails here, before anything starts."""
        if self.settings.namespace != BASE_NAMESPACE:
            raise ConfigError(
                f"namespace {self.settings.namespace!r} differs from manifests/base "
                f"({BASE_NAMESPACE!r})", field="namespace",
                fix=f"use the namespace {BASE_NAMESPACE!r} on the {self.name} backend "
                    "(the services' URLs in manifests/base name it)")
        check_timing(self.settings.timing)
        if self.settings.agent_replicas is not None and self.settings.agent_replicas < 0:
            raise ConfigError("agent_replicas must be >= 0", field="agent_replicas",
                              fix="use 0 or more")
        missing = [b for b in self._required_binaries() if self._which(b) is None]
        if missing:
            raise MissingDependencyError(
                f"the {self.name} backend needs {', '.join(missing)} on PATH",
                fix="install them (docs/kind.md, Prerequisites) or use --backend local")

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        """``up()`` in order; named so timings and failures say which step."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("render", self._render), ("provision", self._provision)]
        if self.cluster.install_addons:
            steps.append(("addons", self._install_addons))
        steps.append(("stack", self._apply_stack))
        if self.cluster.install_addons:
            steps.append(("monitoring", self._apply_monitoring))
        steps += [("rollout", self._wait_rollouts), ("port-forward", self._port_forward)]
        return steps

    def up(self) -> Endpoints:
        self.check_inputs()
        try:
            for step_name, step in self.steps():
                t0 = self._clock()
                log.info("%s backend: %s", self.name, step_name)
                step()
                self.timings[step_name] = self._clock() - t0
        except BaseException:
            self.down()
            raise
        return self.endpoints

    def down(self) -> None:
        """Stop port-forwards, then remove what was created; idempotent, never raises."""
        self._endpoints = None
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None
        with self._forward_lock:
            forwards, self._forwards = self._forwards, {}
        for key, proc in forwards.items():
            try:
                proc.stop()
            except Exception as err:  # noqa: BLE001 - teardown continues
                log.warning("stopping port-forward %s: %s", key, err)
        try:
            self._teardown_cluster()
        except Exception as err:  # noqa: BLE001
            log.warning("%s backend teardown: %s", self.name, err)
        self._applied = []

    def _delete_namespace(self) -> None:
        if not self._stack_touched:
            return
        self._stack_touched = False
        for args in (
            ("delete", "namespace", self.settings.namespace, "--ignore-not-found",
             "--wait=true", f"--timeout={go_duration(self.cluster.rollout_timeout)}"),
            ("delete", "configmap", "--namespace", MONITORING_NAMESPACE, "--selector",
             f"{DASHBOARD_LABEL}=1,app.kubernetes.io/part-of=scalelab", "--ignore-not-found"),
        ):
            try:
                self._kubectl(*args, timeout=self.cluster.rollout_timeout + 30)
            except Exception as err:  # noqa: BLE001
                log.warning("teardown `kubectl %s`: %s", " ".join(args), err)

    # -- steps -------------------------------------------------------------------------------
    def _render(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        timing = self.settings.timing
        (self.work_dir / "values").mkdir(exist_ok=True)
        for release in load_charts():
            (self.work_dir / "values" / f"{release.name}.yaml").write_text(
                render_values(release, timing=timing))
        overlay = self.work_dir / "stack"
        overlay.mkdir(exist_ok=True)
        (overlay / "kustomization.yaml").write_text(yaml.safe_dump(render_overlay(
            overlay_dir=overlay, image_prefix=self.cluster.image_prefix,
            image_tag=self.cluster.image_tag, agent_replicas=self.settings.agent_replicas),
            sort_keys=False))

    def _install_addons(self) -> None:
        for release in load_charts():
            self._run(self.helm_cmd(release, self.work_dir / "values" / f"{release.name}.yaml"),
                      timeout=self.cluster.helm_timeout + 60)

    def _apply_stack(self) -> None:
        self._stack_touched = True
        self._kubectl("apply", "-k", str(self.work_dir / "stack"))

    def _apply_monitoring(self) -> None:
        self._kubectl("apply", "-f", str(CLUSTER_DIR / "monitors.yaml"))
        self._kubectl("apply", "--server-side", "--field-manager=scalelab", "-f", "-",
                      input=yaml.safe_dump_all(grafana_configmaps(), sort_keys=False))

    def _wait_rollouts(self) -> None:
        ns = self.settings.namespace
        for name in (RABBITMQ_DEPLOYMENT, API_DEPLOYMENT, AGENT_DEPLOYMENT):
            def probe(n: str = name) -> RolloutState:
                return rollout_state(self.api.get_deployment(namespace=ns, name=n))

            wait_for(probe, lambda s: s.complete, what=f"Deployment {ns}/{name} to roll out",
                     expected="all replicas updated and available",
                     timeout=self.cluster.rollout_timeout, interval=2.0,
                     clock=self._clock, sleep=self._sleep,
                     fix=f"kubectl -n {ns} describe deployment {name}; "
                         f"kubectl -n {ns} get events --sort-by=.lastTimestamp")

    def forwards(self) -> list[Forward]:
        ns = self.settings.namespace
        out = [Forward(key="api", namespace=ns, service="api", port=8080),
               _service(self.cluster.prometheus_service, "prometheus"),
               Forward(key="rabbitmq_management", namespace=ns, service="rabbitmq", port=15672),
               Forward(key="amqp", namespace=ns, service="rabbitmq", port=5672)]
        if self.cluster.install_addons:
            out.append(_service(GRAFANA_SERVICE, "grafana"))
        return out

    def _port_forward(self) -> None:
        for fwd in self.forwards():
            local = port_for.select_random()
            cmd = self.kubectl_cmd("port-forward", "--namespace", fwd.namespace,
                                   "--address", "127.0.0.1", f"svc/{fwd.service}",
                                   f"{local}:{fwd.port}")
            log_file = self.work_dir / "logs" / f"port-forward-{fwd.key}.log"
            proc = self._spawn(cmd, log_file=log_file)
            self._forwards[fwd.key] = proc
            self._forward_cmds[fwd.key] = cmd
            self._ports[fwd.key] = local

            def probe(p: kube.Process = proc, port: int = local,
                      f: Path = log_file, svc: str = fwd.service) -> str:
                if not p.running():
                    tail = f.read_text(errors="replace")[-1000:] if f.exists() else ""
                    raise BackendError(f"kubectl port-forward to svc/{svc} exited:\n"
                                       f"{tail}", fix="check the service exists and has "
                                       "ready pods")
                with socket.socket() as s:
                    s.settimeout(1.0)
                    return "open" if s.connect_ex(("127.0.0.1", port)) == 0 else "closed"

            wait_for(probe, lambda state: state == "open",
                     what=f"port-forward 127.0.0.1:{local} -> svc/{fwd.service}:{fwd.port}",
                     expected="open", timeout=self.cluster.port_forward_timeout,
                     interval=0.2, clock=self._clock, sleep=self._sleep)
        p = self._ports
        self._endpoints = Endpoints(
            api=f"http://127.0.0.1:{p['api']}",
            prometheus=f"http://127.0.0.1:{p['prometheus']}",
            rabbitmq_management=f"http://127.0.0.1:{p['rabbitmq_management']}",
            amqp=f"amqp://guest:guest@127.0.0.1:{p['amqp']}/%2F")
        self._watch_stop.clear()
        self._watcher = threading.Thread(target=self._watch_forwards,
                                         name="scalelab-port-forwards", daemon=True)
        self._watcher.start()

    def heal_forwards(self) -> list[str]:
        """Restart every port-forward that exited, on the same local port; return their keys.

        ``kubectl port-forward svc/...`` binds to one pod and exits when that pod goes away,
        so a long experiment would otherwise lose its endpoints mid-run. The endpoints the
        experiment holds stay valid because the local port does not change.
        """
        healed: list[str] = []
        with self._forward_lock:
            for key, proc in list(self._forwards.items()):
                if proc.running():
                    continue
                count = self.forward_restarts.get(key, 0)
                if count >= self.cluster.max_forward_restarts:
                    continue
                self.forward_restarts[key] = count + 1
                log.warning("port-forward %s exited; restarting it (%d of at most %d)", key,
                            count + 1, self.cluster.max_forward_restarts)
                log_file = self.work_dir / "logs" / f"port-forward-{key}.log"
                try:
                    self._forwards[key] = self._spawn(self._forward_cmds[key],
                                                      log_file=log_file)
                except Exception as err:  # noqa: BLE001 - retried on the next check
                    log.warning("restarting port-forward %s: %s", key, err)
                    continue
                healed.append(key)
        return healed

    def _watch_forwards(self) -> None:
        while not self._watch_stop.wait(self.cluster.forward_check_interval):
            try:
                self.heal_forwards()
            except Exception:  # noqa: BLE001 - the watchdog must outlive one bad check
                log.exception("port-forward watchdog")

    # -- observation -------------------------------------------------------------------------
    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise BackendError(f"the {self.name} backend is not up", fix="call up() first")
        return self._endpoints

    @property
    def grafana_url(self) -> str | None:
        """Grafana (admin / scalelab) when the backend installed kube-prometheus-stack."""
        port = self._ports.get("grafana")
        return None if port is None or self._endpoints is None else f"http://127.0.0.1:{port}"

    def replicas(self, deployment: str) -> Replicas:
        doc = self.api.get_deployment(namespace=self.settings.namespace, name=deployment)
        if doc is None:
            raise BackendError(f"Deployment {self.settings.namespace}/{deployment} not found",
                               fix="bring the stack up first (`scalelab up`)")
        return replicas_from_deployment(doc)

    def scaling_events(self, since: float = 0.0) -> list[ScalingEvent]:
        ns = self.settings.namespace
        return scaling_events_from(events=self.api.list_events(namespace=ns),
                                   hpas=self.api.list_hpas(namespace=ns), since=since)

    def diagnostics(self) -> dict[str, Any]:
        ns = self.settings.namespace
        out: dict[str, Any] = {"backend": self.name, "errors": [],
                               "port_forward_restarts": dict(self.forward_restarts)}
        try:
            pods = self.api.list_pods(namespace=ns)
            out["pods"] = [{
                "name": p["metadata"]["name"],
                "phase": (p.get("status") or {}).get("phase"),
                "ready": all(c.get("ready") for c in
                             (p.get("status") or {}).get("containerStatuses") or []),
                "restarts": sum(int(c.get("restartCount", 0)) for c in
                                (p.get("status") or {}).get("containerStatuses") or []),
            } for p in pods]
            out["logs"] = {p["metadata"]["name"]: self.api.pod_log(
                namespace=ns, name=p["metadata"]["name"], tail_lines=50) for p in pods}
        except Exception as err:  # noqa: BLE001 - diagnostics must not fail the report
            out["errors"].append(f"pods: {err}")
        try:
            events = sorted(self.api.list_events(namespace=ns), key=lambda e: event_time(e) or 0)
            out["events"] = [{
                "t": event_time(e), "type": e.get("type"), "reason": e.get("reason"),
                "object": f"{(e.get('involvedObject') or {}).get('kind')}/"
                          f"{(e.get('involvedObject') or {}).get('name')}",
                "message": e.get("message"), "count": e.get("count")} for e in events[-100:]]
            out["hpas"] = {h["metadata"]["name"]: {
                "current": (h.get("status") or {}).get("currentReplicas"),
                "desired": (h.get("status") or {}).get("desiredReplicas"),
                "conditions": hpa_conditions(h)} for h in self.api.list_hpas(namespace=ns)}
        except Exception as err:  # noqa: BLE001
            out["errors"].append(f"events: {err}")
        return out

    def details(self) -> dict[str, Any]:
        c = self.cluster
        return {"cluster": c.cluster_name if self.name == "kind" else None,
                "context": c.context, "kubeconfig": str(self.kubeconfig or "~/.kube/config"),
                "addons_installed_by_scalelab": c.install_addons,
                "images": f"{c.image_prefix + '/' if c.image_prefix else ''}scalelab/*:"
                          f"{c.image_tag}",
                "prometheus_service": c.prometheus_service}

    def versions(self) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            out["kubernetes"] = str(self.api.server_version().get("gitVersion", "unknown"))
        except Exception as err:  # noqa: BLE001
            out["kubernetes"] = f"unknown ({err})"
        for release in load_charts():
            out[f"chart/{release.chart}"] = release.version
        if self.cluster.install_addons or self._which("helm"):
            try:
                cmd = ["helm", "list", "--all-namespaces", "--output", "json"]
                if self.kubeconfig is not None:
                    cmd += ["--kubeconfig", str(self.kubeconfig)]
                if self.cluster.context:
                    cmd += ["--kube-context", self.cluster.context]
                for rel in yaml.safe_load(self._run(cmd, timeout=60).stdout) or []:
                    chart = str(rel.get("chart", ""))
                    name, _, version = chart.rpartition("-")
                    if name:
                        out[f"chart/{name}"] = version
                        out[name] = str(rel.get("app_version", ""))
            except Exception as err:  # noqa: BLE001
                log.warning("helm list: %s", err)
        return out

    # -- control -----------------------------------------------------------------------------
    def apply_scaling(self, manifest: Path) -> list[str]:
        # Parse and check names/namespace first; the API server and KEDA's webhook do the rest.
        load_scaling(Path(manifest), namespace=self.settings.namespace)
        done = self._kubectl("apply", "--namespace", self.settings.namespace,
                             "-f", str(manifest), "-o", "json")
        applied = parse_applied(done.stdout)
        self._applied.extend(applied)
        return [a.ref for a in applied]

    def remove_scaling(self) -> None:
        """Delete the applied objects and wait until no HPA is left (KEDA's is GC'd)."""
        applied, self._applied = self._applied, []
        if not applied:
            return
        ns = self.settings.namespace
        resources = list(dict.fromkeys(a.resource for a in applied))
        self._kubectl("delete", "--namespace", ns, *resources, "--ignore-not-found",
                      "--wait=true", "--timeout=120s", timeout=150)
        wait_for(lambda: [h["metadata"]["name"] for h in self.api.list_hpas(namespace=ns)],
                 lambda names: not names, what=f"HorizontalPodAutoscalers in {ns} to be gone",
                 expected="none", timeout=120.0, interval=1.0, clock=self._clock,
                 sleep=self._sleep)

    def scale(self, deployment: str, replicas: int) -> None:
        self.api.scale_deployment(namespace=self.settings.namespace, name=deployment,
                                  replicas=replicas)

    def purge_queue(self) -> int:
        return purge_queue(self.endpoints.amqp, TASK_QUEUE)


class ExistingBackend(ClusterBackend):
    """The current kubeconfig context; images come from a registry (SCALELAB_IMAGE_PREFIX)."""

    name: ClassVar[str] = "existing"

    def _provision(self) -> None:
        # Fails fast with kubectl's own message when there is no usable context.
        done = self._kubectl("config", "current-context", timeout=30)
        log.info("existing cluster: context %s", self.cluster.context or done.stdout.strip())
        if not self.cluster.image_prefix:
            log.warning("SCALELAB_IMAGE_PREFIX is not set: the nodes must already have "
                        "%s and %s", image_ref(API_DEPLOYMENT), image_ref(AGENT_DEPLOYMENT))


class KindBackend(ClusterBackend):
    """A kind cluster created (and deleted) by pytest-kind's ``KindCluster``."""

    name: ClassVar[str] = "kind"

    def __init__(self, *, cluster_factory: Callable[..., Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if cluster_factory is None:
            from pytest_kind import KindCluster

            cluster_factory = KindCluster
        self._cluster_factory = cluster_factory
        self._kind: Any = None

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.work_dir / self.cluster.cluster_name / "kubeconfig"

    def _required_binaries(self) -> tuple[str, ...]:
        # kind and kubectl are downloaded by pytest-kind when missing (docs/kind.md).
        return ("docker", "helm")

    def check_inputs(self) -> None:
        super().check_inputs()
        if self.cluster.context:
            raise ConfigError("a kind cluster has its own context", field="SCALELAB_KUBE_CONTEXT",
                              fix="unset SCALELAB_KUBE_CONTEXT or use --backend existing")
        if self._which("kind") is None:
            from pytest_kind import cluster as pk

            if _parse_version(pk.KIND_VERSION) < MIN_KIND_VERSION:
                want = ".".join(map(str, MIN_KIND_VERSION))
                raise MissingDependencyError(
                    f"kind is not on PATH and pytest-kind would download kind "
                    f"{pk.KIND_VERSION}, too old for {self.cluster.node_image}",
                    fix=f"install kind >= v{want} on PATH, or export KIND_VERSION=v{want} "
                        "before starting scalelab")

    def _render(self) -> None:
        super()._render()
        (self.work_dir / "kind-config.yaml").write_text(render_kind_config(
            timing=self.settings.timing, cluster_name=self.cluster.cluster_name,
            node_image=self.cluster.node_image))

    def _provision(self) -> None:
        kind_path, kubectl_path = self._which("kind"), self._which("kubectl")
        self._kind = self._cluster_factory(
            name=self.cluster.cluster_name, kubeconfig=self.kubeconfig,
            kind_path=Path(kind_path) if kind_path else None,
            kubectl_path=Path(kubectl_path) if kubectl_path else None)
        # Creates the cluster, or re-uses one of that name (SCALELAB_KEEP_CLUSTER).
        self._kind.create(config_file=self.work_dir / "kind-config.yaml")
        if kubectl_path is None:
            self._kind.ensure_kubectl()
        self.kubectl = str(kubectl_path or self._kind.kubectl_path)
        for deployment in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            image = image_ref(deployment, prefix=self.cluster.image_prefix,
                              tag=self.cluster.image_tag)
            self._run(["docker", "build", "--tag", image, "--file", str(IMAGES[deployment][1]),
                       str(paths.ROOT)], timeout=1800)
        for deployment in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            self._kind.load_docker_image(image_ref(deployment, prefix=self.cluster.image_prefix,
                                                   tag=self.cluster.image_tag))

    def _teardown_cluster(self) -> None:
        kind, self._kind = self._kind, None
        if kind is None:
            return
        if self.cluster.keep_cluster:
            self._delete_namespace()
            return
        self._stack_touched = False
        kind.delete()


def make_cluster_backend(name: str, *, settings: StackSettings) -> Backend:
    """The ``kind`` or ``existing`` backend, configured from ``SCALELAB_*`` variables."""
    cluster = ClusterSettings.from_env()
    if name == "kind":
        return KindBackend(settings=settings, cluster=cluster)
    if name == "existing":
        return ExistingBackend(settings=settings, cluster=cluster)
    raise ConfigError(f"unknown cluster backend {name!r}", field="--backend",
                      fix="use kind or existing")
