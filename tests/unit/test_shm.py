"""Shared-memory leak cleanup removes only regions the stack's own processes mapped."""

import mmap
import os
import uuid
from pathlib import Path

from harness.triton.shm import SHM, ShmWatch


def make_region(prefix: str) -> Path:
    path = SHM / f"{prefix}{uuid.uuid4().hex}"
    path.write_bytes(b"\0" * 4096)
    return path


def test_only_our_unmapped_regions_are_removed() -> None:
    prefix = f"harness_test_{os.getpid()}_"
    ours, theirs = make_region(prefix), make_region(prefix)
    try:
        with ours.open("r+b") as handle, mmap.mmap(handle.fileno(), 4096) as mapped:
            watch = ShmWatch(prefix)
            watch.remember_mapped_by([os.getpid()])
            assert watch.ours == {ours.name}
            assert watch.remove_left() == []  # still mapped: in use, kept
            mapped[0] = 1
        assert watch.remove_left() == [ours.name]
        assert not ours.exists() and theirs.exists()  # someone else's evidence stays
    finally:
        ours.unlink(missing_ok=True)
        theirs.unlink(missing_ok=True)
