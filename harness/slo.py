"""SLO evaluation: each assertion with the value measured, the threshold, the sample size and,
where the value is a statistic of requests, a confidence interval (harness.stats)."""

import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from harness.analysis import RunData, measure
from harness.scenario import Slo
from harness.sloci import Interval, interval_for

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class SloResult:
    name: str
    metric: str
    op: str
    threshold: float
    measured: float | None
    passed: bool
    samples: int  # what the value rests on: requests, faults, observations (see README)
    window: Any
    detail: str = ""
    ci: list[float | None] | None = None  # [low, high]; None on a side the sample cannot bound
    confidence: float | None = None
    ci_method: str = ""
    marginal: bool = False  # the threshold lies inside the interval: the verdict could go either way

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(slo: Slo, data: RunData) -> SloResult:
    result = measure(data, slo.metric, slo.window)
    window = slo.window if isinstance(slo.window, str) else slo.window.model_dump(by_alias=True)
    if result.value is None:
        return SloResult(
            slo.label, slo.metric, slo.op, slo.threshold, None, False, result.samples, window,
            "no data in the window: nothing was measured",
        )
    passed = _OPERATORS[slo.op](result.value, slo.threshold)
    value = round(result.value, 6)
    detail = f"measured {value:g} {'meets' if passed else 'breaks'} {slo.op} {slo.threshold:g}"
    interval = interval_for(data, slo.metric, slo.window, slo.confidence)
    if interval is None:
        return SloResult(slo.label, slo.metric, slo.op, slo.threshold, value, passed, result.samples, window,
                         detail)
    marginal = interval.contains(slo.threshold)
    detail += f"; {interval.describe()}"
    if interval.note:
        detail += f"; {interval.note}"
    if marginal:
        detail += f"; marginal: {slo.threshold:g} lies inside the interval"
    return SloResult(
        slo.label, slo.metric, slo.op, slo.threshold, value, passed, interval.samples, window, detail,
        ci=_rounded(interval), confidence=interval.confidence, ci_method=interval.method, marginal=marginal,
    )


def _rounded(interval: Interval) -> list[float | None]:
    return [None if v is None else round(v, 6) for v in (interval.low, interval.high)]


def evaluate_all(slos: list[Slo], data: RunData) -> list[SloResult]:
    return [evaluate(slo, data) for slo in slos]
