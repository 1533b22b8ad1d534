"""Invariants of the twin's simulation (issue 14): tasks are conserved, CPU utilization stays
within what the pods can burn, more replicas never make the queue worse, and the real
controller cores (not a second implementation) make the decisions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from scalelab.control.hpa import HPAControllerSettings
from scalelab.control.trace_replay import KedaHPASpec, load_manifest
from scalelab.errors import ConfigError
from scalelab.paths import SCALING_MANIFESTS
from scalelab.settings import TimingProfile
from scalelab.twin.simulate import TwinParams, back_to_floor, first_rise, simulate
from scalelab.twin.workload import PhasePlan, ToolCost, arrivals

CPU = ToolCost(name="cpu", weight=1, cpu_s=0.2, io_s=0.0)
IO = ToolCost(name="io", weight=1, cpu_s=0.0, io_s=1.0)


def _params(**over: object) -> TwinParams:
    base = TwinParams(settings=HPAControllerSettings.from_timing(TimingProfile()),
                      metrics_window=10.0, pod_start_s=3.0, prefetch=1,
                      cpu_request_cores=0.25, cpu_stretch=1.5, io_overhead_s=0.05,
                      idle_utilization=0.5, queue_stats_interval=5.0, apply_offset=-0.3,
                      initial_replicas=2)
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def _plan(*phases: tuple[float, float], tools: tuple[ToolCost, ...] = (CPU,)) -> list[PhasePlan]:
    return [PhasePlan(name=f"p{i}", duration=d, mode="rate" if r else "idle", rate=r,
                      tools=tools) for i, (d, r) in enumerate(phases)]


def _fixed(tmp_path: Path, replicas: int, name: str = "hpa-cpu.yaml") -> KedaHPASpec:
    """The shipped HPA pinned at ``replicas`` (min = max)."""
    doc = yaml.safe_load((SCALING_MANIFESTS / name).read_text())
    doc["spec"]["minReplicas"] = doc["spec"]["maxReplicas"] = replicas
    path = tmp_path / f"fixed-{replicas}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_manifest(path)[0]  # type: ignore[return-value]


@pytest.mark.parametrize("manifest", ["hpa-cpu.yaml", "keda-queue.yaml", "keda-queue-zero.yaml",
                                      "hpa-cpu-nostab.yaml"])
@pytest.mark.parametrize("tools", [(CPU,), (IO,), (CPU, IO)])
def test_tasks_are_conserved_at_every_second(manifest: str, tools: tuple[ToolCost, ...]):
    spec, _ = load_manifest(SCALING_MANIFESTS / manifest)
    arr = arrivals(_plan((20, 0), (60, 3), (30, 1), (90, 0), tools=tools))
    res = simulate(spec, arr, _params())
    published = 0.0
    for t, row in enumerate(arr.per_second):
        published += sum(row)
        in_system = res.backlog[t]
        assert min(res.queue_ready[t], res.queue_unacked[t], in_system) >= -1e-9
        assert published == pytest.approx(res.processed_total[t] + in_system, abs=1e-6)
        # the broker also counts what the pods hold: never less than what is left, never
        # more unacked than prefetch x ready pods
        assert res.queue_ready[t] + res.queue_unacked[t] >= in_system - 1e-9
        assert res.queue_unacked[t] <= res.ready[t] + 1e-9
    assert res.published == pytest.approx(arr.total) == pytest.approx(210.0)
    assert sum(n for n, _, _ in res.completions) == pytest.approx(res.processed)
    # the load ends 90 s before the run does: everything got processed
    assert res.in_system == pytest.approx(0.0, abs=1e-6)


def test_utilization_stays_within_what_a_busy_pod_can_burn():
    spec, _ = load_manifest(SCALING_MANIFESTS / "hpa-cpu.yaml")
    params = _params()
    res = simulate(spec, arrivals(_plan((10, 0), (100, 30), (60, 0))), params)
    # a pod serving cpu tasks back to back uses cpu_s / wall of a core
    ceiling = 100 * (1 / params.cpu_stretch) / params.cpu_request_cores + params.idle_utilization
    assert max(res.cpu_utilization) == pytest.approx(ceiling, rel=1e-6)  # saturated: reached
    assert min(res.cpu_utilization) >= 0
    idle = simulate(spec, arrivals(_plan((60, 0))), params)
    assert set(idle.cpu_utilization) == {params.idle_utilization}
    assert idle.spec == [2] * 60  # idle pods at the floor: no decision moves them


def test_more_replicas_never_make_the_queue_worse(tmp_path: Path):
    plan = _plan((10, 0), (60, 12), (60, 0))
    waits, backlogs, costs = [], [], []
    for n in (1, 2, 3, 4, 6, 8):
        res = simulate(_fixed(tmp_path, n), arrivals(plan), _params(initial_replicas=n))
        assert set(res.spec) == {n}
        waits.append(res.quantile(0.95))
        backlogs.append(sum(res.backlog))
        costs.append(res.replica_seconds)
    assert waits == sorted(waits, reverse=True) and waits[0] > waits[-1]
    assert backlogs == sorted(backlogs, reverse=True)
    assert costs == sorted(costs) and len(set(costs)) == len(costs)


def test_decisions_come_from_the_hpa_core_with_its_reasons():
    spec, _ = load_manifest(SCALING_MANIFESTS / "hpa-cpu.yaml")
    res = simulate(spec, arrivals(_plan((20, 0), (100, 8), (100, 0))), _params())
    assert [(e.from_replicas, e.to_replicas) for e in res.events] == [(2, 4), (4, 2)]
    assert res.events[0].reason == "cpu resource utilization (percentage of request) above target"
    assert res.events[1].reason == "All metrics below target"
    # scale-down waits for the 30 s stabilization window after the load stops (t=120)
    assert res.events[1].t > 120 + 30
    # syncs run every 5 s from the apply offset
    assert all((e.t + 0.3) % 5 == pytest.approx(0.0, abs=1e-6) for e in res.events)
    # new pods are ready pod_start_s after the decision
    up = res.events[0].t
    assert res.ready[int(up) + 1] == 2 and res.ready[int(up + 3.0) + 1] == 4


def test_keda_scales_to_zero_and_activates_from_zero():
    spec, _ = load_manifest(SCALING_MANIFESTS / "keda-queue-zero.yaml")
    assert isinstance(spec, KedaHPASpec)
    res = simulate(spec, arrivals(_plan((30, 0), (60, 5), (120, 0), tools=(IO,))), _params())
    kinds = [(e.controller, e.from_replicas, e.to_replicas) for e in res.events]
    assert kinds[0] == ("keda", 2, 0)          # never active: scaled in at the first poll
    assert ("keda", 0, 1) in kinds             # activation above activationValue 10
    assert kinds[-1][0] == "keda" and kinds[-1][2] == 0   # back to zero after cooldownPeriod
    assert res.spec[-1] == 0 and max(res.spec) == 4
    assert res.in_system == pytest.approx(0.0, abs=1e-6)


def test_rate_modes_the_twin_cannot_feed_are_refused(tmp_path: Path):
    docs = list(yaml.safe_load_all((SCALING_MANIFESTS / "keda-queue.yaml").read_text()))
    docs[1]["spec"]["triggers"][0]["metadata"]["mode"] = "MessageRate"
    path = tmp_path / "rate.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    spec, _ = load_manifest(path)
    with pytest.raises(ConfigError) as err:
        simulate(spec, arrivals(_plan((10, 1), tools=(IO,))), _params())
    assert err.value.field == "spec.triggers[0].metadata.mode"
    assert "QueueLength" in str(err.value)


@settings(max_examples=25, deadline=None)
@given(rates=st.lists(st.tuples(st.integers(1, 40), st.floats(0, 12)), min_size=1, max_size=5),
       pod_start=st.floats(0, 20), stretch=st.floats(1, 3), prefetch=st.integers(1, 4),
       mix=st.sampled_from([(CPU,), (IO,), (CPU, IO)]),
       manifest=st.sampled_from(["hpa-cpu.yaml", "keda-queue.yaml", "keda-queue-zero.yaml"]))
def test_invariants_hold_for_any_load_and_calibration(rates, pod_start, stretch, prefetch,
                                                       mix, manifest):
    spec, _ = load_manifest(SCALING_MANIFESTS / manifest)
    params = _params(pod_start_s=pod_start, cpu_stretch=stretch, prefetch=prefetch)
    arr = arrivals(_plan(*rates, (30, 0), tools=mix))
    res = simulate(spec, arr, params)
    ceiling = 100 / stretch / params.cpu_request_cores + params.idle_utilization
    published = 0.0
    for t, row in enumerate(arr.per_second):
        published += sum(row)
        assert published == pytest.approx(res.processed_total[t] + res.backlog[t], abs=1e-6)
        assert 0.0 <= res.cpu_utilization[t] <= ceiling + 1e-6
        assert 0 <= res.ready[t] <= res.spec[t]
        assert res.queue_unacked[t] <= prefetch * res.ready[t] + 1e-9
    bounds = (spec.scaled_object.effective_min if isinstance(spec, KedaHPASpec)
              else spec.min_replicas, spec.max_replicas)
    assert all(bounds[0] <= n <= bounds[1] for n in res.spec[int(params.settings.sync_period)
                                                             + 1:])


def test_first_scale_up_is_a_rise_not_a_start_above_the_floor():
    # a policy with minReplicas 1 starts at the Deployment's 2 and scales in first
    pts = [(1.0, 2), (2.0, 1), (3.0, 1), (4.0, 2), (5.0, 4), (6.0, 1)]
    assert first_rise(pts) == 4.0
    assert back_to_floor(pts, 1, first_rise(pts)) == 6.0
    assert first_rise([(1.0, 2), (2.0, 2)]) is None
    assert back_to_floor(pts, 1, None) is None
