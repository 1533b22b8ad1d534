"""What the cluster backends render from the timing profile (pure): kind config, Helm values,
the kustomize overlay over manifests/base and the Grafana dashboard ConfigMaps."""

from __future__ import annotations

import copy
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import port_for
import yaml

from scalelab.backends.cluster.settings import (
    API_NODE_PORT,
    BASE_DIR,
    BASE_NAMESPACE,
    CLUSTER_DIR,
    DASHBOARD_LABEL,
    DEFAULT_NODE_IMAGE,
    GRAFANA_DIR,
    GRAFANA_USER,
    IMAGE_TAG,
    IMAGES,
    MONITORING_NAMESPACE,
    PART_OF,
    RUN_ID_LABEL,
)
from scalelab.errors import ConfigError
from scalelab.settings import (
    AGENT_DEPLOYMENT,
    API_DEPLOYMENT,
    TimingProfile,
)

log = logging.getLogger(__name__)

#: The API Service's port in manifests/base (api.yaml).
API_PORT = 8080


# -- rendering (pure) ----------------------------------------------------------------------
def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String()`` prints it: "5s", "1m30s", "5m0s",
    "1.5s", "500ms", "0s" (go src/time/time.go, ``func (d Duration) String``: hours, minutes
    and seconds with the leading zero units left out and the fraction of a second without
    trailing zeros; under a second, the largest of ms, µs, ns that keeps a non-zero leading
    digit).

    The form the Go components print their own flags in (kube-controller-manager's
    ``Default: 5m0s``), which their ``time.ParseDuration`` reads back exactly. Prometheus
    durations have no fractions: see ``prometheus_duration``.
    """
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    nanos = round(seconds * 1_000_000_000)
    if nanos == 0:
        return "0s"
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if nanos >= size:
                return _with_fraction(nanos, size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _with_fraction(rest, 1_000_000_000) + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    return f"{hours}h{text}" if hours else text


def _with_fraction(count: int, size: int) -> str:
    """``count / size`` in decimal without trailing zeros ("1.5", "30"); size a power of 10."""
    whole, frac = divmod(count, size)
    digits = str(frac).rjust(len(str(size)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def prometheus_duration(seconds: float) -> str:
    """A duration Prometheus and the operator's CRDs accept: whole seconds ("5s") or whole
    milliseconds ("2500ms"). Prometheus' grammar (prometheus/common model.ParseDuration; the
    operator's ``Duration`` pattern ``^(0|(([0-9]+)y)?...(([0-9]+)ms)?)$``) has integer units
    only, so Go's "2.5s" would be refused."""
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
        "scrape_interval": prometheus_duration(timing.scrape_interval),
        "metrics_window": go_duration(timing.metrics_window),
        "hpa_sync_period": go_duration(timing.hpa_sync_period),
        "hpa_tolerance": f"{timing.hpa_tolerance:g}",
        "hpa_cpu_initialization_period": go_duration(timing.hpa_cpu_initialization_period),
        "hpa_initial_readiness_delay": go_duration(timing.hpa_initial_readiness_delay),
        "hpa_downscale_stabilization": go_duration(timing.hpa_downscale_stabilization),
    }


def render_kind_config(*, timing: TimingProfile, cluster_name: str = "scalelab",
                       node_image: str = DEFAULT_NODE_IMAGE, api_host_port: int | None = None,
                       api_node_port: int = API_NODE_PORT) -> str:
    """The kind cluster config (kind.x-k8s.io/v1alpha4) for a timing profile.

    ``api_host_port``: the 127.0.0.1 port of the host mapped to the API's NodePort
    (``extraPortMappings``); None renders no mapping.
    """
    check_timing(timing)
    return _jinja().get_template("kind-config.yaml.j2").render(
        cluster_name=cluster_name, node_image=node_image,
        api_host_port=api_host_port, api_node_port=api_node_port,
        profile_name=", ".join(f"{k}={v:g}" for k, v in timing.as_dict().items()),
        **timing_context(timing))


