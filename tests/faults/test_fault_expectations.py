"""``recovers`` and ``max_redeliveries``: the expectations that fit faults."""

from __future__ import annotations

from typing import Any

from scalelab.expectations import Expectation, evaluate_one

T0 = 1000.0
PHASES = {"load": {"name": "load", "start": T0, "end": T0 + 120}}


def _timeline(*ready: tuple[float, int]) -> list[dict[str, Any]]:
    return [{"t": T0 + t, "spec": n, "current": n, "ready": n} for t, n in ready]


def _fault(fid: str, kind: str, t: float, *, heal: bool = False, seconds: float = 0.0,
           phase: str = "load") -> dict[str, Any]:
    return {"id": fid, "phase": phase, "kind": kind, "target": "agent", "heal": heal,
            "planned": t, "t": T0 + t, "seconds": seconds, "effect": {}, "error": None}


def _recovers(value: int, *, within: float | None = None, phase: str | None = "load"
              ) -> Expectation:
    return Expectation(id="back", kind="recovers", value=value, within=within, phase=phase)


def _eval(exp: Expectation, timeline: list[dict[str, Any]], faults: list[dict[str, Any]],
          tasks: dict[str, Any] | None = None) -> dict[str, Any]:
    return evaluate_one(exp, timeline=timeline, phases=PHASES, tasks=tasks, locust=None,
                        run_start=T0, faults=faults)


KILLS = [_fault("k", "kill", 20), _fault("k", "kill", 60)]
#: 4 ready; a kill at +20 drops to 3, back at +35; the kill at +60 drops to 3, back at +90.
DIPS = _timeline((0, 4), (15, 4), (25, 3), (35, 4), (55, 4), (65, 3), (80, 3), (90, 4),
                 (110, 4))


def test_recovers_passes_when_every_fault_is_followed_by_the_count_within_the_bound() -> None:
    v = _eval(_recovers(4, within=30), DIPS, KILLS)
    assert v["passed"], v
    assert v["observed"] == "recovered: k +15s, k +30s"
    assert v["at"] == T0 + 90
    assert v["expected"] == "ready replicas back to >= 4 within 30s after every fault in " \
                            "phase 'load'"


def test_recovers_fails_naming_the_fault_that_did_not_recover_in_time() -> None:
    v = _eval(_recovers(4, within=20), DIPS, KILLS)
    assert not v["passed"]
    assert v["observed"] == "after k (ended +60.0s): not back to 4 by +80.0s"


def test_a_timed_fault_is_judged_from_its_heal() -> None:
    faults = [_fault("p", "partition", 10), _fault("p", "partition", 40, heal=True)]
    # the count is 4 during the partition (no recovery needed then) and 2 after it
    timeline = _timeline((0, 4), (30, 4), (45, 2), (70, 2), (80, 4))
    assert not _eval(_recovers(4, within=20), timeline, faults)["passed"]
    ok = _eval(_recovers(4, within=40), timeline, faults)
    assert ok["passed"] and ok["observed"] == "recovered: p +40s"


def test_a_restart_is_judged_from_when_the_broker_was_back() -> None:
    faults = [_fault("r", "restart", 10, seconds=12.0)]
    timeline = _timeline((0, 2), (15, 2), (30, 2))
    v = _eval(_recovers(2, within=1), timeline, faults)
    assert not v["passed"], "at +22 (restart end) there is no sample within 1 s"
    assert _eval(_recovers(2, within=10), timeline, faults)["observed"] == "recovered: r +8s"


def test_recovers_without_any_fault_fails_rather_than_passing_vacuously() -> None:
    v = _eval(_recovers(4), DIPS, [])
    assert not v["passed"]
    assert "no fault fired" in v["message"]
    other_phase = [_fault("k", "kill", 20, phase="cool")]
    assert not _eval(_recovers(4), DIPS, other_phase)["passed"]
    assert _eval(_recovers(4, phase=None), DIPS, other_phase)["passed"]


def test_a_partition_never_healed_fails() -> None:
    v = _eval(_recovers(4), DIPS, [_fault("p", "partition", 10)])
    assert not v["passed"] and v["observed"] == "p was never healed"


def test_max_redeliveries() -> None:
    exp = Expectation(id="few", kind="max_redeliveries", value=3)
    assert _eval(exp, DIPS, [], tasks={"redelivered": 3})["passed"]
    over = _eval(exp, DIPS, [], tasks={"redelivered": 4})
    assert not over["passed"] and over["observed"] == "4 task(s) redelivered"
    missing = _eval(exp, DIPS, [], tasks={"published": 1})
    assert not missing["passed"] and "no redelivery count" in missing["message"]
