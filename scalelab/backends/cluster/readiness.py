"""Ready to measure, not only rolled out: Prometheus scrapes the stack and the metrics APIs
answer, before the first scenario starts.

A rollout can complete while Prometheus has not yet picked up a PodMonitor (the operator
rewrites the config, the config-reloader reloads it), and while an aggregated APIService
still fails its discovery check. A scenario started then reads empty series and an HPA with
``FailedGetResourceMetric``. So ``up()`` waits for both, each with expected / actual /
elapsed on timeout.

What is expected follows the rendered config: one scrape pool per PodMonitor endpoint
scalelab applies, kube-state-metrics and KEDA's two ServiceMonitors when scalelab installed
those charts (from the rendered values), and the same components when they are already on
the cluster and Prometheus scrapes them (detected). Pure functions interpret the JSON of
Prometheus' ``/api/v1/targets`` and ``/api/v1/query`` and of an ``APIService``; the wait
loop takes the fetchers injected, so it is tested against recorded answers and a real
Prometheus.

Upstream semantics followed:

* scrape pools: prometheus-operator ``pkg/prometheus/promcfg.go`` names the scrape config
  of PodMonitor endpoint ``i`` ``podMonitor/<namespace>/<name>/<i>`` (ServiceMonitor:
  ``serviceMonitor/...``); ``/api/v1/targets`` reports it as ``scrapePool``
  (prometheus/prometheus ``web/api/v1/api.go``, ``Target``).
* KEDA chart v2.16.0 (kedacore/charts ``keda/templates/manager/servicemonitor.yaml`` and
  ``metrics-server/servicemonitor.yaml``): ServiceMonitors ``<operator.name>`` and
  ``<operator.name>-metrics-apiserver`` in the release namespace (or
  ``serviceMonitor.namespace``), when ``prometheus.operator`` / ``prometheus.metricServer``
  and their ``serviceMonitor`` are enabled; ``operator.name`` defaults to ``keda-operator``.
* kube-state-metrics chart 5.27 (a dependency of kube-prometheus-stack 66.3.0,
  ``charts/kube-state-metrics/templates/servicemonitor.yaml`` and ``_helpers.tpl``): the
  ServiceMonitor is ``<release>-kube-state-metrics`` in the release namespace.
* APIService availability: k8s.io/kube-aggregator ``pkg/controllers/status``
  (available_controller.go) sets the ``Available`` condition, ``False`` with reasons such
  as ``ServiceNotFound``, ``MissingEndpoints`` or ``FailedDiscoveryCheck``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scalelab.waiting import wait_for

log = logging.getLogger(__name__)

#: The aggregated APIs the autoscalers read: resource metrics (metrics-server, the HPA's
#: CPU/memory) and external metrics (KEDA's metrics apiserver, ScaledObjects' HPAs).
METRICS_APISERVICE = "v1beta1.metrics.k8s.io"
EXTERNAL_METRICS_APISERVICE = "v1beta1.external.metrics.k8s.io"
#: KEDA chart default ``operator.name`` (kedacore/charts v2.16.0 keda/values.yaml).
KEDA_OPERATOR_NAME = "keda-operator"
#: One instant query answers which jobs have stored a sample: ``scrape_samples_scraped`` is
#: written by Prometheus itself after every scrape, with the target's labels.
SAMPLES_QUERY = "count by (job) (scrape_samples_scraped > 0)"
#: Components looked for among the scrape pools when scalelab did not install them
#: (an existing cluster's own kube-state-metrics / KEDA).
DETECT_PATTERNS: tuple[tuple[str, str], ...] = (
    ("kube-state-metrics", r"^(service|pod)Monitor/[^/]+/[^/]*kube-state-metrics[^/]*/\d+$"),
    ("keda-operator-metrics-apiserver",
     r"^(service|pod)Monitor/[^/]+/[^/]*keda-operator-metrics-apiserver[^/]*/\d+$"),
    ("keda-operator", r"^(service|pod)Monitor/[^/]+/[^/]*keda-operator(?!-metrics)[^/]*/\d+$"),
)

#: (path, query parameters) -> the decoded JSON answer of the Prometheus HTTP API.
PromGet = Callable[[str, Mapping[str, str]], Any]


class PrometheusUnavailable(Exception):  # noqa: N818 - a state, not a bug
    """Prometheus did not answer (yet): the wait goes on, the message is the actual."""


# -- what to expect (pure) -----------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ExpectedPool:
    """A scrape pool that must have a healthy target and a stored sample."""

    name: str     # what it scrapes, for messages: "agent", "kube-state-metrics"
    pool: str     # the scrape pool (the operator's job_name)


@dataclass(frozen=True, kw_only=True)
class ReadinessPlan:
    """What ``up()`` waits for, derived from what scalelab rendered and applied."""

    pools: tuple[ExpectedPool, ...] = ()
    #: (name, regex on scrape pools): waited for when Prometheus has such a pool.
    detect: tuple[tuple[str, str], ...] = ()
    #: APIServices that must be Available (scalelab installed their server).
    apiservices: tuple[str, ...] = ()
    #: APIServices waited for only when they exist (installed by someone else).
    optional_apiservices: tuple[str, ...] = ()


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector`` (matchLabels AND matchExpressions, k8s.io/apimachinery
    ``LabelSelectorAsSelector`` semantics) against a pod template's labels."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], list(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _pod_templates(workloads: Iterable[Mapping[str, Any] | None]
                   ) -> list[tuple[str, bool, Mapping[str, Any]]]:
    """(name, runs pods, pod template) of each workload; ``spec.replicas: 0`` runs none."""
    out = []
    for doc in workloads:
        if not doc or doc.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        spec = doc.get("spec") or {}
        out.append((str((doc.get("metadata") or {}).get("name")), spec.get("replicas") != 0,
                    spec.get("template") or {}))
    return out


def pod_monitor_pools(monitors: Iterable[Mapping[str, Any] | None],
                      workloads: Iterable[Mapping[str, Any] | None], *,
                      namespace: str) -> list[ExpectedPool]:
    """One pool per PodMonitor endpoint, named after the workloads it scrapes.

    An endpoint selects the pods of the monitor's selector that have a container port of
    the endpoint's name (the operator drops the others): the api's ``http`` and the agent's
    ``metrics`` endpoints of one PodMonitor are separate pools. An endpoint no workload
    serves is expected too (it would never come up: better to say so at ``up``); one whose
    workloads are all at ``replicas: 0`` is not (nothing to scrape yet).
    ``namespace`` is where the monitors are applied (scalelab: the stack's namespace,
    whatever ``metadata.namespace`` the file says).
    """
    templates = _pod_templates(workloads)   # scalelab's, all in the monitors' namespace
    pools: list[ExpectedPool] = []
    for doc in monitors:
        if not doc or doc.get("kind") != "PodMonitor":
            continue
        meta = doc.get("metadata") or {}
        ns = namespace
        spec = doc.get("spec") or {}
        selector = spec.get("selector") or {}
        for i, endpoint in enumerate(spec.get("podMetricsEndpoints") or []):
            port = endpoint.get("port")
            names: list[str] = []
            idle: list[str] = []
            for wl_name, runs, template in templates:
                labels = (template.get("metadata") or {}).get("labels") or {}
                ports = {p.get("name") for c in (template.get("spec") or {}).get("containers")
                         or [] for p in c.get("ports") or []}
                if _selector_matches(selector, labels) and (port is None or port in ports):
                    (names if runs else idle).append(wl_name)
            if idle and not names:
                continue   # only workloads scaled to zero: no target to wait for
            name = "+".join(sorted(names)) or f"{meta.get('name')} port {port}"
            pools.append(ExpectedPool(name=name, pool=f"podMonitor/{ns}/{meta.get('name')}/{i}"))
    return pools


def _get(doc: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    cur: Any = doc
    for key in path:
        if not isinstance(cur, Mapping) or key not in cur:
            return default
        cur = cur[key]
    return cur


def keda_pools(values: Mapping[str, Any] | None, *, release_namespace: str
               ) -> list[ExpectedPool]:
    """KEDA's operator and metrics-apiserver ServiceMonitors the rendered values enable."""
    name = str(_get(values, "operator", "name", default=KEDA_OPERATOR_NAME))
    out = []
    for key, sm_name in (("operator", name), ("metricServer", f"{name}-metrics-apiserver")):
        if _get(values, "prometheus", key, "enabled") and \
                _get(values, "prometheus", key, "serviceMonitor", "enabled"):
            ns = _get(values, "prometheus", key, "serviceMonitor", "namespace") \
                or release_namespace
            out.append(ExpectedPool(name=sm_name, pool=f"serviceMonitor/{ns}/{sm_name}/0"))
    return out


