"""Named, timed steps: what a run did, in order, and which step a failure belongs to.

esrally's ``PipelineStep`` in our words: a run is a list of ``(name, callable)``; each step
is timed (wall start for the record, monotonic seconds for its length) and recorded by name
whatever its outcome, and an error is raised as ``StepFailed`` naming the step and how long
it ran ("step drain failed after 183 s: ..."), with the original error chained. Ctrl-C and
other ``BaseException`` s are recorded and re-raised untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scalelab.clock import Clock
from scalelab.errors import ExperimentError, ScalelabError

Outcome = Literal["ok", "failed", "interrupted"]

#: One step: its name and what it does.
Step = tuple[str, Callable[[], None]]


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    """How one step went: the run record's ``steps[]``."""

    name: str
    #: Unix seconds (wall clock) when the step started.
    started: float
    #: How long it ran (monotonic clock).
    seconds: float
    outcome: Outcome

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "started": self.started, "seconds": self.seconds,
                "outcome": self.outcome}


class StepFailed(ExperimentError):
    """A step raised: the message names the step and its duration, then the cause's message;
    the cause's fix is kept (``__cause__`` is the original error)."""

    def __init__(self, *, step: str, seconds: float, cause: Exception,
                 what: str | None = None) -> None:
        self.step = step
        self.seconds = seconds
        self.cause = cause
        detail = cause.message if isinstance(cause, ScalelabError) else \
            f"{type(cause).__name__}: {cause}"
        where = f"{what}: " if what else ""
        super().__init__(f"{where}step {step} failed after {seconds:.0f} s: {detail}",
                         fix=cause.fix if isinstance(cause, ScalelabError) else None)


def run_steps(steps: Sequence[Step], *, clock: Clock, done: list[StepRecord],
              what: str | None = None,
              on_start: Callable[[str], None] = lambda name: None) -> None:
    """Run ``steps`` in order, appending a ``StepRecord`` to ``done`` for each that ran.

    ``done`` is the caller's list so that what ran is known even when a step raises;
    ``what`` prefixes a failure's message ("scenario hpa-cpu: step drain failed ...").
    """
    for name, step in steps:
        on_start(name)
        started, t0 = clock.wall(), clock.monotonic()

        def finish(outcome: Outcome, name: str = name, started: float = started,
                   t0: float = t0) -> float:
            seconds = clock.monotonic() - t0
            done.append(StepRecord(name=name, started=started, seconds=seconds,
                                   outcome=outcome))
            return seconds

        try:
            step()
        except KeyboardInterrupt:
            finish("interrupted")
            raise
        except Exception as err:
            seconds = finish("failed")
            raise StepFailed(step=name, seconds=seconds, cause=err, what=what) from err
        except BaseException:   # pytest-timeout's Failed, SystemExit: not ours to wrap
            finish("failed")
            raise
        finish("ok")
