"""Label contract: every label a query or a dashboard panel selects on is there, meaning what
the query means, on every scrape path of both backends.

Contract test, not a cluster. The cluster's scrape paths are data read from the pinned
charts and the Prometheus operator (tests/kind/data/scrape_paths.yaml: which ServiceMonitor
or PodMonitor scrapes each metric family, honor_labels, metricRelabelings), overlaid with
what scalelab renders (the charts' values files, manifests/cluster/monitors.yaml). The local
paths come from the code the local backend runs (scalelab/backends/local/scrape.py, the
exporter's collectors, the services' registries).

For each path the stored label set of a family is derived as Prometheus' scrape loop does
(prometheus scrape/scrape.go mutateSampleLabels, then metric_relabel_configs): with
honor_labels false a label both the exporter and the target set keeps the target's value
and the exporter's moves to ``exported_<name>`` (kedacore/charts#434: KEDA's
``namespace="scalelab"`` becomes ``exported_namespace``, ``namespace`` is ``keda``). A label
that describes the object (a kube-state-metrics, cAdvisor or KEDA series' ``namespace``)
must be the exporter's own, never the scraping target's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import promql_parser as pq
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from scalelab.backends.cluster.render import load_charts, render_values
from scalelab.backends.cluster.settings import CLUSTER_DIR
from scalelab.backends.local import scrape
from scalelab.backends.local.deployments import load_deployment
from scalelab.backends.local.kube_metrics import KubeStateCollector
from scalelab.backends.local.pods import Launch, Pod, Supervisor
from scalelab.backends.local.resources import ResourceAccounting
from scalelab.control.controller_metrics import ControlCollector, HPAStatus, ScalerStatus, Snapshot
from scalelab.settings import AGENT_DEPLOYMENT, NAMESPACE, TimingProfile
from services.agent.metrics import AgentMetrics
from services.api.metrics import ApiMetrics
from tests.grafana import Expression, all_expressions

DATA = Path(__file__).parent / "data" / "scrape_paths.yaml"
RATE = "1m"


# -- what a path stores ---------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ScrapePath:
    """How one job / monitor endpoint scrapes: target labels, honor_labels, relabelings."""

    name: str
    target_labels: tuple[str, ...]
    honor_labels: bool
    metric_relabelings: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Family:
    """A metric family as one exporter exposes it."""

    name: str
    exporter: str
    labels: frozenset[str]
    #: "other": the series describe another object than the scraped pod.
    subject: str


#: Stored label name -> where its value comes from: "exporter:<label>", "target:<label>",
#: "const" (a relabeling's fixed value) or "relabel:<labels>".
Stored = dict[str, str]


def _normalize(config: Mapping[str, Any]) -> dict[str, Any]:
    """A relabel config in Prometheus' form, from the operator's camelCase or snake_case."""
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    out = {keys.get(k, k): v for k, v in config.items()}
    out["action"] = str(out.get("action", "replace")).lower()
    return out


def _expand(template: str, match: re.Match[str]) -> str:
    """Go's regexp.Expand for ``$1`` / ``${1}`` / ``$name`` (Prometheus' replacement)."""
    def group(m: re.Match[str]) -> str:
        key = m.group(1) or m.group(2)
        try:
            return match.group(int(key) if key.isdigit() else key) or ""
        except (IndexError, re.error):
            return ""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, template)


def relabel(family: str, stored: Stored, configs: Iterable[Mapping[str, Any]]
            ) -> Stored | None:
    """Apply metric_relabel_configs to a symbolic label set; None when the family is dropped.

    Label values are unknown here: ``__name__`` is the family's name, any other present
    label a non-empty placeholder, an absent one "" (Prometheus reads absent as empty). A
    ``keep``/``drop`` on other labels than ``__name__`` filters some series only, so the
    family is kept. Semantics of prometheus model/relabel/relabel.go.
    """
    labels = dict(stored)
    for raw in configs:
        c = _normalize(raw)
        action = c["action"]
        regex = re.compile(f"^(?:{c.get('regex', '(.*)')})$")
        sources = list(c.get("source_labels") or [])
        present = [s for s in sources if s == "__name__" or s in labels]
        value = c.get("separator", ";").join(
            family if s == "__name__" else ("x" if s in labels else "") for s in sources)
        if action in ("keep", "drop"):
            if sources != ["__name__"]:
                continue
            if (regex.match(value) is None) == (action == "keep"):
                return None
        elif action == "replace":
            match = regex.match(value)
            if match is None:
                continue
            replacement = str(c.get("replacement", "$1"))
            result = _expand(replacement, match)
            target = _expand(str(c["target_label"]), match)
            if not result:
                labels.pop(target, None)
                continue
            refs = [s for s in present if s != "__name__"]
            if not re.search(r"\$", replacement):
                labels[target] = "const"
            elif len(refs) == 1:
                labels[target] = labels[refs[0]]
            else:
                labels[target] = "relabel:" + ",".join(refs)
        elif action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.match(k)}
        elif action == "labelkeep":
            labels = {k: v for k, v in labels.items() if regex.match(k)}
        elif action == "labelmap":
            replacement = str(c.get("replacement", "$1"))
            for name, origin in list(labels.items()):
                match = regex.match(name)
                if match:
                    labels[_expand(replacement, match)] = origin
        elif action in ("lowercase", "uppercase", "hashmod"):
            refs = [s for s in present if s != "__name__"]
            labels[c["target_label"]] = labels[refs[0]] if len(refs) == 1 else "relabel:"
        # keepequal / dropequal compare two labels' values: series filters only
    return labels


def stored_labels(family: Family, path: ScrapePath) -> Stored | None:
    """The label names a series of ``family`` has in Prometheus' TSDB via ``path``."""
    stored: Stored = {name: f"exporter:{name}" for name in family.labels}
    for name in path.target_labels:
        if name not in family.labels:
            stored[name] = f"target:{name}"
        elif not path.honor_labels:
            # resolveConflictingExposedLabels: exported_<name> (exported_exported_... if taken)
            moved = f"exported_{name}"
            while moved in stored:
                moved = f"exported_{moved}"
            stored[moved] = stored[name]
            stored[name] = f"target:{name}"
    return relabel(family.name, stored, path.metric_relabelings)


