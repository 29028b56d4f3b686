"""Byte sizes as people write them for Docker (`512m`, `2g`, `1.5GiB`), read into bytes."""

import re

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
MIN_MEMORY = 6 << 20  # the smallest memory limit Docker accepts


def parse_size(value: str | int) -> int:
    """Bytes; ValueError names the accepted forms."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"size {value} is negative")
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"cannot read size {value!r}; write e.g. 512m, 2g, 1.5g or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def memory_size(value: str | int) -> int:
    size = parse_size(value)
    if size < MIN_MEMORY:
        raise ValueError(f"memory {value!r} is below Docker's minimum of 6m")
    return size


def show_size(size: int) -> str:
    for unit, factor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}b" if size < 1 << 20 else f"{size / (1 << 20):.1f}m"
