"""The task schema: what a client may post and what travels on the queue.

A task is an MCP ``tools/call`` JSON-RPC 2.0 request
(https://modelcontextprotocol.io/specification/2025-06-18/server/tools#calling-tools).
The API validates what clients send; the agent validates again what it receives, because
anything can be published to a queue.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

#: tool name -> the arguments it requires (and the only ones it accepts).
TOOLS: dict[str, tuple[str, ...]] = {
    "cpu": ("cpu_ms",),
    "io": ("io_ms",),
    "mixed": ("cpu_ms", "io_ms"),
}
ARG_MIN_EXCLUSIVE = 0
ARG_MAX = 60_000
METHOD = "tools/call"


class TaskError(ValueError):
    """An invalid task. ``field`` is a dotted path into the request body."""

    def __init__(self, message: str, *, field: str, reason: str = "bad_arguments") -> None:
        self.field = field
        self.reason = reason
        super().__init__(message)


def validate_call(name: Any, arguments: Any, *, prefix: str = "",
                  tool_field: str = "tool") -> tuple[str, dict[str, int]]:
    """Check a tool name and its arguments; return them normalised or raise TaskError."""
    if not isinstance(name, str) or name not in TOOLS:
        raise TaskError(f"unknown tool {name!r}; expected one of {sorted(TOOLS)}",
                        field=f"{prefix}{tool_field}", reason="bad_tool")
    if not isinstance(arguments, Mapping):
        raise TaskError("arguments must be an object", field=f"{prefix}arguments")
    required = TOOLS[name]
    for key in arguments:
        if key not in required:
            raise TaskError(f"unknown argument {key!r} for tool {name!r}; "
                            f"it takes {list(required)}", field=f"{prefix}arguments.{key}")
    clean: dict[str, int] = {}
    for key in required:
        where = f"{prefix}arguments.{key}"
        if key not in arguments:
            raise TaskError(f"tool {name!r} needs argument {key!r}", field=where)
        value = arguments[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TaskError(f"{key} must be an integer (milliseconds), got {value!r}",
                            field=where)
        if not ARG_MIN_EXCLUSIVE < value <= ARG_MAX:
            raise TaskError(f"{key} must be in (0, {ARG_MAX}], got {value}", field=where)
        clean[key] = value
    return name, clean


def validate_submission(body: Any, *, prefix: str = "") -> tuple[str, dict[str, int]]:
    """Validate a client's ``{"tool": ..., "arguments": {...}}``."""
    if not isinstance(body, Mapping):
        raise TaskError("a task must be a JSON object with 'tool' and 'arguments'",
                        field=prefix.rstrip(".") or "body")
    for key in body:
        if key not in ("tool", "arguments"):
            raise TaskError(f"unknown field {key!r}; a task has 'tool' and 'arguments'",
                            field=f"{prefix}{key}")
    if "tool" not in body:
        raise TaskError("missing 'tool'", field=f"{prefix}tool", reason="bad_tool")
    if "arguments" not in body:
        raise TaskError("missing 'arguments'", field=f"{prefix}arguments")
    return validate_call(body["tool"], body["arguments"], prefix=prefix)


def new_task_id() -> str:
    return str(uuid.uuid4())


def make_request(task_id: str, tool: str, arguments: Mapping[str, int], *,
                 enqueued_at: float | None = None) -> dict[str, Any]:
    """The JSON-RPC ``tools/call`` request put on the queue."""
    return {
        "jsonrpc": "2.0",
        "id": task_id,
        "method": METHOD,
        "params": {
            "name": tool,
            "arguments": dict(arguments),
            "_meta": {"enqueued_at": time.time() if enqueued_at is None else enqueued_at},
        },
    }


def parse_request(body: bytes) -> tuple[str, str, dict[str, int], float | None]:
    """Agent side: bytes from the queue -> (id, tool, arguments, enqueued_at) or TaskError."""
    try:
        message = json.loads(body)
    except RecursionError:  # e.g. 20,000 nested '[': the parser gives up, so do we
        raise TaskError("not JSON: nested too deeply", field="body",
                        reason="bad_json") from None
    except ValueError as err:  # bad UTF-8, bad JSON, an integer too long to convert
        raise TaskError(f"not JSON: {err}", field="body", reason="bad_json") from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise TaskError("not a JSON-RPC 2.0 request", field="jsonrpc", reason="bad_envelope")
    task_id = message.get("id")
    if not isinstance(task_id, str | int) or isinstance(task_id, bool):
        raise TaskError("missing or invalid request id", field="id", reason="bad_envelope")
    if message.get("method") != METHOD:
        raise TaskError(f"method must be {METHOD!r}, got {message.get('method')!r}",
                        field="method", reason="bad_method")
    params = message.get("params")
    if not isinstance(params, dict):
        raise TaskError("params must be an object", field="params", reason="bad_envelope")
    tool, arguments = validate_call(params.get("name"), params.get("arguments"),
                                    prefix="params.", tool_field="name")
    meta = params.get("_meta")
    enqueued_at = meta.get("enqueued_at") if isinstance(meta, dict) else None
    if isinstance(enqueued_at, bool) or not isinstance(enqueued_at, int | float):
        enqueued_at = None
    return str(task_id), tool, arguments, (float(enqueued_at) if enqueued_at else None)


def make_result(task_id: str, text: str, *, is_error: bool = False) -> dict[str, Any]:
    """The JSON-RPC response of a ``tools/call`` (MCP ``CallToolResult``)."""
    return {"jsonrpc": "2.0", "id": task_id,
            "result": {"content": [{"type": "text", "text": text}], "isError": is_error}}
