"""The live view's read-only endpoints and the built page: ``/api/panels``, ``/api/status``,
``/api/series?panel=NAME&minutes=M&step=S``, and ``/`` + ``/assets/*`` (services/frontend).

Bounded on purpose (many tabs may stay open for hours): only the named panels of the
dashboards run (no PromQL from the browser), ``minutes`` <= 60 and at most 720 points,
each answer within ``PROMETHEUS_TIMEOUT`` seconds in total, and answers are shared for
one second so ten tabs cost about what one does. Prometheus down, slow or not configured
is an answer (HTTP 200, ``"available": false`` with since when), not a 500: the page shows
"unavailable since ...", and a browser logs no failed request for it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request, send_from_directory

from services.api.panels import (
    SCALING_PANEL,
    STATUS_VALUES,
    Panel,
    PanelError,
    legend,
    load_panels,
    rate_interval,
    status_target,
    substitute,
)
from services.common.config import ApiConfig
from services.common.tasks import ARG_MAX, TOOLS

MAX_MINUTES = 60
MAX_POINTS = 720
CACHE_SECONDS = 1.0


class Unavailable(Exception):
    """Prometheus did not answer usefully; the message says what happened."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Prometheus:
    """A minimal HTTP API client (``/api/v1/query``, ``/api/v1/query_range``) with a
    deadline per call and a record of since when it has been failing."""

    def __init__(self, *, url: str, timeout: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self.failing_since: float | None = None
        self.last_error = ""

    def _get(self, path: str, params: dict[str, str], deadline: float) -> list[dict[str, Any]]:
        if not self.url:
            raise Unavailable("PROMETHEUS_URL is not set for the API")
        left = deadline - time.monotonic()
        if left <= 0.01:
            raise Unavailable(f"Prometheus slower than {self.timeout:g} s")
        query = urllib.parse.urlencode({**params, "timeout": f"{max(1, int(left * 1000))}ms"})
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}",  # noqa: S310 (config)
                                        timeout=left) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            detail = err.read(2000).decode("utf-8", "replace")
            raise Unavailable(f"Prometheus answered HTTP {err.code}: {detail[:300]}") from None
        except TimeoutError:
            raise Unavailable(f"Prometheus slower than {self.timeout:g} s") from None
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(reason, TimeoutError):
                raise Unavailable(f"Prometheus slower than {self.timeout:g} s") from None
            raise Unavailable(f"Prometheus not reachable: {reason}") from None
        if body.get("status") != "success":
            raise Unavailable(f"Prometheus error: {body.get('error', body)}")
        return list(body["data"]["result"])

    def record(self, error: str | None) -> None:
        with self._lock:
            if error is None:
                self.failing_since, self.last_error = None, ""
            else:
                if self.failing_since is None:
                    self.failing_since = self.clock()
                self.last_error = error

    def unavailable(self) -> dict[str, Any]:
        since = self.failing_since if self.failing_since is not None else self.clock()
        return {"available": False, "unavailable_since": _iso(since), "error": self.last_error}

    def query(self, expr: str, *, deadline: float) -> list[dict[str, Any]]:
        return self._get("/api/v1/query", {"query": expr}, deadline)

    def query_range(self, expr: str, *, start: float, end: float, step: float,
                    deadline: float) -> list[dict[str, Any]]:
        return self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}",
                                                  "end": f"{end:.3f}", "step": f"{step:g}"},
                         deadline)


@dataclass(kw_only=True)
class _Cached:
    expires: float
    body: dict[str, Any]