def meaning_problem(label: str, family: Family, stored: Stored) -> str | None:
    """Why ``label`` on a stored series is not the label the query means (None: it is)."""
    origin = stored.get(label)
    if origin is None:
        return f"has no label {label!r} (stored labels: {sorted(stored)})"
    if origin == f"exporter:{label}":
        return None
    if origin == f"target:{label}" and label not in family.labels and family.subject == "self":
        return None
    if label in family.labels:
        holder = [k for k, v in stored.items() if v == f"exporter:{label}"]
        where = f"stored as {holder[0]!r}" if holder else "dropped"
        return (f"label {label!r} holds {origin} while the exporter's own {label!r} is "
                f"{where}")
    return f"label {label!r} comes from {origin}, which is not the {family.exporter} series'"


# -- PromQL ---------------------------------------------------------------------------------
#: Functions whose result keeps the input's labels (minus __name__).
KEEP_LABELS = {"rate", "irate", "increase", "delta", "idelta", "deriv", "abs", "ceil",
               "floor", "round", "clamp", "clamp_min", "clamp_max", "exp", "ln", "log2",
               "log10", "sqrt", "avg_over_time", "min_over_time", "max_over_time",
               "sum_over_time", "count_over_time", "last_over_time", "quantile_over_time",
               "stddev_over_time", "changes", "resets", "predict_linear"}


@dataclass(frozen=True, kw_only=True)
class Problem:
    backend: str
    path: str
    text: str


