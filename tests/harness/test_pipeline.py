"""A whole scenario's control flow (run_scenario: reset → apply → start load → drive → drain →
account → evaluate → store) on a fake clock, in well under a second.

Contract test, not a cluster: the backend is an in-memory stand-in whose agent Deployment
follows a script of the replicas an autoscaler would set, and Locust is a stand-in at the
``load_run`` seam (it logs its phases and publishes ids without a process). What is real:
the experiment's steps and waits, the task ledger's accounting (fed the results the agents
would publish), the expectations, the record's schema, and HTTP to a small server answering
as Prometheus and the RabbitMQ management API answer (no series, an empty queue).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scalelab import record
from scalelab.accounting import TaskLedger
from scalelab.backends.base import Backend, Endpoints, Replicas
from scalelab.clock import Clock
from scalelab.decisions import ScalingEvent
from scalelab.errors import ExperimentError, WaitTimeout
from scalelab.experiment import ExperimentSettings, run_scenario
from scalelab.pipeline import StepFailed, StepRecord, run_steps
from scalelab.scenario import Scenario, load_scenario
from scalelab.settings import AGENT_DEPLOYMENT, StackSettings

SCENARIO = Path(__file__).parents[1] / "experiment" / "data" / "hpa-short.yaml"
STEPS = ["reset", "apply", "start load", "drive", "drain", "account", "evaluate", "store"]


class FakeTime:
    """Wall and monotonic clocks on different origins, both advanced only by ``sleep``."""

    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 500.0
        self.slept = 0.0

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.wall += seconds
        self.mono += seconds
        self.slept += seconds

    def clock(self) -> Clock:
        return Clock(wall=lambda: self.wall, monotonic=lambda: self.mono, sleep=self.sleep)


class _Answers(BaseHTTPRequestHandler):
    """Prometheus' HTTP API with no series and the management API with an empty queue."""

    protocol_version = "HTTP/1.1"   # keep-alive: the observer's sessions reuse connections
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK delay

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/api/v1/query_range"):
            body: Any = {"status": "success", "data": {"resultType": "matrix", "result": []}}
        elif self.path.startswith("/api/v1/query"):
            body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        elif self.path.startswith("/api/queues/"):
            body = {"messages_ready": 0, "messages_unacknowledged": 0}
        else:
            body = {}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def answers() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class World:
    """What the stand-ins share: the fake time and when the load started (wall)."""

    def __init__(self) -> None:
        self.time = FakeTime()
        self.load_start: float | None = None
        self.ledger: FedLedger | None = None


class ScriptedBackend(Backend):
    """The agent Deployment at 2 replicas, at 4 from 20 s into the load phase until 30 s
    into the cooldown (what the HPA of hpa-short does): contract test, not a cluster."""

    name: ClassVar[str] = "local"

    def __init__(self, *, world: World, url: str) -> None:
        super().__init__(settings=StackSettings())
        self.world = world
        self.url = url
        self.spec = 5
        self.applied: list[str] = []
        self.calls: list[str] = []

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(api="http://127.0.0.1:9", prometheus=self.url,
                         rabbitmq_management=f"http://guest:guest@{self.url[7:]}",
                         amqp="amqp://127.0.0.1:9")

    def up(self) -> Endpoints:
        return self.endpoints

    def down(self) -> None:
        pass

    def baseline_replicas(self, deployment: str) -> int:
        return 2

    def _scripted(self) -> int:
        start = self.world.load_start
        if not self.applied or start is None:
            return self.spec
        return 4 if start + 30 <= self.world.time.wall < start + 100 else 2

    def replicas(self, deployment: str) -> Replicas:
        n = self._scripted()
        return Replicas(spec=n, current=n, ready=n)

    def scaling_events(self, since: float = 0.0) -> list[ScalingEvent]:
        if self.world.load_start is None:
            return []
        return [ScalingEvent(t=self.world.load_start + 30, controller="hpa",
                             object="HorizontalPodAutoscaler/agent", from_replicas=2,
                             to_replicas=4, reason="cpu resource utilization above target")]

    def diagnostics(self) -> dict[str, Any]:
        return {"backend": "scripted"}

    def apply_scaling(self, manifest: Path) -> list[str]:
        self.calls.append("apply")
        self.applied = ["HorizontalPodAutoscaler/agent"]
        return list(self.applied)

    def remove_scaling(self) -> None:
        self.calls.append("remove_scaling")
        self.applied = []

    def scale(self, deployment: str, replicas: int) -> None:
        assert deployment == AGENT_DEPLOYMENT
        self.calls.append(f"scale {replicas}")
        self.spec = replicas

    def purge_queue(self) -> int:
        self.calls.append("purge")
        return 0


