"""A stand-in for the scalelab API at the Locust seam: answers like POST /tasks[/batch].

Run as a process by tests/load (the real API, with its broker, is tested in
tests/services). It hands out fresh uuids, answers every ``REJECT_EVERY``-th request with
503 (as the real API does when the broker is down), and logs every request (time, ids
and/or the rejected count, tools, arguments) as JSON lines so the test can compare served
and recorded ids.

With ``partial``, a rejected batch of n tasks is a partial-batch 503 as the real API
answers when the broker refuses a message mid-batch (services/api/app.py): the first n // 2
tasks were queued, their ids are in ``published``, ``failed_index`` is n // 2; the log
entry has both ``ids`` (the queued ones) and ``rejected`` (the rest).

usage: python fake_api.py PORT LOGFILE REJECT_EVERY [partial]
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid

from flask import Flask, request

app = Flask(__name__)
lock = threading.Lock()
state = {"n": 0}
log = open(sys.argv[2], "a")  # noqa: SIM115 - open for the life of the process
reject_every = int(sys.argv[3])
partial = sys.argv[4:] == ["partial"]


def _accept(tasks: list[dict]) -> tuple[list[str], bool]:
    """(ids of the tasks queued, whether the request failed)."""
    with lock:
        state["n"] += 1
        failed = bool(reject_every and state["n"] % reject_every == 0)
        queued = len(tasks) // 2 if failed and partial else 0 if failed else len(tasks)
        ids = [str(uuid.uuid4()) for _ in range(queued)]
        entry: dict = {"t": time.time(), "tools": [t["tool"] for t in tasks],
                       "arguments": [t["arguments"] for t in tasks]}
        if ids or not failed:
            entry["ids"] = ids
        if failed:
            entry["rejected"] = len(tasks) - queued
        log.write(json.dumps(entry) + "\n")
        log.flush()
        return ids, failed


def _unavailable(ids: list[str]):  # type: ignore[no-untyped-def]
    """The real API's 503: what was queued before the failure and where it stopped."""
    body = {"error": "task not queued: the broker refused the message (nack)",
            "reason": "nack", "published": ids, "failed_index": len(ids)}
    return body, 503, {"Retry-After": "1"}


@app.post("/tasks/batch")
def batch():  # type: ignore[no-untyped-def]
    ids, failed = _accept(request.get_json()["tasks"])
    if failed:
        return _unavailable(ids)
    return {"ids": ids}, 202


@app.post("/tasks")
def single():  # type: ignore[no-untyped-def]
    ids, failed = _accept([request.get_json()])
    if failed:
        return _unavailable(ids)
    return {"id": ids[0]}, 202


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return {"ok": True}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
