"""Byte sizes as people write them in scenario files: `512MiB`, `1.5GiB`, `300M`, `4096`."""

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1 << 10,
    "m": 1000**2, "mb": 1000**2, "mib": 1 << 20,
    "g": 1000**3, "gb": 1000**3, "gib": 1 << 30,
    "t": 1000**4, "tb": 1000**4, "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: object) -> int:
    """Bytes from an integer (bytes) or a string with a unit; ValueError names the forms."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size must not be negative: {value!r}")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match and match.group(2).lower() in _UNITS:
            return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    raise ValueError(f"bad size {value!r}: use bytes or a unit, e.g. 512MiB, 1.5GiB, 300MB")


def format_size(n: float | None) -> str:
    """`1.50 GiB`, `300 MiB`, `12 KiB`; `-` for None."""
    if n is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


Size = Annotated[int, BeforeValidator(parse_size)]
