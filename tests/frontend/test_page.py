"""The live page end to end in real headless Chromium (Debian's chromium) against the
local backend: real broker, Prometheus, api and agents, the emulated KEDA.

The page is the built one the api serves. From the page: a bad task is refused with the
API's own message, a burst is submitted, ``queue_ready`` rises and falls and
``agent_replicas_ready`` grows under the KEDA ScaledObject, read from ``data-metric``
attributes, under the KEDA ScaledObject applied (and then removed) from the page through
the scaling control ``scalelab up`` serves; at 1280x720 and at a narrow width nothing
overflows sideways; screenshots go to test-artifacts/frontend/. Any console error fails
the test except the one a browser logs for the 422 answer the bad task must get.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scalelab import paths
from scalelab.backends.local.backend import LocalBackend
from scalelab.scaling_control import ENV_VAR as CONTROL_ENV
from scalelab.scaling_control import ControlServer, ScalingControl
from scalelab.settings import StackSettings, TimingProfile
from tests.frontend.browser import Page
from tests.report.chromium import Chromium, find_chromium

pytestmark = pytest.mark.slow

ARTIFACTS = paths.ROOT / "test-artifacts" / "frontend"
TIMING = TimingProfile(scrape_interval=1.0, metrics_window=2.0)
KEDA = paths.ROOT / "manifests" / "scaling" / "keda-queue.yaml"


@pytest.fixture(scope="module")
def stack(built_frontend: Path) -> Iterator[LocalBackend]:
    """The stack as ``scalelab up`` runs it: with its scaling control, whose URL the api
    pods inherit (scalelab/commands/up.py)."""
    backend = LocalBackend(settings=StackSettings(timing=TIMING))
    server = ControlServer(ScalingControl(backend)).start()
    os.environ[CONTROL_ENV] = server.url
    try:
        with backend:
            yield backend
    finally:
        os.environ.pop(CONTROL_ENV, None)
        server.close()


@pytest.fixture
def browser() -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium is not installed (Debian package chromium; .ci/run installs it)")
    with Chromium(binary) as b:
        yield b


def number(text: str | None) -> float | None:
    match = re.match(r"-?\d+(\.\d+)?", text or "")
    return float(match.group()) if match else None


def test_drive_a_burst_and_watch_the_queue_and_the_replicas(
        stack: LocalBackend, browser: Chromium) -> None:
    api = stack.endpoints.api
    page = Page(browser, api + "/")
    page.wait("document.querySelector('[data-metric=agent_replicas_ready]')?.textContent"
              " > '0'", what="the status panel with ready agents", timeout=30)
    start_ready = number(page.metric("agent_replicas_ready"))
    assert start_ready is not None

    # the ScaledObject, applied from the page (through scalelab up's scaling control)
    page.wait("!!document.querySelector('[name=scaling-apply]')", what="the scaling control")
    page.fill("scaling-manifest", KEDA.name)
    page.click("scaling-apply")
    said = page.wait("document.querySelector('[data-scaling-message]')?.textContent",
                     what="the apply's outcome", timeout=30)
    assert said.startswith("applied keda-queue.yaml") and "ScaledObject/agent" in said, said
    assert page.wait("document.querySelector('[data-metric=scaling_manifest]').textContent",
                     what="the manifest in force") == KEDA.name
    page.wait("!!document.querySelector('[data-metric=\"scaling/keda-hpa-agent/max\"]')",
              what="the ScaledObject's HPA among the scaling objects in force", timeout=30)
    assert number(page.metric("scaling/keda-hpa-agent/max")) == 4

    # a bad task: refused in the form with the API's own message
    page.fill("tool", "io")
    page.fill("io_ms", "70000")
    page.click("submit-one")
    shown = page.wait("document.querySelector('[data-error-field=\"arguments.io_ms\"]')"
                      "?.textContent", what="the API's message under io_ms")
    api_says = requests.post(f"{api}/tasks", json={"tool": "io", "arguments": {"io_ms": 70000}},
                             timeout=5).json()["error"]
    assert shown == api_says
    assert page.eval("document.querySelector('[name=io_ms]').getAttribute('aria-invalid')") \
        == "true"

    # a burst: queue_ready rises, KEDA adds agents, the queue drains
    page.fill("io_ms", "300")
    page.fill("count", "240")
    page.fill("rate", "0")
    page.click("submit-burst")
    page.wait("document.querySelector('[data-metric=drive_accepted]').textContent === '240'",
              what="240 tasks accepted", timeout=30)
    assert page.eval("document.querySelector('[data-error-field]') === null")
    page.wait("Number(document.querySelector('[data-metric=queue_ready]').textContent) > 20",
              what="queue_ready rising", timeout=30)
    page.wait(f"Number(document.querySelector('[data-metric=agent_replicas_ready]')"
              f".textContent) > {start_ready}", what="agent_replicas_ready growing", timeout=60)
    decision = page.wait("document.querySelector('[data-metric=scaling_decision]')"
                         "?.dataset.value && document.querySelector("
                         "'[data-metric=scaling_decision]').textContent",
                         what="the emulated KEDA's latest decision with its reason", timeout=30)
    assert "→" in decision and "(" in decision, decision
    page.screenshot(ARTIFACTS / "scaling-1280x720.png")
    page.wait("document.querySelector('[data-metric=queue_ready]').textContent === '0'",
              what="queue_ready back to 0", timeout=120)
    # the dashboards' panels carry their live values too
    page.wait("!!document.querySelector('[data-metric=\"autoscaling/agent-deployment-spec-vs"
              "-ready/ready\"]')", what="the Agent Deployment panel's ready value", timeout=10)
    overflow = page.eval("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow} px wider than 1280"

    page.send("Emulation.setDeviceMetricsOverride",
              {"width": 420, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    page.wait("document.documentElement.scrollWidth <= window.innerWidth",
              what="no sideways overflow at 420 px", timeout=5)
    page.screenshot(ARTIFACTS / "narrow-420.png")

    # a steady stream: starts, keeps posting, stops
    page.fill("stream-rate", "10")
    page.click("stream-start")
    page.wait("Number(document.querySelector('[data-metric=drive_accepted]').textContent) >= 260",
              what="the stream's tasks accepted", timeout=15)
    page.click("stream-stop")
    page.wait("document.querySelector('[data-metric=stream_running]').textContent"
              " === 'stopped'", what="the stream stopped")
    time.sleep(0.5)  # a request already in flight may still land
    stopped_at = page.metric("drive_accepted")
    time.sleep(1.5)
    assert page.metric("drive_accepted") == stopped_at, "the stream went on after Stop"

    # removed from the page
    page.click("scaling-remove")
    page.wait("document.querySelector('[data-metric=scaling_manifest]').textContent"
              " === 'none applied'", what="no manifest in force after Remove", timeout=30)

    errors = [e for e in page.errors()
              if not ("422" in e and e.endswith("/tasks"))]
    assert not errors, errors
    page.close()


def test_prometheus_gone_shows_unavailable_since(stack: LocalBackend, browser: Chromium) -> None:
    """Last in the module: it stops the stack's Prometheus (down() copes with that)."""
    page = Page(browser, stack.endpoints.api + "/")
    page.wait("!!document.querySelector('[data-metric=queue_ready]')", what="status", timeout=30)
    assert stack.prometheus is not None
    stack.prometheus.stop()
    text = page.wait("document.querySelector('[data-metric=status_unavailable_since]')"
                     "?.textContent", what="the status saying Prometheus is unavailable",
                     timeout=15)
    assert text.startswith("Prometheus unavailable since ") and "not reachable" in text
    page.wait("!!document.querySelector('[data-state=unavailable]"
              "[data-metric$=\"/unavailable_since\"]')", what="a panel saying unavailable",
              timeout=15)
    page.screenshot(ARTIFACTS / "prometheus-unavailable.png")
    assert not [e for e in page.errors() if "422" not in e], page.errors()
    page.close()
