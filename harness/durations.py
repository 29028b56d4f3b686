"""Durations as people write them in scenario files: `90s`, `5m`, `1h30m`, `250ms`."""

import math
import re

from harness.limits import MAX_DURATION_S

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Seconds from a number (taken as seconds) or a string such as `1m30s`.

    Raises ValueError with a message naming the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return _bounded(float(value), value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip().lower()
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(
            f"bad duration {value!r}: use a number of seconds or units ms/s/m/h/d, e.g. 90s, 1m30s"
        )
    return _bounded(total, value)


def _bounded(seconds: float, given: object) -> float:
    if not math.isfinite(seconds):
        raise ValueError(f"duration {given!r} is not a finite number")
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {given!r}")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"duration {given!r} is over the limit of {format_duration(MAX_DURATION_S)}")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form, e.g. `1m30s`, `2.5s`, `250ms`."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours >= 48 and not minutes:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"
