"""The named PromQL queries behind every chart, and capturing them into ``series.json``.

The same PromQL runs on every backend: the local backend's exporter speaks the
kube-state-metrics / cAdvisor names, a kind cluster has the real ones. Each query says
which chart it belongs to and which target line the report draws next to it, so the
report, the capture and a user re-running the query in Grafana see the same thing.

The capture runs just before teardown (the experiment calls ``capture_series``); a query
that fails is stored with its error so the report can say why a chart is empty.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from scalelab import settings
from scalelab.scaling_object import ScalingObject

# the rule lives with the scaling objects; re-exported for the queries' callers
from scalelab.scaling_object import keda_hpa_name as keda_hpa_name

#: Prometheus refuses range queries that would return more than 11,000 points per series
#: (prometheus/web/api/v1/api.go: "exceeded maximum resolution of 11,000 points").
MAX_POINTS = 11_000


@dataclass(frozen=True, kw_only=True)
class Query:
    """One named PromQL query: what it shows, in which unit, next to which target line."""

    #: Stable key: the ``series.json`` key and the CSV file name.
    key: str
    title: str
    promql: str
    #: Unit of the values, shown on the chart's y axis ("replicas", "%", "messages", ...).
    unit: str
    #: Chart the query is drawn on (see ``CHARTS``).
    chart: str
    #: Target line drawn with it: None, "replica_bounds" (min/max replicas),
    #: "cpu_target" (HPA averageUtilization %) or "queue_target" (KEDA value x replicas).
    target: str | None = None
    #: False: captured and downloadable, but not drawn (bounds come from the manifests).
    draw: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Chart:
    """A chart on the scenario page: a title, a unit and the target line it carries."""

    key: str
    title: str
    unit: str
    target: str | None = None


#: Charts in page order. "load*" are drawn from the run record's ``locust.history``.
CHARTS: tuple[Chart, ...] = (
    Chart(key="replicas", title="Agent replicas", unit="replicas", target="replica_bounds"),
    Chart(key="cpu", title="Agent CPU utilization (of requests)", unit="%", target="cpu_target"),
    Chart(key="queue", title="Queue depth (agent-tasks)", unit="messages",
          target="queue_target"),
    Chart(key="throughput", title="Throughput", unit="tasks/s"),
    Chart(key="latency", title="Queue wait and processing time", unit="s"),
    Chart(key="load", title="Locust load", unit="users | requests/s"),
    Chart(key="load_p95", title="Locust response time p95", unit="ms"),
)


def build_queries(
    *,
    namespace: str = settings.NAMESPACE,
    deployment: str = settings.AGENT_DEPLOYMENT,
    queue: str = settings.TASK_QUEUE,
    rate_window: str = "20s",
    hpas: Sequence[str] = (),
    scaled_objects: Sequence[str] = (),
) -> tuple[Query, ...]:
    """The queries for one stack; parameters exist so the names live in ``settings`` only.

    ``rate_window`` 20 s spans four 5 s scrapes (rate() always has samples) and two 10 s
    metrics windows, so the curves follow what the HPA saw instead of a minute's average.
    ``hpas`` / ``scaled_objects`` (see ``scaling_names``) keep the autoscaler series to the
    scenario's own objects: the previous scenario's HPA may still be in the first scrape
    after a reset.
    """
    ns = f'namespace="{namespace}"'
    hpa_ns = ns + name_matcher("horizontalpodautoscaler", hpas)
    return (
        *_replica_queries(dep=f'{ns},deployment="{deployment}"', hpa_ns=hpa_ns),
        *_cpu_queries(namespace=namespace, deployment=deployment, hpa_ns=hpa_ns,
                      window=rate_window),
        *_queue_queries(ns=ns, queue=queue,
                        keda_ns=ns + name_matcher("scaledObject", scaled_objects)),
        *_task_queries(window=rate_window),
    )


def _replica_queries(*, dep: str, hpa_ns: str) -> tuple[Query, ...]:
    """The replicas chart: the Deployment's counts and the HPA's decision and bounds."""
    return (
        Query(key="replicas_spec", title="spec (autoscaler decision)", unit="replicas",
              chart="replicas", target="replica_bounds",
              promql=f"kube_deployment_spec_replicas{{{dep}}}"),
        Query(key="replicas_current", title="current", unit="replicas", chart="replicas",
              promql=f"kube_deployment_status_replicas{{{dep}}}"),
        Query(key="replicas_ready", title="ready", unit="replicas", chart="replicas",
              promql=f"kube_deployment_status_replicas_ready{{{dep}}}"),
        Query(key="replicas_desired", title="HPA desired", unit="replicas", chart="replicas",
              promql=f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa_ns}}}"),
        Query(key="hpa_min_replicas", title="HPA minReplicas", unit="replicas",
              chart="replicas", draw=False,
              promql=f"kube_horizontalpodautoscaler_spec_min_replicas{{{hpa_ns}}}"),
        Query(key="hpa_max_replicas", title="HPA maxReplicas", unit="replicas",
              chart="replicas", draw=False,
              promql=f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa_ns}}}"),
    )


def _cpu_queries(*, namespace: str, deployment: str, hpa_ns: str,
                 window: str) -> tuple[Query, ...]:
    """The CPU chart: utilization as the HPA computes it, per pod, and what the HPA saw."""
    return (
        Query(key="cpu_utilization", title="average (rate over the window)", unit="%",
              chart="cpu", target="cpu_target",
              promql=cpu_utilization(namespace=namespace, deployment=deployment,
                                     window=window)),
        # What the HPA itself computed at its last sync (its own metrics window).
        Query(key="hpa_cpu_observed", title="HPA observed", unit="%", chart="cpu",
              promql=(f"kube_horizontalpodautoscaler_status_target_metric{{{hpa_ns},"
                      'metric_name="cpu",metric_target_type="utilization"}')),
        Query(key="cpu_utilization_by_pod", title="per pod", unit="%", chart="cpu",
              promql=cpu_utilization(namespace=namespace, deployment=deployment,
                                     window=window, by=("namespace", "pod"))),
        Query(key="hpa_target_metric", title="HPA target", unit="%", chart="cpu",
              draw=False,
              promql=f"kube_horizontalpodautoscaler_spec_target_metric{{{hpa_ns}}}"),
    )


def _queue_queries(*, ns: str, queue: str, keda_ns: str) -> tuple[Query, ...]:
    """The queue chart: the task queue's depth and the value KEDA's scaler reported."""
    return (
        Query(key="queue_ready", title="ready", unit="messages", chart="queue",
              target="queue_target",
              promql=f'sum(rabbitmq_detailed_queue_messages_ready{{{ns},queue="{queue}"}})'),
        Query(key="queue_unacked", title="unacked", unit="messages", chart="queue",
              promql=f'sum(rabbitmq_detailed_queue_messages_unacked{{{ns},queue="{queue}"}})'),
        Query(key="keda_metric", title="KEDA scaler value", unit="messages", chart="queue",
              promql=f"keda_scaler_metrics_value{{{keda_ns}}}"),
    )


def _task_queries(*, window: str) -> tuple[Query, ...]:
    """Throughput and latency charts, from the services' own metrics."""
    def quantile(q: float, metric: str) -> str:
        return f"histogram_quantile({q}, sum by (le) (rate({metric}[{window}])))"

    return (
        Query(key="tasks_published_rate", title="published", unit="tasks/s",
              chart="throughput",
              promql=f"sum(rate(scalelab_api_tasks_published_total[{window}]))"),
        Query(key="tasks_processed_rate", title="processed", unit="tasks/s",
              chart="throughput",
              promql=("sum by (outcome) "
                      f"(rate(scalelab_agent_tasks_processed_total[{window}]))")),
        Query(key="queue_wait_p50", title="queue wait p50", unit="s", chart="latency",
              promql=quantile(0.5, "scalelab_agent_queue_wait_seconds_bucket")),
        Query(key="queue_wait_p95", title="queue wait p95", unit="s", chart="latency",
              promql=quantile(0.95, "scalelab_agent_queue_wait_seconds_bucket")),
        Query(key="task_duration_p50", title="processing p50", unit="s", chart="latency",
              promql=quantile(0.5, "scalelab_agent_task_duration_seconds_bucket")),
        Query(key="task_duration_p95", title="processing p95", unit="s", chart="latency",
              promql=quantile(0.95, "scalelab_agent_task_duration_seconds_bucket")),
        Query(key="api_request_p95", title="API request p95", unit="s", chart="latency",
              promql=quantile(0.95, "scalelab_api_request_duration_seconds_bucket")),
    )


