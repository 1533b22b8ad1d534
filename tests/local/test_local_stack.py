"""The whole local stack, shared by the tests of this module (bring-up costs seconds).

Real broker, real Prometheus, the real api and agent services as pods. Prometheus scrapes
every second here (``TimingProfile.scrape_interval``) so the waits stay short.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest
import requests
from prometheus_api_client import PrometheusConnect

from scalelab.backends.local.backend import LocalBackend
from scalelab.credentials import (
    AMQP_URL_KEY,
    MANAGEMENT_URL_KEY,
    SECRET_KEYS,
    SECRET_NAME,
)
from scalelab.settings import TASK_QUEUE, StackSettings, TimingProfile
from scalelab.waiting import wait_for
from tests.local.leftovers import MARKER, describe, listening, tagged

pytestmark = pytest.mark.slow

TIMING = TimingProfile(scrape_interval=1.0, metrics_window=2.0)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalBackend]:
    tag = uuid.uuid4().hex
    os.environ[MARKER] = tag          # inherited by every process the stack starts
    backend = LocalBackend(settings=StackSettings(timing=TIMING))
    try:
        backend.up()
        workdir = backend.workdir
        ports = [urlsplit(u).port for u in backend.endpoints.as_dict().values()]
        yield backend
    finally:
        backend.down()
        os.environ.pop(MARKER, None)
    # down() SIGKILLs what is left (epmd): give the kernel a moment to reap it
    left = wait_for(lambda: describe(tagged(tag)), lambda procs: not procs,
                    what="no process of the stack after down()", expected="none",
                    timeout=15, interval=0.2)
    assert not left
    assert workdir is not None and not workdir.exists()
    assert not [p for p in ports if p and listening(p)]
    backend.down()                    # idempotent


def _prom(stack: LocalBackend) -> PrometheusConnect:
    return PrometheusConnect(url=stack.endpoints.prometheus, disable_ssl=True)


def _value(stack: LocalBackend, promql: str) -> float | None:
    result = _prom(stack).custom_query(promql)
    return float(result[0]["value"][1]) if result else None


def _wait_value(stack: LocalBackend, promql: str, want: float, timeout: float = 30) -> None:
    wait_for(lambda: _value(stack, promql), lambda v: v == want, what=f"PromQL {promql}",
             expected=want, timeout=timeout, interval=0.5)


def _agent_targets(stack: LocalBackend) -> list[dict[str, object]]:
    data = requests.get(f"{stack.endpoints.prometheus}/api/v1/targets", timeout=5).json()
    return [t for t in data["data"]["activeTargets"]
            if t["labels"]["job"] == "agent" and t["health"] == "up"]


def test_endpoints_answer(stack: LocalBackend) -> None:
    urls = stack.endpoints
    assert requests.get(f"{urls.api}/healthz", timeout=5).ok
    assert requests.get(f"{urls.prometheus}/-/ready", timeout=5).ok
    overview = requests.get(f"{urls.rabbitmq_management}/api/overview",
                            auth=("guest", "guest"), timeout=5).json()
    assert overview["rabbitmq_version"].startswith("3.")
    assert stack.replicas("agent").ready == 2 and stack.replicas("api").ready == 1
    versions = stack.versions()
    assert versions["rabbitmq"].startswith("3.") and versions["prometheus"][0].isdigit()


def test_up_returns_once_every_scrape_job_has_a_sample(stack: LocalBackend) -> None:
    """Ready to measure, as on a cluster: a task posted right after ``up()`` is counted by
    ``rate()``, which ignores what a series' first scrape already holds. Asked first (the
    module's stack has just come up), with no wait."""
    answer = requests.get(f"{stack.endpoints.prometheus}/api/v1/query", timeout=5, params={
        "query": "count by (job) (scrape_samples_scraped > 0)"}).json()
    jobs = {r["metric"]["job"] for r in answer["data"]["result"]}
    assert jobs >= {"rabbitmq", "rabbitmq-aggregated", "scalelab-exporter", "api", "agent"}, \
        f"expected every job scraped when up() returns, saw {sorted(jobs)}"
    assert "scraping" in stack.timings, stack.timings


