"""The real Locust process against a real HTTP server standing in for the API.

The seam: ``fake_api.py`` (a tiny Flask app in its own process) answers ``/tasks`` and
``/tasks/batch`` like the API; the API with its broker is tested in tests/services.
Locust itself, its shape, its CSV output and the task-id recording are all real.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import port_for
import pytest
import requests
import yaml

from scalelab.errors import WaitTimeout
from scalelab.load.runner import LocustRun, load_plan
from scalelab.scenario import Scenario, load_scenario
from scalelab.waiting import wait_for
from tests.load.locust_runs import run_to_end

FAKE_API = Path(__file__).with_name("fake_api.py")
REJECT_EVERY = 10
PARTIAL_REJECT_EVERY = 3


def make_scenario(tmp_path: Path, phases: list[dict[str, Any]], *, batch: int = 2
                  ) -> Scenario:
    doc = {
        "name": "load-test", "description": "runner test",
        "manifests": ["manifests/scaling/hpa-cpu.yaml"],
        "workload": {"batch_size": batch, "seed": 7,
                     "tools": {"cpu": {"weight": 1, "cpu_ms": 10},
                               "io": {"weight": 3, "io_ms": 20}}},
        "phases": phases,
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_scenario(path)


class FakeAPI:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@contextlib.contextmanager
def serve_fake_api(tmp_path: Path, *args: str) -> Iterator[FakeAPI]:
    """fake_api.py as a process with ``args`` (REJECT_EVERY [partial]) until the block ends."""
    port = port_for.select_random()
    log = tmp_path / "served.jsonl"
    log.touch()
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_API), str(port), str(log), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def probe() -> int | None:
        if proc.poll() is not None:
            raise RuntimeError(f"fake API exited with {proc.returncode}")
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code
        except requests.ConnectionError:
            return None

    try:
        wait_for(probe, lambda code: code == 200, what="fake API /healthz", expected=200,
                 timeout=20)
        yield FakeAPI(url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[FakeAPI]:
    """Every REJECT_EVERY-th request is a plain 503 (nothing queued)."""
    with serve_fake_api(tmp_path, str(REJECT_EVERY)) as api:
        yield api


@pytest.fixture
def partial_fake_api(tmp_path: Path) -> Iterator[FakeAPI]:
    """Every PARTIAL_REJECT_EVERY-th request is a partial-batch 503 (half of it queued)."""
    with serve_fake_api(tmp_path, str(PARTIAL_REJECT_EVERY), "partial") as api:
        yield api


def test_load_plan_carries_phases_and_mix(tmp_path: Path) -> None:
    sc = make_scenario(tmp_path, [
        {"name": "a", "duration": 5, "load": {"rate": 4}},
        {"name": "b", "duration": 5, "load": {"users": 3}, "tools": {"io": {"io_ms": 5}}},
    ])
    plan = load_plan(sc, out_dir=tmp_path)
    assert plan["batch_size"] == 2 and plan["seed"] == 7
    a, b = plan["phases"]
    assert a["mode"] == "rate" and a["rate"] == 4 and {t["name"] for t in a["tools"]} == {
        "cpu", "io"}
    assert b["mode"] == "users" and b["users"] == 3 and b["spawn_rate"] == 3
    assert b["tools"] == [{"name": "io", "weight": 1.0, "arguments": {"io_ms": 5}}]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_locust_follows_the_phases(tmp_path: Path, fake_api: FakeAPI) -> None:
    # Each loaded phase has its own arguments, so its requests are found by what they
    # carry: a wall-clock window around a phase boundary may be off by the slew between
    # Locust's clock and the server's (CI once saw a batch logged just before its phase).
    sc = make_scenario(tmp_path, [
        {"name": "quiet", "duration": 2, "load": {"idle": True}},
        {"name": "steady", "duration": 6, "load": {"rate": 20},
         "tools": {"cpu": {"weight": 1, "cpu_ms": 11}, "io": {"weight": 3, "io_ms": 21}}},
        {"name": "closed", "duration": 3, "load": {"users": 2, "spawn_rate": 2,
                                                   "think_time": 0.5}},
        {"name": "burst", "duration": 2, "load": {"tasks": 7, "rate": 7},
         "tools": {"io": {"io_ms": 5}}},
    ])
    run = LocustRun(api_url=fake_api.url, scenario=sc, out_dir=tmp_path / "locust")
    started = time.monotonic()
    try:
        run.start()
        assert run.running()
        # the shape ends the run by itself after 13 s of phases
        assert run.wait(timeout=45) == 0
        elapsed = time.monotonic() - started
        mid = run.poll()
    finally:
        run.stop()
    run.stop()  # idempotent
    assert not run.running()
    assert elapsed >= 12, f"Locust ended before the last phase: {elapsed:.1f}s"

    res = run.results()
    served = fake_api.entries()
    accepted = [e for e in served if "ids" in e]
    rejected = [e for e in served if "rejected" in e]
    served_ids = {i for e in accepted for i in e["ids"]}
    # every id the API accepted was recorded, and nothing else
    assert set(res["task_ids"]) == served_ids
    assert res["tasks_published"] == len(served_ids) and res["task_ids_repeated"] == 0
    # the CSV summary agrees with what the server saw
    assert res["requests"] == len(served)
    assert res["failures"] == len(rejected) > 0
    assert res["tasks_rejected"] == sum(e["rejected"] for e in rejected)
    assert res["failure_reasons"] and "503" in res["failure_reasons"][0]["error"]
    assert res["p95_ms"] is not None and res["p50_ms"] is not None and res["rps"] > 0
    assert res["history"] and {"t", "users", "rps", "p95_ms"} <= set(res["history"][-1])
    assert mid["running"] is False and mid["tasks_published"] == len(served_ids)

    times = {p["name"]: p for p in res["phases"]}
    assert list(times) == ["quiet", "steady", "closed", "burst"]
    assert all(p["end"] is not None for p in times.values())

    phase_args = {"steady": [{"cpu_ms": 11}, {"io_ms": 21}],
                  "closed": [{"cpu_ms": 10}, {"io_ms": 20}], "burst": [{"io_ms": 5}]}

    def of(name: str) -> list[dict[str, Any]]:
        return [e for e in served if e["arguments"][0] in phase_args[name]]

    def count(entries: list[dict[str, Any]]) -> int:
        return sum(len(e.get("ids", ())) + e.get("rejected", 0) for e in entries)

    # every request belongs to one loaded phase, all of its tasks alike
    for e in served:
        owners = [n for n, args in phase_args.items() if e["arguments"][0] in args]
        assert len(owners) == 1 and all(a in phase_args[owners[0]] for a in e["arguments"]), e
    # an idle phase publishes nothing: the first request is the steady phase's
    first = min(served, key=lambda e: e["t"])
    assert first in of("steady"), first
    steady = count(of("steady"))
    assert 0.75 * 120 <= steady <= 1.1 * 120, f"20 tasks/s for 6 s, got {steady}"
    burst = of("burst")
    assert count(burst) == 7, "tasks: 7 publishes exactly 7 (3 batches of 2 and one of 1)"
    assert sorted(len(e.get("ids", ())) or e["rejected"] for e in burst) == [1, 2, 2, 2]
    assert count(of("closed")) > 0
    # each phase's requests fall in its window (1 s of slack for the clocks' slew)
    for name in phase_args:
        start, end = times[name]["start"], times[name]["end"]
        stamps = [e["t"] for e in of(name)]
        assert all(start - 1.0 <= t <= end + 1.0 for t in stamps), (name, start, end, stamps)
    # the steady mix follows its weights loosely (io weight 3, cpu weight 1)
    tools = [t for e in of("steady") for t in e["tools"]]
    assert 0.5 < tools.count("io") / len(tools) < 0.95


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_partial_batch_503_counts_the_queued_ids(tmp_path: Path,
                                                 partial_fake_api: FakeAPI) -> None:
    """A batch the API answered 503 after queueing part of it (``published`` ids): those
    ids are in the queue, so Locust records them as published (the harness then waits for
    and accounts them) and only the rest as rejected; before the fix they were dropped."""
    sc = make_scenario(tmp_path, [{"name": "burst", "duration": 4,
                                   "load": {"tasks": 20, "rate": 10}}], batch=3)
    res = run_to_end(api_url=partial_fake_api.url, scenario=sc, out_dir=tmp_path / "locust")
    served = partial_fake_api.entries()
    failed = [e for e in served if "rejected" in e]
    partial = [e for e in failed if e.get("ids")]
    assert partial, f"the fake answered no partial 503: {served}"
    served_ids = {i for e in served for i in e.get("ids", ())}
    assert set(res["task_ids"]) == served_ids
    assert {i for e in partial for i in e["ids"]} <= set(res["task_ids"])
    assert res["tasks_published"] == len(served_ids)
    assert res["tasks_rejected"] == sum(e["rejected"] for e in failed)
    assert res["tasks_published"] + res["tasks_rejected"] == 20, "tasks: 20 posts 20 tasks"
    assert res["requests"] == len(served) and res["failures"] == len(failed)
    assert all("503" in f["error"] and "nack" in f["error"] for f in res["failure_reasons"])


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_runner_kills_locust_on_timeout(tmp_path: Path, fake_api: FakeAPI) -> None:
    sc = make_scenario(tmp_path, [{"name": "long", "duration": 120, "load": {"rate": 2}}],
                       batch=1)
    run = LocustRun(api_url=fake_api.url, scenario=sc, out_dir=tmp_path / "locust",
                    stop_grace=3)
    run.start()
    try:
        # Locust boots in about 2 s; wait until it has served something
        wait_for(fake_api.entries, bool, what="Locust's first request", expected="one",
                 timeout=30, interval=0.2)
        with pytest.raises(WaitTimeout) as info:
            run.wait(timeout=2)
        assert not run.running(), "the runner kills Locust when the wait times out"
        assert "expected process exited" in str(info.value)
    finally:
        run.stop()
    # single-task requests went to /tasks and their ids were recorded
    served = {i for e in fake_api.entries() for i in e.get("ids", ())}
    assert served and set(run.task_ids()) == served
