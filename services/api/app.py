"""The Flask app: ``POST /tasks``, ``POST /tasks/batch``, ``/healthz``, ``/readyz``, ``/metrics``,
and the live view (``/``, ``/api/status``, ``/api/series``: services/api/live.py).

Error contract (clients and the load generator rely on it): malformed JSON 400; invalid
task 422 with ``field`` (and ``index`` in a batch); body over 64 KiB 413; broker down or
message not confirmed 503 with ``Retry-After``. Never a 500 for bad input, never a task
answered 202 that the broker did not confirm.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import BadRequest, HTTPException

from services.api import live
from services.api.metrics import ApiMetrics
from services.api.publisher import Publisher, PublishError
from services.common.config import ApiConfig
from services.common.tasks import TaskError, make_request, new_task_id, validate_submission

LOG = logging.getLogger(__name__)


def _error(status: int, message: str, **extra: Any) -> Response:
    resp = jsonify({"error": message, **extra})
    resp.status_code = status
    return resp


def create_app(config: ApiConfig | None = None, *, publisher: Publisher | None = None) -> Flask:
    """Build the app; ``publisher`` is injectable for tests, else made from ``config``."""
    config = config or ApiConfig()
    app = Flask("scalelab-api")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    pub = publisher or Publisher(amqp_url=config.amqp_url, queue=config.task_queue)
    metrics = ApiMetrics.create()
    app.extensions["scalelab"] = {"publisher": pub, "metrics": metrics, "config": config}

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
            metrics.request_duration.labels(route=rule, status=str(response.status_code)) \
                .observe(time.perf_counter() - started)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        if status == 413:
            return _error(413, f"request body larger than {config.max_body_bytes} bytes",
                          field="body")
        if status == 400:
            return _error(400, "malformed JSON body", detail=err.description, field="body")
        return _error(status, err.description or err.name)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:  # a bug, not bad input: say so, log it
        LOG.exception("unhandled error")
        return _error(500, f"internal error: {type(err).__name__}")

    def _json_body() -> Any:
        try:
            return request.get_json(force=True, silent=False)
        except RecursionError:  # nested too deeply for the parser: malformed for us
            raise BadRequest("JSON nested too deeply") from None

    def _publish(tasks: list[tuple[str, dict[str, int]]]) -> list[str] | Response:
        ids: list[str] = []
        for index, (tool, arguments) in enumerate(tasks):
            task_id = new_task_id()
            now = time.time()
            try:
                pub.publish(make_request(task_id, tool, arguments, enqueued_at=now),
                            message_id=task_id, timestamp=now)
            except PublishError as err:
                metrics.publish_failures.labels(reason=err.reason).inc(len(tasks) - index)
                resp = _error(503, f"task not queued: {err}", reason=err.reason,
                              published=ids, failed_index=index)
                resp.headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
                return resp
            metrics.tasks_published.labels(tool=tool).inc()
            ids.append(task_id)
        return ids

    @app.post("/tasks")
    def post_task() -> Response:
        body = _json_body()
        try:
            tool, arguments = validate_submission(body)
        except TaskError as err:
            return _error(422, str(err), field=err.field)
        result = _publish([(tool, arguments)])
        if isinstance(result, Response):
            return result
        resp = jsonify({"id": result[0]})
        resp.status_code = 202
        return resp

    @app.post("/tasks/batch")
    def post_batch() -> Response:
        body = _json_body()
        if not isinstance(body, dict) or set(body) != {"tasks"}:
            return _error(422, "a batch is a JSON object {\"tasks\": [...]}", field="tasks")
        items = body["tasks"]
        if not isinstance(items, list) or not items:
            return _error(422, "'tasks' must be a non-empty list", field="tasks")
        if len(items) > config.batch_max:
            return _error(422, f"at most {config.batch_max} tasks per batch, got {len(items)}",
                          field="tasks")
        tasks = []
        for index, item in enumerate(items):
            try:
                tasks.append(validate_submission(item, prefix=f"tasks[{index}]."))
            except TaskError as err:
                return _error(422, str(err), field=err.field, index=index)
        result = _publish(tasks)
        if isinstance(result, Response):
            return result
        resp = jsonify({"ids": result})
        resp.status_code = 202
        return resp

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "alive"})

    @app.get("/readyz")
    def readyz() -> Response:
        problem = pub.ready()
        if problem is None:
            return jsonify({"status": "ready", "queue": config.task_queue})
        resp = _error(503, f"broker not reachable: {problem}")
        resp.headers["Retry-After"] = "1"
        return resp

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    app.extensions["scalelab"]["live"] = live.register(app, config)
    return app
