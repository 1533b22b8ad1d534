"""``--backend existing``: a cluster the user already has (the current kubeconfig context).

What differs from kind:

* KUBECONFIG may name several files (os.pathsep-separated): they go to kubectl and helm
  through the environment, and to the kubernetes client as KUBECONFIG's string, which its
  ``KubeConfigMerger`` merges as kubectl does (``ClusterBackend.kube_env``).
* Each run gets its own namespace, ``scalelab-<run id suffix>``, labelled with the run id
  and deleted on exit (``ClusterBackend.per_run_namespace``).
* Addons the cluster already runs are used, never installed a second time: a second
  metrics-server or KEDA would fight over the ``v1beta1.metrics.k8s.io`` /
  ``v1beta1.external.metrics.k8s.io`` APIServices, a second Prometheus operator over the
  monitoring CRs (``plan_addons``).
* The API is port-forwarded, with the watchdog's stall probe, unless SCALELAB_API_URL
  gives a URL that reaches it directly.
* Docker Desktop's Kubernetes (context ``docker-desktop``): the images Docker builds are
  the node's images, so they are built locally and need no registry (``imagePullPolicy:
  IfNotPresent`` in manifests/base); metrics-server runs with ``--kubelet-insecure-tls``
  as on kind (manifests/cluster/values/metrics-server.yaml.j2 always passes it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from scalelab import paths
from scalelab.backends.cluster.backend import ClusterBackend
from scalelab.backends.cluster.render import ChartRelease, image_ref, load_charts
from scalelab.backends.cluster.settings import DEFAULT_PROMETHEUS_SERVICE, IMAGES
from scalelab.errors import ConfigError
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
)

log = logging.getLogger(__name__)

#: Docker Desktop's Kubernetes context, and its single node in kubeadm provisioning (the
#: one that runs on Docker's own image store).
DOCKER_DESKTOP_CONTEXT = "docker-desktop"
DOCKER_DESKTOP_NODE = "node/docker-desktop"

#: The APIService each pinned chart registers, and the Service its chart serves it from
#: (metrics-server chart: the release's fullname; KEDA chart 2.16:
#: keda/templates/metrics-server/apiservice.yaml, service keda-operator-metrics-apiserver).
APISERVICES: dict[str, tuple[str, str]] = {
    "metrics-server": ("v1beta1.metrics.k8s.io", "metrics-server"),
    "keda": ("v1beta1.external.metrics.k8s.io", "keda-operator-metrics-apiserver"),
}
#: The CRD a Prometheus operator brings (kube-prometheus-stack installs one).
OPERATOR_CRD = "prometheuses.monitoring.coreos.com"


@dataclass(frozen=True, kw_only=True)
class AddonPlan:
    """Which pinned releases to install, and why the others are left to the cluster."""

    install: list[ChartRelease]
    skipped: dict[str, str]


def _chart_name(release: dict[str, Any]) -> str:
    """``helm list``'s ``chart`` is ``<name>-<version>``."""
    return str(release.get("chart", "")).rpartition("-")[0]


def plan_addons(charts: Sequence[ChartRelease], *, apiservices: dict[str, dict[str, Any]],
                helm_releases: Sequence[dict[str, Any]], crds: set[str]) -> AddonPlan:
    """Install a pinned release unless the cluster already runs that addon otherwise.

    A release of ours (same name, namespace and chart) from an earlier run is upgraded.
    Anything else that provides the addon wins: a Helm release of the same chart under
    another name or namespace; the addon's APIService served by a Service while no release
    of ours exists (e.g. metrics-server from its components.yaml, or prometheus-adapter
    serving external metrics); for kube-prometheus-stack, a Prometheus operator's CRD.
    """
    install: list[ChartRelease] = []
    skipped: dict[str, str] = {}
    for chart in charts:
        ours = [r for r in helm_releases if r.get("name") == chart.name
                and r.get("namespace") == chart.namespace and _chart_name(r) == chart.chart]
        theirs = [r for r in helm_releases if _chart_name(r) == chart.chart and r not in ours]
        reason = None
        if theirs:
            r = theirs[0]
            reason = (f"Helm release {r.get('namespace')}/{r.get('name')} ({r.get('chart')}) "
                      "already provides it")
        elif not ours and chart.name in APISERVICES:
            name, _ = APISERVICES[chart.name]
            service = ((apiservices.get(name) or {}).get("spec") or {}).get("service")
            if service:
                reason = (f"APIService {name} is already served by "
                          f"{service.get('namespace')}/{service.get('name')}")
        elif not ours and chart.chart == "kube-prometheus-stack" and OPERATOR_CRD in crds:
            reason = f"a Prometheus operator is already installed (CRD {OPERATOR_CRD})"
        if reason is None:
            install.append(chart)
        else:
            skipped[chart.name] = reason
    return AddonPlan(install=install, skipped=skipped)


