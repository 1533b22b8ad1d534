"""The custom-resource schemas that travel with an install (``scalelab.crds``).

ScaledObjects, TriggerAuthentications, PodMonitors and ServiceMonitors are validated from the
cloudcoil model packages on PyPI, so no ``../shared`` is needed. These tests check that the
packages are the releases the pinned charts install (field inventory read from the upstream
CRDs of KEDA 2.16.0 and prometheus-operator v0.78.2, ``data/crd_fields.yaml``), that the
shipped manifests pass and bad ones fail with file, field and fix, and, where
``../shared/reference`` exists, that the fields the project uses mean the same there.
Contract tests, not a cluster: no API server is involved.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from scalelab import crds
from scalelab.backends.cluster.render import load_charts, render_values
from scalelab.backends.cluster.settings import CLUSTER_DIR
from scalelab.errors import ConfigError, MissingDependencyError
from scalelab.paths import SCALING_MANIFESTS, SHARED_REFERENCE
from scalelab.scaling_manifests import validate_scaling
from scalelab.settings import TimingProfile

DATA = Path(__file__).parent / "data" / "crd_fields.yaml"
MONITORS = CLUSTER_DIR / "monitors.yaml"
KINDS = list(crds.SOURCES)
IDS = [kind for _, kind in KINDS]
#: The reference checkout's CRD of each kind (a newer upstream than the pinned charts).
REFERENCE_FILES = {
    "ScaledObject": "keda/keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda/keda.sh_triggerauthentications.yaml",
    "PodMonitor": "prometheus-operator/monitoring.coreos.com_podmonitors.yaml",
    "ServiceMonitor": "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
}
#: A TriggerAuthentication as the KEDA docs show one reading a Secret (RabbitMQ ``host``).
TRIGGER_AUTH = {
    "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
    "metadata": {"name": "rabbitmq", "namespace": "scalelab"},
    "spec": {"secretTargetRef": [{"parameter": "host", "name": "rabbitmq-credentials",
                                  "key": "management-url"}]},
}


# -- the field inventory: path -> "type [required] [enum=a|b]" ------------------------------

def _type(schema: Mapping[str, Any], node: Mapping[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    if "type" in node:
        return str(node["type"])
    types = {crds.resolve(schema, alt).get("type") for alt in node.get("anyOf", [])}
    return "int-or-string" if types == {"integer", "string"} else "|".join(sorted(map(str, types)))


def inventory(schema: Mapping[str, Any]) -> dict[str, str]:
    """Every property path under ``spec`` with its type, required-ness and enum values.

    Works on a CRD's ``openAPIV3Schema`` and on ``crds.schema()`` (``$ref``s followed), so
    the two can be compared; maps are spelled ``path{}``, list items ``path[]``.
    """
    out: dict[str, str] = {}

    def walk(node: Mapping[str, Any], at: str, required: bool) -> None:
        node = crds.resolve(schema, node)
        enum = node.get("enum") or ([node["const"]] if "const" in node else None)
        out[at] = " ".join([_type(schema, node), *(["required"] if required else []),
                            *([f"enum={'|'.join(sorted(map(str, enum)))}"] if enum else [])])
        needed = set(node.get("required", []))
        for name, sub in sorted((node.get("properties") or {}).items()):
            walk(sub, f"{at}.{name}", name in needed)
        if "items" in node:
            walk(node["items"], f"{at}[]", False)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{at}{{}}", False)

    root = crds.resolve(schema, schema)
    walk(root["properties"]["spec"], "spec", "spec" in root.get("required", []))
    return out


def _pinned() -> dict[str, Any]:
    return yaml.safe_load(DATA.read_text())


# -- the packages are the pinned charts' releases --------------------------------------------

def test_packages_are_the_releases_the_pinned_charts_install() -> None:
    charts = {r.name: r for r in load_charts()}
    keda_chart = charts["keda"].version
    kps_chart = charts["kps"].version
    data = _pinned()
    for (api_version, kind), src in crds.SOURCES.items():
        installed = metadata.version(src.distribution)
        assert installed.startswith(src.series), (src.distribution, installed)
        read_from = data["kinds"][f"{api_version} {kind}"]["read_from"]
        if src.api_version.startswith("keda.sh"):
            # keda chart and app versions are the same number (kedacore/charts keda/Chart.yaml)
            assert src.upstream == f"KEDA {keda_chart}"
            assert f"v{keda_chart}" in read_from
        else:
            assert f"kube-prometheus-stack {kps_chart}" in src.upstream
            operator = data["kube_prometheus_stack"][kps_chart]
            assert f"prometheus-operator {operator}" in src.upstream
            assert operator in read_from


@pytest.mark.parametrize(("api_version", "kind"), KINDS, ids=IDS)
def test_schema_has_exactly_the_pinned_release_fields(api_version: str, kind: str) -> None:
    """The narrowed package schema lists the same fields, types, required and enum values
    as the pinned upstream CRD (inventory in data/crd_fields.yaml)."""
    expected = _pinned()["kinds"][f"{api_version} {kind}"]["fields"]
    got = inventory(crds.schema(api_version, kind))
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    differ = sorted(p for p in set(got) & set(expected) if got[p] != expected[p])
    assert not (missing or extra or differ), (
        f"missing {missing}, extra {extra}, differ {[(p, got[p], expected[p]) for p in differ]}")


def test_narrowing_removes_only_what_the_package_release_added() -> None:
    """The un-narrowed 0.79.2 schema has the removed fields: the table is not stale."""
    src = crds.SOURCES[("monitoring.coreos.com/v1", "PodMonitor")]
    raw = crds._plain(crds._model(src).model_json_schema(by_alias=True))
    for path in src.not_in_upstream:
        parent, _, name = path.rpartition(".")
        assert name in crds.node_at(raw, parent)["properties"], path
    for path, values in src.values_not_in_upstream.items():
        assert set(values) <= set(crds.node_at(raw, path)["enum"]), path


# -- shipped manifests pass -----------------------------------------------------------------

def _keda_docs() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(SCALING_MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and str(doc.get("apiVersion", "")).startswith("keda.sh/"):
                yield path, doc


def test_shipped_keda_manifests_validate_without_shared_reference() -> None:
    """Every KEDA manifest is checked against the schema (no warning that it was skipped)."""
    docs = list(_keda_docs())
    assert {d["kind"] for _, d in docs} >= {"ScaledObject"}
    checked: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in sorted({p for p, _ in docs}):
            checked += [o.ref for o in validate_scaling(path)]
    assert len(checked) == len(docs)
    for path, doc in docs:
        assert crds.first_error(doc) is None, path


def test_trigger_authentication_validates() -> None:
    crds.validate_resource(TRIGGER_AUTH, file="ta.yaml")
    bad = copy.deepcopy(TRIGGER_AUTH)
    bad["spec"]["secretTargetRef"][0]["secret"] = "rabbitmq-credentials"
    err = _fails(bad)
    assert err.field == "spec.secretTargetRef[0].secret"
    assert "unknown field" in err.message and "known fields here" in (err.fix or "")


def test_cluster_monitors_validate() -> None:
    docs = crds.validate_file(MONITORS, kinds=("PodMonitor", "ServiceMonitor"))
    assert docs and all(d["kind"] in ("PodMonitor", "ServiceMonitor") for d in docs)


#: keda chart 2.16.0 defaults the ServiceMonitors use (kedacore/charts v2.16.0 keda/values.yaml
#: ``prometheus.{operator,metricServer}.serviceMonitor``, ``prometheus.metricServer.portName``).
KEDA_CHART_MONITOR_DEFAULTS = {"operator": {"port": "metrics", "scheme": "http"},
                               "metricServer": {"port": "metrics", "scheme": "http"}}


def _keda_chart_service_monitors(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ServiceMonitors the keda chart makes from our values, endpoint fields as in
    kedacore/charts v2.16.0 ``keda/templates/{manager,metrics-server}/servicemonitor.yaml``."""
    out = []
    for part, defaults in KEDA_CHART_MONITOR_DEFAULTS.items():
        section = (values.get("prometheus") or {}).get(part) or {}
        monitor = section.get("serviceMonitor") or {}
        if not (section.get("enabled") and monitor.get("enabled")):
            continue
        endpoint: dict[str, Any] = {"port": defaults["port"], "path": "/metrics",
                                    "scheme": monitor.get("scheme", defaults["scheme"])}
        for key in ("targetPort", "interval", "scrapeTimeout", "relabelings",
                    "metricRelabelings", "tlsConfig"):
            if monitor.get(key):
                endpoint[key] = monitor[key]
        spec: dict[str, Any] = {"endpoints": [endpoint], "namespaceSelector": {
            "matchNames": ["keda"]}, "selector": {"matchLabels": {"app.kubernetes.io/name": part}}}
        for key in ("jobLabel", "targetLabels", "podTargetLabels"):
            if monitor.get(key):
                spec[key] = monitor[key]
        out.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                    "metadata": {"name": f"keda-{part}"}, "spec": spec})
    return out