class Checker:
    """Walks one expression against one backend's families and paths."""

    def __init__(self, *, backend: str, families: Mapping[str, Family],
                 paths: Mapping[str, ScrapePath | None],
                 exporter_paths: Mapping[str, str | None]) -> None:
        self.backend = backend
        self.families = families
        self.paths = paths
        self.exporter_paths = exporter_paths
        self.problems: list[str] = []

    def families_for(self, selector: pq.VectorSelector) -> list[str]:
        if selector.name:
            return [selector.name]
        names = [m for m in selector.matchers.matchers if m.name == "__name__"]
        if not names or names[0].op != pq.MatchOp.Re:
            self.problems.append(f"selector {selector} names no metric")
            return []
        regex = re.compile(f"^(?:{names[0].value})$")
        alternatives = names[0].value.split("|")
        return [a for a in alternatives if regex.match(a)]

    def selector(self, selector: pq.VectorSelector, grouping: Sequence[str] = ()
                 ) -> dict[str, str | None]:
        """Labels of the selected series (name -> problem or None); records problems."""
        result: dict[str, str | None] | None = None
        for name in self.families_for(selector):
            family = self.families.get(name)
            if family is None:
                self.problems.append(f"metric {name} is not exported on the {self.backend} "
                                     "backend (or not described in scrape_paths.yaml)")
                continue
            path_name = self.exporter_paths.get(family.exporter)
            path = self.paths.get(path_name) if path_name else None
            if path is None:
                self.problems.append(f"metric {name} ({family.exporter}) is not scraped on "
                                     f"the {self.backend} backend")
                continue
            stored = stored_labels(family, path)
            if stored is None:
                self.problems.append(f"metric {name} is dropped by the metric relabelings "
                                     f"of {path.name}")
                continue
            for matcher in selector.matchers.matchers:
                if matcher.name == "__name__" or _matches_empty(matcher):
                    continue
                problem = meaning_problem(matcher.name, family, stored)
                if problem:
                    self.problems.append(f"{name}{{{matcher}}} via {path.name}: {problem}")
            labels = {k: meaning_problem(k, family, stored) for k in stored}
            result = labels if result is None else {
                k: result[k] or labels[k] for k in result.keys() & labels.keys()}
        return result or {}

    def labels(self, node: Any) -> dict[str, str | None] | None:
        """Result labels of ``node`` (None for a scalar)."""
        if isinstance(node, pq.VectorSelector):
            return self.selector(node)
        if isinstance(node, pq.MatrixSelector):
            return self.selector(node.vector_selector)
        if isinstance(node, pq.NumberLiteral | pq.StringLiteral):
            return None
        if isinstance(node, pq.ParenExpr | pq.UnaryExpr | pq.SubqueryExpr):
            return self.labels(node.expr)
        if isinstance(node, pq.Call):
            return self.call(node)
        if isinstance(node, pq.AggregateExpr):
            inner = self.labels(node.expr) or {}
            modifier = node.modifier
            if modifier is None:
                return {}
            if modifier.type == pq.AggModifierType.By:
                self.require(modifier.labels, inner, f"{node.op} by")
                return {k: inner.get(k) for k in modifier.labels}
            return {k: v for k, v in inner.items()
                    if k not in modifier.labels and k != "__name__"}
        if isinstance(node, pq.BinaryExpr):
            return self.binary(node)
        self.problems.append(f"unhandled PromQL node {type(node).__name__}: {node}")
        return {}

    def call(self, node: pq.Call) -> dict[str, str | None] | None:
        name = node.func.name
        vectors = [a for a in node.args if not isinstance(a, pq.NumberLiteral
                                                          | pq.StringLiteral)]
        if name in ("vector", "time", "scalar"):
            for arg in vectors:
                self.labels(arg)
            return {} if name == "vector" else None
        inner = self.labels(vectors[0]) if vectors else {}
        inner = {k: v for k, v in (inner or {}).items() if k != "__name__"}
        if name == "histogram_quantile":
            self.require(["le"], inner, "histogram_quantile")
            return {k: v for k, v in inner.items() if k != "le"}
        if name in KEEP_LABELS:
            return inner
        self.problems.append(f"function {name} is not modelled by the label-contract test")
        return inner

    def binary(self, node: pq.BinaryExpr) -> dict[str, str | None] | None:
        """Result labels of a binary operation (prometheus promql/engine.go resultMetric)."""
        lhs, rhs = self.labels(node.lhs), self.labels(node.rhs)
        if lhs is None or rhs is None:
            side = rhs if lhs is None else lhs
            return None if side is None else {k: v for k, v in side.items() if k != "__name__"}
        op = str(node.op)
        modifier = node.modifier
        matching = modifier.matching if modifier else None
        if op in ("and", "unless"):
            return lhs
        if op == "or":
            return {k: lhs[k] or rhs[k] for k in lhs.keys() & rhs.keys()}
        lhs = {k: v for k, v in lhs.items() if k != "__name__"}
        rhs = {k: v for k, v in rhs.items() if k != "__name__"}
        card = modifier.card if modifier else pq.VectorMatchCardinality.OneToOne
        on = matching is not None and matching.type == pq.LabelModifierType.Include
        listed = set(matching.labels) if matching else set()
        if on:
            self.require(sorted(listed), lhs, "on (left side)")
            self.require(sorted(listed), rhs, "on (right side)")
        elif card == pq.VectorMatchCardinality.OneToOne and lhs.keys() - listed != \
                rhs.keys() - listed:
            self.problems.append(
                f"one-to-one match of {sorted(lhs.keys() - listed)} with "
                f"{sorted(rhs.keys() - listed)} pairs no series: {node}")
        if card == pq.VectorMatchCardinality.OneToOne:
            if on:
                return {k: v for k, v in lhs.items() if k in listed}
            return {k: v for k, v in lhs.items() if k not in listed}
        extra = list(modifier.group_labels or []) if modifier else []
        many, one = (lhs, rhs) if card == pq.VectorMatchCardinality.ManyToOne else (rhs, lhs)
        self.require(extra, one, "group_left/right")
        return {**many, **{k: one.get(k) for k in extra}}

    def require(self, names: Iterable[str], labels: Mapping[str, str | None], what: str
                ) -> None:
        for name in names:
            if name not in labels:
                self.problems.append(f"{what} ({name}): the series have no label {name!r}")
            elif labels[name]:
                self.problems.append(f"{what} ({name}): {labels[name]}")