def kube_state_metrics_pools(values: Mapping[str, Any] | None, *, release: str,
                             release_namespace: str) -> list[ExpectedPool]:
    """kube-prometheus-stack's kube-state-metrics ServiceMonitor (unless disabled)."""
    if _get(values, "kubeStateMetrics", "enabled", default=True) is False:
        return []
    ksm = _get(values, "kube-state-metrics", default={}) or {}
    if _get(ksm, "prometheus", "monitor", "enabled", default=True) is False:
        return []
    name = _get(ksm, "fullnameOverride") or (
        release if "kube-state-metrics" in release else f"{release}-kube-state-metrics")
    ns = _get(ksm, "namespaceOverride") or release_namespace
    return [ExpectedPool(name="kube-state-metrics", pool=f"serviceMonitor/{ns}/{name}/0")]


@dataclass(frozen=True, kw_only=True)
class InstalledChart:
    """A Helm release scalelab installs, with its rendered values."""

    chart: str                          # "keda", "kube-prometheus-stack", "metrics-server"
    release: str
    namespace: str
    values: Mapping[str, Any] = field(default_factory=dict)


def build_plan(*, monitors: Iterable[Mapping[str, Any] | None],
               workloads: Iterable[Mapping[str, Any] | None], namespace: str,
               installed: Sequence[InstalledChart]) -> ReadinessPlan:
    """The plan for what scalelab applied: its PodMonitors' pools; for each addon chart it
    installed, that chart's pools and APIService (required); for the others, detection."""
    pools = pod_monitor_pools(monitors, workloads, namespace=namespace)
    charts = {c.chart: c for c in installed}
    detect = list(DETECT_PATTERNS)
    apis: list[str] = []
    optional: list[str] = []
    if (kps := charts.get("kube-prometheus-stack")) is not None:
        pools += kube_state_metrics_pools(kps.values, release=kps.release,
                                          release_namespace=kps.namespace)
        detect = [d for d in detect if d[0] != "kube-state-metrics"]
    if (keda := charts.get("keda")) is not None:
        pools += keda_pools(keda.values, release_namespace=keda.namespace)
        detect = [d for d in detect if not d[0].startswith("keda")]
        apis.append(EXTERNAL_METRICS_APISERVICE)
    else:
        optional.append(EXTERNAL_METRICS_APISERVICE)
    if "metrics-server" in charts:
        apis.insert(0, METRICS_APISERVICE)
    else:
        optional.insert(0, METRICS_APISERVICE)
    return ReadinessPlan(pools=tuple(pools), detect=tuple(detect), apiservices=tuple(apis),
                         optional_apiservices=tuple(optional))


