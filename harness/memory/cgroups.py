"""Memory cgroups behind one interface: the v1 memory controller or the v2 unified hierarchy.

Which one is chosen at run time (`auto`: v2 when its memory controller is usable, else v1).
Groups the harness makes are named `harness-<run tag>-<what>` and live beside, or under, the
harness's own cgroup, so limits above the harness (a container's, a CI job's) still apply.

The differences that matter here:
- v1: `memory.limit_in_bytes`; lowering it below current usage makes the kernel reclaim, and
  when it cannot, the write fails with EBUSY (nothing is killed). OOM kills are counted in
  `memory.oom_control` (`oom_kill N`) and `memory.failcnt` counts hits on the limit. v1 has no
  per-group pressure file: the host's /proc/pressure/memory stands in.
- v2: `memory.max`; lowering it below usage reclaims and then OOM-kills. `memory.events` has
  `max`, `oom` and `oom_kill`; `memory.pressure` is the group's own PSI. A group that holds
  processes cannot pass controllers to children ("no internal processes"), so harness groups
  are created where `memory` is enabled in `cgroup.subtree_control`.
The harness never moves itself or its ancestors into a group (see `harness.procs`).
"""

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.memory.host import parse_psi, read_psi

Version = Literal["v1", "v2"]
Choice = Literal["auto", "v1", "v2"]
MOUNTINFO = Path("/proc/self/mountinfo")
V1_UNLIMITED = 9223372036854771712  # what v1 reports (and what "no limit" reads as)


class CgroupError(Exception):
    """No usable memory cgroup, or the kernel refused an operation (message says which)."""


@dataclass(frozen=True)
class Mounts:
    v1: Path | None  # the v1 hierarchy with the memory controller
    v2: Path | None  # the cgroup2 mount


def find_mounts(mountinfo: Path = MOUNTINFO) -> Mounts:
    v1 = v2 = None
    for line in mountinfo.read_text(encoding="utf-8").splitlines():
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        mount_point, fstype, options = Path(fields[4]), rfields[0], rfields[2].split(",")
        if fstype == "cgroup" and "memory" in options:
            v1 = v1 or mount_point
        elif fstype == "cgroup2":
            v2 = v2 or mount_point
    return Mounts(v1, v2)


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


def _write(path: Path, value: str) -> None:
    with path.open("w", encoding="ascii") as handle:
        handle.write(value)


def own_path(version: Version, pid: int | str = "self") -> str:
    """The cgroup path (relative to the hierarchy's mount) of a process, e.g. `/user.slice/x`."""
    for line in Path(f"/proc/{pid}/cgroup").read_text(encoding="ascii").splitlines():
        hier, controllers, path = line.split(":", 2)
        if version == "v2" and hier == "0" and controllers == "":
            return path
        if version == "v1" and "memory" in controllers.split(","):
            return path
    raise CgroupError(f"process {pid} is in no {version} memory cgroup")


@dataclass(frozen=True)
class MemStats:
    """One read of a group. Counters are cumulative since the group was made."""

    usage: int
    limit: int | None  # None: unlimited
    peak: int | None  # highest usage seen by the kernel, where it keeps one
    limit_hits: int  # v1 failcnt; v2 memory.events `max`
    oom: int  # times the group hit OOM (v1: under_oom flag now; v2: events `oom`)
    oom_kill: int  # processes the OOM killer killed in this group
    pressure: dict[str, float] | None  # PSI of the group (v2) or of the host (v1), marked by `psi_scope`
    psi_scope: str

    def as_series(self) -> dict[str, float]:
        values: dict[str, float] = {"usage": self.usage, "limit_hits": self.limit_hits,
                                    "oom_kill": self.oom_kill}
        if self.limit is not None:
            values["limit"] = self.limit
        if self.peak is not None:
            values["peak"] = self.peak
        for key, value in (self.pressure or {}).items():
            values[f"psi_{key}"] = value
        return values