#: Where the kind backend keeps the host port it mapped to the API's NodePort.
API_HOST_PORT_FILE = "api-host-port"


def api_host_port(work_dir: Path) -> int:
    """The host port of the kind cluster's API NodePort mapping: the one stored in
    ``work_dir`` (a reused cluster keeps the mapping it was created with), else a free
    one, stored for the next run."""
    stored = work_dir / API_HOST_PORT_FILE
    if stored.is_file():
        text = stored.read_text().strip()
        if text.isdigit() and 0 < int(text) < 65536:
            return int(text)
        log.warning("%s holds %r, not a port; picking a new one", stored, text)
    port = port_for.select_random()
    work_dir.mkdir(parents=True, exist_ok=True)
    stored.write_text(f"{port}\n")
    return port


def grafana_login() -> tuple[str, str]:
    """Grafana's user and password as kube-prometheus-stack is installed with them (the
    values template's ``grafana.adminPassword``; the chart's default user ``admin``)."""
    (kps,) = [r for r in load_charts() if r.chart == "kube-prometheus-stack"]
    values = yaml.safe_load((CLUSTER_DIR / kps.values).read_text())
    return GRAFANA_USER, str(values["grafana"]["adminPassword"])


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


def run_namespace(run_id: str) -> str:
    """``scalelab-<suffix>``: a run's own namespace on an existing cluster. The suffix is
    the run id's last part (``record.new_run_id``: its random hex), lower-cased."""
    parts = [p for p in re.split(r"[^a-z0-9]+", run_id.lower()) if p]
    if not parts:
        raise ConfigError(f"run id {run_id!r} has no letters or digits",
                          field="SCALELAB_RUN_ID", fix="use e.g. 20250101T120000Z-ab12cd")
    return f"scalelab-{parts[-1][:40]}"