def _matches_empty(matcher: pq.Matcher) -> bool:
    """Whether an absent label (read as "") satisfies the matcher: then it needs no label."""
    if matcher.op == pq.MatchOp.Equal:
        return matcher.value == ""
    if matcher.op == pq.MatchOp.NotEqual:
        return matcher.value != ""
    matched = re.fullmatch(matcher.value, "") is not None
    return matched if matcher.op == pq.MatchOp.Re else not matched


def check(expression: Expression, checker: Checker) -> list[str]:
    checker.problems = []
    tree = pq.parse(expression.promql(rate_interval=RATE))
    result = checker.labels(tree)
    if expression.legend_labels():
        checker.require(sorted(expression.legend_labels()), result or {}, "legend")
    return list(dict.fromkeys(checker.problems))


# -- the data -------------------------------------------------------------------------------
def _data() -> dict[str, Any]:
    return yaml.safe_load(DATA.read_text())  # type: ignore[no-any-return]


def _lookup(values: Mapping[str, Any], dotted: str) -> Any:
    node: Any = values
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError(dotted)
        node = node[key]
    return node


def _from_values(spec: Mapping[str, Any], values: Mapping[str, Any]) -> Any:
    try:
        return _lookup(values, spec["values"]) if "values" in spec else spec["chart_default"]
    except KeyError:
        return spec["chart_default"]