def test_keda_chart_service_monitors_from_our_values_validate() -> None:
    """What our values put into the KEDA chart's ServiceMonitors (interval, relabelings)
    passes the pinned operator's ServiceMonitor schema."""
    (release,) = [r for r in load_charts() if r.name == "keda"]
    values = yaml.safe_load(render_values(release, timing=TimingProfile()))
    monitors = _keda_chart_service_monitors(values)
    assert len(monitors) == 2
    for monitor in monitors:
        crds.validate_resource(monitor, file=f"values of {release.name}")
    bad = copy.deepcopy(monitors[0])
    bad["spec"]["endpoints"][0]["metricRelabelings"] = [{"sourceLabel": ["namespace"]}]
    assert _fails(bad).field == "spec.endpoints[0].metricRelabelings[0].sourceLabel"


# -- bad input fails with file, field and fix -----------------------------------------------

def _fails(doc: Mapping[str, Any], file: str = "m.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        crds.validate_resource(doc, file=file)
    err = info.value
    assert err.file == file and err.fix, str(err)
    return err


def _so() -> dict[str, Any]:
    # the file also holds the TriggerAuthentication the ScaledObject reads its host through
    return next(d for d in yaml.safe_load_all((SCALING_MANIFESTS / "keda-hybrid.yaml")
                                              .read_text()) if d["kind"] == "ScaledObject")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return apply


_DELETE = object()
SCALING_HPA = "spec.advanced.horizontalPodAutoscalerConfig.behavior"
BAD_SCALED_OBJECTS = [
    # (id, mutation, field, words in the message or fix)
    ("unknown-spec-field", _set("spec.pollingIntervall", 5), "spec.pollingIntervall",
     ["unknown field", "pollingInterval"]),
    ("trigger-value-not-string", _set("spec.triggers.1.metadata.value", 5),
     "spec.triggers[1].metadata.value", ["not of type 'string'", "quote numbers"]),
    ("no-trigger-type", _set("spec.triggers.0.type", _DELETE), "spec.triggers[0]",
     ["'type' is a required property", "add the missing field"]),
    ("no-target", _set("spec.scaleTargetRef", _DELETE), "spec",
     ["'scaleTargetRef' is a required property"]),
    ("replicas-not-integer", _set("spec.maxReplicaCount", "4"), "spec.maxReplicaCount",
     ["not of type 'integer'"]),
    # KEDA >= 2.17 / Kubernetes 1.33 fields the pinned KEDA 2.16 CRD prunes (the reference
    # checkout, KEDA main, has both: validating against it would let them through).
    ("tolerance-not-in-2.16", _set(f"{SCALING_HPA}.scaleUp.tolerance", "0.05"),
     f"{SCALING_HPA}.scaleUp.tolerance", ["unknown field"]),
    ("fallback-behavior-not-in-2.16",
     _set("spec.fallback", {"failureThreshold": 3, "replicas": 2, "behavior": "static"}),
     "spec.fallback.behavior", ["unknown field"]),
]


@pytest.mark.parametrize(("mutate", "field", "words"), [c[1:] for c in BAD_SCALED_OBJECTS],
                         ids=[c[0] for c in BAD_SCALED_OBJECTS])
def test_bad_scaled_object_fails_with_file_field_fix(
        tmp_path: Path, mutate: Callable[[dict[str, Any]], None], field: str,
        words: list[str]) -> None:
    """Through ``validate_scaling`` (what ``scalelab validate`` and the backends call)."""
    doc = _so()
    mutate(doc)
    path = tmp_path / "so.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        validate_scaling(path)
    err = info.value
    assert (err.file, err.field) == (str(path), field), str(err)
    assert err.fix, str(err)
    for w in words:
        assert w in str(err), str(err)


def _pod_monitor() -> dict[str, Any]:
    return copy.deepcopy(crds.load_documents(MONITORS)[0])


def test_bad_monitors_fail_with_file_field_fix() -> None:
    pm = _pod_monitor()
    pm["spec"]["podMetricsEndpoints"][0]["prot"] = "metrics"
    err = _fails(pm)
    assert err.field == "spec.podMetricsEndpoints[0].prot" and "targetPort" in (err.fix or "")
    pm = _pod_monitor()
    pm["spec"]["podMetricsEndpoints"][0]["params"] = {"family": "queue_coarse_metrics"}
    err = _fails(pm)
    assert err.field == "spec.podMetricsEndpoints[0].params.family"
    assert "not of type 'array'" in err.message
    pm = _pod_monitor()
    del pm["spec"]["selector"]
    assert "'selector' is a required property" in _fails(pm).message


@pytest.mark.parametrize(("mutate", "field", "what"), [
    (_set("spec.podMetricsEndpoints.0.portNumber", 9100), "spec.podMetricsEndpoints[0].portNumber",
     "the field portNumber"),
    (_set("spec.selectorMechanism", "RoleSelector"), "spec.selectorMechanism",
     "the field selectorMechanism"),
    (_set("spec.scrapeProtocols", ["PrometheusText1.0.0"]), "spec.scrapeProtocols[0]",
     "the value 'PrometheusText1.0.0'"),
], ids=["portNumber", "selectorMechanism", "PrometheusText1.0.0"])
def test_operator_0_79_additions_fail_against_the_pinned_0_78(
        mutate: Callable[[dict[str, Any]], None], field: str, what: str) -> None:
    pm = _pod_monitor()
    mutate(pm)
    err = _fails(pm, file=str(MONITORS))
    assert err.field == field
    assert what in err.message and "v0.78.2" in err.message, str(err)
    assert "charts.yaml" in (err.fix or "")


def test_validate_file_refuses_other_kinds(tmp_path: Path) -> None:
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump_all([_pod_monitor(), {"apiVersion": "v1", "kind": "Service",
                                                         "metadata": {"name": "x"}}]))
    with pytest.raises(ConfigError) as info:
        crds.validate_file(path, kinds=("PodMonitor", "ServiceMonitor"))
    assert (info.value.file, info.value.field) == (str(path), "kind")
    path.write_text(yaml.safe_dump(
        {**_pod_monitor(), "apiVersion": "monitoring.coreos.com/v1alpha1"}))
    with pytest.raises(ConfigError) as info:
        crds.validate_file(path)
    assert info.value.field == "apiVersion" and "monitoring.coreos.com/v1 PodMonitor" in str(
        info.value)
    path.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="cannot read"):
        crds.validate_file(path)


