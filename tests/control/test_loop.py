"""The control loop driver with a FAKE ClusterView and a fake clock.

``FakeView`` stands in for a Kubernetes cluster (the seam the local backend implements
with real processes): pods appear Running and Ready as soon as ``scale`` is called and
report the CPU the test sets; its Secrets are a dict (the shipped ScaledObjects read the
management URL from the Secret rabbitmq-credentials through their TriggerAuthentication).
The management API is faked the same way (``http_get``); the real broker is exercised in
``test_rabbitmq_scaler.py`` and below. Everything between - the
HPA core, KEDA activation, metric plumbing, events and the exported series - is real.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scalelab.control.loop import ControlLoop
from scalelab.control.view import PodFacts, PodMetric
from scalelab.credentials import MANAGEMENT_URL_KEY, SECRET_NAME
from scalelab.errors import ConfigError
from scalelab.paths import SCALING_MANIFESTS
from scalelab.settings import TimingProfile
from scalelab.waiting import wait_for

TIMING = TimingProfile(hpa_sync_period=5.0)
MGMT = "http://keda:secret@127.0.0.1:15672/"


@dataclass
class FakeView:
    """A fake cluster: one Deployment whose pods are instantly ready (fake at the k8s seam)."""

    replicas: int = 2
    cpu_milli_per_pod: int = 10
    request_milli: int = 100
    scaled: list[int] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(
        default_factory=lambda: {SECRET_NAME: {MANAGEMENT_URL_KEY: MGMT}})

    def pods(self, deployment: str) -> list[PodFacts]:
        return [PodFacts(name=f"{deployment}-{i}", phase="Running", ready=True, deleting=False,
                         start_time=-10_000.0, ready_transition_time=-10_000.0,
                         cpu_request_milli=self.request_milli) for i in range(self.replicas)]

    def pod_metrics(self, deployment: str) -> dict[str, PodMetric]:
        return {p.name: PodMetric(pod=p.name, cpu_milli=self.cpu_milli_per_pod,
                                  memory_bytes=50_000_000, timestamp=0.0, window=10.0)
                for p in self.pods(deployment)}

    def spec_replicas(self, deployment: str) -> int:
        return self.replicas

    def scale(self, deployment: str, replicas: int) -> None:
        self.replicas = replicas
        self.scaled.append(replicas)

    def container_env(self, deployment: str) -> dict[str, str]:
        return self.env

    def secret(self, name: str) -> dict[str, str] | None:
        return self.secrets.get(name)


@dataclass
class FakeManagement:
    """Answers GET /api/queues/%2F/agent-tasks like the RabbitMQ management plugin."""

    messages: int = 0
    urls: list[str] = field(default_factory=list)

    def __call__(self, url: str, timeout: float) -> tuple[int, bytes]:
        self.urls.append(url)
        return 200, json.dumps({"name": "agent-tasks", "messages": self.messages,
                                "messages_ready": self.messages,
                                "messages_unacknowledged": 0}).encode()


def _loop(name: str, view: FakeView, mgmt: FakeManagement | None = None,
          registry: CollectorRegistry | None = None) -> ControlLoop:
    docs = list(yaml.safe_load_all((SCALING_MANIFESTS / name).read_text()))
    return ControlLoop(objects=docs, view=view, timing=TIMING,
                       registry=registry or CollectorRegistry(), clock=lambda: 0.0,
                       http_get=mgmt or FakeManagement(), source=name)


def test_hpa_grows_under_cpu_and_shrinks_after_stabilization() -> None:
    view = FakeView(replicas=2, cpu_milli_per_pod=100)  # 100 % of the request, target 50 %
    loop = _loop("hpa-cpu.yaml", view)
    loop.step(1000.0)
    assert view.replicas == 4
    (ev,) = loop.events()
    assert (ev.controller, ev.object, ev.from_replicas, ev.to_replicas) == (
        "hpa", "HorizontalPodAutoscaler/agent", 2, 4)
    assert "cpu resource utilization (percentage of request) above target" in ev.reason
    assert {"type": "ScalingActive", "status": "True"}.items() <= ev.conditions[1].items()

    view.cpu_milli_per_pod = 5  # 5 %: the HPA wants the minimum, 2
    for t in range(1005, 1030, 5):  # inside the 30 s scale-down stabilization window
        loop.step(float(t))
        assert view.replicas == 4, f"scaled down at t={t}, inside the window"
    decision = loop.hpa_decisions()["HorizontalPodAutoscaler/agent"]
    assert decision is not None and decision.condition("AbleToScale").reason == \
        "ScaleDownStabilized"
    loop.step(1030.0)  # the t=1000 recommendation is no longer after now - 30 s
    assert view.replicas == 2
    down = loop.events()[-1]
    assert (down.from_replicas, down.to_replicas, down.reason) == (4, 2, "All metrics below target")


def test_hpa_sync_period_is_respected() -> None:
    view = FakeView(replicas=2, cpu_milli_per_pod=100)
    loop = _loop("hpa-cpu.yaml", view)
    loop.step(0.0)
    view.replicas = 2  # someone scales by hand; the next sync is only due at t=5
    loop.step(4.9)
    decision = loop.hpa_decisions()["HorizontalPodAutoscaler/agent"]
    assert decision is not None and decision.now == 0.0
    loop.step(5.0)
    decision = loop.hpa_decisions()["HorizontalPodAutoscaler/agent"]
    assert decision is not None and decision.now == 5.0
    # +2 pods already added within the 15 s policy period: the behavior holds it at 2
    assert view.scaled == [4]
    assert decision.condition("ScalingLimited").reason == "ScaleUpLimit"


def test_keda_activates_from_zero_then_hpa_scales_then_back_to_zero() -> None:
    view = FakeView(replicas=0)
    mgmt = FakeManagement(messages=0)
    loop = _loop("keda-queue-zero.yaml", view, mgmt)
    loop.step(0.0)
    assert view.replicas == 0 and loop.events() == []  # empty queue: stays at zero
    assert mgmt.urls[0] == "http://keda:secret@127.0.0.1:15672/api/queues/%2F/agent-tasks"

    mgmt.messages = 12
    loop.step(5.0)  # KEDA poll (pollingInterval 5): activate 0 -> max(min, 1) = 1
    keda_ev = loop.events()[0]
    assert (keda_ev.controller, keda_ev.object, keda_ev.from_replicas, keda_ev.to_replicas) == (
        "keda", "ScaledObject/agent", 0, 1)
    assert keda_ev.reason.startswith("KEDAScaleTargetActivated")
    # the same step's HPA sync: 12 messages / target 5 per pod -> 3 pods (+2 pods policy)
    hpa_ev = loop.events()[1]
    assert (hpa_ev.controller, hpa_ev.object, hpa_ev.to_replicas) == (
        "hpa", "HorizontalPodAutoscaler/keda-hpa-agent", 3)
    assert "external metric s0-rabbitmq-agent-tasks" in hpa_ev.reason
    assert view.replicas == 3

    mgmt.messages = 0  # queue drained: the HPA goes to its min (1), KEDA to 0 after cooldown
    t = 10.0
    while t <= 100.0 and view.replicas:
        loop.step(t)
        t += 5.0
    assert view.replicas == 0
    last = loop.events()[-1]
    assert last.controller == "keda" and last.to_replicas == 0
    assert last.reason.startswith("KEDAScaleTargetDeactivated")
    # Last active at t=5, cooldownPeriod 30: never before t=35 (the HPA needs its 30 s
    # stabilization window too, so the step to 1 happens first).
    assert last.t > 35.0
    assert [e.to_replicas for e in loop.events() if e.controller == "hpa"][-1] == 1
    loop.step(t + 5)  # replicas 0: the HPA is disabled, KEDA keeps it at zero
    decision = loop.hpa_decisions()["HorizontalPodAutoscaler/keda-hpa-agent"]
    assert decision is not None and decision.reason.startswith("ScalingDisabled")
    assert view.replicas == 0


def test_keda_scaler_error_does_not_scale() -> None:
    view = FakeView(replicas=2)

    def broken(url: str, timeout: float) -> tuple[int, bytes]:
        return 401, b"Password is incorrect"

    loop = _loop("keda-queue.yaml", view, mgmt=broken)  # type: ignore[arg-type]
    loop.step(0.0)
    assert view.scaled == []
    state = loop.keda_states()["ScaledObject/agent"]
    assert (state.ready, state.ready_reason) == ("False", "TriggerError")
    decision = loop.hpa_decisions()["HorizontalPodAutoscaler/keda-hpa-agent"]
    assert decision is not None and decision.reason.startswith("FailedComputeMetricsReplicas")
    text = generate_latest(loop._registry).decode()
    assert 'keda_scaler_errors_total{metric="s0-rabbitmq-agent-tasks"' in text


def test_hybrid_takes_the_larger_proposal() -> None:
    view = FakeView(replicas=2, cpu_milli_per_pod=10)  # CPU says 2 (10 % of request)
    mgmt = FakeManagement(messages=20)                  # queue says 20/5 = 4
    loop = _loop("keda-hybrid.yaml", view, mgmt)
    loop.step(0.0)
    assert view.replicas == 4
    assert "external metric s1-rabbitmq-agent-tasks" in loop.events()[-1].reason


def _sample(text: str, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.name == name and labels.items() <= smp.labels.items():
                return smp.value
    raise AssertionError(f"no sample {name}{labels} in\n{text}")


def test_exported_series() -> None:
    registry = CollectorRegistry()
    view = FakeView(replicas=2, cpu_milli_per_pod=100)
    mgmt = FakeManagement(messages=7)
    loop = _loop("keda-hybrid.yaml", view, mgmt, registry)
    text = generate_latest(registry).decode()
    hpa = {"horizontalpodautoscaler": "keda-hpa-agent", "namespace": "scalelab"}
    p = "kube_horizontalpodautoscaler_"
    assert _sample(text, p + "spec_max_replicas", **hpa) == 4  # before the first sync
    loop.step(0.0)
    text = generate_latest(registry).decode()
    assert _sample(text, p + "spec_min_replicas", **hpa) == 2
    assert _sample(text, p + "status_current_replicas", **hpa) == 2
    assert _sample(text, p + "status_desired_replicas", **hpa) == 4
    assert _sample(text, p + "spec_target_metric", **hpa, metric_name="cpu",
                   metric_target_type="utilization") == 50
    assert _sample(text, p + "spec_target_metric", **hpa, metric_name="s1-rabbitmq-agent-tasks",
                   metric_target_type="average") == 5
    assert _sample(text, p + "status_target_metric", **hpa, metric_name="cpu",
                   metric_target_type="utilization") == 100
    assert _sample(text, p + "status_target_metric", **hpa, metric_name="s1-rabbitmq-agent-tasks",
                   metric_target_type="average") == 3.5  # 7 messages / 2 pods
    assert _sample(text, p + "status_condition", **hpa, condition="ScalingActive",
                   status="true") == 1
    assert _sample(text, p + "status_condition", **hpa, condition="ScalingActive",
                   status="false") == 0
    keda = {"namespace": "scalelab", "scaledObject": "agent", "scaler": "rabbitMQScaler",
            "triggerIndex": "1", "metric": "s1-rabbitmq-agent-tasks", "type": "scaledobject"}
    assert _sample(text, "keda_scaler_metrics_value", **keda) == 7
    assert _sample(text, "keda_scaler_active", **keda) == 1
    assert _sample(text, "keda_scaler_errors_total", **keda) == 0
    loop.stop()
    loop.stop()  # idempotent
    assert "kube_horizontalpodautoscaler" not in generate_latest(registry).decode()


def test_a_slow_trigger_poll_does_not_block_a_scrape() -> None:
    """The management API may take seconds to answer; the exporter must not wait for it."""
    registry = CollectorRegistry()
    view = FakeView(replicas=2)
    entered, release = threading.Event(), threading.Event()

    def hanging(url: str, timeout: float) -> tuple[int, bytes]:
        entered.set()
        release.wait(timeout=10)
        return FakeManagement(messages=30)(url, timeout)

    loop = ControlLoop(objects=list(yaml.safe_load_all(
        (SCALING_MANIFESTS / "keda-queue.yaml").read_text())), view=view, timing=TIMING,
        registry=registry, clock=lambda: 0.0, http_get=hanging, source="keda-queue.yaml")
    stepper = threading.Thread(target=loop.step, args=(0.0,), daemon=True)
    stepper.start()
    try:
        assert entered.wait(timeout=10), "the poll never started"
        scraped = threading.Thread(target=generate_latest, args=(registry,), daemon=True)
        scraped.start()
        scraped.join(timeout=5)
        assert not scraped.is_alive(), "a scrape waited for the trigger's HTTP poll"
        assert loop.events() == [] and view.scaled == []
    finally:
        release.set()
        stepper.join(timeout=10)
    assert not stepper.is_alive()
    assert view.scaled, "the poll went on after the scrape and scaled on 30 messages"
    loop.stop()


def test_thread_runs_and_stops() -> None:
    view = FakeView(replicas=2, cpu_milli_per_pod=100)
    docs = list(yaml.safe_load_all((SCALING_MANIFESTS / "hpa-cpu.yaml").read_text()))
    loop = ControlLoop(objects=docs, view=view, timing=TimingProfile(hpa_sync_period=0.05),
                       registry=CollectorRegistry(), source="hpa-cpu.yaml")
    with loop:
        wait_for(lambda: view.replicas, lambda r: r == 4, what="HPA scale-up in the thread",
                 expected=4, timeout=10.0, interval=0.02)
    assert loop._thread is None
    loop.stop()
    assert loop.errors == []


def test_missing_secret_is_a_config_error() -> None:
    """The TriggerAuthentication's Secret must exist when the ScaledObject is applied."""
    with pytest.raises(ConfigError, match=f"Secret '{SECRET_NAME}' does not exist") as info:
        _loop("keda-queue.yaml", FakeView(secrets={}))
    assert info.value.field == "spec.secretTargetRef[0]"