def registry_families(registry: CollectorRegistry, metrics: Iterable[Any]) -> dict[str, set[str]]:
    """Sample names -> label names of a service registry (one child per labelled metric)."""
    for metric in metrics:
        names = getattr(metric, "_labelnames", ())   # prometheus_client keeps them here
        child = metric.labels(*["x"] * len(names)) if names else metric
        if hasattr(child, "observe"):
            child.observe(0)
        elif hasattr(child, "set"):
            child.set(0)
        else:
            child.inc(0)
    out: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                out.setdefault(sample.name, set()).update(sample.labels)
    return out


def service_families() -> dict[str, dict[str, set[str]]]:
    api, agent = ApiMetrics.create(), AgentMetrics.create()
    return {
        "scalelab-api": registry_families(api.registry, [
            v for k, v in vars(api).items() if k != "registry"]),
        "scalelab-agent": registry_families(agent.registry, [
            v for k, v in vars(agent).items() if k != "registry"]),
    }


class _OneDeployment:
    """The supervisor side the exporter reads (spec, counts, pods): one ready pod, no
    process (the exporter's collectors are what is under test)."""

    def __init__(self) -> None:
        self.spec = load_deployment(AGENT_DEPLOYMENT)
        self.pod = Pod(name=f"{AGENT_DEPLOYMENT}-{self.spec.template_hash}-abcde", uid="u1",
                       deployment=AGENT_DEPLOYMENT, created=0.0, log_path=Path(os.devnull),
                       launch=Launch(env={}, ports={}), phase="Running", ready=True)

    def counts(self) -> tuple[int, int, int]:
        return 1, 1, 1

    def pods(self) -> list[Pod]:
        return [self.pod]


def collector_families(collector: Collector) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for family in collector.collect():
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def local_exporter_families() -> dict[str, set[str]]:
    """What the local backend's exporter serves, from its real collectors."""
    deployment = _OneDeployment()
    accounting = ResourceAccounting(window=1.0)
    accounting.sample({deployment.pod.name: os.getpid()})
    kube = KubeStateCollector(namespace=NAMESPACE,
                              supervisors=lambda: cast(list[Supervisor], [deployment]),
                              accounting=accounting)
    snapshot = Snapshot(
        hpas=[HPAStatus(name="agent", namespace=NAMESPACE, min_replicas=1, max_replicas=4,
                        current_replicas=1, desired_replicas=2,
                        spec_targets=[("cpu", "utilization", 50.0)],
                        status_targets=[("cpu", "utilization", 70.0)],
                        conditions=[{"type": "AbleToScale", "status": "True"}])],
        scalers=[ScalerStatus(namespace=NAMESPACE, scaled_object="agent", scaler="rabbitmq",
                              trigger_index=0, metric="s0-rabbitmq-agent-tasks", value=1.0)])
    return {**collector_families(kube), **collector_families(ControlCollector(lambda: snapshot))}


def families(backend: str) -> dict[str, Family]:
    """Every family each exporter serves on ``backend``."""
    data = _data()
    services = service_families()
    local_exporter = local_exporter_families() if backend == "local" else {}
    out: dict[str, Family] = {}
    for exporter, spec in data["exporters"].items():
        listed: dict[str, Iterable[str]] = dict(services.get(exporter)
                                                or spec.get("families", {}))
        if backend == "local" and spec.get("local") == scrape.EXPORTER_JOB:
            # the local exporter speaks these names itself: take what it really serves
            listed = {name: local_exporter[name] for name in listed if name in local_exporter}
        for name, labels in listed.items():
            out[name] = Family(name=name, exporter=exporter, labels=frozenset(labels),
                               subject=spec["subject"])
    return out


