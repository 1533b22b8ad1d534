"""The Locust side of a scenario: a LoadTestShape from its phases and a task publisher.

Run only by ``scalelab.load.runner`` as its own process (Locust monkey-patches the
standard library with gevent, which breaks a process that imported ssl first, such as
pytest). The plan (phases, task mix, output folder) comes as a JSON file named by the
``SCALELAB_LOAD_PLAN`` environment variable; ``runner.load_plan`` writes it.

Load modes (docs/scenarios.md):

- ``users``: the shape asks Locust for ``users`` users at ``spawn_rate``; each posts one
  request and then waits ``think_time`` (closed loop).
- ``rate`` / ``tasks``: open loop. Request *k* of the phase is due at
  ``phase start + k * batch / rate``; users claim the next due slot in ``wait_time`` and
  post it, so the published rate is the phase's whatever the number of users (they only
  provide concurrency). ``tasks`` stops after its count.
- ``idle``: no users.

Pacing happens in ``wait_time`` and posting in the task, so when the shape lowers the user
count, Locust (with ``--stop-timeout``) only ever interrupts a user that is waiting: a
request whose response (and task ids) would be lost is never cut off.

Each accepted response's task ids are appended to ``ids-<pid>.txt`` in the output folder
(the harness compares them with the agents' completion records), and so are the
``published`` ids of a failed answer (a batch the API answered 503 after queueing part of
it): they are in the queue, so they count. The number of tasks a failed request did not
queue is appended to ``rejected-<pid>.txt``. Phase changes are appended to
``phases.jsonl`` with wall-clock times.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from locust import FastHttpUser, LoadTestShape, task

PLAN: dict[str, Any] = json.loads(Path(os.environ["SCALELAB_LOAD_PLAN"]).read_text())
PHASES: list[dict[str, Any]] = PLAN["phases"]
BATCH: int = int(PLAN["batch_size"])
OUT = Path(PLAN["out_dir"])
_RNG = random.Random(PLAN.get("seed"))


class _Clock:
    """The plan's time origin: set by the shape's first tick, read by every user."""

    t0: float | None = None
    wall0: float = 0.0
    phase_index: int | None = None
    started = 0  # phases whose start is logged
    ended = 0    # phases whose end is logged
    slots: dict[int, int] = {}

    @classmethod
    def elapsed(cls) -> float:
        if cls.t0 is None:
            cls.t0 = time.monotonic()
            cls.wall0 = time.time()
        return time.monotonic() - cls.t0

    @classmethod
    def current(cls) -> tuple[int, float] | None:
        """(phase index, seconds since the phase started) or None after the last phase."""
        t = cls.elapsed()
        start = 0.0
        for i, phase in enumerate(PHASES):
            if t < start + phase["duration"]:
                return i, t - start
            start += phase["duration"]
        return None


def _log_phase(record: dict[str, Any]) -> None:
    with (OUT / "phases.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def _log_boundaries(index: int | None) -> None:
    """Log every phase start/end up to ``index`` (None: the end of the plan), in order.

    Times are on the plan's clock (what the users follow), not the tick's, which runs
    once a second and may be late or skip a short phase.
    """
    upto_start = len(PHASES) if index is None else index + 1
    upto_end = len(PHASES) if index is None else index
    while _Clock.started < upto_start or _Clock.ended < upto_end:
        if _Clock.ended < _Clock.started and _Clock.ended < upto_end:
            i, event = _Clock.ended, "end"
            offset = sum(p["duration"] for p in PHASES[: i + 1])
            _Clock.ended += 1
        else:
            i, event = _Clock.started, "start"
            offset = sum(p["duration"] for p in PHASES[:i])
            _Clock.started += 1
        _log_phase({"event": event, "name": PHASES[i]["name"], "t": _Clock.wall0 + offset})


def pool_users(phase: dict[str, Any]) -> int:
    """Concurrency for a fixed-rate phase: the given users, or enough to keep the schedule."""
    if phase.get("users"):
        return int(phase["users"])
    requests_per_s = phase["rate"] / BATCH
    return max(2, min(100, math.ceil(requests_per_s)))


class PhaseShape(LoadTestShape):
    """Users per phase; returns None after the last phase, which ends a headless run."""

    def tick(self) -> tuple[int, float] | None:
        now = _Clock.current()
        index = None if now is None else now[0]
        if index != _Clock.phase_index:
            _log_boundaries(index)
            _Clock.phase_index = index
        if index is None:
            return None
        phase = PHASES[index]
        mode = phase["mode"]
        if mode == "users":
            return int(phase["users"]), float(phase["spawn_rate"])
        if mode in ("rate", "tasks"):
            users = pool_users(phase)
            return users, float(users)
        return 0, 1.0


def _choose_tasks(tools: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    picked = _RNG.choices(tools, weights=[t["weight"] for t in tools], k=size)
    return [{"tool": t["name"], "arguments": t["arguments"]} for t in picked]


def _ids_from(body: Any) -> list[str]:
    """Task ids from ``/tasks`` ({"id"}) or ``/tasks/batch`` ({"ids"} or {"tasks": [{id}]})."""
    if isinstance(body, dict):
        if isinstance(body.get("ids"), list):
            return [str(i) for i in body["ids"]]
        if "id" in body:
            return [str(body["id"])]
        if isinstance(body.get("tasks"), list):
            return [str(t["id"]) for t in body["tasks"] if isinstance(t, dict) and "id" in t]
    return []


class TaskPublisher(FastHttpUser):
    """Posts tasks of the phase's mix to the API; records the ids it accepted."""

    def on_start(self) -> None:
        self._slot: tuple[int, int] | None = None

    def wait_time(self) -> float:
        """Pace the next request: claim a schedule slot (fixed rate) or think (users)."""
        self._slot = None
        now = _Clock.current()
        if now is None:
            return 1.0
        index, since = now
        phase = PHASES[index]
        mode = phase["mode"]
        if mode == "idle":
            return max(0.05, min(1.0, phase["duration"] - since))
        if mode == "users":
            self._slot = (index, BATCH)
            return float(phase["think_time"])
        k = _Clock.slots.get(index, 0)
        size = BATCH
        if mode == "tasks":
            size = min(BATCH, int(phase["tasks"]) - k * BATCH)
            if size <= 0:
                return max(0.05, min(1.0, phase["duration"] - since))
        _Clock.slots[index] = k + 1
        self._slot = (index, size)
        due = k * BATCH / float(phase["rate"])
        return max(0.0, due - since)

    @task
    def publish(self) -> None:
        slot, self._slot = self._slot, None
        if slot is None:
            return
        index, size = slot
        now = _Clock.current()
        if now is None or now[0] != index:
            return  # the phase ended while this user waited for its slot
        tools = PHASES[index]["tools"]
        tasks = _choose_tasks(tools, size)
        if BATCH == 1:
            path, payload = "/tasks", tasks[0]
        else:
            path, payload = "/tasks/batch", {"tasks": tasks}
        with self.client.post(path, json=payload, name=path, catch_response=True) as resp:
            if resp.status_code != 202:
                published = _published_before_failure(resp, size)
                if published:
                    _record_ids(published)
                _record_rejected(size - len(published))
                resp.failure(f"HTTP {resp.status_code}: {_error_text(resp, published)}")
                return
            try:
                ids = _ids_from(resp.json())
            except ValueError:
                ids = []
            if len(ids) != size:
                resp.failure(f"expected {size} task ids in the answer, got {len(ids)}")
            if ids:
                _record_ids(ids)
            if len(ids) == size:
                resp.success()