def test_agent_env_and_the_secret_carry_private_broker_urls(stack: LocalBackend) -> None:
    """The Secret manifests/base reads holds the private broker's loopback guest user (in
    memory): the pods' AMQP_URL comes from it, and so does KEDA's management URL."""
    env = stack.container_env("agent")
    assert env["AMQP_URL"] == stack.endpoints.amqp
    assert env["TASK_QUEUE"] == "agent-tasks"
    assert "RABBITMQ_MGMT_URL" not in env
    secret = stack.secret(SECRET_NAME)
    assert secret is not None and set(secret) == set(SECRET_KEYS)
    mgmt = urlsplit(stack.endpoints.rabbitmq_management)
    assert secret[MANAGEMENT_URL_KEY] == f"http://guest:guest@127.0.0.1:{mgmt.port}"
    assert secret[AMQP_URL_KEY] == stack.endpoints.amqp
    pod = stack.supervisors["agent"].pods()[0]
    # the agents reach the broker through the relay a partition fault cuts: same user,
    # password and vhost, the relay's address
    relay = stack.proxies["agent"]
    broker = urlsplit(stack.endpoints.amqp)
    assert pod.launch.env["AMQP_URL"] == broker._replace(
        netloc=f"{broker.username}:{broker.password}@{relay.host}:{relay.port}").geturl()
    assert relay.upstream == (broker.hostname, broker.port)
    assert requests.get(f"{secret[MANAGEMENT_URL_KEY]}/api/whoami", timeout=5).ok


def test_agent_pods_are_ready_only_while_they_consume(stack: LocalBackend) -> None:
    """The local pods follow the manifest's readiness probe, /readyz (defect 10). The test
    holds an exclusive consumer on the task queue, so the broker refuses the agents'
    basic.consume: their processes run and answer /healthz, yet no pod may turn ready
    (with the old /healthz probe both did at once); once the test lets go they consume
    and turn ready."""
    stack.scale("agent", 0)
    wait_for(lambda: stack.pods("agent"), lambda pods: pods == [], what="no agent pods",
             expected="none", timeout=40, interval=0.2)
    connection = pika.BlockingConnection(pika.URLParameters(stack.endpoints.amqp))
    channel = connection.channel()
    try:
        channel.queue_declare(TASK_QUEUE, passive=True)
        tag = channel.basic_consume(TASK_QUEUE, lambda *a: None, exclusive=True)
        stack.scale("agent", 2)
        wait_for(lambda: sum("ACCESS_REFUSED" in p.log_tail()
                             for p in stack.supervisors["agent"].pods()),
                 lambda n: n == 2, what="the broker to refuse both agents' consumers",
                 expected=2, timeout=30, interval=0.2)
        seen = set()
        for _ in range(30):   # 3 s: more than one readiness period (2 s) of each pod
            seen.add(stack.replicas("agent").ready)
            connection.process_data_events(0.1)
        assert seen == {0}, "an agent pod turned ready without consuming"
        channel.basic_cancel(tag)
        wait_for(lambda: stack.replicas("agent").ready, lambda n: n == 2,
                 what="both agents consuming and ready", expected=2, timeout=30,
                 interval=0.2)
        consumers = channel.queue_declare(TASK_QUEUE, passive=True).method.consumer_count
        assert consumers == 2
    finally:
        connection.close()
        stack.scale("agent", 2)
        wait_for(lambda: stack.replicas("agent").ready, lambda n: n == 2,
                 what="agents back", expected=2, timeout=30, interval=0.2)


def test_kube_series_are_scraped(stack: LocalBackend) -> None:
    _wait_value(stack, 'kube_deployment_spec_replicas{deployment="agent",namespace="scalelab"}',
                2)
    _wait_value(stack, 'sum(kube_pod_container_resource_requests'
                       '{deployment="agent",resource="cpu",unit="core"})', 0.5)
    _wait_value(stack, 'sum(kube_pod_status_ready{condition="true",pod=~"agent-.*"})', 2)
    # A pod's CPU counter is exported from its second accounting sample on (like
    # metrics-server) and then needs a scrape: wait for both pods' series.
    wait_for(lambda: _prom(stack).custom_query('container_cpu_usage_seconds_total'
                                               '{pod=~"agent-.*"}'),
             lambda r: len(r) == 2 and all(float(s["value"][1]) > 0 for s in r),
             what="CPU usage series of both agent pods", expected="2 series > 0",
             timeout=30, interval=0.5)
    # RabbitMQ's per-queue series come through the params of the rabbitmq job
    wait_for(lambda: _prom(stack).custom_query('rabbitmq_detailed_queue_consumers'),
             lambda r: bool(r), what="rabbitmq per-queue series", expected="a series",
             timeout=30, interval=0.5)


