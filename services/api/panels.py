"""The live view's panels, read from the Grafana dashboards (``manifests/grafana/*.json``).

Why from the dashboards: the page and Grafana must show the same queries; reading the
JSON at start leaves one place to change a panel. Only these named panels can be queried
through the API (no PromQL from the browser). Grafana's variables are replaced as Grafana
does: ``$namespace`` by the stack's namespace, ``$__rate_interval`` by
max(step + scrape interval, 4 x scrape interval) (Grafana 7.2's definition of it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class PanelError(Exception):
    """A dashboard the API cannot serve; names the file, the panel and the fix."""


@dataclass(frozen=True, kw_only=True)
class Target:
    ref: str        # Grafana refId: "A", "B", ...
    expr: str       # PromQL as written in the dashboard (variables not replaced)
    legend: str     # Grafana legendFormat, e.g. "{{pod}}"


@dataclass(frozen=True, kw_only=True)
class Panel:
    name: str              # "<dashboard file stem>/<slug of the title>": the API's key
    dashboard: str         # file stem: pods, rabbitmq, throughput, autoscaling
    dashboard_title: str
    title: str
    unit: str
    targets: tuple[Target, ...]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dashboard": self.dashboard,
                "dashboard_title": self.dashboard_title, "title": self.title,
                "unit": self.unit, "refs": [t.ref for t in self.targets]}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def rate_interval(*, scrape_interval: float, step: float) -> str:
    return f"{math.ceil(max(step + scrape_interval, 4 * scrape_interval))}s"


def substitute(expr: str, *, namespace: str, rate: str) -> str:
    """The expression as Grafana sends it; a variable we do not know is an error."""
    values = {"namespace": namespace, "__rate_interval": rate, "__interval": rate,
              "__range": rate}

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise PanelError(f"variable ${name} is not one the API can fill in ({expr})")
        return values[name]

    return _VARIABLE.sub(value, expr)


def legend(fmt: str, labels: Mapping[str, str]) -> str:
    """Grafana's legendFormat applied to a series' labels (the labels when empty)."""
    if fmt.strip():
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt).strip()
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{labels.get('__name__', '')}{{{inner}}}"


def load_panels(directory: Path) -> dict[str, Panel]:
    """Every timeseries panel with Prometheus targets of every ``*.json`` in ``directory``."""
    files = sorted(Path(directory).glob("*.json"))
    if not files:
        raise PanelError(f"{directory}: no dashboard (*.json) found; fix: set DASHBOARDS_DIR "
                         "to the folder with the Grafana dashboards (manifests/grafana)")
    panels: dict[str, Panel] = {}
    for path in files:
        try:
            board = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise PanelError(f"{path}: not readable JSON ({err}); fix: restore the file") \
                from None
        for index, raw in enumerate(board.get("panels") or []):
            targets = tuple(
                Target(ref=str(t.get("refId", "")), expr=str(t["expr"]),
                       legend=str(t.get("legendFormat", "")))
                for t in raw.get("targets") or [] if t.get("expr"))
            if not targets:
                continue
            title = str(raw.get("title") or f"panel {index}")
            name = f"{path.stem}/{slug(title)}"
            if name in panels:
                raise PanelError(f"{path}: panels[{index}].title {title!r} repeats another "
                                 "panel's name; fix: give each panel its own title")
            for t in targets:  # unknown variables fail at start, not on the first request
                substitute(t.expr, namespace="x", rate="1s")
            unit = ((raw.get("fieldConfig") or {}).get("defaults") or {}).get("unit", "short")
            panels[name] = Panel(name=name, dashboard=path.stem,
                                 dashboard_title=str(board.get("title", path.stem)),
                                 title=title, unit=str(unit), targets=targets)
    return panels


@dataclass(frozen=True, kw_only=True)
class StatusValue:
    """One headline value of ``/api/status``: the last point of a dashboard target."""

    metric: str   # the data-metric name the page shows it under
    panel: str
    ref: str


#: The headline values, each taken from a dashboard panel (so they cannot drift either).
STATUS_VALUES = (
    StatusValue(metric="agent_replicas_spec", panel="autoscaling/agent-deployment-spec-vs-ready",
                ref="A"),
    StatusValue(metric="agent_replicas_ready",
                panel="autoscaling/agent-deployment-spec-vs-ready", ref="B"),
    StatusValue(metric="queue_ready", panel="rabbitmq/messages-ready-agent-tasks", ref="A"),
    StatusValue(metric="queue_unacked", panel="rabbitmq/messages-unacknowledged-agent-tasks",
                ref="A"),
    StatusValue(metric="queue_consumers", panel="rabbitmq/consumers", ref="B"),
    StatusValue(metric="publish_rate", panel="rabbitmq/message-rates-publish-deliver-ack",
                ref="A"),
    StatusValue(metric="deliver_rate", panel="rabbitmq/message-rates-publish-deliver-ack",
                ref="C"),
)
#: The autoscalers in force: the HPA panel's targets (KEDA's ScaledObjects own an HPA each).
SCALING_PANEL = "autoscaling/hpa-replicas"


def status_target(panels: Mapping[str, Panel], value: StatusValue) -> Target:
    panel = panels.get(value.panel)
    target = next((t for t in panel.targets if t.ref == value.ref), None) if panel else None
    if target is None:
        raise PanelError(f"status value {value.metric}: dashboard panel {value.panel!r} "
                         f"target {value.ref} is gone; fix: restore it in manifests/grafana "
                         "or update STATUS_VALUES in services/api/panels.py")
    return target
