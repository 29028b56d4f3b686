"""Shared-memory regions a stack leaves in /dev/shm (Triton's Python backend does on a crash)."""

from pathlib import Path

SHM = Path("/dev/shm")


class ShmWatch:
    """Remembers which regions with a prefix existed before a stack started."""

    def __init__(self, prefix: str, root: Path = SHM):
        self.prefix = prefix
        self.root = root
        self.before: set[str] = set()

    def _current(self) -> set[str]:
        try:
            return {p.name for p in self.root.iterdir() if p.name.startswith(self.prefix)}
        except OSError:
            return set()

    def snapshot(self) -> None:
        self.before = self._current()

    def remove_new(self) -> list[str]:
        """Delete regions that appeared since the snapshot; returns their names."""
        new = sorted(self._current() - self.before - _mapped_elsewhere())
        for name in new:
            (self.root / name).unlink(missing_ok=True)
        return new


def _mapped_elsewhere() -> set[str]:
    """Region names some live process still maps: those belong to another server, keep them."""
    names: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if "/dev/shm/" in line:
                names.add(line.rsplit("/", 1)[-1].removesuffix(" (deleted)"))
    return names