class MemoryGroup:
    """One memory cgroup: set its limit, move processes in and out, read its figures, remove it."""

    def __init__(self, version: Version, mount: Path, rel: str):
        self.version = version
        self.mount = mount
        self.rel = rel  # path inside the hierarchy, starting with /
        self.path = mount / rel.lstrip("/")

    def exists(self) -> bool:
        return self.path.is_dir()

    def create(self) -> None:
        try:
            self.path.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            raise CgroupError(f"cannot create {self.path}: {exc.strerror}") from None

    def set_limit(self, limit: int | None) -> None:
        """Set (None: remove) the hard limit. v1 raises CgroupError(EBUSY) if it cannot reclaim."""
        name = "memory.limit_in_bytes" if self.version == "v1" else "memory.max"
        value = ("-1" if self.version == "v1" else "max") if limit is None else str(limit)
        try:
            _write(self.path / name, value)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise CgroupError(
                    f"the kernel could not reclaim {self.rel} down to {value} bytes (EBUSY): "
                    "usage stays above the new limit"
                ) from None
            raise CgroupError(f"cannot write {name}={value} in {self.path}: {exc.strerror}") from None

    def limit(self) -> int | None:
        name = "memory.limit_in_bytes" if self.version == "v1" else "memory.max"
        text = _read(self.path / name)
        if text == "max" or int(text) >= V1_UNLIMITED:
            return None
        return int(text)

    def add(self, pid: int) -> None:
        """Move a whole process (all its threads) into this group; its future children follow."""
        if pid in _protected():
            raise CgroupError(f"refusing to move protected PID {pid} (the harness or its ancestors)")
        try:
            _write(self.path / "cgroup.procs", str(pid))
        except ProcessLookupError:
            pass  # it exited meanwhile
        except OSError as exc:
            raise CgroupError(f"cannot move PID {pid} into {self.path}: {exc.strerror}") from None

    def reset_peak(self) -> None:
        """Start the peak over (v1 only; v2's memory.peak keeps the group's lifetime peak)."""
        if self.version == "v1":
            try:
                _write(self.path / "memory.max_usage_in_bytes", "0")
            except OSError:
                pass

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in _read(self.path / "cgroup.procs").split()]
        except OSError:
            return []

    def stats(self) -> MemStats:
        if self.version == "v1":
            return self._stats_v1()
        return self._stats_v2()

    def _stats_v1(self) -> MemStats:
        oom = _keyvalues(_read(self.path / "memory.oom_control"))
        return MemStats(
            usage=int(_read(self.path / "memory.usage_in_bytes")),
            limit=self.limit(),
            peak=int(_read(self.path / "memory.max_usage_in_bytes")),
            limit_hits=int(_read(self.path / "memory.failcnt")),
            oom=int(oom.get("under_oom", 0)),
            oom_kill=int(oom.get("oom_kill", 0)),
            pressure=read_psi(),
            psi_scope="host",
        )

    def _stats_v2(self) -> MemStats:
        events = _keyvalues(_read(self.path / "memory.events"))
        peak_file = self.path / "memory.peak"
        try:
            pressure: dict[str, float] | None = parse_psi(_read(self.path / "memory.pressure"))
        except OSError:
            pressure = None
        return MemStats(
            usage=int(_read(self.path / "memory.current")),
            limit=self.limit(),
            peak=int(_read(peak_file)) if peak_file.exists() else None,
            limit_hits=int(events.get("max", 0)),
            oom=int(events.get("oom", 0)),
            oom_kill=int(events.get("oom_kill", 0)),
            pressure=pressure,
            psi_scope="group",
        )

    def remove(self, move_to: "MemoryGroup | None" = None, timeout: float = 5.0) -> None:
        """Move any process still inside to `move_to`, then rmdir (retrying while exits settle)."""
        if not self.exists():
            return
        deadline = time.monotonic() + timeout
        while True:
            if move_to is not None:
                for pid in self.pids():
                    move_to.add(pid)
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove {self.path}: {exc.strerror}") from None
                time.sleep(0.05)


def _keyvalues(text: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in text.splitlines() if " " in line)


def _protected() -> set[int]:
    from harness.procs import _protected_pids

    return _protected_pids()


@dataclass(frozen=True)
class Hierarchy:
    """Where the harness makes its groups in one hierarchy, and how to find a process's group."""

    version: Version
    mount: Path
    base: str  # groups are made as children of this path

    def group(self, name: str) -> MemoryGroup:
        return MemoryGroup(self.version, self.mount, f"{self.base.rstrip('/')}/{name}")

    def group_of(self, pid: int) -> MemoryGroup:
        return MemoryGroup(self.version, self.mount, own_path(self.version, pid))

    def describe(self) -> dict[str, str]:
        return {"version": self.version, "mount": str(self.mount), "base": self.base}


def hierarchy(choice: Choice = "auto", mounts: Mounts | None = None,
              own: Callable[[Version], str] = own_path) -> Hierarchy:
    """The hierarchy to use: v2 where its memory controller works, else v1; CgroupError if neither.

    `own` gives the harness's own cgroup path in a version (tests give a made-up tree)."""
    try:
        mounts = mounts or find_mounts()
    except OSError as exc:
        raise CgroupError(f"cannot read the mount table: {exc}") from None
    problems = []
    order: list[Version] = ["v2", "v1"] if choice == "auto" else [choice]
    for version in order:
        try:
            return _v2(mounts, own("v2")) if version == "v2" else _v1(mounts, own("v1"))
        except (CgroupError, OSError) as exc:  # OSError: a /proc path this mount does not show
            problems.append(f"{version}: {exc}")
    raise CgroupError("no usable memory cgroup: " + "; ".join(problems))


def _v1(mounts: Mounts, base: str) -> Hierarchy:
    if mounts.v1 is None:
        raise CgroupError("no cgroup v1 hierarchy with the memory controller is mounted")
    if not os.access(mounts.v1 / base.lstrip("/"), os.W_OK):
        raise CgroupError(f"{mounts.v1 / base.lstrip('/')} is not writable (run as root)")
    return Hierarchy("v1", mounts.v1, base)


def _v2(mounts: Mounts, own: str) -> Hierarchy:
    """Children of the harness's own group if it delegates `memory`, else siblings of it."""
    if mounts.v2 is None:
        raise CgroupError("no cgroup2 hierarchy is mounted")
    own_dir = mounts.v2 / own.lstrip("/")
    if "memory" in _read(own_dir / "cgroup.subtree_control").split():
        return Hierarchy("v2", mounts.v2, own)
    if own == "/" and "memory" in _read(own_dir / "cgroup.controllers").split():
        try:
            _write(own_dir / "cgroup.subtree_control", "+memory")
            return Hierarchy("v2", mounts.v2, own)
        except OSError as exc:
            raise CgroupError(f"cannot enable memory in {own_dir}: {exc.strerror}") from None
    controllers_file = own_dir / "cgroup.controllers"
    if own != "/" and "memory" in _read(controllers_file).split():
        return Hierarchy("v2", mounts.v2, str(Path(own).parent))  # the parent delegates memory to us
    raise CgroupError(f"the memory controller is not enabled for {own_dir} (it is not in cgroup.controllers)")
