"""What the cluster backends render from the timing profile (pure): kind config, Helm values,
the kustomize overlay over manifests/base and the Grafana dashboard ConfigMaps."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from scalelab.backends.cluster.settings import (
    BASE_DIR,
    CLUSTER_DIR,
    DASHBOARD_LABEL,
    DEFAULT_NODE_IMAGE,
    GRAFANA_DIR,
    IMAGE_TAG,
    IMAGES,
    MONITORING_NAMESPACE,
    PART_OF,
)
from scalelab.errors import ConfigError
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
    TimingProfile,
)

log = logging.getLogger(__name__)


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