def namespace_env_patches(namespace: str) -> list[dict[str, Any]]:
    """kustomize patches that move the in-cluster service URLs of manifests/base's env
    (``<svc>.scalelab.svc...``) into ``namespace``.

    kustomize's ``namespace:`` moves the objects but not strings inside env values, so
    each such value is replaced, with a JSON-patch ``test`` of the old value first: a
    base changed under the overlay fails loudly instead of patching the wrong entry.
    """
    if namespace == BASE_NAMESPACE:
        return []
    needle = f".{BASE_NAMESPACE}.svc"
    patches: list[dict[str, Any]] = []
    for path in sorted(BASE_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("Deployment", "StatefulSet"):
                continue
            ops: list[dict[str, Any]] = []
            pod = doc["spec"]["template"]["spec"]
            for ci, container in enumerate(pod.get("containers") or []):
                for ei, env in enumerate(container.get("env") or []):
                    value = env.get("value")
                    if isinstance(value, str) and needle in value:
                        at = f"/spec/template/spec/containers/{ci}/env/{ei}/value"
                        ops += [{"op": "test", "path": at, "value": value},
                                {"op": "replace", "path": at,
                                 "value": value.replace(needle, f".{namespace}.svc")}]
            if ops:
                patches.append({
                    "target": {"kind": doc["kind"], "name": doc["metadata"]["name"]},
                    "patch": yaml.safe_dump(ops, sort_keys=False)})
    return patches


def service_url(spec: str) -> str:
    """``namespace/service:port`` (``SCALELAB_PROMETHEUS_SERVICE``) as the in-cluster URL
    a pod reaches it by: ``http://service.namespace.svc:port``."""
    namespace, rest = spec.split("/", 1)
    name, port = rest.rsplit(":", 1)
    return f"http://{name}.{namespace}.svc:{port}"


def prometheus_url_patches(url: str) -> list[dict[str, Any]]:
    """A kustomize patch pointing the api's ``PROMETHEUS_URL`` (its live view's queries,
    docs/frontend.md) at ``url``, when it is not manifests/base's (the kps release); with a
    JSON-patch ``test`` of the old value, as ``namespace_env_patches``."""
    found = [(path, doc) for path in sorted(BASE_DIR.glob("*.yaml"))
             for doc in yaml.safe_load_all(path.read_text())
             if doc and doc.get("kind") == "Deployment"
             and doc["metadata"]["name"] == API_DEPLOYMENT]
    assert found, f"no {API_DEPLOYMENT} Deployment under {BASE_DIR}"
    path, base = found[0]
    for ci, container in enumerate(base["spec"]["template"]["spec"]["containers"]):
        for ei, env in enumerate(container.get("env") or []):
            if env.get("name") != "PROMETHEUS_URL":
                continue
            if env.get("value") == url:
                return []
            at = f"/spec/template/spec/containers/{ci}/env/{ei}/value"
            return [{"target": {"kind": "Deployment", "name": API_DEPLOYMENT},
                     "patch": yaml.safe_dump([{"op": "test", "path": at, "value": env["value"]},
                                              {"op": "replace", "path": at, "value": url}],
                                             sort_keys=False)}]
    raise ConfigError("the api Deployment has no PROMETHEUS_URL env", file=str(path),
                      field="spec.template.spec.containers[0].env",
                      fix="add PROMETHEUS_URL (the live view's Prometheus)")


def in_namespace(docs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Copies of manifests (written for ``scalelab``) with ``metadata.namespace`` set to the
    stack's namespace, to apply into a run's own namespace."""
    out = []
    for doc in docs:
        if not doc:
            continue
        doc = copy.deepcopy(doc)
        doc.setdefault("metadata", {})["namespace"] = namespace
        out.append(doc)
    return out


def render_overlay(*, overlay_dir: Path, image_prefix: str = "", image_tag: str = IMAGE_TAG,
                   agent_replicas: int | None = None, namespace: str = BASE_NAMESPACE,
                   run_id: str = "", api_node_port: int | None = None,
                   prometheus_url: str | None = None) -> dict[str, Any]:
    """A kustomization over manifests/base: image names, the agent's replica count, the
    stack's namespace (kustomize's ``namespace:`` renames the Namespace too) labelled with
    the run id, on kind the API Service as a NodePort (``api_node_port``), and the api's
    Prometheus when the cluster's is not the kps release (``prometheus_url``).

    manifests/base itself stays as the local backend reads it.
    """
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE_DIR, overlay_dir)],
    }
    patches: list[dict[str, Any]] = []
    if namespace != BASE_NAMESPACE:
        kustomization["namespace"] = namespace
        patches += namespace_env_patches(namespace)
    if prometheus_url is not None:
        patches += prometheus_url_patches(prometheus_url)
    if run_id:
        patches.append({
            "target": {"kind": "Namespace", "name": BASE_NAMESPACE},
            "patch": yaml.safe_dump([{"op": "add", "path": "/metadata/labels/"
                                      + RUN_ID_LABEL.replace("/", "~1"),
                                      "value": run_id}], sort_keys=False)})
    if api_node_port is not None:
        # Strategic merge: Service ports merge on "port", so only nodePort is added.
        patches.append({
            "target": {"kind": "Service", "name": API_DEPLOYMENT},
            "patch": yaml.safe_dump({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": API_DEPLOYMENT, "namespace": BASE_NAMESPACE},
                "spec": {"type": "NodePort",
                         "ports": [{"port": API_PORT, "nodePort": api_node_port}]}},
                sort_keys=False)})
    if patches:
        kustomization["patches"] = patches
    if image_prefix or image_tag != IMAGE_TAG:
        kustomization["images"] = [
            {"name": IMAGES[d][0],
             "newName": image_ref(d, prefix=image_prefix).rsplit(":", 1)[0],
             "newTag": image_tag}
            for d in (API_DEPLOYMENT, AGENT_DEPLOYMENT)]
    if agent_replicas is not None:
        kustomization["replicas"] = [{"name": AGENT_DEPLOYMENT, "count": agent_replicas}]
    return kustomization
