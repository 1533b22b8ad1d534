"""docs/metrics.md lists exactly the metrics the services export (names are an interface)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from services.agent.metrics import AgentMetrics
from services.api.metrics import ApiMetrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def _exported(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    names = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.M))
    # *_created series are switched off in the service processes (disable_created_metrics)
    return {n for n in names if not n.endswith("_created")}


def test_every_exported_metric_is_documented_and_vice_versa() -> None:
    exported = _exported(ApiMetrics.create().registry) | _exported(
        AgentMetrics.create().registry)
    assert len(exported) == 9
    assert all(name.startswith("scalelab_") for name in exported)
    table_rows = re.findall(r"^\| `(scalelab_[a-z_]+)` \|", DOC.read_text(), flags=re.M)
    assert sorted(table_rows) == sorted(exported)


def test_every_tool_has_its_series_at_zero_before_its_first_task() -> None:
    """rate() ignores what a series' first sample holds: a per-tool series born with its
    first task would hide that task from every rate-based panel and query."""
    from services.common.tasks import TOOLS

    text = generate_latest(ApiMetrics.create().registry).decode() + generate_latest(
        AgentMetrics.create().registry).decode()
    for tool in TOOLS:
        for series in (f'scalelab_api_tasks_published_total{{tool="{tool}"}} 0.0',
                       f'scalelab_agent_tasks_processed_total{{outcome="ok",tool="{tool}"}} 0.0',
                       f'scalelab_agent_task_duration_seconds_count{{tool="{tool}"}} 0.0'):
            assert series in text, f"expected {series!r} in a fresh registry's exposition"
