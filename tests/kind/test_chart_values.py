"""Every Helm value scalelab sets exists in the pinned chart version.

Contract test, not a cluster: Helm silently ignores a values key the chart does not read (a
typo, or a key renamed between chart versions), so a wrong key would only show as a
misconfigured stack. The value paths of each pinned chart's ``values.yaml`` are kept as test
data (``tests/kind/data/chart-values/<chart>-<version>.txt``, header: repository, tag, file),
read from upstream at exactly the version ``manifests/cluster/charts.yaml`` pins; every values
template is rendered (``render_values``) and each path it sets must be one of them, with a
compatible shape (a map where the chart has a map, a list where it has a list).

Data format: one ``path<TAB>type`` per line, every map and leaf of the chart's default values;
type is map, list, str, int, float, bool or null. Lists are leaves (Helm replaces a list
whole; items are never merged). A key containing a dot is JSON-quoted
(``nodeSelector."kubernetes.io/os"``). To re-derive a file for a new chart version::

    helm show values keda --repo https://kedacore.github.io/charts --version 2.17.0 \\
        | python -m tests.kind.test_chart_values "kedacore/charts v2.17.0 keda/values.yaml"

Keys a chart reads but does not list with a default fall under ``FREE_FORM`` (maps whose
keys are the user's: labels, annotations) or ``DOCUMENTED_NOT_DEFAULTED`` (read by the
chart's templates but only commented in its values.yaml); each entry says where it is from.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalelab.backends.cluster.render import ChartRelease, load_charts, render_values
from scalelab.settings import KUBERNETES_DEFAULTS, TimingProfile

DATA = Path(__file__).parent / "data" / "chart-values"

#: Maps whose keys are chosen by the user (Kubernetes labels and annotations): anything may
#: be set below them. Each is a ``map`` in the chart's data (checked below).
FREE_FORM: dict[str, set[str]] = {
    # kedacore/charts v2.16.0 keda/values.yaml: "additionalLabels: {}" of each monitor,
    # rendered as metadata.labels (templates/manager/servicemonitor.yaml,
    # templates/metrics-server/servicemonitor.yaml).
    "keda": {"prometheus.operator.serviceMonitor.additionalLabels",
             "prometheus.metricServer.serviceMonitor.additionalLabels",
             "podAnnotations.keda", "podAnnotations.metricsAdapter", "additionalLabels",
             "additionalAnnotations"},
    # kube-prometheus-stack 66.3.0 values.yaml: commonLabels (all objects),
    # prometheus.prometheusSpec.externalLabels (Prometheus external_labels).
    "kube-prometheus-stack": {"commonLabels", "prometheus.prometheusSpec.externalLabels"},
    # metrics-server-helm-chart-3.12.2 charts/metrics-server/values.yaml.
    "metrics-server": {"commonLabels", "podLabels", "podAnnotations"},
}
#: Paths a chart's templates read that its values.yaml only mentions in a comment
#: (``# appProtocol: http`` in kedacore/charts v2.16.0 keda/values.yaml, read by
#: templates/manager/service.yaml and templates/metrics-server/service.yaml).
DOCUMENTED_NOT_DEFAULTED: dict[str, set[str]] = {
    "keda": {"prometheus.operator.appProtocol", "prometheus.metricServer.appProtocol"},
    "kube-prometheus-stack": set(),
    "metrics-server": set(),
}

PROFILES = [TimingProfile(), KUBERNETES_DEFAULTS]


# -- the path extraction (also how the data files were made) -------------------------------
def _segment(key: Any) -> str:
    if not isinstance(key, str):
        raise ValueError(f"non-string key {key!r} (YAML 1.1 reads on/yes/no as booleans)")
    return json.dumps(key) if ("." in key or not key or key != key.strip()) else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "map", list: "list", str: "str", bool: "bool", int: "int",
            float: "float"}[type(value)]


def value_paths(doc: Any, prefix: str = "") -> dict[str, str]:
    """Every map and leaf path of a values document, with its type; lists are leaves."""
    out: dict[str, str] = {}
    if not isinstance(doc, dict):
        return out
    for key, value in doc.items():
        path = f"{prefix}.{_segment(key)}" if prefix else _segment(key)
        out[path] = _kind(value)
        if isinstance(value, dict):
            out.update(value_paths(value, path))
    return out


def render_data(header: str, doc: Any) -> str:
    lines = [f"# {header}", "# every map and leaf path of the chart's default values; "
             "lists are leaves (tests/kind/test_chart_values.py)"]
    lines += [f"{path}\t{kind}" for path, kind in sorted(value_paths(doc).items())]
    return "\n".join(lines) + "\n"


# -- the data ------------------------------------------------------------------------------
def data_file(release: ChartRelease) -> Path:
    return DATA / f"{release.chart}-{release.version}.txt"


def load_data(path: Path) -> tuple[str, dict[str, str]]:
    """The header (repository, tag, file) and the path -> type table of a data file."""
    lines = path.read_text().splitlines()
    header = lines[0].removeprefix("# ")
    table = {}
    for line in lines[1:]:
        if line.startswith("#") or not line.strip():
            continue
        path_, kind = line.split("\t")
        table[path_] = kind
    return header, table


def problems(chart: str, values: Any, table: dict[str, str]) -> list[str]:
    """Each path ``values`` sets that the chart does not have, or has in another shape."""
    out: list[str] = []
    free = FREE_FORM[chart]
    documented = DOCUMENTED_NOT_DEFAULTED[chart]
    for path, kind in value_paths(values).items():
        if path in documented or any(path.startswith(f + ".") for f in free):
            continue
        upstream = table.get(path)
        if upstream is None:
            out.append(f"{chart}: {path} is not a value of the chart")
        elif upstream != "null" and (kind in ("map", "list") or upstream in ("map", "list")) \
                and kind != upstream:
            out.append(f"{chart}: {path} is a {kind} here but a {upstream} in the chart")
    return out


RELEASES = load_charts()


@pytest.mark.parametrize("release", RELEASES, ids=[r.chart for r in RELEASES])
def test_the_data_is_for_the_pinned_chart_version(release: ChartRelease) -> None:
    path = data_file(release)
    assert path.is_file(), (
        f"no value paths for {release.chart} {release.version}: derive {path.name} from "
        "`helm show values` at that version (see this module's docstring)")
    header, table = load_data(path)
    assert release.version in header, header
    assert len(table) > 50, "a chart's values.yaml has far more paths"
    for free in FREE_FORM[release.chart]:
        assert table.get(free) == "map", f"FREE_FORM {free} is not a map of {release.chart}"
    for documented in DOCUMENTED_NOT_DEFAULTED[release.chart]:
        assert documented not in table, f"{documented} is in the defaults now: drop it"


@pytest.mark.parametrize("timing", PROFILES, ids=["default", "kubernetes"])
@pytest.mark.parametrize("release", RELEASES, ids=[r.chart for r in RELEASES])
def test_every_value_scalelab_sets_exists_in_the_pinned_chart(
        release: ChartRelease, timing: TimingProfile) -> None:
    values = yaml.safe_load(render_values(release, timing=timing))
    _, table = load_data(data_file(release))
    assert value_paths(values), "the template sets nothing"
    assert problems(release.chart, values, table) == []


def test_keda_monitors_restore_the_namespace_with_keys_chart_2_16_reads() -> None:
    """Defect 1's fix (metricRelabelings on both ServiceMonitors) uses keys keda 2.16.0 has."""
    (keda,) = [r for r in RELEASES if r.chart == "keda"]
    _, table = load_data(data_file(keda))
    for monitor in ("operator", "metricServer"):
        assert table[f"prometheus.{monitor}.serviceMonitor.metricRelabelings"] == "list"
    values = yaml.safe_load(render_values(keda, timing=TimingProfile()))
    for monitor in ("operator", "metricServer"):
        assert values["prometheus"][monitor]["serviceMonitor"]["metricRelabelings"]


