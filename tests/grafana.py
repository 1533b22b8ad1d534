"""The PromQL behind the dashboards and the harness, as Grafana and Prometheus would run it.

Shared by the label-contract test (tests/kind/test_label_contract.py), the panels-return-
data test and the promtool parse (tests/local/test_dashboards.py).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab import queries
from scalelab.backends.cluster.render import dashboard_files
from scalelab.settings import AGENT_DEPLOYMENT, NAMESPACE


@dataclass(frozen=True, kw_only=True)
class Expression:
    """One PromQL expression and where it comes from (named in every failure)."""

    origin: str                  # "dashboard pods.json", "scalelab/queries.py", ...
    name: str                    # panel title + refId, or the query's key
    raw: str                     # as written (Grafana variables not substituted)
    legend: str = ""             # Grafana legendFormat ("{{pod}}"), "" outside dashboards
    variables: tuple[tuple[str, str], ...] = ()   # the dashboard's variables' values

    def where(self) -> str:
        return f"{self.origin}: {self.name}: {self.raw}"

    def promql(self, *, rate_interval: str) -> str:
        """The expression with Grafana's variables replaced, as Grafana sends it."""
        return substitute(self.raw, dict(self.variables), rate_interval=rate_interval)

    def legend_labels(self) -> set[str]:
        return set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", self.legend))


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def rate_interval(scrape_interval: float, *, interval: float = 0.0) -> str:
    """Grafana's ``$__rate_interval``: max(``$__interval`` + scrape interval, 4 x scrape)
    (as Grafana 7.2's announcement of it defines it), in whole seconds."""
    seconds = max(interval + scrape_interval, 4 * scrape_interval)
    return f"{math.ceil(seconds)}s"


def substitute(expr: str, variables: dict[str, str], *, rate_interval: str) -> str:
    """Replace ``$var`` / ``${var}`` / ``[[var]]``; an unknown variable is an error."""
    builtins = {"__rate_interval": rate_interval, "__interval": rate_interval,
                "__range": rate_interval}

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            raise KeyError(f"variable ${name} is not defined by the dashboard ({expr})")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def _variable_values(dashboard: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for var in (dashboard.get("templating") or {}).get("list", []):
        if var.get("type") == "datasource":
            continue
        current = (var.get("current") or {}).get("value")
        out.append((var["name"], str(current if current is not None else var.get("query"))))
    return tuple(out)


def dashboard_expressions(files: list[Path] | None = None) -> list[Expression]:
    """Every panel target of every dashboard in manifests/grafana."""
    out = []
    for path in files or dashboard_files():
        dashboard = json.loads(path.read_text())
        variables = _variable_values(dashboard)
        for var in (dashboard.get("templating") or {}).get("list", []):
            # A query variable's label_values(SELECTOR, LABEL): the selector must find the
            # label's values, or the dashboard opens on nothing (a per-run namespace).
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", str(var.get("definition", "")))
            if var.get("type") == "query" and m:
                out.append(Expression(
                    origin=f"dashboard {path.name} ({dashboard['title']})",
                    name=f"variable ${var['name']}", raw=m.group(1),
                    legend="{{" + m.group(2) + "}}", variables=variables))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                out.append(Expression(
                    origin=f"dashboard {path.name} ({dashboard['title']})",
                    name=f"panel {panel['title']!r} target {target['refId']}",
                    raw=target["expr"], legend=target.get("legendFormat", ""),
                    variables=variables))
    return out


def harness_expressions() -> list[Expression]:
    """The queries the experiment and the report run (scoped to named objects, so the
    ``horizontalpodautoscaler`` / ``scaledObject`` matchers are in them too)."""
    out = [Expression(origin="scalelab/queries.py", name=q.key, raw=q.promql)
           for q in queries.build_queries(hpas=("agent", "keda-hpa-agent"),
                                          scaled_objects=("agent",))]
    out += [
        Expression(origin="scalelab/queries.py", name="autoscaler_series",
                   raw=queries.autoscaler_series(namespace=NAMESPACE)),
        Expression(origin="scalelab/queries.py", name="cpu_utilization (observer)",
                   raw=queries.cpu_utilization(namespace=NAMESPACE, deployment=AGENT_DEPLOYMENT,
                                               window="20s")),
        Expression(origin="scalelab/queries.py", name="desired_replicas",
                   raw=queries.desired_replicas(namespace=NAMESPACE, hpas=["agent"])),
    ]
    return out


def all_expressions() -> list[Expression]:
    return dashboard_expressions() + harness_expressions()