class ExistingBackend(ClusterBackend):
    """The current kubeconfig context (or SCALELAB_KUBE_CONTEXT); images from a registry
    (SCALELAB_IMAGE_PREFIX), or built locally on Docker Desktop."""

    name: ClassVar[str] = "existing"
    #: Helm installs (up to three charts), rollouts and the scrape readiness wait.
    bring_up_timeout: ClassVar[float] = 2400.0
    per_run_namespace: ClassVar[bool] = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The context in use (SCALELAB_KUBE_CONTEXT or the current one), once provisioned.
        self.context_name: str | None = self.cluster.context
        #: Pinned addons left to what the cluster already runs, with the reason.
        self.skipped_addons: dict[str, str] = {}

    @property
    def docker_desktop(self) -> bool:
        return self.context_name == DOCKER_DESKTOP_CONTEXT

    @property
    def direct_api_url(self) -> str | None:
        return self.cluster.api_url

    def _provision(self) -> None:
        # Fails fast with kubectl's own message when there is no usable context.
        done = self._kubectl("config", "current-context", timeout=30)
        self.context_name = self.cluster.context or done.stdout.strip()
        log.info("existing cluster: context %s, namespace %s", self.context_name,
                 self.settings.namespace)
        if self.docker_desktop:
            self._build_for_docker_desktop()
        elif not self.cluster.image_prefix:
            log.warning("SCALELAB_IMAGE_PREFIX is not set: the nodes must already have "
                        "%s and %s", image_ref(API_DEPLOYMENT), image_ref(AGENT_DEPLOYMENT))

    def _build_for_docker_desktop(self) -> None:
        """Docker Desktop's kubeadm cluster runs on Docker's image store: build the images
        there; ``imagePullPolicy: IfNotPresent`` then never pulls them."""
        nodes = self._kubectl("get", "nodes", "--output", "name", timeout=30).stdout.split()
        if nodes != [DOCKER_DESKTOP_NODE] and not self.cluster.image_prefix:
            log.warning("context docker-desktop has nodes %s, not Docker Desktop's kubeadm "
                        "node %s: with its kind provisioning the nodes do not see Docker's "
                        "images. Choose Kubeadm (Settings > Kubernetes) or set "
                        "SCALELAB_IMAGE_PREFIX to a registry", nodes, DOCKER_DESKTOP_NODE)
        for deployment in (API_DEPLOYMENT, AGENT_DEPLOYMENT):
            image = image_ref(deployment, prefix=self.cluster.image_prefix,
                              tag=self.cluster.image_tag)
            self._run(["docker", "build", "--tag", image, "--file", str(IMAGES[deployment][1]),
                       str(paths.ROOT)], timeout=1800)

    def _apiservices(self) -> dict[str, dict[str, Any]]:
        names = [name for name, _ in APISERVICES.values()]
        out = self._kubectl("get", "apiservice", *names, "--ignore-not-found",
                            "--output", "json", timeout=60).stdout.strip()
        if not out:
            return {}
        doc = json.loads(out)
        items = doc.get("items", [doc]) if isinstance(doc, dict) else []
        return {str(i["metadata"]["name"]): i for i in items if i.get("metadata")}

    def _crds(self) -> set[str]:
        out = self._kubectl("get", "crd", OPERATOR_CRD, "--ignore-not-found", "--output",
                            "name", timeout=60).stdout
        return {line.rpartition("/")[2] for line in out.split()}

    def addon_releases(self) -> list[ChartRelease]:
        """The pinned releases minus what the cluster already runs (``plan_addons``)."""
        plan = plan_addons(load_charts(), apiservices=self._apiservices(),
                           helm_releases=self.helm_releases(), crds=self._crds())
        self.skipped_addons = plan.skipped
        for name, reason in plan.skipped.items():
            log.warning("existing cluster: not installing %s: %s; using it", name, reason)
        if "kps" in plan.skipped and \
                self.cluster.prometheus_service == DEFAULT_PROMETHEUS_SERVICE:
            raise ConfigError(
                f"the cluster has its own Prometheus stack ({plan.skipped['kps']}), so "
                f"scalelab's {DEFAULT_PROMETHEUS_SERVICE} will not exist",
                field="SCALELAB_PROMETHEUS_SERVICE",
                fix="set SCALELAB_PROMETHEUS_SERVICE=<namespace>/<service>:<port> of its "
                    "Prometheus, e.g. monitoring/prometheus-operated:9090")
        return plan.install

    def details(self) -> dict[str, Any]:
        out = super().details()
        out["context"] = self.context_name
        out["docker_desktop"] = self.docker_desktop
        if self.skipped_addons:
            out["addons_from_the_cluster"] = dict(self.skipped_addons)
        return out