# -- the experiment's own instant queries (observe.Observer, experiment.reset) -------------


def cpu_utilization(*, namespace: str, deployment: str, window: str,
                    by: Sequence[str] = ()) -> str:
    """CPU utilization of a Deployment's pods in % of their requests, as the HPA computes
    it: sum of usage / sum of requests over the pods (kubernetes
    pkg/controller/podautoscaler/metrics/utilization.go); ``by`` keeps labels (per pod)."""
    pods = f'namespace="{namespace}",pod=~"{deployment}-.*"'
    grouping = f" by ({', '.join(by)}) " if by else ""
    return (f"100 * sum{grouping}(rate(container_cpu_usage_seconds_total"
            f'{{{pods},container!=""}}[{window}])) / sum{grouping}'
            f'(kube_pod_container_resource_requests{{{pods},resource="cpu"}})')


def desired_replicas(*, namespace: str, hpas: Sequence[str] = ()) -> str:
    """The scenario's HPAs' desired replicas (one number: the timeline's ``desired``)."""
    selector = f'namespace="{namespace}"' + name_matcher("horizontalpodautoscaler", hpas)
    return f"max(kube_horizontalpodautoscaler_status_desired_replicas{{{selector}}})"


def autoscaler_series(*, namespace: str) -> str:
    """How many HPA series are left in the namespace (no sample once the objects are gone).

    KEDA's own ``keda_scaler_*`` series are not counted: KEDA 2.16 never deletes them when
    a ScaledObject goes (kedacore/keda pkg/metricscollector/prommetrics.go has no delete;
    KEDA 2.17's fix for kedacore/keda#6617 clears them only when a live object is
    reconciled), so on a cluster they would never end. Its generated HPA
    ``keda-hpa-<name>`` is an HPA, gone with the ScaledObject, so a KEDA scenario's end is
    still seen here; the report's KEDA queries are scoped to the scenario's ScaledObject
    names, which KEDA updates on its first poll.
    """
    return f'count(kube_horizontalpodautoscaler_spec_max_replicas{{namespace="{namespace}"}})'


