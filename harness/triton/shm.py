"""Shared-memory regions a stack leaves in /dev/shm (Triton's Python backend does on a crash).

Only regions this stack's own processes were seen mapping are ever removed: a region another
server (or another session's crashed server) left is someone else's evidence.
"""

from collections.abc import Iterable
from pathlib import Path

SHM = Path("/dev/shm")


class ShmWatch:
    """Remembers the regions with a prefix that the stack's processes map."""

    def __init__(self, prefix: str, root: Path = SHM):
        self.prefix = prefix
        self.root = root
        self.ours: set[str] = set()

    def remember_mapped_by(self, pids: Iterable[int]) -> None:
        """Call while the stack runs (after it is ready): note the regions its processes map."""
        for pid in pids:
            self.ours |= {name for name in _mapped_by(pid) if name.startswith(self.prefix)}

    def remove_left(self) -> list[str]:
        """Delete our regions that outlived the stack and nobody maps; returns their names."""
        left = sorted(name for name in self.ours if (self.root / name).exists())
        mapped = _mapped_by_anyone()
        removed = [name for name in left if name not in mapped]
        for name in removed:
            (self.root / name).unlink(missing_ok=True)
        return removed


def _mapped_by(pid: int | str) -> set[str]:
    try:
        text = Path(f"/proc/{pid}/maps").read_text(errors="replace")
    except OSError:
        return set()
    return {
        line.rsplit("/", 1)[-1].removesuffix(" (deleted)")
        for line in text.splitlines()
        if "/dev/shm/" in line
    }


def _mapped_by_anyone() -> set[str]:
    names: set[str] = set()
    for proc in Path("/proc").glob("[0-9]*"):
        names |= _mapped_by(proc.name)
    return names