def test_scale_2_4_2_shows_in_prometheus_and_targets(stack: LocalBackend) -> None:
    query = 'kube_deployment_status_replicas{deployment="agent"}'
    for replicas in (4, 2):
        stack.scale("agent", replicas)
        wait_for(lambda: stack.replicas("agent").ready, lambda n, want=replicas: n == want,
                 what="ready agents", expected=replicas, timeout=30, interval=0.2)
        _wait_value(stack, query, replicas)
        pods = {p.name for p in stack.pods("agent") if not p.deleting}
        wait_for(lambda: {t["labels"]["pod"] for t in _agent_targets(stack)},  # type: ignore[index]
                 lambda names, want=pods: names == want, what="agent scrape targets",
                 expected=sorted(pods), timeout=30, interval=0.5)


def test_killed_pod_is_replaced_and_restart_counted(stack: LocalBackend) -> None:
    before = stack.supervisors["agent"].restarts_total
    victim = next(p for p in stack.supervisors["agent"].pods() if p.ready and not p.deleting)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: [p.name for p in stack.pods("agent") if p.ready],
             lambda names: len(names) == 2 and victim.name not in names,
             what="replacement agent ready", expected="2 ready, victim gone", timeout=30,
             interval=0.2)
    assert stack.supervisors["agent"].restarts_total == before + 1
    _wait_value(stack, 'sum(kube_pod_container_status_restarts_total{deployment="agent"})',
                before + 1)


def _processed(stack: LocalBackend) -> float:
    total = 0.0
    for pod in stack.supervisors["agent"].pods():
        port = pod.port(9100)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("scalelab_agent_tasks_processed_total"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_tasks_posted_through_the_api_are_processed(stack: LocalBackend) -> None:
    before = _processed(stack)
    for _ in range(6):
        resp = requests.post(f"{stack.endpoints.api}/tasks",
                             json={"tool": "cpu", "arguments": {"cpu_ms": 200}}, timeout=5)
        assert resp.status_code == 202, resp.text
    wait_for(lambda: _processed(stack) - before, lambda n: n >= 6, what="processed tasks",
             expected=6, timeout=60, interval=0.3)
    # the CPU they burnt shows in the metrics-server view the HPA reads
    metrics = wait_for(lambda: stack.pod_metrics("agent"),
                       lambda m: len(m) == 2, what="pod metrics for both agents",
                       expected=2, timeout=30, interval=0.3)
    assert all(m.window >= TIMING.metrics_window for m in metrics.values())


def test_purge_queue_drops_waiting_tasks(stack: LocalBackend) -> None:
    stack.scale("agent", 0)
    wait_for(lambda: stack.pods("agent"), lambda pods: pods == [], what="no agent pods",
             expected="none", timeout=40, interval=0.2)
    try:
        for _ in range(3):
            resp = requests.post(f"{stack.endpoints.api}/tasks",
                                 json={"tool": "io", "arguments": {"io_ms": 10}}, timeout=5)
            assert resp.status_code == 202, resp.text
        assert stack.purge_queue() == 3
        assert stack.purge_queue() == 0
    finally:
        stack.scale("agent", 2)
        wait_for(lambda: stack.replicas("agent").ready, lambda n: n == 2,
                 what="agents back", expected=2, timeout=30, interval=0.2)


def test_diagnostics_have_pods_and_log_tails(stack: LocalBackend) -> None:
    diag = stack.diagnostics()
    agent = diag["deployments"]["agent"]
    assert agent["spec"] == 2 and len(agent["pods"]) >= 2
    assert all("log_tail" in p for p in agent["pods"])
    assert diag["rabbitmq_log_tail"] and diag["prometheus_log_tail"]


def test_apply_scaling_runs_the_emulated_controllers(stack: LocalBackend) -> None:
    """Wiring only (C owns the controllers' behaviour): objects applied, their series
    served by our exporter and scraped, removed again."""
    refs = stack.apply_scaling(Path("manifests/scaling/keda-queue.yaml"))
    try:
        assert refs == ["TriggerAuthentication/rabbitmq-management", "ScaledObject/agent"]
        wait_for(lambda: _prom(stack).custom_query("keda_scaler_active"), bool,
                 what="keda_scaler_active scraped from the exporter", expected="a series",
                 timeout=30, interval=0.5)
        # the scaler reached the management API with the URL the TriggerAuthentication
        # resolved from the Secret: a value, no error
        wait_for(lambda: _value(stack, "keda_scaler_metrics_value"), lambda v: v is not None,
                 what="the rabbitmq scaler's value", expected="a sample", timeout=30,
                 interval=0.5)
        assert _value(stack, "sum(keda_scaler_errors_total)") == 0
        assert stack.diagnostics()["scaling_objects"] == refs
    finally:
        stack.remove_scaling()
    assert stack.diagnostics()["scaling_objects"] == []