# -- what Prometheus answers (pure) --------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PoolState:
    """One expected pool as Prometheus reports it."""

    name: str
    pool: str
    up: int = 0
    total: int = 0
    jobs: tuple[str, ...] = ()          # ``job`` labels of its healthy targets
    errors: tuple[str, ...] = ()        # lastError of the unhealthy ones
    sampled: bool = False               # a job of it has stored a sample

    @property
    def ready(self) -> bool:
        return self.up > 0 and self.sampled

    def __str__(self) -> str:
        if self.total == 0:
            state = "no targets"
        elif self.up == 0:
            state = f"0/{self.total} up"
        else:
            state = f"{self.up}/{self.total} up"
        if self.up and not self.sampled:
            state += ", no sample stored yet"
        if self.errors:
            state += f", lastError {self.errors[0]!r}"
        return f"{self.name} ({self.pool}): {state}"


@dataclass(frozen=True, kw_only=True)
class ScrapeStatus:
    """One probe of Prometheus: every expected pool's state, or why it did not answer."""

    pools: tuple[PoolState, ...] = ()
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.error is None and all(p.ready for p in self.pools)

    def __str__(self) -> str:
        if self.error is not None:
            return self.error
        waiting = [str(p) for p in self.pools if not p.ready]
        return "; ".join(waiting) if waiting else "all up with samples"