@pytest.mark.parametrize(("chart", "values", "expected"), [
    ("keda", {"prometheus": {"operator": {"serviceMonitor": {"metricRelabellings": []}}}},
     "prometheus.operator.serviceMonitor.metricRelabellings is not a value"),
    ("keda", {"prometheus": {"operator": {"serviceMonitor": {"interval": {"s": 5}}}}},
     "interval is a map here but a str in the chart"),
    ("keda", {"prometheus": {"operator": {"serviceMonitor": {"metricRelabelings": {}}}}},
     "is a map here but a list in the chart"),
    ("kube-prometheus-stack", {"grafana": {"sidecar": {"dashboard": {"enabled": True}}}},
     "grafana.sidecar.dashboard is not a value"),
    ("kube-prometheus-stack", {"prometheus": {"prometheusSpec": {"scrapeInterval": "5s",
                                                                  "scrape_interval": "5s"}}},
     "prometheus.prometheusSpec.scrape_interval is not a value"),
    ("metrics-server", {"extraArgs": ["--kubelet-insecure-tls"]},
     "extraArgs is not a value"),
    ("metrics-server", {"podLabels2": {"a": "b"}}, "podLabels2 is not a value"),
], ids=["typo", "scalar-as-map", "list-as-map", "kps-typo", "snake-case", "ms-key",
        "not-free-form"])
def test_a_wrong_key_is_caught(chart: str, values: dict[str, Any], expected: str) -> None:
    (release,) = [r for r in RELEASES if r.chart == chart]
    _, table = load_data(data_file(release))
    found = problems(chart, values, table)
    assert any(expected in p for p in found), found


def test_free_form_and_documented_keys_pass() -> None:
    (keda,) = [r for r in RELEASES if r.chart == "keda"]
    _, table = load_data(data_file(keda))
    values = {"prometheus": {"operator": {"appProtocol": "http", "serviceMonitor": {
        "additionalLabels": {"release": "kps", "team.example.com/owner": "lab"}}}}}
    assert problems("keda", values, table) == []


def test_value_paths_quote_dotted_keys_and_keep_lists_whole() -> None:
    doc = {"a": {"b": [{"c": 1}], "kubernetes.io/os": "linux", "n": None, "m": {}}}
    assert value_paths(doc) == {"a": "map", "a.b": "list", 'a."kubernetes.io/os"': "str",
                                "a.n": "null", "a.m": "map"}
    with pytest.raises(ValueError, match="non-string key"):
        value_paths(yaml.safe_load("on: 1"))


if __name__ == "__main__":   # helm show values ... | python -m tests.kind.test_chart_values HEADER
    sys.stdout.write(render_data(sys.argv[1], yaml.safe_load(sys.stdin.read())))
    if not re.search(r"\d+\.\d+\.\d+", sys.argv[1]):
        sys.exit("the header must name the chart version")