def name_matcher(label: str, names: Sequence[str]) -> str:
    """``,label=~"a|b"`` for a selector, or nothing when ``names`` is empty."""
    if not names:
        return ""
    # Kubernetes names are [a-z0-9.-]: only the dot is special in a regex, and PromQL
    # strings take Go escapes, so it is written "\\." (no re.escape: "\-" breaks PromQL).
    alternatives = "|".join(n.replace(".", "\\\\.") for n in sorted(set(names)))
    return f',{label}=~"{alternatives}"'


@dataclass(frozen=True, kw_only=True)
class ScalingNames:
    """The autoscaler objects a scenario created, to scope queries to them."""

    hpas: tuple[str, ...] = ()
    scaled_objects: tuple[str, ...] = ()


def scaling_names(objects: Iterable[ScalingObject]) -> ScalingNames:
    """The HPAs and ScaledObjects among a scenario's scaling objects
    (``Scenario.scaling_objects``), each ScaledObject with the HPA KEDA makes for it."""
    hpas: list[str] = []
    scaled: list[str] = []
    for obj in objects:
        if obj.kind == "HorizontalPodAutoscaler":
            hpas.append(obj.name)
        elif obj.kind == "ScaledObject":
            scaled.append(obj.name)
            hpas.append(keda_hpa_name(obj.name, obj.doc.get("spec") or {}))
    return ScalingNames(hpas=tuple(hpas), scaled_objects=tuple(scaled))


#: The queries for the default names; what ``capture_series`` runs unless given others.
QUERIES: tuple[Query, ...] = build_queries()


def choose_step(*, start: float, end: float, scrape_interval: float,
                max_points: int = MAX_POINTS) -> float:
    """The finest step that keeps every series under Prometheus' point limit.

    Never finer than the scrape interval: a finer step only repeats samples.
    """
    if end <= start:
        return max(scrape_interval, 1.0)
    needed = (end - start) / (max_points - 1)
    return float(max(scrape_interval, math.ceil(needed)))