def active_targets(targets_doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``data.activeTargets`` of a ``/api/v1/targets`` answer (checks ``status``)."""
    if targets_doc.get("status") != "success":
        raise PrometheusUnavailable(
            f"/api/v1/targets answered {targets_doc.get('status')!r}: "
            f"{targets_doc.get('error', '')}")
    return list(_get(targets_doc, "data", "activeTargets", default=[]) or [])


def detected_pools(targets: Sequence[Mapping[str, Any]],
                   patterns: Sequence[tuple[str, str]]) -> list[ExpectedPool]:
    """The scrape pools of components scalelab did not install but Prometheus scrapes."""
    pools = sorted({str(t.get("scrapePool")) for t in targets})
    out = []
    for pool in pools:
        for name, pattern in patterns:
            if re.search(pattern, pool):
                out.append(ExpectedPool(name=name, pool=pool))
                break
    return out


def jobs_with_samples(query_doc: Mapping[str, Any]) -> set[str]:
    """The ``job`` labels of a ``SAMPLES_QUERY`` answer (a vector, one series per job)."""
    if query_doc.get("status") != "success":
        raise PrometheusUnavailable(
            f"/api/v1/query answered {query_doc.get('status')!r}: {query_doc.get('error', '')}")
    result = _get(query_doc, "data", "result", default=[]) or []
    return {str(r["metric"]["job"]) for r in result
            if "job" in (r.get("metric") or {}) and float(r["value"][1]) > 0}


def pool_states(targets: Sequence[Mapping[str, Any]], expected: Sequence[ExpectedPool],
                sampled_jobs: set[str]) -> list[PoolState]:
    """Each expected pool's healthy/total targets, their jobs and whether one has a sample."""
    out = []
    for exp in expected:
        mine = [t for t in targets if t.get("scrapePool") == exp.pool]
        healthy = [t for t in mine if t.get("health") == "up"]
        jobs = tuple(sorted({str((t.get("labels") or {}).get("job")) for t in healthy}))
        errors = tuple(str(t.get("lastError")) for t in mine
                       if t.get("health") != "up" and t.get("lastError"))
        out.append(PoolState(name=exp.name, pool=exp.pool, up=len(healthy), total=len(mine),
                             jobs=jobs, errors=errors,
                             sampled=bool(set(jobs) & sampled_jobs)))
    return out


@dataclass(frozen=True, kw_only=True)
class ApiServiceState:
    """One APIService's ``Available`` condition (missing: the object does not exist)."""

    name: str
    exists: bool = True
    available: bool = False
    reason: str = ""
    message: str = ""

    def __str__(self) -> str:
        if not self.exists:
            return f"{self.name}: not found"
        if self.available:
            return f"{self.name}: Available"
        detail = f"{self.reason}: {self.message}" if self.reason else \
            (self.message or "no Available condition yet")
        return f"{self.name}: not Available ({detail})"


def apiservice_state(name: str, doc: Mapping[str, Any] | None) -> ApiServiceState:
    """Read ``status.conditions[type=Available]`` of an apiregistration.k8s.io/v1 APIService."""
    if doc is None:
        return ApiServiceState(name=name, exists=False)
    for cond in _get(doc, "status", "conditions", default=[]) or []:
        if cond.get("type") == "Available":
            return ApiServiceState(name=name, available=cond.get("status") == "True",
                                   reason=str(cond.get("reason") or ""),
                                   message=str(cond.get("message") or ""))
    return ApiServiceState(name=name)


@dataclass(frozen=True, kw_only=True)
class ApiServicesStatus:
    states: tuple[ApiServiceState, ...] = ()

    @property
    def ready(self) -> bool:
        return all(s.available for s in self.states)

    def __str__(self) -> str:
        waiting = [str(s) for s in self.states if not s.available]
        return "; ".join(waiting) if waiting else "all Available"


# -- the waits -----------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ReadinessResult:
    """What was waited for and how long each wait took (for the run's details)."""

    apiservices: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)