# -- the wrong package release (or none) is a clear error ------------------------------------

def test_wrong_or_missing_package_release(monkeypatch: pytest.MonkeyPatch) -> None:
    src = crds.SOURCES[("keda.sh/v1alpha1", "ScaledObject")]
    monkeypatch.setattr(crds.metadata, "version", lambda name: "2.20.2.1")
    with pytest.raises(MissingDependencyError) as info:
        crds._check_release(src)
    assert "2.20.2.1" in str(info.value) and "KEDA 2.16.0" in str(info.value)
    assert info.value.fix == "pip install 'cloudcoil-models-keda==2.16.*'"

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(crds.metadata, "version", missing)
    with pytest.raises(MissingDependencyError, match="is not installed"):
        crds._check_release(src)


# -- cross-check against the reference checkout (newer upstream), where it exists ------------

needs_reference = pytest.mark.skipif(
    not SHARED_REFERENCE.is_dir(),
    reason=f"{SHARED_REFERENCE} absent (only the team's machines have it); the package "
           "schemas are checked against the pinned field inventory above instead")


def _reference_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((SHARED_REFERENCE / REFERENCE_FILES[kind]).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _used_paths(doc: Any, known: Mapping[str, str], at: str = "spec") -> Iterator[str]:
    """The inventory paths a document's ``spec`` sets (map entries as ``path{}``)."""
    yield at
    if isinstance(doc, dict):
        is_map = f"{at}{{}}" in known
        for k, v in doc.items():
            yield from _used_paths(v, known, f"{at}{{}}" if is_map else f"{at}.{k}")
    elif isinstance(doc, list):
        for v in doc:
            yield from _used_paths(v, known, f"{at}[]")


def _project_docs() -> list[dict[str, Any]]:
    docs = [d for _, d in _keda_docs()] + crds.load_documents(MONITORS) + [TRIGGER_AUTH]
    values = yaml.safe_load(render_values(
        next(r for r in load_charts() if r.name == "keda"), timing=TimingProfile()))
    return docs + _keda_chart_service_monitors(values)


@needs_reference
@pytest.mark.parametrize(("api_version", "kind"), KINDS, ids=IDS)
def test_fields_the_project_uses_match_the_reference(api_version: str, kind: str) -> None:
    """For every field the project's objects set, the package (pinned release) and the
    reference CRD agree on type and required-ness, and the package's enum values are
    accepted there; the objects validate strictly against the reference too."""
    ours = inventory(crds.schema(api_version, kind))
    reference_schema = _reference_schema(kind)
    theirs = inventory(reference_schema)
    docs = [d for d in _project_docs() if d["kind"] == kind]
    assert docs, f"the project ships no {kind}"
    used = {p for doc in docs for p in _used_paths(doc["spec"], ours)}
    assert used <= set(ours), sorted(used - set(ours))
    for path in sorted(used):
        assert path in theirs, f"{path} is gone from the reference CRD"
        type_ours, *rest_ours = ours[path].split(" ")
        type_theirs, *rest_theirs = theirs[path].split(" ")
        assert type_ours == type_theirs, (path, ours[path], theirs[path])
        assert ("required" in rest_ours) == ("required" in rest_theirs), (path, ours[path],
                                                                          theirs[path])
        enums = [r for r in rest_ours if r.startswith("enum=")]
        enums_theirs = [r for r in rest_theirs if r.startswith("enum=")]
        if enums:
            assert enums_theirs, (path, theirs[path])
            assert set(enums[0][5:].split("|")) <= set(enums_theirs[0][5:].split("|")), path
    strict = copy.deepcopy(reference_schema)
    crds._strict(strict)
    strict["properties"]["metadata"] = {"type": "object"}
    for doc in docs:
        best = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(strict).iter_errors(doc))
        assert best is None, (doc["metadata"]["name"], best.message if best else None)

