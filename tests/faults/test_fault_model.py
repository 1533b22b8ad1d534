"""Faults in a scenario: checked like every other field, scheduled, fired and healed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from scalelab.errors import ConfigError
from scalelab.faults import FaultRunner, Kill, Partition, Restart, Slow
from scalelab.scenario import load_scenario

BASE: dict[str, Any] = {
    "name": "faulty",
    "description": "faults",
    "manifests": ["manifests/scaling/keda-queue.yaml"],
    "workload": {"tools": {"cpu": {"cpu_ms": 50}}},
}


def _write(tmp_path: Path, phases: list[dict[str, Any]]) -> Path:
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump({**BASE, "phases": phases}))
    return path


def _phases(*faults: dict[str, Any], second: list[dict[str, Any]] | None = None
            ) -> list[dict[str, Any]]:
    return [{"name": "load", "duration": 60, "load": {"rate": 5}, "faults": list(faults)},
            {"name": "cool", "duration": 30, "load": {"idle": True},
             "faults": second or []}]


def test_faults_are_typed_and_scheduled_from_the_phase_starts(tmp_path: Path) -> None:
    sc = load_scenario(_write(tmp_path, _phases(
        {"at": 10, "every": 20, "kill": {"deployment": "agent"}},
        {"at": 5, "partition": {"deployment": "agent", "seconds": 10}},
        second=[{"id": "broker", "restart": "rabbitmq"},
                {"at": 5, "slow": {"deployment": "agent", "cpu_ms_extra": 100,
                                   "seconds": 20}}])))
    kinds = {f.id: f.action for f in sc.faults}
    assert kinds == {
        "load.kill-0": Kill(deployment="agent", count=1, signal="KILL"),
        "load.partition-1": Partition(deployment="agent", seconds=10.0),
        "broker": Restart(service="rabbitmq"),
        "cool.slow-1": Slow(deployment="agent", cpu_ms_extra=100, seconds=20.0),
    }
    plan = [(s.t, s.fault.id, s.heal) for s in sc.fault_schedule()]
    assert plan == [
        (5.0, "load.partition-1", False), (10.0, "load.kill-0", False),
        (15.0, "load.partition-1", True), (30.0, "load.kill-0", False),
        (50.0, "load.kill-0", False), (60.0, "broker", False),
        (65.0, "cool.slow-1", False), (85.0, "cool.slow-1", True),
    ]


@pytest.mark.parametrize(("faults", "field", "words"), [
    ([{"at": 60, "kill": {"deployment": "agent"}}], "phases[0].faults[0].at",
     "after the phase ends"),
    ([{"at": 1, "kill": {"deployment": "agent"}, "restart": "rabbitmq"}],
     "phases[0].faults[0]", "exactly one action"),
    ([{"at": 1}], "phases[0].faults[0]", "exactly one action"),
    ([{"at": 0, "every": 10, "partition": {"deployment": "agent", "seconds": 10}}],
     "phases[0].faults[0].every", "overlap itself"),
    ([{"at": 1, "kill": {"deployment": "rabbitmq"}}], "phases[0].faults[0].kill.deployment",
     "agent"),
    ([{"at": 1, "kill": {"deployment": "agent", "signal": "HUP"}}],
     "phases[0].faults[0].kill.signal", "KILL"),
    ([{"at": 1, "slow": {"deployment": "agent", "seconds": 5}}],
     "phases[0].faults[0].slow.cpu_ms_extra", "cpu_ms_extra"),
])
def test_bad_faults_name_the_file_field_and_fix(tmp_path: Path, faults: list[dict[str, Any]],
                                               field: str, words: str) -> None:
    path = _write(tmp_path, _phases(*faults))
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    err = info.value
    assert err.file == str(path)
    assert err.field == field, str(err)
    assert words in str(err)
    assert err.fix


def test_a_timed_fault_must_end_before_the_load_does(tmp_path: Path) -> None:
    path = _write(tmp_path, _phases(second=[
        {"at": 10, "slow": {"deployment": "agent", "cpu_ms_extra": 10, "seconds": 30}}]))
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert info.value.field == "phases[1].faults[0].slow.seconds"
    assert "lasts until 100s, after the scenario's last phase ends (90s)" in str(info.value)


def test_fault_ids_are_unique(tmp_path: Path) -> None:
    path = _write(tmp_path, _phases({"id": "x", "restart": "rabbitmq"},
                                    second=[{"id": "x", "restart": "rabbitmq"}]))
    with pytest.raises(ConfigError, match="duplicate fault id 'x'") as info:
        load_scenario(path)
    assert info.value.field == "phases[1].faults[0].id"


class FakeClock:
    """Time moves only when the runner waits; the runner thread and the test share it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def wait(self, seconds: float) -> bool:
        with self.lock:
            self.now += seconds
        return False