def _body(resp: Any) -> Any:
    """The answer's JSON, or None (no body after a connection error, or not JSON)."""
    try:
        return resp.json()
    except (ValueError, TypeError):
        return None


def _published_before_failure(resp: Any, size: int) -> list[str]:
    """Ids the API queued before it failed (``published`` in a partial-batch 503).

    The API publishes a batch task by task and stops at the first one the broker refuses;
    those before it are in the queue and will be processed, so they are published tasks
    (counted and accounted like any other), not lost with the failed request. Anything
    that does not look like a list of at most ``size`` ids is ignored.
    """
    body = _body(resp)
    published = body.get("published") if isinstance(body, dict) else None
    if not isinstance(published, list) or len(published) > size:
        return []
    return [str(i) for i in published if isinstance(i, str | int)]


def _error_text(resp: Any, published: list[str]) -> str:
    """A failure message that stays the same across requests (Locust groups by it): the
    API's ``error`` and ``reason``, not the body with its ids."""
    body = _body(resp)
    if isinstance(body, dict) and "error" in body:
        text = str(body["error"])[:160]
        if body.get("reason"):
            text += f" (reason {body['reason']})"
    else:
        text = (resp.text or "")[:200]
    if published:
        text += "; the tasks queued before the failure are counted as published"
    return text


_IDS_HANDLE: Any = None
_REJECTED_HANDLE: Any = None


def _record_ids(ids: list[str]) -> None:
    global _IDS_HANDLE
    if _IDS_HANDLE is None:
        _IDS_HANDLE = (OUT / f"ids-{os.getpid()}.txt").open("a")
    _IDS_HANDLE.write("".join(f"{i}\n" for i in ids))
    _IDS_HANDLE.flush()


def _record_rejected(count: int) -> None:
    """One line per failed request: how many of its tasks the API did not queue."""
    global _REJECTED_HANDLE
    if count <= 0:
        return
    if _REJECTED_HANDLE is None:
        _REJECTED_HANDLE = (OUT / f"rejected-{os.getpid()}.txt").open("a")
    _REJECTED_HANDLE.write(f"{count}\n")
    _REJECTED_HANDLE.flush()
