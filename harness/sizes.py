"""Byte sizes in scenario files: one reading for every field (memory limits, stressors, container
limits, model files), the one Kubernetes and pydantic's ByteSize share.

| written                         | bytes                                   |
|---------------------------------|-----------------------------------------|
| `4096`, `4096B`                 | 4096                                    |
| `k` `K` `kB` `KB`               | 10^3 (decimal, SI)                      |
| `M` `MB`, `G` `GB`, `T` `TB`    | 10^6, 10^9, 10^12                       |
| `Ki` `KiB`, `Mi` `MiB`, ...     | 2^10, 2^20, 2^30, 2^40 (binary, IEC)    |
| `kib` `mib` `gib` `tib`         | the same: any case of the `iB` forms    |

Fractions are allowed (`1.5Gi`) and rounded to whole bytes. Docker's lowercase spellings (`512m`,
`2g`, `1t`, `512mb`, `2gb`) are refused: Docker reads them as binary, pydantic as decimal and
Kubernetes reads `m` as milli, so the same text would mean different limits in different fields.
"""

import math
import re
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

# No host this harness drives has more memory than this, and a larger value is a slip (a `T`
# for a `G`); it also keeps every size exact where Docker's SDK passes it through a float
# (exact up to 2^53) and far below cgroup v1's "unlimited" (2^63 - 4096).
MAX_SIZE = 16 << 40  # 16 TiB

_DECIMAL = {"k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}
_BINARY = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_FACTORS: dict[str, int] = {"": 1, "B": 1}
_FACTORS.update(_DECIMAL)
_FACTORS.update({f"{p}B": f for p, f in _DECIMAL.items()})
_FACTORS.update({f"{p}i": f for p, f in _BINARY.items()})
# Docker's lowercase spellings: each has a binary reading (Docker) and a decimal one (pydantic).
_AMBIGUOUS = {"m", "g", "t", "mb", "gb", "tb", "kb"}

_NUMBER = r"\d+(?:\.\d+)?"
_SUFFIX = r"B|[kK]B?|[MGT]B?|[KMGT]i|[kKmMgGtT][iI][bB]"
# What a JSON Schema (and so an editor) accepts; `parse_size` accepts exactly this, below MAX_SIZE.
SIZE_PATTERN = rf"^\s*{_NUMBER}\s*(?:{_SUFFIX})?\s*$"
_SIZE = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-z]*)\s*$")
_FORMS = "write bytes (4096) or a number and a unit: 512Mi, 1.5Gi (binary), 300M, 2G (decimal)"


def _factor(suffix: str) -> int | None:
    """Bytes per unit of a suffix as written; None for one that is not a size unit."""
    if suffix in _FACTORS:
        return _FACTORS[suffix]
    lower = suffix.lower()
    if len(lower) == 3 and lower.endswith("ib"):  # `mib`, `GIB`: the `i` says binary whatever the case
        return _BINARY.get(lower[0].upper())
    return None


def _ambiguous(number: str, suffix: str) -> str:
    """The one-line refusal of a Docker-style spelling, naming both readings and what to write."""
    prefix = suffix[0].upper()
    decimal = "k" if prefix == "K" else prefix
    readings = f"Docker reads {number} {prefix}iB, pydantic {number} {decimal}B"
    if suffix == "m":  # Kubernetes accepts `m` too, but as milli
        readings += f", Kubernetes {number} thousandths of a byte"
    return f"`{number}{suffix}` is ambiguous ({readings}): write {number}{prefix}i or {number}{decimal}"


def _checked(size: Fraction, given: object) -> int:
    """Whole bytes, within [0, MAX_SIZE]."""
    if size < 0:
        raise ValueError(f"size {given!r} is negative; {_FORMS}")
    whole = math.floor(size + Fraction(1, 2))  # half up: 0.5 B is 1 B, not banker's 0
    if whole > MAX_SIZE:
        raise ValueError(f"size {given!r} is above the largest accepted, 16Ti ({MAX_SIZE} bytes)")
    return whole


def parse_size(value: object) -> int:
    """Bytes from an integer (bytes) or a string with a unit; ValueError, one line, says what to write."""
    if isinstance(value, bool):  # a bool is an int to Python, never a size to a person
        raise ValueError(f"size {value!r} is not a size; {_FORMS}")
    if isinstance(value, int):
        return _checked(Fraction(value), value)
    if isinstance(value, float):  # YAML reads `1e9` and `4096.0` as floats
        if not math.isfinite(value):
            raise ValueError(f"size {value!r} is not a number of bytes; {_FORMS}")
        return _checked(Fraction(value), value)
    if not isinstance(value, str):
        raise ValueError(f"size {value!r} is not a size; {_FORMS}")
    match = _SIZE.match(value)
    if match is None:
        if value.strip().startswith("-"):
            raise ValueError(f"size {value!r} is negative; {_FORMS}")
        raise ValueError(f"bad size {value!r}; {_FORMS}")
    number, suffix = match.groups()
    if suffix.lower() in _AMBIGUOUS and suffix not in _FACTORS:
        raise ValueError(_ambiguous(number, suffix))
    factor = _factor(suffix)
    if factor is None:
        raise ValueError(f"bad size {value!r} ({suffix!r} is not a unit); {_FORMS}")
    return _checked(Fraction(number) * factor, value)


def format_size(n: float | None) -> str:
    """For people: `1.50 GiB`, `300 MiB`, `12 KiB`, `512 B`; `-` for None."""
    if n is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


def exact_size(n: int) -> str:
    """A size as a scenario would write it, exactly: `2Gi`, `60Mi`, `300M`, `4097` (for results
    people may copy back into a scenario)."""
    # Largest unit first, binary and decimal interleaved, so the number written is the shortest.
    for unit, scale in (("Ti", 1 << 40), ("T", 1000**4), ("Gi", 1 << 30), ("G", 1000**3),
                        ("Mi", 1 << 20), ("M", 1000**2), ("Ki", 1 << 10), ("k", 1000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


SIZE_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_SIZE},
        {"type": "string", "pattern": SIZE_PATTERN, "examples": ["512Mi", "1.5Gi", "2G", "300M"]},
    ],
    "description": ("bytes: an integer, or a string like \"512Mi\" or \"2G\"; k M G T are powers of "
                    "1000, Ki Mi Gi Ti powers of 1024; Docker's 512m, 2g are refused (ambiguous)"),
}

# Only the validation side is overridden: what a model dumps is the integer, and its schema says so.
Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(SIZE_JSON_SCHEMA, mode="validation")]
"""A byte size field: reads what `parse_size` reads, holds (and dumps) integer bytes."""