def cluster_paths(*, keda_values: Mapping[str, Any] | None = None
                  ) -> tuple[dict[str, ScrapePath | None], dict[str, str | None]]:
    """The cluster's scrape paths (by exporter) from the data and what scalelab renders."""
    data = _data()
    charts = {r.name: r for r in load_charts()}
    values = {name: yaml.safe_load(render_values(r, timing=TimingProfile())) or {}
              for name, r in charts.items()}
    if keda_values is not None:
        values["keda"] = dict(keda_values)
    monitors = {d["metadata"]["name"]: d for d in
                yaml.safe_load_all((CLUSTER_DIR / "monitors.yaml").read_text()) if d}
    target_labels = data["operator_target_labels"]
    paths: dict[str, ScrapePath | None] = {}
    for exporter, spec in data["exporters"].items():
        c = spec["cluster"]
        if c["kind"] == "ServiceMonitor":
            rendered = values[c["release"]]
            paths[exporter] = ScrapePath(
                name=f"ServiceMonitor of {exporter} (release {c['release']})",
                target_labels=tuple(target_labels[c["target"]]) + tuple(
                    c.get("relabelings_add", ())),
                honor_labels=bool(_from_values(c["honor_labels"], rendered)),
                metric_relabelings=tuple(_from_values(c["metric_relabelings"], rendered)))
        else:
            monitor = monitors.get(c["monitor"])
            endpoints = [e for e in (monitor or {}).get("spec", {}).get(
                "podMetricsEndpoints", []) if e.get("port") == c["port"]
                and e.get("path", "/metrics") == c["path"]]
            paths[exporter] = ScrapePath(
                name=f"PodMonitor {c['monitor']} endpoint {c['port']}{c['path']}",
                target_labels=tuple(target_labels["PodMonitor"]),
                honor_labels=bool(endpoints[0].get("honorLabels", False)),
                metric_relabelings=tuple(endpoints[0].get("metricRelabelings", ())),
            ) if endpoints else None
    return paths, {exporter: exporter for exporter in data["exporters"]}


def local_paths() -> tuple[dict[str, ScrapePath | None], dict[str, str | None]]:
    """The local backend's jobs, from the config it runs."""
    sd = {"api": Path("api.json"), "agent": Path("agent.json")}
    config = scrape.scrape_config(scrape_interval=1.0, namespace=NAMESPACE, bind="127.0.0.1",
                                  rabbitmq_prometheus_port=1, exporter_port=2, sd_paths=sd)
    pod_labels = scrape.pod_target_labels(namespace=NAMESPACE, pod="p", deployment="d",
                                          container="c")
    paths: dict[str, ScrapePath | None] = {}
    for job in config["scrape_configs"]:
        labels = set()
        for static in job.get("static_configs", []):
            labels |= set(static.get("labels", {}))
        if job.get("file_sd_configs"):
            labels |= set(pod_labels)
        paths[job["job_name"]] = ScrapePath(
            name=f"local job {job['job_name']}",
            target_labels=tuple(sorted(labels | {"job", "instance"})),
            honor_labels=bool(job.get("honor_labels", False)),
            metric_relabelings=tuple(job.get("metric_relabel_configs", ())))
    exporters = {name: spec.get("local") for name, spec in _data()["exporters"].items()}
    return paths, exporters


def checker(backend: str, **kwargs: Any) -> Checker:
    paths, exporters = cluster_paths(**kwargs) if backend == "cluster" else local_paths()
    return Checker(backend=backend, families=families(backend), paths=paths,
                   exporter_paths=exporters)


# -- the tests ------------------------------------------------------------------------------
EXPRESSIONS = all_expressions()


def _ids(expressions: Sequence[Expression]) -> Iterator[str]:
    for e in expressions:
        yield f"{e.origin.split(' (')[0]}::{e.name}"


@pytest.fixture(scope="module", params=["cluster", "local"])
def backend_checker(request: pytest.FixtureRequest) -> Checker:
    return checker(request.param)


def test_every_expression_selects_labels_that_exist_on_every_scrape_path(
        backend_checker: Checker) -> None:
    failures = []
    for expression in EXPRESSIONS:
        for problem in check(expression, backend_checker):
            failures.append(f"[{backend_checker.backend}] {expression.where()}\n    {problem}")
    assert not failures, "\n".join(failures)


