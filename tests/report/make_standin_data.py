"""STAND-IN run records for the report tests, generated from the schema (not a real run).

The experiment that writes real records lands later; until then the report and compare
tests read what this script writes to ``tests/report/data/<run-id>/<scenario>/``. The lead
replaces that folder with a real local run's records; the tests only read files, so the
swap needs no code change. Regenerate with::

    python tests/report/make_standin_data.py
"""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path
from typing import Any

from scalelab import record
from scalelab.queries import QUERIES
from scalelab.settings import TimingProfile

DATA = Path(__file__).parent / "data"
BASELINE = "20250101T100000Z-aaaaaa"
CONTENDER = "20250102T100000Z-bbbbbb"

HPA = """apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: agent, namespace: scalelab}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: agent}
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"""
KEDA = """apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: agent, namespace: scalelab}
spec:
  scaleTargetRef: {name: agent}
  minReplicaCount: 2
  maxReplicaCount: 4
  triggers:
  - type: rabbitmq
    metadata: {queueName: agent-tasks, mode: QueueLength, value: "10"}
"""


def _scenario(name: str, *, start: float, run_id: str, slow: float, fail: bool,
              rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    prof = TimingProfile()
    keda = name.startswith("queue")
    plan = [("baseline", 30.0, 0), ("burst", 150.0, 20), ("cooldown", 120.0, 0)]
    phases, t = [], start
    for pname, dur, users in plan:
        phases.append({"name": pname, "start": t, "end": t + dur, "planned_duration": dur,
                       "load": {"mode": "users" if users else "idle", "users": users,
                                "spawn_rate": 5}})
        t += dur
    end = t
    load_start, load_end = start + 30.0, start + 180.0
    up1, up2 = load_start + 12.0 * slow, load_start + 30.0 * slow
    down = load_end + 60.0 * slow

    def spec_at(x: float) -> int:
        if fail:
            return 2 if x < up1 else 3 if x < down else 2
        return 2 if x < up1 else 3 if x < up2 else 4 if x < down else 2

    def ready_at(x: float) -> int:
        return spec_at(x - 6.0) if x - 6.0 >= start else 2

    def load_at(x: float) -> float:
        return 1.0 if load_start <= x < load_end else 0.0

    timeline = []
    x = start
    while x <= end:
        r = ready_at(x)
        cpu = 5 + 85 * load_at(x) * 2 / r + rng.uniform(-3, 3)
        queue = max(0.0, 60 * load_at(x) * 2 / r - 10 + rng.uniform(-4, 4))
        timeline.append({"t": x, "spec": spec_at(x), "current": spec_at(x - 2), "ready": r,
                         "desired": spec_at(x), "queue_ready": round(queue, 1),
                         "queue_unacked": float(r), "cpu_utilization": round(cpu, 1)})
        x += prof.poll_interval
    decisions, prev = [], 2
    for s in timeline:
        if s["spec"] != prev:
            decisions.append({
                "t": s["t"], "controller": "keda" if keda else "hpa",
                "object": "ScaledObject/agent" if keda else "HorizontalPodAutoscaler/agent",
                "from_replicas": prev, "to_replicas": s["spec"],
                "reason": ("queue length above target" if keda else
                           "cpu resource utilization (percentage of request) above target")
                if s["spec"] > prev else "All metrics below target",
                "conditions": [{"type": "AbleToScale", "status": "True",
                                "reason": "SucceededRescale"}]})
            prev = s["spec"]
    first_up = next(s["t"] for s in timeline if s["spec"] > 2)
    verdicts = [
        {"id": "scales-up", "kind": "replicas_at_least", "phase": "burst", "passed": not fail,
         "expected": "replicas >= 4 within 90 s", "observed": "3" if fail else "4",
         "at": (load_start + 90.0) if fail else up2, "message": ""},
        {"id": "first-scale-up", "kind": "scale_up_within", "phase": "burst", "passed": True,
         "expected": "first scale-up within 60 s",
         "observed": f"{first_up - load_start:.0f} s", "at": first_up, "message": ""},
        {"id": "back-to-floor", "kind": "replicas_at_most", "phase": "cooldown",
         "passed": True, "expected": "replicas <= 2 by end", "observed": "2", "at": down,
         "message": ""},
        {"id": "no-loss", "kind": "no_task_loss", "phase": None, "passed": True,
         "expected": "0 lost", "observed": "0", "at": None, "message": ""},
    ]
    published = int(2400 / slow)
    history = [{"t": s["t"], "users": 20 * load_at(s["t"]),
                "rps": round(16 * load_at(s["t"]) + rng.uniform(0, 0.5) * load_at(s["t"]), 2),
                "p95_ms": round(40 + 30 * slow * load_at(s["t"]) + rng.uniform(0, 5), 1)}
               for s in timeline[::2]]
    kind = "queue length (KEDA)" if keda else "CPU (HPA)"
    rec: dict[str, Any] = {
        "schema_version": record.SCHEMA_VERSION, "run_id": run_id,
        "status": "failed" if fail else "passed",
        "scenario": {"name": name,
                     "description": f"STAND-IN data: {kind} scaling under a burst of 20 users.",
                     "tags": ["standin", "keda" if keda else "hpa"],
                     "file": f"experiments/scenarios/{name}.yaml",
                     "spec": {"name": name, "phases": [p[0] for p in plan]}},
        "backend": {"name": "local", "details": {"note": "stand-in generated records"}},
        "versions": {"scalelab": "0.1.0", "python": "3.11.2", "locust": "2.x",
                     "rabbitmq": "3.10.8", "prometheus": "2.42.0", "kubernetes": None},
        "timing_profile": prof.as_dict(),
        "manifests": [{"path": f"manifests/scaling/{'keda' if keda else 'hpa'}.yaml",
                       "objects": ["ScaledObject/agent" if keda
                                   else "HorizontalPodAutoscaler/agent"],
                       "text": KEDA if keda else HPA}],
        "started_at": start, "ended_at": end, "phases": phases, "timeline": timeline,
        "decisions": decisions,
        "locust": {"requests": int(16 * 150), "failures": 0, "rps": 16.0, "p50_ms": 22.0,
                   "p95_ms": round(60.0 * slow, 1), "p99_ms": round(90.0 * slow, 1),
                   "history": history},
        "tasks": {"published": published, "processed": published, "lost": 0, "duplicated": 0,
                  "dead_lettered": 0, "lost_ids": [], "duplicate_ids": []},
        "verdicts": verdicts, "error": None,
        "diagnostics": ({"last_decisions": decisions[-3:],
                         "pod_logs": {"agent-5d9c-abcde": "INFO consumed task 1\nINFO done\n"}}
                        if fail else None),
        "series_file": None,
    }
    record.validate(rec)
    return rec, _series(timeline, start=start, end=end, step=prof.scrape_interval,
                        load_at=load_at)


def _series(timeline: list[dict[str, Any]], *, start: float, end: float, step: float,
            load_at: Any) -> dict[str, Any]:
    def sample(field: str) -> list[list[float | None]]:
        out, i = [], 0
        t = start
        while t <= end:
            while i + 1 < len(timeline) and timeline[i + 1]["t"] <= t:
                i += 1
            v = timeline[i][field]
            out.append([t, None if v is None else float(v)])
            t += step
        return out

    def fn(f: Any) -> list[list[float | None]]:
        return [[t, f(t)] for t, _ in sample("spec")]

    values: dict[str, list[dict[str, Any]]] = {
        "replicas_spec": [{"labels": {"deployment": "agent"}, "values": sample("spec")}],
        "replicas_current": [{"labels": {"deployment": "agent"}, "values": sample("current")}],
        "replicas_ready": [{"labels": {"deployment": "agent"}, "values": sample("ready")}],
        "replicas_desired": [{"labels": {"horizontalpodautoscaler": "agent"},
                              "values": sample("desired")}],
        "hpa_min_replicas": [{"labels": {}, "values": fn(lambda t: 2.0)}],
        "hpa_max_replicas": [{"labels": {}, "values": fn(lambda t: 4.0)}],
        "cpu_utilization": [{"labels": {}, "values": sample("cpu_utilization")}],
        "cpu_utilization_by_pod": [
            {"labels": {"namespace": "scalelab", "pod": f"agent-5d9c-{p}"},
             "values": [[t, None if v is None else v * (0.9 + 0.1 * k)]
                        for t, v in sample("cpu_utilization")]}
            for k, p in enumerate(("abcde", "fghij"))],
        "queue_ready": [{"labels": {}, "values": sample("queue_ready")}],
        "queue_unacked": [{"labels": {}, "values": sample("queue_unacked")}],
        "tasks_published_rate": [{"labels": {}, "values": fn(lambda t: 16.0 * load_at(t))}],
        "tasks_processed_rate": [{"labels": {"outcome": "ok"},
                                  "values": fn(lambda t: 15.0 * load_at(t - 10))}],
        "queue_wait_p50": [{"labels": {}, "values": fn(
            lambda t: 0.2 + 2 * load_at(t) if load_at(t) else None)}],
        "queue_wait_p95": [{"labels": {}, "values": fn(
            lambda t: 0.5 + 4 * load_at(t) if load_at(t) else None)}],
        "task_duration_p50": [{"labels": {}, "values": fn(lambda t: 0.3 + 0.05 * math.sin(t))}],
        "task_duration_p95": [{"labels": {}, "values": fn(lambda t: 0.6 + 0.1 * math.sin(t))}],
        "api_request_p95": [{"labels": {}, "values": fn(lambda t: 0.02 + 0.03 * load_at(t))}],
    }
    queries: dict[str, Any] = {}
    for q in QUERIES:
        entry: dict[str, Any] = {"title": q.title, "promql": q.promql, "unit": q.unit,
                                 "chart": q.chart, "target": q.target,
                                 "series": values.get(q.key, [])}
        if q.key == "keda_metric":
            entry["error"] = "stand-in: no KEDA metrics adapter on the local backend"
        queries[q.key] = entry
    return {"start": start, "end": end, "step": step, "scenario": None, "queries": queries}


def main() -> None:
    shutil.rmtree(DATA, ignore_errors=True)
    for run_id, start, slow in ((BASELINE, 1735725600.0, 1.0), (CONTENDER, 1735812000.0, 1.5)):
        rng = random.Random(run_id)
        t = start
        for name, fail in (("cpu-burst-hpa", False), ("queue-burst-keda", False),
                           ("queue-sustained-keda", run_id == CONTENDER)):
            rec, series = _scenario(name, start=t, run_id=run_id, slow=slow, fail=fail, rng=rng)
            record.write(DATA / run_id / name, rec, series)
            t = rec["ended_at"] + 20.0


if __name__ == "__main__":
    main()
