"""Settings of the cluster backends: pinned versions, names, and ``SCALELAB_*`` variables."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from scalelab import paths
from scalelab.errors import ConfigError
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
    NAMESPACE,
)

log = logging.getLogger(__name__)


CLUSTER_DIR = paths.MANIFESTS / "cluster"
GRAFANA_DIR = paths.MANIFESTS / "grafana"
BASE_DIR = paths.MANIFESTS / "base"
#: The namespace manifests/base hard-codes (service URLs in the env carry it too).
BASE_NAMESPACE = NAMESPACE
MONITORING_NAMESPACE = "monitoring"
RABBITMQ_DEPLOYMENT = "rabbitmq"
#: kind node image, pinned by digest exactly as kind v0.25.0's release notes publish it
#: ("Images pre-built for this release", github.com/kubernetes-sigs/kind/releases/tag/v0.25.0;
#: kind: "You *must* use the @sha256 digest to guarantee an image built for this release").
#: Kubernetes 1.30 keeps kubeadm v1beta3, whose extraArgs is a string map
#: (manifests/cluster/kind-config.yaml.j2); KEDA 2.16 supports Kubernetes 1.29 - 1.31.
DEFAULT_NODE_IMAGE = ("kindest/node:v1.30.6@sha256:"
                      "b6d08db72079ba5ae1f4a88a09025c0a904af3b52387643c285442afb05ab994")
#: The kind release that published DEFAULT_NODE_IMAGE, installed by CI and named in errors.
KIND_VERSION = "v0.25.0"
#: kind versions accepted with DEFAULT_NODE_IMAGE: [low, high). kind supports a node image
#: "with the kind version they were released with (and best effort with other releases)"
#: (kind.sigs.k8s.io/docs/design/node-image), so: the v0.25 releases only.
KIND_VERSIONS = ((0, 25, 0), (0, 26, 0))
#: helm: major version 3 (charts installed with `helm upgrade --install --repo`; 3.8 made
#: OCI support GA and is the oldest 3.x the docs name). Helm 4 is refused until tested.
HELM_VERSIONS = ((3, 8, 0), (4, 0, 0))
#: kubectl: within one minor version of the node's Kubernetes 1.30 at the low end (the
#: Kubernetes version-skew policy, kubernetes.io/releases/version-skew-policy/#kubectl).
#: No upper bound is enforced: a newer kubectl is reported as a skew warning only.
KUBECTL_MIN_VERSION = (1, 29, 0)
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
#: Grafana's login: kube-prometheus-stack's default admin user; the password is the
#: values template's grafana.adminPassword (read from there, cluster.render.grafana_login).
GRAFANA_USER = "admin"
#: kind: the API Service is a NodePort on this port of the control-plane node, mapped to a
#: free 127.0.0.1 port of the host (extraPortMappings), so Locust's load does not go through
#: a `kubectl port-forward` (kubernetes/kubernetes#78446: forwards stall under load).
API_NODE_PORT = 30080
#: The Namespace label carrying the run id (one namespace per run on existing clusters).
RUN_ID_LABEL = "scalelab.io/run-id"

# -- settings --------------------------------------------------------------------------------
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


def _env_count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{raw!r} is not a positive whole number", field=name,
                          fix=f"set {name} to e.g. {default}")
    return int(raw)


#: A Kubernetes namespace name: an RFC 1123 label.
NAMESPACE_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _env_namespace(env: Mapping[str, str]) -> str | None:
    raw = env.get("SCALELAB_NAMESPACE")
    if not raw:
        return None
    if not NAMESPACE_RE.fullmatch(raw):
        raise ConfigError(f"{raw!r} is not a namespace name", field="SCALELAB_NAMESPACE",
                          fix="lower-case letters, digits and '-', at most 63, e.g. "
                              "scalelab-me")
    return raw


def _env_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{raw!r} is not an http(s) URL", field=name,
                          fix=f"e.g. {name}=http://192.168.49.2:30080")
    return raw.rstrip("/")


@dataclass(frozen=True, kw_only=True)
class ClusterSettings:
    """How the cluster backends reach and build the cluster (``SCALELAB_*`` variables)."""

    #: kind cluster name (SCALELAB_KIND_CLUSTER).
    cluster_name: str = "scalelab"
    #: kind node image (SCALELAB_KIND_NODE_IMAGE).
    node_image: str = DEFAULT_NODE_IMAGE
    #: existing: kubeconfig context (SCALELAB_KUBE_CONTEXT; default: the current context).
    context: str | None = None
    #: existing: the kubeconfig files of KUBECONFIG, in order (os.pathsep-separated, merged
    #: as kubectl merges them); empty: kubectl's ~/.kube/config.
    kubeconfig: tuple[Path, ...] = ()
    #: The stack's namespace (SCALELAB_NAMESPACE). Default: kind ``scalelab``; existing
    #: ``scalelab-<run id suffix>``, one per run, labelled with the run id, deleted on exit.
    namespace: str | None = None
    #: The run this bring-up belongs to (SCALELAB_RUN_ID; default: a new run id).
    run_id: str = ""
    #: existing: the API's URL as the user exposed it (SCALELAB_API_URL: a NodePort,
    #: LoadBalancer or Ingress URL); Locust's load then skips `kubectl port-forward`.
    api_url: str | None = None
    #: Registry path the images are pulled from (SCALELAB_IMAGE_PREFIX), e.g.
    #: ``ghcr.io/me`` -> ``ghcr.io/me/scalelab/api:dev``. Empty: the local names.
    image_prefix: str = ""
    #: Image tag (SCALELAB_IMAGE_TAG).
    image_tag: str = IMAGE_TAG
    #: Install metrics-server, kube-prometheus-stack and KEDA (SCALELAB_INSTALL_ADDONS).
    install_addons: bool = True
    #: kind: keep the cluster on ``down()``, delete only the namespace (SCALELAB_KEEP_CLUSTER).
    keep_cluster: bool = False
    #: kind: delete and recreate a cluster of that name left by an earlier run
    #: (SCALELAB_RECREATE_CLUSTER); without it, or keep_cluster, such a cluster is refused.
    recreate_cluster: bool = False
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
    #: A running forward that fails this many probes in a row (an HTTP GET or the AMQP
    #: header, each bounded by the probe timeout) is stalled and restarted
    #: (SCALELAB_FORWARD_PROBE_FAILURES, SCALELAB_FORWARD_PROBE_TIMEOUT).
    forward_probe_failures: int = 3
    forward_probe_timeout: float = 3.0
    #: Readiness after the rollouts (cluster/readiness.py): how long the metrics
    #: APIServices may take to be Available (SCALELAB_APISERVICE_TIMEOUT), and Prometheus to
    #: scrape every expected target with a stored sample (SCALELAB_SCRAPE_READY_TIMEOUT;
    #: the operator's config reload alone can take a minute), polled every interval.
    apiservice_timeout: float = 180.0
    scrape_ready_timeout: float = 300.0
    readiness_interval: float = 2.0

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
            kubeconfig=tuple(Path(p) for p in env.get("KUBECONFIG", "").split(os.pathsep)
                             if p),
            namespace=_env_namespace(env),
            run_id=env.get("SCALELAB_RUN_ID") or "",
            api_url=_env_url(env, "SCALELAB_API_URL"),
            image_prefix=env.get("SCALELAB_IMAGE_PREFIX", ""),
            image_tag=env.get("SCALELAB_IMAGE_TAG") or d.image_tag,
            install_addons=_env_bool(env, "SCALELAB_INSTALL_ADDONS", d.install_addons),
            keep_cluster=_env_bool(env, "SCALELAB_KEEP_CLUSTER", d.keep_cluster),
            recreate_cluster=_env_bool(env, "SCALELAB_RECREATE_CLUSTER", d.recreate_cluster),
            prometheus_service=prom,
            work_dir=Path(env["SCALELAB_CLUSTER_WORKDIR"])
            if env.get("SCALELAB_CLUSTER_WORKDIR") else d.work_dir,
            rollout_timeout=_env_float(env, "SCALELAB_ROLLOUT_TIMEOUT", d.rollout_timeout),
            helm_timeout=_env_float(env, "SCALELAB_HELM_TIMEOUT", d.helm_timeout),
            port_forward_timeout=d.port_forward_timeout,
            forward_probe_timeout=_env_float(env, "SCALELAB_FORWARD_PROBE_TIMEOUT",
                                             d.forward_probe_timeout),
            forward_probe_failures=_env_count(env, "SCALELAB_FORWARD_PROBE_FAILURES",
                                              d.forward_probe_failures),
            apiservice_timeout=_env_float(env, "SCALELAB_APISERVICE_TIMEOUT",
                                          d.apiservice_timeout),
            scrape_ready_timeout=_env_float(env, "SCALELAB_SCRAPE_READY_TIMEOUT",
                                            d.scrape_ready_timeout),
        )