def test_the_expressions_cover_the_dashboards_and_the_harness() -> None:
    origins = {e.origin.split(" (")[0] for e in EXPRESSIONS}
    assert {"dashboard pods.json", "dashboard rabbitmq.json", "dashboard throughput.json",
            "dashboard autoscaling.json", "scalelab/queries.py"} <= origins
    harness = {e.name for e in EXPRESSIONS if e.origin == "scalelab/queries.py"}
    assert {"autoscaler_series", "cpu_utilization (observer)", "desired_replicas"} <= harness
    assert len(EXPRESSIONS) >= 40


def test_keda_series_keep_their_namespace_through_both_keda_service_monitors() -> None:
    """kedacore/charts#434: without relabelings the KEDA series' namespace is "keda"."""
    paths, _ = cluster_paths()
    for exporter in ("keda-operator", "keda-metrics-apiserver"):
        path = paths[exporter]
        assert path is not None and not path.honor_labels
        family = Family(name="keda_scaler_active", exporter=exporter,
                        labels=frozenset({"namespace", "scaledObject"}), subject="other")
        stored = stored_labels(family, path)
        assert stored is not None
        assert stored["namespace"] == "exporter:namespace", (exporter, stored)
        assert "exported_namespace" not in stored
        # a series without its own namespace (go_*, process_*) keeps the target's
        plain = stored_labels(Family(name="go_goroutines", exporter=exporter,
                                     labels=frozenset(), subject="other"), path)
        assert plain is not None and plain["namespace"] == "target:namespace"


def test_the_contract_sees_the_keda_defect_without_the_relabelings() -> None:
    """The chart's defaults (no metricRelabelings) must fail the contract: the test would
    catch kedacore/charts#434 if the values lost their fix."""
    values = yaml.safe_load(render_values(
        next(r for r in load_charts() if r.name == "keda"), timing=TimingProfile()))
    for part in ("operator", "metricServer"):
        values["prometheus"][part]["serviceMonitor"].pop("metricRelabelings", None)
    broken = checker("cluster", keda_values=values)
    keda = [e for e in EXPRESSIONS if "keda_scaler" in e.raw]
    assert keda
    for expression in keda:
        problems = check(expression, broken)
        assert any("exported_namespace" in p for p in problems), (expression.where(), problems)


def test_a_label_only_the_local_exporter_adds_is_caught_on_the_cluster() -> None:
    """The local exporter adds ``deployment`` to pod series; kube-state-metrics does not."""
    wrong = Expression(origin="test", name="deployment on a pod series",
                       raw='kube_pod_container_resource_requests{deployment="agent"}')
    assert check(wrong, checker("local")) == []
    (problem,) = check(wrong, checker("cluster"))
    assert "no label 'deployment'" in problem


def test_grouping_and_legend_labels_are_checked() -> None:
    cluster = checker("cluster")
    grouped = Expression(origin="test", name="by uid",
                         raw="sum by (nope) (kube_deployment_spec_replicas)")
    assert any("nope" in p for p in check(grouped, cluster))
    legend = Expression(origin="test", name="legend", raw="sum(kube_deployment_spec_replicas)",
                        legend="{{deployment}}")
    assert any("legend (deployment)" in p for p in check(legend, cluster))
    mismatch = Expression(origin="test", name="one-to-one",
                          raw="sum by (pod) (kube_pod_status_ready) / sum(kube_pod_owner)")
    assert any("pairs no series" in p for p in check(mismatch, cluster))


