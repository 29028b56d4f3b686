"""SLO evaluation: each assertion with the value measured, the threshold and the sample size."""

import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from harness.analysis import RunData, measure
from harness.scenario import Slo

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
    samples: int
    window: Any
    detail: str = ""

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
    return SloResult(
        slo.label, slo.metric, slo.op, slo.threshold, value, passed, result.samples, window,
        f"measured {value:g} {'meets' if passed else 'breaks'} {slo.op} {slo.threshold:g}",
    )


def evaluate_all(slos: list[Slo], data: RunData) -> list[SloResult]:
    return [evaluate(slo, data) for slo in slos]