class Recorder:
    def __init__(self, clock: FakeClock, *, fail: str | None = None) -> None:
        self.calls: list[tuple[float, str, bool]] = []
        self.clock = clock
        self.fail = fail

    def _note(self, kind: str, heal: bool = False) -> dict[str, Any]:
        self.calls.append((self.clock() - 1000.0, kind, heal))
        if kind == self.fail:
            raise RuntimeError(f"{kind} broke")
        return {"kind": kind}

    def kill(self, action: Kill) -> dict[str, Any]:
        return self._note("kill")

    def restart(self, action: Restart) -> dict[str, Any]:
        return self._note("restart")

    def partition(self, action: Partition, *, heal: bool) -> dict[str, Any]:
        return self._note("partition", heal)

    def slow(self, action: Slow, *, heal: bool) -> dict[str, Any]:
        return self._note("slow", heal)


def _scenario(tmp_path: Path) -> Any:
    return load_scenario(_write(tmp_path, _phases(
        {"at": 10, "every": 20, "kill": {"deployment": "agent"}},
        {"at": 5, "partition": {"deployment": "agent", "seconds": 10}},
        second=[{"restart": "rabbitmq"}])))


def test_the_runner_fires_each_action_at_its_time_and_records_it(tmp_path: Path) -> None:
    clock = FakeClock()
    injector = Recorder(clock, fail="restart")
    runner = FaultRunner(_scenario(tmp_path).fault_schedule(), injector, start=1000.0,
                         clock=clock, wait=clock.wait).begin()
    runner._thread.join(5)
    records = runner.stop()
    assert [(round(t), k, h) for t, k, h in injector.calls] == [
        (5, "partition", False), (10, "kill", False), (15, "partition", True),
        (30, "kill", False), (50, "kill", False), (60, "restart", False)]
    assert [r.kind for r in records] == ["partition", "kill", "partition", "kill", "kill",
                                         "restart"]
    assert records[-1].error == "RuntimeError: restart broke"
    assert records[0].effect == {"kind": "partition"} and records[0].error is None
    assert [r.planned for r in records] == [5.0, 10.0, 15.0, 30.0, 50.0, 60.0]


def test_stopping_mid_partition_heals_it(tmp_path: Path) -> None:
    clock = FakeClock()
    injector = Recorder(clock)
    stop_at = threading.Event()

    def wait(seconds: float) -> bool:
        if clock() - 1000.0 >= 7:  # the partition (at 5 s) is in force: stop here
            stop_at.set()
            threading.Event().wait(0.01)
            return False
        return clock.wait(seconds)

    runner = FaultRunner(_scenario(tmp_path).fault_schedule(), injector, start=1000.0,
                         clock=clock, wait=wait).begin()
    assert stop_at.wait(5), "the runner never reached the partition"
    records = runner.stop()
    assert [(r.kind, r.heal) for r in records] == [("partition", False), ("partition", True)]
    assert injector.calls[-1][1:] == ("partition", True)


def test_repeat_and_min_pass(tmp_path: Path) -> None:
    path = tmp_path / "rep.yaml"
    path.write_text(yaml.safe_dump({**BASE, "phases": _phases(), "repeat": 5, "min_pass": 4}))
    sc = load_scenario(path)
    assert (sc.repeat, sc.min_pass) == (5, 4)
    path.write_text(yaml.safe_dump({**BASE, "phases": _phases(), "repeat": 3, "min_pass": 4}))
    with pytest.raises(ConfigError, match="min_pass 4 is more than the 3 repetition") as info:
        load_scenario(path)
    assert info.value.field == "min_pass"
    path.write_text(yaml.safe_dump({**BASE, "phases": _phases(), "repeat": 0}))
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert info.value.field == "repeat"
    path.write_text(yaml.safe_dump({**BASE, "phases": _phases()}))
    assert (load_scenario(path).repeat, load_scenario(path).min_pass) == (1, None)