def wait_apiservices(
    *, plan: ReadinessPlan, get_apiservice: Callable[[str], Mapping[str, Any] | None],
    timeout: float, interval: float = 2.0, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, ...]:
    """Wait until the plan's APIServices are Available; return the names waited for.

    Optional ones (not installed by scalelab) are waited for only when they exist.
    """
    names = list(plan.apiservices)
    for name in plan.optional_apiservices:
        if name not in names and get_apiservice(name) is not None:
            names.append(name)
        elif name not in names:
            log.warning("APIService %s does not exist on this cluster; not waiting for it",
                        name)
    if not names:
        return ()

    def probe() -> ApiServicesStatus:
        return ApiServicesStatus(states=tuple(apiservice_state(n, get_apiservice(n))
                                              for n in names))

    wait_for(probe, lambda s: s.ready, what="the metrics APIServices to be Available",
             expected=", ".join(f"{n} Available=True" for n in names), timeout=timeout,
             interval=interval, clock=clock, sleep=sleep,
             fix="kubectl get apiservices; kubectl describe apiservice <name>; the logs of "
                 "metrics-server (kube-system) and keda-operator-metrics-apiserver (keda)")
    return tuple(names)


def scrape_status(get: PromGet, plan: ReadinessPlan) -> ScrapeStatus:
    """One probe: the targets, the detected pools, the jobs with a sample."""
    try:
        targets = active_targets(get("/api/v1/targets", {"state": "active"}))
        expected = list(plan.pools)
        known = {p.pool for p in expected}
        expected += [p for p in detected_pools(targets, plan.detect) if p.pool not in known]
        sampled = jobs_with_samples(get("/api/v1/query", {"query": SAMPLES_QUERY}))
    except PrometheusUnavailable as err:
        return ScrapeStatus(error=f"Prometheus did not answer: {err}")
    return ScrapeStatus(pools=tuple(pool_states(targets, expected, sampled)))


def wait_scraping(
    *, plan: ReadinessPlan, get: PromGet, timeout: float, interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
    fix: str = ("open Prometheus' /targets page (the endpoint scalelab forwards); "
                "kubectl get podmonitors,servicemonitors -A; the prometheus-operator's log"),
) -> tuple[str, ...]:
    """Wait until every expected pool has a healthy target and a stored sample (``fix``:
    what the timeout's message tells to look at; the local backend says its own)."""
    expected = ", ".join(f"{p.name} ({p.pool})" for p in plan.pools) or "none listed"
    if plan.detect:
        expected += "; and, when Prometheus scrapes them, " + \
            ", ".join(name for name, _ in plan.detect)
    status = wait_for(
        lambda: scrape_status(get, plan), lambda s: s.ready,
        what="Prometheus to scrape the stack", timeout=timeout, interval=interval,
        expected=f"a target with health 'up' and a stored sample in each of: {expected}",
        clock=clock, sleep=sleep, fix=fix)
    return tuple(p.pool for p in status.pools)


def wait_ready(
    *, plan: ReadinessPlan, get_apiservice: Callable[[str], Mapping[str, Any] | None],
    prometheus: PromGet, apiservice_timeout: float, scrape_timeout: float,
    interval: float = 2.0, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReadinessResult:
    """The APIServices, then the scrape pools; raises ``WaitTimeout`` naming what is missing."""
    t0 = clock()
    apis = wait_apiservices(plan=plan, get_apiservice=get_apiservice,
                            timeout=apiservice_timeout, interval=interval, clock=clock,
                            sleep=sleep)
    t1 = clock()
    pools = wait_scraping(plan=plan, get=prometheus, timeout=scrape_timeout,
                          interval=interval, clock=clock, sleep=sleep)
    result = ReadinessResult(apiservices=apis, pools=pools,
                             seconds={"apiservices": t1 - t0, "scraping": clock() - t1})
    log.info("ready after %.1fs: APIServices %s Available; scraped with a sample: %s",
             clock() - t0, ", ".join(apis) or "(none)", ", ".join(pools) or "(none)")
    return result


def http_prometheus(base_url: str, *, timeout: float = 5.0) -> PromGet:
    """A ``PromGet`` over HTTP (the forwarded Prometheus); connection errors and non-JSON
    answers become ``PrometheusUnavailable`` (a forward that is still starting)."""
    import requests

    session = requests.Session()

    def get(path: str, params: Mapping[str, str]) -> Any:
        try:
            resp = session.get(f"{base_url.rstrip('/')}{path}", params=dict(params),
                               timeout=timeout)
            return resp.json()
        except (requests.RequestException, ValueError) as err:
            raise PrometheusUnavailable(f"{base_url}{path}: {err}") from err

    return get