@pytest.mark.parametrize("exporter", ["kube-state-metrics", "keda-operator", "cadvisor"])
def test_data_was_read_at_the_pinned_chart_versions(exporter: str) -> None:
    """Bumping a chart in charts.yaml means re-reading its ServiceMonitor (and this data)."""
    pins = {r.name: r.version for r in load_charts()}
    text = DATA.read_text()
    expected = {"kps": "kube-prometheus-stack 66.3.0", "keda": "v2.16.0"}
    release = _data()["exporters"][exporter]["cluster"]["release"]
    assert pins[release] in expected[release] and expected[release] in text, (
        f"{release} is pinned at {pins[release]}; re-read its ServiceMonitor template and "
        f"values at that version and update {DATA}")


# -- the model against a real Prometheus ----------------------------------------------------
class _Serve(Collector):
    """Serves one sample per family with the exporter's labels (namespace="scalelab")."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        for family in self.families:
            labels = sorted(family.labels)
            metric = GaugeMetricFamily(family.name, "label contract", labels=labels)
            metric.add_metric(["scalelab" if k == "namespace" else "v" for k in labels], 1.0)
            yield metric


@pytest.mark.slow
def test_the_model_matches_what_a_real_prometheus_stores(tmp_path: Path) -> None:
    """Each cluster path replayed on a real Prometheus: target labels as static labels,
    honor_labels and the rendered metricRelabelings as they are; the stored label names of
    every family must be the ones the model above derives (so its verdicts are Prometheus')."""
    import requests
    from prometheus_client import start_http_server

    from scalelab.procs import prometheus as prom
    from scalelab.waiting import wait_for

    paths, _ = cluster_paths()
    by_exporter: dict[str, list[Family]] = {}
    for family in families("cluster").values():
        by_exporter.setdefault(family.exporter, []).append(family)
    by_exporter["keda-metrics-apiserver"] = [Family(
        name="keda_example_with_namespace", exporter="keda-metrics-apiserver",
        labels=frozenset({"namespace", "scaledObject"}), subject="other")]
    servers, targets = [], []
    try:
        for exporter, fams in sorted(by_exporter.items()):
            path = paths[exporter]
            assert path is not None, exporter
            registry = CollectorRegistry()
            registry.register(_Serve(fams))
            server, _thread = start_http_server(0, addr="127.0.0.1", registry=registry)
            servers.append(server)
            targets.append(prom.StaticTarget(
                job=exporter, address=f"127.0.0.1:{server.server_port}",
                labels={k: f"target-{k}" for k in path.target_labels
                        if k not in ("job", "instance")},
                honor_labels=path.honor_labels,
                metric_relabel_configs=[_normalize(c) for c in path.metric_relabelings]))
        prometheus = prom.PrometheusServer(config=prom.build_config(scrape_interval=1.0,
                                                                static=targets),
                                       workdir=tmp_path / "prom")
        prometheus.start()
        try:
            def stored() -> dict[str, dict[str, str]]:
                resp = requests.get(f"{prometheus.url}/api/v1/query",
                                    params={"query": '{job!="",__name__!="up",'
                                                     '__name__!~"scrape_.*"}'}, timeout=5)
                return {r["metric"].pop("__name__"): r["metric"]
                        for r in resp.json()["data"]["result"]}

            expected = {}
            for exporter, fams in by_exporter.items():
                path = paths[exporter]
                assert path is not None
                for family in fams:
                    model = stored_labels(family, path)
                    if model is not None:
                        expected[family.name] = set(model)
            real = wait_for(stored, lambda s: expected.keys() <= s.keys(),
                            what="one scrape of every path", expected=sorted(expected),
                            timeout=30, interval=0.5)
        finally:
            prometheus.stop()
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
    assert {k: set(real[k]) for k in expected} == expected
    # and the values: the KEDA series' namespace is the ScaledObject's again, and
    # kube-state-metrics' (honor_labels) is the object's, not the exporter pod's
    for name in ("keda_scaler_active", "keda_example_with_namespace",
                 "kube_deployment_spec_replicas", "container_cpu_usage_seconds_total"):
        assert real[name]["namespace"] == "scalelab", (name, real[name])
