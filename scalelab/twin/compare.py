"""A prediction against the real run it predicts: the validation figures of issue 14.

Replicas are the *ready* replicas (what the scenarios' expectations count); the
replica-seconds are those of the pods that exist (``timeline[].current``; the twin counts
pending pods too), the integral a bill would charge. Real samples are the record's
``timeline`` (every ``poll_interval``); the prediction at a sample's time is its value at
the last whole second before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from scalelab.twin.simulate import TwinResult, back_to_floor, first_rise


@dataclass(frozen=True, kw_only=True)
class Comparison:
    samples: int
    within_one: float              # fraction of samples with |predicted - real| <= 1
    exact: float                   # fraction with predicted == real
    real_replica_seconds: float
    predicted_replica_seconds: float
    first_scale_up_real: float | None
    first_scale_up_predicted: float | None
    back_to_floor_real: float | None
    back_to_floor_predicted: float | None

    @property
    def replica_seconds_error(self) -> float:
        """Relative error of the prediction (+ over-, - under-predicted)."""
        if self.real_replica_seconds <= 0:
            return 0.0
        return (self.predicted_replica_seconds - self.real_replica_seconds) \
            / self.real_replica_seconds

    @staticmethod
    def _diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    @property
    def first_scale_up_error(self) -> float | None:
        return self._diff(self.first_scale_up_real, self.first_scale_up_predicted)

    @property
    def back_to_floor_error(self) -> float | None:
        return self._diff(self.back_to_floor_real, self.back_to_floor_predicted)

    def meets_goal(self) -> bool:
        """Issue 14's goal: +-1 replica for >= 90 % of samples, replica-seconds within 10 %."""
        return self.within_one >= 0.9 and abs(self.replica_seconds_error) <= 0.10

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(replica_seconds_error=round(self.replica_seconds_error, 4),
                   first_scale_up_error=self.first_scale_up_error,
                   back_to_floor_error=self.back_to_floor_error, meets_goal=self.meets_goal())
        return out


def compare(result: TwinResult, record: Mapping[str, Any]) -> Comparison:
    """Compare a prediction (time 0 = the first phase's start) with a run record."""
    t0 = float(record["phases"][0]["start"])
    horizon = len(result.ready)
    tl = [p for p in record.get("timeline") or [] if p.get("t") is not None]
    ready_pts = [(float(p["t"]) - t0, int(p["ready"])) for p in tl
                 if p.get("ready") is not None and 0 <= float(p["t"]) - t0 < horizon]
    within = exact = 0
    for t, real in ready_pts:
        idx = min(max(int(t) - 1, 0), horizon - 1)
        diff = abs(result.ready[idx] - real)
        within += diff <= 1
        exact += diff == 0
    n = len(ready_pts)
    current = [(float(p["t"]) - t0, float(p["current"])) for p in tl
               if p.get("current") is not None]
    real_rs = 0.0
    for (ta, ca), (tb, _) in zip(current, current[1:], strict=False):
        a, b = max(ta, 0.0), min(tb, float(horizon))
        if b > a:
            real_rs += ca * (b - a)
    if current and current[-1][0] < horizon:
        real_rs += current[-1][1] * (horizon - max(current[-1][0], 0.0))
    floor = result.floor
    real_up = first_rise(ready_pts)
    return Comparison(
        samples=n, within_one=within / n if n else 0.0, exact=exact / n if n else 0.0,
        real_replica_seconds=round(real_rs, 1),
        predicted_replica_seconds=round(result.replica_seconds, 1),
        first_scale_up_real=None if real_up is None else round(real_up, 1),
        first_scale_up_predicted=result.first_scale_up(),
        back_to_floor_real=_round(back_to_floor(ready_pts, floor, real_up)),
        back_to_floor_predicted=result.back_to_floor(),
    )


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)