@dataclass(frozen=True, kw_only=True)
class Targets:
    """Target lines taken from the applied scaling manifests (None when absent)."""

    cpu_target_percent: float | None = None
    #: KEDA rabbitmq trigger ``value`` in QueueLength mode (messages per replica).
    queue_value: float | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def targets_from_manifests(manifests: list[dict[str, Any]]) -> Targets:
    """Read CPU target, queue value and replica bounds from HPA / ScaledObject manifests.

    Field names follow autoscaling/v2 HorizontalPodAutoscalerSpec and KEDA's
    ScaledObject CRD (kedacore/keda config/crd/bases/keda.sh_scaledobjects.yaml:
    minReplicaCount default 0, maxReplicaCount default 100; rabbitmq trigger
    metadata ``mode``/``value``, legacy ``queueLength``).
    """
    cpu = queue = None
    mins: list[int] = []
    maxs: list[int] = []
    for manifest in manifests:
        text = manifest.get("text") or ""
        try:
            docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue
        for doc in docs:
            kind, spec = doc.get("kind"), doc.get("spec") or {}
            if kind == "HorizontalPodAutoscaler":
                mins.append(int(spec.get("minReplicas", 1)))
                if "maxReplicas" in spec:
                    maxs.append(int(spec["maxReplicas"]))
                for metric in spec.get("metrics") or []:
                    res = metric.get("resource") or {}
                    util = (res.get("target") or {}).get("averageUtilization")
                    if res.get("name") == "cpu" and util is not None:
                        cpu = float(util)
            elif kind == "ScaledObject":
                mins.append(int(spec.get("minReplicaCount", 0)))
                maxs.append(int(spec.get("maxReplicaCount", 100)))
                for trig in spec.get("triggers") or []:
                    meta = trig.get("metadata") or {}
                    if trig.get("type") != "rabbitmq":
                        if trig.get("type") == "cpu" and meta.get("value") is not None:
                            cpu = float(meta["value"])
                        continue
                    if meta.get("mode", "QueueLength") == "QueueLength" and "value" in meta:
                        queue = float(meta["value"])
                    elif "queueLength" in meta:
                        queue = float(meta["queueLength"])
    return Targets(
        cpu_target_percent=cpu,
        queue_value=queue,
        min_replicas=min(mins) if mins else None,
        max_replicas=max(maxs) if maxs else None,
    )


def _scrape_interval(scenario: dict[str, Any] | None) -> float:
    if scenario:
        for where in (scenario.get("timing_profile"), scenario.get("timing"), scenario):
            if isinstance(where, dict) and isinstance(where.get("scrape_interval"), int | float):
                return float(where["scrape_interval"])
    return settings.TimingProfile().scrape_interval


def capture_series(
    prometheus_url: str,
    *,
    start: float,
    end: float,
    scenario: dict[str, Any] | None = None,
    scrape_interval: float | None = None,
    queries: tuple[Query, ...] = QUERIES,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Run every query over ``[start, end]`` and return the ``series.json`` document.

    ``scenario`` (the scenario spec, or anything with ``timing_profile``/``timing``/
    ``scrape_interval``) sets the scrape interval the step may not undercut; its
    ``name`` is recorded; an explicit ``scrape_interval`` wins over it. A failing query
    is stored with ``error`` and no series.
    """
    scrape = scrape_interval if scrape_interval is not None else _scrape_interval(scenario)
    step = choose_step(start=start, end=end, scrape_interval=scrape)
    prom, unreachable = _connect(prometheus_url, timeout=timeout)
    t0, t1 = (datetime.fromtimestamp(x, tz=UTC) for x in (start, end))
    out: dict[str, Any] = {
        "start": start, "end": end, "step": step,
        "scenario": (scenario or {}).get("name"),
        "captured_at": time.time(),
        "prometheus_url": prometheus_url,
        "queries": {},
    }
    for q in queries:
        entry: dict[str, Any] = {"title": q.title, "promql": q.promql, "unit": q.unit,
                                 "chart": q.chart, "target": q.target, "series": []}
        if unreachable is not None:
            entry["error"] = unreachable
        else:
            try:
                entry["series"] = _range(prom, q.promql, start=t0, end=t1, step=step)
            except Exception as err:  # recorded: the report shows why a chart is empty
                entry["error"] = f"{type(err).__name__}: {err}"
        out["queries"][q.key] = entry
    return out


def _connect(prometheus_url: str, *, timeout: float) -> tuple[Any, str | None]:
    """A Prometheus client, and why every query will fail (None when it answers)."""
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    # Few, quick retries: a capture at teardown must not stall for minutes on a dead server.
    retry = Retry(total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504),
                  allowed_methods=None)
    prom = PrometheusConnect(url=prometheus_url, disable_ssl=True, timeout=int(timeout),
                             retry=retry)
    try:
        if not prom.check_prometheus_connection():
            return prom, f"Prometheus at {prometheus_url} did not answer"
    except Exception as err:  # connection refused, DNS...: every query gets the reason
        return prom, f"Prometheus at {prometheus_url} unreachable: {type(err).__name__}: {err}"
    return prom, None


def _range(prom: Any, promql: str, *, start: datetime, end: datetime,
           step: float) -> list[dict[str, Any]]:
    """One range query's series as ``series.json`` stores them."""
    result = prom.custom_query_range(promql, start_time=start, end_time=end,
                                     step=f"{step:g}s")
    return [{"labels": dict(r.get("metric") or {}),
             "values": [[float(t), _num(v)] for t, v in r.get("values") or []]}
            for r in result]


def _num(v: Any) -> float | None:
    """Prometheus sends values as strings; NaN/Inf (empty histograms) become None."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def query_by_key(key: str) -> Query | None:
    return next((q for q in QUERIES if q.key == key), None)
