"""SLO thresholds with units: `p99 < 250ms`, `recovery_s < 15s`, `error_rate < 1%`.

A metric's unit is in its name (`_ms`, `_s`, `_rate`), so a threshold written with a unit is
converted to it: `p99_ms < 0.25s` is `p99_ms < 250`. A metric named without its unit (`p99`,
`ttft_p99`) takes the one the threshold's unit implies. A plain number keeps its old meaning,
and a unit that does not fit the metric (`error_rate < 5ms`) is an error, never a guess.
"""

import re
from collections.abc import Callable

_TIME_UNITS_S = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ%]*)\s*$")


def metric_unit(metric: str) -> str:
    """`ms`, `s`, `share` or `` (a count, a rate per second, ...), from the metric's name."""
    if metric.endswith("_ms"):
        return "ms"
    if metric.endswith("_s"):
        return "s"
    if metric.endswith("_rate"):
        return "share"
    return ""


def split_threshold(text: str) -> tuple[float, str]:
    """The number and the unit written after it (`` for none); ValueError when unreadable."""
    match = _NUMBER.match(text)
    if match is None:
        raise ValueError(f"cannot read threshold {text!r}; write a number, optionally with a unit "
                         "(250ms, 15s, 1%)")
    return float(match.group(1)), match.group(2)


def resolve(metric: str, threshold: object, known: Callable[[str], bool]) -> tuple[str, object]:
    """(metric, threshold in the metric's unit); a threshold that is not text is left as it is."""
    if not isinstance(threshold, str):
        return metric, threshold
    number, unit = split_threshold(threshold)
    if not unit:
        return metric, number
    if unit in _TIME_UNITS_S and not known(metric) and metric_unit(metric) == "":
        for suffix in ("_ms", "_s"):  # `p99 < 250ms`: the metric is p99_ms
            if known(metric + suffix):
                metric += suffix
                break
    return metric, _convert(metric, number, unit)


def _convert(metric: str, number: float, unit: str) -> float:
    kind = metric_unit(metric)
    if kind in ("ms", "s") and unit in _TIME_UNITS_S:
        seconds = number * _TIME_UNITS_S[unit]
        return seconds * 1000 if kind == "ms" else seconds
    if kind == "share" and unit == "%":
        return number / 100
    takes = {"ms": "a time (250ms, 1.5s)", "s": "a time (15s, 500ms)", "share": "a share (0.01 or 1%)"}
    wants = takes.get(kind, "a plain number (it has no unit)")
    raise ValueError(f"threshold unit {unit!r} does not fit metric {metric!r}: it takes {wants}")
