"""Run Locust for a scenario as its own process and read back what it did.

Locust never runs inside the caller's process: gevent's monkey-patching breaks a process
that already imported ssl (pytest, the experiment). ``LocustRun`` writes the scenario's
load plan to JSON, starts ``python -m locust`` headless on ``locustfile.py`` (the plan's
path in ``SCALELAB_LOAD_PLAN``), lets the LoadTestShape end the run after the last phase,
and parses Locust's CSV output (``--csv --csv-full-history``), the task ids the
locustfile recorded (including the ``published`` ids of a partial-batch 503) and the
count of tasks it could not publish. The process is a mirakuru ``SimpleExecutor`` in its
own process group: ``stop()`` sends SIGTERM, then SIGKILL to the whole group.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from mirakuru import SimpleExecutor
from mirakuru.exceptions import ProcessFinishedWithError

from scalelab.clock import SYSTEM, Clock
from scalelab.errors import ExperimentError, ProcessStartError
from scalelab.procs.executor import MarkedExecutor
from scalelab.scenario import Scenario
from scalelab.waiting import wait_for

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
PLAN_ENV = "SCALELAB_LOAD_PLAN"
CSV_PREFIX = "locust"


def load_plan(scenario: Scenario, *, out_dir: Path) -> dict[str, Any]:
    """The JSON the locustfile reads: phases with their load and task mix, batch, seed."""
    phases = []
    for phase in scenario.phases:
        tools = phase.tools if phase.tools is not None else scenario.workload.tools
        phases.append({
            "name": phase.name, "duration": phase.duration, **phase.load.as_dict(),
            "tools": [{"name": t.name, "weight": t.weight, "arguments": dict(t.arguments)}
                      for t in tools if t.weight > 0],
        })
    return {"scenario": scenario.name, "phases": phases,
            "batch_size": scenario.workload.batch_size, "seed": scenario.workload.seed,
            "out_dir": str(out_dir)}


def _num(value: str | None) -> float | None:
    if value in (None, "", "N/A"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


class LocustRun:
    """One Locust process for one scenario; ``stop()`` is idempotent and always safe."""

    def __init__(
        self, *, api_url: str, scenario: Scenario, out_dir: Path,
        clock: Clock = SYSTEM,
        stop_grace: float = 10.0, python: str = sys.executable,
        locustfile: Path = LOCUSTFILE,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.scenario = scenario
        self.out_dir = Path(out_dir)
        #: Waits run on its monotonic time; ``started_at`` is wall time.
        self.clock = clock
        self.stop_grace = stop_grace
        self.python = python
        self.locustfile = locustfile
        self.prefix = self.out_dir / CSV_PREFIX
        self.log_path = self.out_dir / "locust.log"
        self.plan_path = self.out_dir / "plan.json"
        self._executor: SimpleExecutor | None = None
        self._log: IO[str] | None = None
        self.exit_code: int | None = None
        self.started_at: float | None = None

    # -- process ---------------------------------------------------------------------
    def command(self) -> list[str]:
        return [
            self.python, "-m", "locust", "-f", str(self.locustfile), "--headless",
            "--host", self.api_url, "--csv", str(self.prefix), "--csv-full-history",
            "--only-summary", "--stop-timeout", str(int(math.ceil(self.stop_grace))),
            "--exit-code-on-error", "0", "--loglevel", "INFO",
            "--logfile", str(self.out_dir / "locust-events.log"),
        ]

    def start(self) -> LocustRun:
        if self._executor is not None:
            raise ExperimentError("this LocustRun was already started")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for old in [*self.out_dir.glob("ids-*.txt"), *self.out_dir.glob("rejected-*.txt"),
                    self.out_dir / "phases.jsonl"]:
            old.unlink(missing_ok=True)
        self.plan_path.write_text(json.dumps(load_plan(self.scenario, out_dir=self.out_dir),
                                             indent=1))
        env = {PLAN_ENV: str(self.plan_path), "PYTHONUNBUFFERED": "1"}
        self._log = self.log_path.open("w")
        # MarkedExecutor: no other Python process's exit can SIGKILL Locust through
        # mirakuru's substring sweep (scalelab/procs/executor.py)
        self._executor = MarkedExecutor(
            self.command(), cwd=str(self.out_dir), envvars={**os.environ, **env},
            timeout=self.stop_grace, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.started_at = self.clock.wall()
        self._executor.start()
        return self

    def running(self) -> bool:
        return self._executor is not None and self._executor.running()

    def _returncode(self) -> int | None:
        ex = self._executor
        if ex is None or ex.process is None:
            return self.exit_code
        code = ex.process.poll()
        if code is not None:
            self.exit_code = code
        return code

    def wait(self, timeout: float) -> int:
        """Wait for Locust to end by itself; on timeout kill it and raise ``WaitTimeout``.

        An exit code other than 0 (Locust exits 0 even with failed requests, thanks to
        ``--exit-code-on-error 0``) raises ``ProcessStartError`` with the log tail.
        """
        if self._executor is None:
            raise ExperimentError("LocustRun.wait() before start()")
        start = self.clock.monotonic()
        try:
            code = wait_for(
                self._returncode, lambda rc: rc is not None,
                what=f"Locust (scenario {self.scenario.name}) to end after its last phase",
                expected="process exited", timeout=timeout, interval=0.5,
                clock=self.clock.monotonic, sleep=self.clock.sleep,
                fix="check the API answers quickly enough; see " + str(self.log_path),
            )
        except Exception:
            self.stop()
            raise
        assert code is not None
        if code != 0:
            raise ProcessStartError(
                f"Locust exited with code {code} after {self.clock.monotonic() - start:.1f}s:\n"
                f"{self.log_tail()}", fix=f"read {self.log_path}")
        return code

    def wait_first_phase(self, timeout: float = 60.0) -> float:
        """Wait until the shape starts its first phase; return that start (wall time).

        Locust takes a second or two to boot; the phases' wall-clock boundaries are what the
        expectations use. A Locust that exits first fails fast with its log.
        """
        def started() -> list[dict[str, Any]]:
            times = self.phase_times()
            if not times and not self.running():
                raise ProcessStartError(
                    f"Locust exited (code {self._returncode()}) before starting the first "
                    f"phase:\n{self.log_tail()}", fix=f"read {self.log_path}")
            return times

        first = wait_for(started, bool, what="Locust to start the first phase",
                         expected="a phase start in phases.jsonl", timeout=timeout,
                         interval=0.2, clock=self.clock.monotonic, sleep=self.clock.sleep,
                         fix=f"read {self.log_path}")
        return float(first[0]["start"])

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after ``stop_grace``; idempotent."""
        ex = self._executor
        if ex is not None and ex.process is not None:
            self._returncode()
            try:
                ex.stop()
            except ProcessFinishedWithError as err:
                self.exit_code = err.exit_code
            except Exception:
                ex.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocustRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- results ---------------------------------------------------------------------
    def _rows(self, suffix: str) -> list[dict[str, str]]:
        path = Path(f"{self.prefix}_{suffix}.csv")
        if not path.exists():
            return []
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def history(self) -> list[dict[str, Any]]:
        """Per-second aggregate: [{t (unix s), users, rps, p95_ms}] from the history CSV."""
        out = []
        for row in self._rows("stats_history"):
            if row.get("Name") != "Aggregated":
                continue
            out.append({
                "t": _num(row.get("Timestamp")),
                "users": int(_num(row.get("User Count")) or 0),
                "rps": _num(row.get("Requests/s")) or 0.0,
                "p95_ms": _num(row.get("95%")),
                "requests": int(_num(row.get("Total Request Count")) or 0),
            })
        return out

    def poll(self) -> dict[str, Any]:
        """What Locust is doing now (last history row): running, users, rps, p95_ms."""
        hist = self.history()
        last = hist[-1] if hist else {"t": None, "users": 0, "rps": 0.0, "p95_ms": None,
                                      "requests": 0}
        return {"running": self.running(), **last, "tasks_published": len(self.task_ids())}

    def task_ids(self) -> list[str]:
        """Every task id the API accepted, in the order recorded (all Locust processes)."""
        ids: list[str] = []
        for path in sorted(self.out_dir.glob("ids-*.txt")):
            ids.extend(line for line in path.read_text().splitlines() if line)
        return ids

    def tasks_rejected(self) -> int:
        """Tasks of failed requests that the API did not queue (all Locust processes).

        A batch answered 503 after part of it was queued counts only its unqueued tail
        here; its queued ids are in ``task_ids()``.
        """
        return sum(int(line) for path in sorted(self.out_dir.glob("rejected-*.txt"))
                   for line in path.read_text().splitlines() if line.strip())

    def phase_times(self) -> list[dict[str, Any]]:
        """[{name, start, end}] as the shape switched phases (wall clock)."""
        path = self.out_dir / "phases.jsonl"
        if not path.exists():
            return []
        phases: list[dict[str, Any]] = []
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "start":
                phases.append({"name": event["name"], "start": event["t"], "end": None})
            elif phases and phases[-1]["name"] == event["name"]:
                phases[-1]["end"] = event["t"]
        return phases

    def results(self) -> dict[str, Any]:
        """Summary for the run record's ``locust`` field, plus ``task_ids`` (strip before
        storing: the record keeps counts, not ids)."""
        total = next((r for r in self._rows("stats") if r.get("Name") == "Aggregated"), None)
        failures = [
            {"name": r.get("Name"), "error": r.get("Error"),
             "occurrences": int(_num(r.get("Occurrences")) or 0)}
            for r in self._rows("failures")
        ]
        ids = self.task_ids()
        unique = set(ids)
        summary: dict[str, Any] = {
            "requests": int(_num(total.get("Request Count")) or 0) if total else 0,
            "failures": int(_num(total.get("Failure Count")) or 0) if total else 0,
            "rps": _num(total.get("Requests/s")) if total else None,
            "avg_ms": _num(total.get("Average Response Time")) if total else None,
            "p50_ms": _num(total.get("50%")) if total else None,
            "p95_ms": _num(total.get("95%")) if total else None,
            "p99_ms": _num(total.get("99%")) if total else None,
            "max_ms": _num(total.get("Max Response Time")) if total else None,
            "tasks_published": len(unique),
            "task_ids_repeated": len(ids) - len(unique),
            "tasks_rejected": self.tasks_rejected(),
            "batch_size": self.scenario.workload.batch_size,
            "failure_reasons": failures[:20],
            "history": [{k: h[k] for k in ("t", "users", "rps", "p95_ms")}
                        for h in self.history()],
            "phases": self.phase_times(),
            "exit_code": self.exit_code,
            "task_ids": sorted(unique),
        }
        return summary