class Live:
    """The panels, the Prometheus client and a one-second answer cache."""

    def __init__(self, config: ApiConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.panels: dict[str, Panel] = load_panels(Path(config.dashboards_dir))
        for value in STATUS_VALUES:
            status_target(self.panels, value)  # a renamed panel fails at start
        if SCALING_PANEL not in self.panels:
            raise PanelError(f"dashboard panel {SCALING_PANEL} is gone; fix: restore the HPA "
                             "panel in manifests/grafana/autoscaling.json or update "
                             "SCALING_PANEL in services/api/panels.py")
        self.prometheus = Prometheus(url=config.prometheus_url,
                                     timeout=config.prometheus_timeout, clock=clock)
        self.clock = clock
        self._cache: dict[tuple[Any, ...], _Cached] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple[Any, ...], make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit.expires > now:
                return hit.body
        body = make()
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if v.expires > now}
            self._cache[key] = _Cached(expires=now + CACHE_SECONDS, body=body)
        return body

    def _expr(self, expr: str, *, step: float) -> str:
        rate = rate_interval(scrape_interval=self.config.scrape_interval, step=step)
        return substitute(expr, namespace=self.config.namespace, rate=rate)

    def series(self, panel: Panel, *, minutes: int, step: int) -> dict[str, Any]:
        def make() -> dict[str, Any]:
            end = self.clock()
            end -= end % step        # aligned, so tabs asking within a step share answers
            start = end - minutes * 60
            deadline = time.monotonic() + self.prometheus.timeout
            head = {"panel": panel.name, "title": panel.title, "unit": panel.unit,
                    "dashboard": panel.dashboard, "minutes": minutes, "step": step}
            out = []
            try:
                for target in panel.targets:
                    for item in self.prometheus.query_range(
                            self._expr(target.expr, step=step), start=start, end=end,
                            step=step, deadline=deadline):
                        label = legend(target.legend, item.get("metric") or {})
                        out.append({"ref": target.ref, "label": label,
                                    "metric": f"{panel.name}/{label}",
                                    "points": [[float(t), _number(v)]
                                               for t, v in item.get("values") or []]})
            except Unavailable as err:
                self.prometheus.record(str(err))
                return {**head, **self.prometheus.unavailable()}
            self.prometheus.record(None)
            return {**head, "available": True, "start": start, "end": end, "series": out}

        return self._cached(("series", panel.name, minutes, step), make)

    def status(self) -> dict[str, Any]:
        def make() -> dict[str, Any]:
            deadline = time.monotonic() + self.prometheus.timeout
            step = self.config.scrape_interval
            values: dict[str, float | None] = {}
            try:
                for value in STATUS_VALUES:
                    target = status_target(self.panels, value)
                    result = self.prometheus.query(self._expr(target.expr, step=step),
                                                   deadline=deadline)
                    values[value.metric] = (sum(_number(r["value"][1]) or 0.0 for r in result)
                                            if result else None)
                scaling = self._scaling(deadline)
            except Unavailable as err:
                self.prometheus.record(str(err))
                return {**self.prometheus.unavailable(), **self._static()}
            self.prometheus.record(None)
            return {"available": True, "time": _iso(self.clock()), "values": values,
                    "scaling": scaling, **self._static()}

        return self._cached(("status",), make)

    def _scaling(self, deadline: float) -> list[dict[str, Any]]:
        """The HPAs in force (a KEDA ScaledObject shows as its keda-hpa-<name>)."""
        by_name: dict[str, dict[str, Any]] = {}
        for target in self.panels[SCALING_PANEL].targets:
            field = target.legend.split()[-1] if target.legend.split() else target.ref
            for item in self.prometheus.query(
                    self._expr(target.expr, step=self.config.scrape_interval),
                    deadline=deadline):
                name = (item.get("metric") or {}).get("horizontalpodautoscaler", "?")
                by_name.setdefault(name, {"name": name})[field] = _number(item["value"][1])
        return [by_name[k] for k in sorted(by_name)]

    def _static(self) -> dict[str, Any]:
        return {"namespace": self.config.namespace,
                "tools": {name: list(args) for name, args in TOOLS.items()},
                "arg_max": ARG_MAX, "batch_max": self.config.batch_max,
                "refresh_seconds": 2, "max_minutes": MAX_MINUTES}


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return None if value != value or value in (float("inf"), float("-inf")) else value


def _bad(message: str, field: str, status: int = 422) -> Response:
    resp = jsonify({"error": message, "field": field})
    resp.status_code = status
    return resp


def _int_arg(name: str, default: int, *, low: int, high: int) -> int | Response:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        return _bad(f"{name} must be an integer in [{low}, {high}], got {raw!r}", name)
    return int(raw)


