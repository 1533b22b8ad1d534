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