def test_missing_env_var_is_a_config_error() -> None:
    """hostFromEnv (still supported): the target container must carry the variable."""
    docs = list(yaml.safe_load_all((SCALING_MANIFESTS / "keda-queue.yaml").read_text()))
    trigger = docs[-1]["spec"]["triggers"][0]
    del trigger["authenticationRef"]
    trigger["metadata"]["hostFromEnv"] = "RABBITMQ_MGMT_URL"
    with pytest.raises(ConfigError, match="RABBITMQ_MGMT_URL") as info:
        ControlLoop(objects=docs, view=FakeView(), timing=TIMING, registry=CollectorRegistry())
    assert info.value.field == "spec.triggers[0].metadata.hostFromEnv"
    view = FakeView(env={"RABBITMQ_MGMT_URL": MGMT}, secrets={})
    mgmt = FakeManagement()
    ControlLoop(objects=docs, view=view, timing=TIMING, registry=CollectorRegistry(),
                clock=lambda: 0.0, http_get=mgmt).step(0.0)
    assert mgmt.urls[0].startswith(MGMT)


@pytest.mark.slow
def test_keda_activates_from_real_queue(rabbitmq: object, queue_names: object) -> None:
    """The whole KEDA path against the real broker's management API (view still fake)."""
    import pika

    amqp_url: str = rabbitmq.amqp_url  # type: ignore[attr-defined]
    queue: str = queue_names.tasks  # type: ignore[attr-defined]
    mgmt_url = rabbitmq.management_url.replace(  # type: ignore[attr-defined]
        "http://", "http://guest:guest@") + "/"
    docs = list(yaml.safe_load_all((SCALING_MANIFESTS / "keda-queue-zero.yaml").read_text()))
    docs[-1]["spec"]["triggers"][0]["metadata"]["queueName"] = queue
    # the management URL reaches the scaler through the TriggerAuthentication's Secret
    view = FakeView(replicas=0, secrets={SECRET_NAME: {MANAGEMENT_URL_KEY: mgmt_url}})
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        ch.queue_declare(queue=queue, durable=True)
        loop = ControlLoop(objects=docs, view=view, timing=TIMING,
                           registry=CollectorRegistry(), clock=lambda: 0.0,
                           source="keda-queue-zero.yaml")
        loop.step(0.0)
        assert view.replicas == 0 and loop.errors == []
        ch.confirm_delivery()  # all 12 are on the queue before the first poll
        for i in range(12):
            ch.basic_publish(exchange="", routing_key=queue, body=f"t{i}".encode())
        clock = iter(range(5, 10_000, 5))

        def probe() -> int:
            loop.step(float(next(clock)))
            return view.replicas

        # management stats lag by up to collect_statistics_interval (5 s by default)
        wait_for(probe, lambda r: r >= 3, what="KEDA + HPA to scale from 0 on 12 messages",
                 expected=">= 3 replicas", timeout=30.0, interval=0.5)
        kinds = [(e.controller, e.from_replicas, e.to_replicas) for e in loop.events()]
        assert kinds[0] == ("keda", 0, 1)
        # then the HPA on queue length (12 / value 5 -> 3), whatever snapshot it read first
        assert any(c == "hpa" and a >= 1 and b >= 3 for c, a, b in kinds), kinds
        ch.queue_delete(queue=queue)
    finally:
        conn.close()