NO_CONTROL = ("applying a scaling manifest from the page needs the harness: run the stack "
              "with `scalelab up` (local backend), which gives the api its CONTROL_URL; on a "
              "cluster use `scalelab up --scaling FILE` or kubectl")


def _proxy_scaling(control_url: str) -> Response:
    """Pass the page's scaling request to ``scalelab up``'s control endpoint and its answer
    back (scalelab/scaling_control.py); applying waits for the backend."""
    if not control_url:
        if request.method == "GET":
            return jsonify({"control": False, "reason": NO_CONTROL})
        return _bad(NO_CONTROL, "manifest", 409)
    body = None
    if request.method == "POST":
        data = request.get_json(silent=True)
        manifest = data.get("manifest") if isinstance(data, dict) else None
        if not isinstance(manifest, str) or not manifest:
            return _bad("send {\"manifest\": \"<file in manifests/scaling>\"}", "manifest")
        body = json.dumps({"manifest": manifest}).encode()
    req = urllib.request.Request(f"{control_url}/scaling", data=body, method=request.method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (config)
            status, answer = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        status, answer = err.code, json.loads(err.read() or b"{}")
    except (OSError, ValueError) as err:
        return _bad(f"scalelab up's scaling control is not answering ({err}); is the "
                    "`scalelab up` that started this stack still running?", "manifest", 503)
    resp = jsonify({**answer, "control": True})
    resp.status_code = status
    return resp


def blueprint(live: Live) -> Blueprint:
    bp = Blueprint("live", __name__)

    @bp.get("/api/panels")
    def panels() -> Response:
        return jsonify({"panels": [p.describe() for p in live.panels.values()]})

    @bp.get("/api/status")
    def status() -> Response:
        return jsonify(live.status())

    @bp.route("/api/scaling", methods=["GET", "POST", "DELETE"])
    def scaling() -> Response:
        return _proxy_scaling(live.config.control_url)

    @bp.get("/api/series")
    def series() -> Response:
        unknown = set(request.args) - {"panel", "minutes", "step"}
        if unknown:
            return _bad(f"unknown parameter(s) {sorted(unknown)}; this endpoint takes panel, "
                        "minutes and step", sorted(unknown)[0])
        name = request.args.get("panel", "")
        panel = live.panels.get(name)
        if panel is None:
            return _bad(f"unknown panel {name!r}; GET /api/panels lists the panels", "panel",
                        404)
        minutes = _int_arg("minutes", 10, low=1, high=MAX_MINUTES)
        if isinstance(minutes, Response):
            return minutes
        low_step = max(1, round(live.config.scrape_interval))
        default_step = max(low_step, -(-minutes * 60 // 240))
        step = _int_arg("step", default_step, low=low_step, high=600)
        if isinstance(step, Response):
            return step
        if minutes * 60 // step + 1 > MAX_POINTS:
            return _bad(f"{minutes} minutes at a {step} s step is more than {MAX_POINTS} points;"
                        f" use a step of at least {-(-minutes * 60 // (MAX_POINTS - 1))} s",
                        "step")
        return jsonify(live.series(panel, minutes=minutes, step=step))

    return bp


def register(app: Flask, config: ApiConfig) -> Live:
    """Add the live endpoints and the built page (when built) to ``app``."""
    live = Live(config)
    app.register_blueprint(blueprint(live))
    dist = Path(config.frontend_dir)

    def not_built() -> Response:
        return _bad(f"the frontend is not built ({dist / 'index.html'} is missing); fix: "
                    "cd services/frontend && npm ci && npm run build", "frontend", 404)

    @app.get("/")
    def index() -> Response:
        if not (dist / "index.html").is_file():
            return not_built()
        resp = send_from_directory(dist, "index.html", max_age=0)
        return resp

    @app.get("/assets/<path:name>")
    def assets(name: str) -> Response:
        if not (dist / "index.html").is_file():
            return not_built()
        # Vite names assets by content hash: cache them for long
        return send_from_directory(dist / "assets", name, max_age=86400)

    return live
