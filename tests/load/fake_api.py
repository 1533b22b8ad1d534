"""A stand-in for the scalelab API at the Locust seam: answers like POST /tasks[/batch].

Run as a process by tests/load (the real API, with its broker, is tested in
tests/services). It hands out fresh uuids, answers every ``REJECT_EVERY``-th request with
503 (as the real API does when the broker is down), and logs every request (time, ids
or the rejected count, tools, arguments) as JSON lines so the test can compare served and
recorded ids.

usage: python fake_api.py PORT LOGFILE REJECT_EVERY
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


def _accept(tasks: list[dict]) -> list[str] | None:
    with lock:
        state["n"] += 1
        if reject_every and state["n"] % reject_every == 0:
            log.write(json.dumps({"t": time.time(), "rejected": len(tasks),
                                  "tools": [t["tool"] for t in tasks],
                                  "arguments": [t["arguments"] for t in tasks]}) + "\n")
            log.flush()
            return None
        ids = [str(uuid.uuid4()) for _ in tasks]
        log.write(json.dumps({"t": time.time(), "ids": ids,
                              "tools": [t["tool"] for t in tasks],
                              "arguments": [t["arguments"] for t in tasks]}) + "\n")
        log.flush()
        return ids


@app.post("/tasks/batch")
def batch():  # type: ignore[no-untyped-def]
    ids = _accept(request.get_json()["tasks"])
    if ids is None:
        return {"error": "broker unavailable"}, 503, {"Retry-After": "1"}
    return {"ids": ids}, 202


@app.post("/tasks")
def single():  # type: ignore[no-untyped-def]
    ids = _accept([request.get_json()])
    if ids is None:
        return {"error": "broker unavailable"}, 503, {"Retry-After": "1"}
    return {"id": ids[0]}, 202


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return {"ok": True}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