class FedLedger(TaskLedger):
    """The real accounting, fed the completion records the agents would publish (no broker)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stopped = False

    def start(self) -> FedLedger:
        return self

    def stop(self) -> None:
        self.stopped = True

    def feed(self, ids: list[str]) -> None:
        for task_id in ids:
            self._record(json.dumps({"id": task_id, "outcome": "ok"}).encode())


class ScriptedLoad:
    """Locust at the ``load_run`` seam: boots in 2 s, logs its phases 0.5 s late, publishes
    ``ids``, and ends 3 s after the last phase (``wait`` can be made to fail instead)."""

    def __init__(self, *, world: World, scenario: Scenario, clock: Clock,
                 ids: list[str], fail_wait: Exception | None = None) -> None:
        self.world = world
        self.scenario = scenario
        self.clock = clock
        self.ids = ids
        self.fail_wait = fail_wait
        self.stopped = False

    def start(self) -> ScriptedLoad:
        return self

    def wait_first_phase(self, timeout: float = 60.0) -> float:
        self.clock.sleep(2.0)
        self.world.load_start = self.clock.wall()
        return self.world.load_start

    def wait(self, timeout: float) -> int:
        if self.fail_wait is not None:
            self.clock.sleep(timeout)
            raise self.fail_wait
        self.clock.sleep(3.0)
        assert self.world.ledger is not None
        self.world.ledger.feed(self.ids)
        return 0

    def results(self) -> dict[str, Any]:
        start = self.world.load_start
        assert start is not None
        phases = [{"name": p.name, "start": start + a + 0.5, "end": start + b + 0.5}
                  for p, a, b in self.scenario.phase_offsets()]
        return {"requests": len(self.ids), "failures": 0, "rps": 1.0, "phases": phases,
                "tasks_published": len(self.ids), "task_ids": list(self.ids), "history": []}

    def stop(self) -> None:
        self.stopped = True


def _run(tmp_path: Path, world: World, backend: ScriptedBackend, *,
         progress: Callable[[str], None] = lambda line: None,
         fail_wait: Exception | None = None,
         ids: list[str] | None = None, scenario_file: Path = SCENARIO) -> dict[str, Any]:
    scenario = load_scenario(scenario_file)
    loads: list[ScriptedLoad] = []

    def load_run(*, api_url: str, scenario: Scenario, out_dir: Path,
                 clock: Clock) -> ScriptedLoad:
        loads.append(ScriptedLoad(world=world, scenario=scenario, clock=clock,
                                  ids=ids if ids is not None else ["t1", "t2", "t3"],
                                  fail_wait=fail_wait))
        return loads[-1]

    def ledger(*, amqp_url: str) -> FedLedger:
        world.ledger = FedLedger(amqp_url=amqp_url)
        return world.ledger

    try:
        return run_scenario(scenario, backend, progress=progress, clock=world.time.clock(),
                            settings=ExperimentSettings(run_id="fake", report_dir=tmp_path),
                            load_run=load_run, ledger=ledger)
    finally:
        assert all(load.stopped for load in loads), "the load is always stopped"
        assert world.ledger is None or world.ledger.stopped, "the ledger is always stopped"


def test_a_whole_scenario_runs_on_a_fake_clock(tmp_path: Path, answers: str) -> None:
    world = World()
    backend = ScriptedBackend(world=world, url=answers)
    lines: list[str] = []
    started, cpu = time.monotonic(), time.process_time()
    rec = _run(tmp_path, world, backend, progress=lines.append)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu

    # 140 s of phases, a 15 s queue lag and every wait ran on the fake clock: about 0.4 s
    # here, bounded on CPU time (other tests' load on a shared machine only adds waiting)
    # and loosely on wall time (a single real sleep of the plan would exceed it).
    assert cpu < 1.0, f"the control flow took {cpu:.2f}s of CPU"
    assert elapsed < 5.0, f"the control flow took {elapsed:.2f}s of real time"
    assert world.time.slept >= 140.0
    assert rec["status"] == "passed", [v for v in rec["verdicts"] if not v["passed"]]
    assert [s["name"] for s in rec["steps"]] == STEPS
    assert {s["outcome"] for s in rec["steps"]} == {"ok"}
    steps = {s["name"]: s for s in rec["steps"]}
    # the drive step lasts the planned phases (140 s) on the fake clock, from the load start
    assert steps["drive"]["seconds"] == pytest.approx(140.0)
    assert steps["start load"]["seconds"] == pytest.approx(2.0)
    assert steps["drain"]["seconds"] == pytest.approx(3.0)
    assert steps["reset"]["started"] == rec["started_at"]   # wall time, not monotonic
    assert all(a["started"] <= b["started"] for a, b in zip(rec["steps"], rec["steps"][1:],
                                                            strict=False))
    # the reset ran before anything was applied: baseline scale, queue purged
    assert backend.calls[:4] == ["remove_scaling", "purge", "scale 2", "apply"]
    # one sample per poll interval, the last at the planned end (not a poll later)
    load_start = world.load_start
    assert load_start is not None
    times = [s["t"] - load_start for s in rec["timeline"]]
    assert times[0] == 0.0 and times[-1] == pytest.approx(140.0)
    assert len(times) == 71
    # phase boundaries are Locust's logged ones, not the plan
    assert rec["phases"][0]["start"] == load_start + 0.5
    assert rec["tasks"]["published"] == 3 and rec["tasks"]["lost"] == 0
    assert rec["tasks"]["queue_left"] == {"ready": 0, "unacked": 0}
    assert rec["decisions"][0]["to_replicas"] == 4
    assert sum(1 for line in lines if line.startswith("[hpa-short] load ")) == 30
    # the progress line of the sample 30 s in: 20 s into the load phase, the HPA's 4 replicas
    assert ("[hpa-short] load    20/60s (total 30/140s, 110s left) replicas cur=4 desired=- "
            "ready=4 spec=4 queue=0+0unacked cpu=-") in lines
    stored = record.load(tmp_path / "fake" / "hpa-short")   # valid against the schema
    assert stored["steps"] == rec["steps"]
    assert stored["series_file"] == record.SERIES_FILE


def test_a_failing_step_is_named_and_the_record_still_written(tmp_path: Path,
                                                              answers: str) -> None:
    world = World()
    timeout = WaitTimeout("Locust (scenario hpa-short) to end after its last phase",
                          expected="process exited", actual=None, elapsed=60.0,
                          fix="check the API answers quickly enough")
    with pytest.raises(StepFailed) as info:
        _run(tmp_path, world, ScriptedBackend(world=world, url=answers), fail_wait=timeout)
    err = info.value
    assert err.step == "drain" and err.cause is timeout and err.__cause__ is timeout
    assert str(err).startswith("scenario hpa-short: step drain failed after 60 s: timed out "
                               "waiting for Locust")
    assert err.fix == "check the API answers quickly enough"
    assert isinstance(err, ExperimentError)

    rec = record.load(tmp_path / "fake" / "hpa-short")
    assert rec["status"] == "error"
    assert rec["error"]["step"] == "drain" and rec["error"]["type"] == "WaitTimeout"
    assert "step drain failed after 60 s" in rec["error"]["message"]
    assert [(s["name"], s["outcome"]) for s in rec["steps"]] == [
        ("reset", "ok"), ("apply", "ok"), ("start load", "ok"), ("drive", "ok"),
        ("drain", "failed"), ("store", "ok")]
    assert rec["timeline"], "the samples taken before the failure are kept"
    assert rec["diagnostics"] == {"backend": "scripted"}
    assert rec["decisions"], "collected at store when the account step did not run"


def test_a_bug_in_a_step_keeps_its_traceback(tmp_path: Path, answers: str) -> None:
    world = World()
    with pytest.raises(StepFailed, match=r"step drain failed after 60 s: RuntimeError: boom"):
        _run(tmp_path, world, ScriptedBackend(world=world, url=answers),
             fail_wait=RuntimeError("boom"))
    rec = record.load(tmp_path / "fake" / "hpa-short")
    assert rec["error"]["type"] == "RuntimeError"
    assert "Traceback" in rec["error"]["message"] and "boom" in rec["error"]["message"]


def test_ctrl_c_mid_drive_is_recorded_as_interrupted(tmp_path: Path, answers: str) -> None:
    world = World()
    seen: list[str] = []

    def progress(line: str) -> None:
        seen.append(line)
        if line.startswith("[hpa-short] load "):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, world, ScriptedBackend(world=world, url=answers), progress=progress)
    rec = record.load(tmp_path / "fake" / "hpa-short")
    assert rec["status"] == "interrupted"
    assert rec["error"] == {"type": "KeyboardInterrupt", "message": "interrupted by the user"}
    assert [(s["name"], s["outcome"]) for s in rec["steps"]][-2:] == [
        ("drive", "interrupted"), ("store", "ok")]
    assert rec["tasks"]["published"] == 0   # nothing was accounted


def test_run_steps_times_each_step_and_lets_base_exceptions_through() -> None:
    t = FakeTime()
    done: list[StepRecord] = []

    class Stop(BaseException):
        pass

    def stop() -> None:
        t.sleep(1.0)
        raise Stop

    with pytest.raises(Stop):
        run_steps([("a", lambda: t.sleep(2.5)), ("b", stop), ("c", lambda: None)],
                  clock=t.clock(), done=done)
    assert [(d.name, d.seconds, d.outcome) for d in done] == [("a", 2.5, "ok"),
                                                              ("b", 1.0, "failed")]
    assert done[1].started == done[0].started + 2.5


def test_a_twin_scenario_is_predicted_first_and_judged_against_the_prediction(
        tmp_path: Path, answers: str) -> None:
    """``twin:``: a predict step before the reset (calibrated on the newest earlier run of
    hpa-cpu under the reports folder: a recorded local run), the record's ``twin`` with
    the comparison, and ``matches_twin`` judged from it."""
    import shutil

    import yaml

    data = Path(__file__).parents[1] / "report" / "data"
    earlier = sorted(data.iterdir())[0]
    shutil.copytree(earlier / "hpa-cpu", tmp_path / earlier.name / "hpa-cpu")
    doc = yaml.safe_load(SCENARIO.read_text())
    doc["manifests"] = [str(Path(__file__).parents[2] / m) for m in doc["manifests"]]
    doc["twin"] = {"calibrate_on": ["hpa-cpu"]}
    doc["expectations"].append({"id": "as-predicted", "matches_twin": 50})
    file = tmp_path / "hpa-short-twin.yaml"
    file.write_text(yaml.safe_dump(doc))
    world = World()
    lines: list[str] = []
    rec = _run(tmp_path, world, ScriptedBackend(world=world, url=answers),
               progress=lines.append, scenario_file=file)
    assert [s["name"] for s in rec["steps"]] == ["predict", *STEPS]
    twin = rec["twin"]
    assert twin["error"] is None
    assert twin["calibrated_on"] == [str(tmp_path / earlier.name / "hpa-cpu" / "run.json")]
    assert any(line.startswith("[hpa-short] twin: predicts ") for line in lines), lines
    # the scripted agents go 2 -> 4 -> 2 as the HPA would: the comparison has the samples
    c = twin["comparison"]
    assert c["samples"] == len([s for s in rec["timeline"]
                                if 0 <= s["t"] - rec["phases"][0]["start"] < 140])
    verdict = next(v for v in rec["verdicts"] if v["id"] == "as-predicted")
    assert verdict["observed"].startswith(f"{c['real_replica_seconds']:.0f} replica-seconds, "
                                          f"predicted {c['predicted_replica_seconds']:.0f}")
    err = abs(c["real_replica_seconds"] - c["predicted_replica_seconds"]) \
        / c["predicted_replica_seconds"]
    assert verdict["passed"] == (err <= 0.5)
    record.load(tmp_path / "fake" / "hpa-short")   # the section is valid in the schema
