"""The host's memory as the kernel reports it: /proc/meminfo and pressure stall information.

The harness keeps a floor of available memory for itself (and for the machine it shares):
a stressor never takes memory below it, and a fault that would is refused before the run.
"""

from dataclasses import dataclass
from pathlib import Path

MEMINFO = Path("/proc/meminfo")
HOST_PSI = Path("/proc/pressure/memory")
FLOOR_MIN_BYTES = 512 << 20
FLOOR_FRACTION = 0.05


@dataclass(frozen=True)
class HostMemory:
    total: int
    available: int

    @property
    def floor(self) -> int:
        """What the harness leaves available: 5% of the host, at least 512 MiB."""
        return max(FLOOR_MIN_BYTES, int(self.total * FLOOR_FRACTION))

    @property
    def takeable(self) -> int:
        """The most a stressor may take now without going below the floor."""
        return max(0, self.available - self.floor)


def read_meminfo(path: Path = MEMINFO) -> dict[str, int]:
    """Every `Name: N kB` line, in bytes."""
    out: dict[str, int] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def host_memory(path: Path = MEMINFO) -> HostMemory:
    info = read_meminfo(path)
    return HostMemory(total=info["MemTotal"], available=info.get("MemAvailable", info["MemFree"]))


def read_psi(path: Path = HOST_PSI) -> dict[str, float] | None:
    """`some`/`full` avg10 (percent of time stalled) and totals (microseconds); None if absent."""
    try:
        text = path.read_text(encoding="ascii")
    except OSError:
        return None
    return parse_psi(text)


def parse_psi(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        for field in fields:
            key, _, value = field.partition("=")
            if key in ("avg10", "total"):
                out[f"{kind}_{key}"] = float(value)
    return out
