"""The memory side's own logic: sizes, the host floor, cgroup selection and reading on a made-up
tree, kernel-log parsing and attribution, the GPU watcher with and without NVML, report data."""

import types
from pathlib import Path
from typing import Any

import pytest

from harness.analysis import RunData
from harness.gpu.observer import GpuObserver
from harness.memory import cgroups
from harness.memory.cgroups import CgroupError, MemoryGroup, Mounts, find_mounts, hierarchy
from harness.memory.host import HostMemory, parse_psi
from harness.memory.kernlog import KernelLogWatcher
from harness.memory.measures import measure_memory
from harness.memory.report_data import memory_findings, memory_summary, stress_steps
from harness.sizes import format_size, parse_size
from tests.unit.helpers import synthetic_records
from tests.unit.observer_helpers import context, records

FIXTURES = Path(__file__).parent / "fixtures"
MIB = 1 << 20


@pytest.mark.parametrize(("text", "expected"), [
    ("512MiB", 512 * MIB), ("1.5GiB", 3 << 29), ("300MB", 300_000_000), ("4096", 4096), (7, 7),
    ("2 kib", 2048),
])
def test_sizes(text: Any, expected: int) -> None:  # what memory scenarios write; table: test_sizes.py
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["12 parsecs", "-1", "", True, -5, "MiB", "300m"])
def test_bad_sizes_name_the_forms(bad: Any) -> None:
    with pytest.raises(ValueError, match="512Mi|negative|ambiguous"):
        parse_size(bad)


def test_format_size() -> None:
    assert (format_size(900 * MIB), format_size(3 << 29), format_size(None)) == ("900 MiB", "1.50 GiB", "-")


def test_floor_is_five_percent_but_at_least_512mib() -> None:
    big = HostMemory(total=100 << 30, available=50 << 30)
    small = HostMemory(total=4 << 30, available=1 << 30)
    assert big.floor == 5 << 30 and big.takeable == 45 << 30
    assert small.floor == 512 * MIB and small.takeable == 512 * MIB
    assert HostMemory(total=4 << 30, available=100 * MIB).takeable == 0


def test_psi_parsing() -> None:
    text = ("some avg10=1.50 avg60=0.20 avg300=0.00 total=2991\n"
            "full avg10=0.25 avg60=0.00 avg300=0.00 total=233\n")
    expected = {"some_avg10": 1.5, "some_total": 2991.0, "full_avg10": 0.25, "full_total": 233.0}
    assert parse_psi(text) == expected


def test_mounts_found_from_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "33 25 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "38 25 0:34 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
    assert find_mounts(info) == Mounts(Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup/unified"))


def _v2_tree(root: Path, own: str, controllers: str, subtree: str) -> None:
    for rel in ("", own.lstrip("/")):
        folder = root / rel
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cgroup.controllers").write_text(controllers)
        (folder / "cgroup.subtree_control").write_text("")
    (root / own.lstrip("/") / "cgroup.subtree_control").write_text(subtree)


def test_v2_groups_go_beside_a_service_that_holds_processes(tmp_path: Path) -> None:
    _v2_tree(tmp_path, "/system.slice/harness.service", "cpu memory pids", "")
    chosen = hierarchy("v2", Mounts(None, tmp_path), own=lambda _v: "/system.slice/harness.service")
    assert (chosen.version, chosen.base) == ("v2", "/system.slice")  # siblings: no internal processes
    assert chosen.group("harness-run-x").rel == "/system.slice/harness-run-x"


def test_v2_groups_go_under_a_cgroup_that_delegates_memory(tmp_path: Path) -> None:
    _v2_tree(tmp_path, "/ci/job", "memory", "memory pids")
    assert hierarchy("v2", Mounts(None, tmp_path), own=lambda _v: "/ci/job").base == "/ci/job"


def test_auto_falls_back_to_v1_and_says_why_when_neither_works(tmp_path: Path) -> None:
    _v2_tree(tmp_path / "v2", "/a", "", "")  # a v2 mount whose memory controller is bound to v1
    (tmp_path / "v1" / "a").mkdir(parents=True)
    mounts = Mounts(tmp_path / "v1", tmp_path / "v2")
    chosen = hierarchy("auto", mounts, own=lambda _v: "/a")
    assert (chosen.version, chosen.mount) == ("v1", tmp_path / "v1")
    with pytest.raises(CgroupError, match=r"v2: the memory controller is not enabled.*v1: no cgroup v1"):
        hierarchy("auto", Mounts(None, tmp_path / "v2"), own=lambda _v: "/a")


def test_v1_group_files(tmp_path: Path) -> None:
    group = MemoryGroup("v1", tmp_path, "/harness-run-1")
    group.create()
    for name, text in {"memory.usage_in_bytes": "104857600", "memory.limit_in_bytes": "9223372036854771712",
                       "memory.max_usage_in_bytes": "200000000", "memory.failcnt": "85",
                       "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"}.items():
        (group.path / name).write_text(text)
    stats = group.stats()
    assert (stats.usage, stats.limit, stats.limit_hits, stats.oom_kill, stats.psi_scope) == (
        100 * MIB, None, 85, 1, "host")
    group.set_limit(200 * MIB)
    assert (group.path / "memory.limit_in_bytes").read_text() == str(200 * MIB) and group.limit() == 200 * MIB
    group.set_limit(None)
    assert (group.path / "memory.limit_in_bytes").read_text() == "-1"


def test_v2_group_files(tmp_path: Path) -> None:
    group = MemoryGroup("v2", tmp_path, "/harness-run-2")
    group.create()
    for name, text in {"memory.current": "5000", "memory.max": "max", "memory.peak": "9000",
                       "memory.events": "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
                       "memory.pressure": "some avg10=3.00 avg60=1.00 avg300=0.00 total=10\n"
                                          "full avg10=2.00 avg60=0.00 avg300=0.00 total=5\n"}.items():
        (group.path / name).write_text(text)
    stats = group.stats()
    assert (stats.limit, stats.peak, stats.limit_hits, stats.oom, stats.oom_kill) == (None, 9000, 12, 2, 2)
    assert stats.pressure == {"some_avg10": 3.0, "some_total": 10.0, "full_avg10": 2.0, "full_total": 5.0}
    assert stats.psi_scope == "group" and stats.as_series()["psi_some_avg10"] == 3.0
    group.set_limit(64 * MIB)
    assert (group.path / "memory.max").read_text() == str(64 * MIB)
    group.set_limit(None)
    assert group.limit() is None


def test_the_harness_never_moves_itself(tmp_path: Path) -> None:
    import os

    group = MemoryGroup("v1", tmp_path, "/g")
    group.create()
    with pytest.raises(CgroupError, match="protected"):
        group.add(os.getpid())
    assert not (group.path / "cgroup.procs").exists()


def _kernel_watcher(tmp_path: Path) -> tuple[KernelLogWatcher, Any]:
    ours = {26040: "stub"}

    def is_ours(pid: int, name: str, memcg: str) -> str | None:
        if pid in ours:
            return ours[pid]
        return "memory stressor" if memcg.startswith("/process_api/c37b/harness-") else None

    watcher = KernelLogWatcher(is_ours, path=str(tmp_path / "absent"))
    ctx = context(tmp_path)
    watcher.ctx = ctx
    return watcher, ctx


def test_kernel_log_oom_kills_are_attributed(tmp_path: Path) -> None:
    watcher, ctx = _kernel_watcher(tmp_path)
    for line in (FIXTURES / "kmsg_oom_v1.txt").read_text().splitlines():
        watcher.handle(line + "\n")
    out = [r for r in records(ctx) if r["type"] == "event"]
    kills = [r for r in out if r["event"] == "oom_kill"]
    assert [(k["pid"], k["process"], k["ours"], k["role"]) for k in kills] == [
        (26040, "triton_python_b", True, "stub"),
        (22284, "python", False, None),  # another tenant of the host: recorded, never counted
        (23021, "harness-stress", True, "memory stressor"),
    ]
    assert kills[0]["anon_rss"] == 712856 * 1024 and kills[0]["memcg"] == "/process_api/c37b/harness-run-cd4a"
    assert [r["kind"] for r in out if r["event"] == "kernel_log"] == ["oom_invoked", "segfault"]
    assert watcher.counts == {"kernel_log.oom_invoked": 1, "oom_kill.ours": 2, "oom_kill.other": 1,
                              "kernel_log.segfault": 1}


def test_kernel_log_unreadable_is_said_once_and_silent(tmp_path: Path) -> None:
    watcher = KernelLogWatcher(lambda *_: None, path=str(tmp_path / "no-kmsg"))
    ctx = context(tmp_path)
    watcher.start(ctx)
    summary = watcher.stop()
    assert summary["readable"] is False and "No such file" in summary["reason"]
    assert records(ctx) == []


def test_gpu_watcher_is_silently_absent_without_nvml(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    watcher = GpuObserver(loader=lambda: None)
    watcher.start(ctx)
    assert watcher.stop() == {"available": False} and records(ctx) == []


def test_gpu_watcher_samples_devices_and_roles(tmp_path: Path) -> None:
    from harness.procs import ProcessId

    proc = types.SimpleNamespace(pid=4242, usedGpuMemory=3 << 30)
    fake = types.SimpleNamespace(
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=5 << 30, total=80 << 30),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=73),
        nvmlDeviceGetComputeRunningProcesses=lambda h: [proc, types.SimpleNamespace(pid=1, usedGpuMemory=9)],
        nvmlShutdown=lambda: None,
    )
    ctx = context(tmp_path)
    watcher = GpuObserver(roles=lambda: {"server": [ProcessId(4242, 1.0)]}, loader=lambda: fake)  # type: ignore[arg-type, return-value]
    watcher.ctx, watcher.nvml = ctx, fake  # type: ignore[assignment]
    watcher.sample()
    (sample,) = [r for r in records(ctx) if r["type"] == "series"]
    assert sample["values"] == {"mem_used{gpu=0}": float(5 << 30), "mem_total{gpu=0}": float(80 << 30),
                                "util{gpu=0}": 73.0, "mem{role=server}": float(3 << 30)}


def _journal_with_memory() -> list[dict[str, Any]]:
    base = synthetic_records(seconds=10, failing={6, 7})
    extra = [
        {"type": "event", "event": "stack_start_attempt", "t": 0.6, "outcome": "failed", "attempt": 1,
         "of": 3, "seconds": 0.5, "error": "exited", "memory": {"oom_kills": 1}},
        {"type": "event", "event": "stack_start_attempt", "t": 1.0, "outcome": "ready", "attempt": 2, "of": 3,
         "seconds": 0.3},
        {"type": "event", "event": "cgroup_oom_kill", "t": 0.5, "group": "/g", "oom_kill": 1, "new": 1},
        {"type": "event", "event": "oom_kill", "t": 0.5, "pid": 7, "process": "stub", "ours": True,
         "role": "stub"},
        {"type": "event", "event": "oom_kill", "t": 0.5, "pid": 8, "process": "x", "ours": False},
        {"type": "event", "event": "sidecar_started", "t": 0.1, "name": "agent", "pid": 9},
        {"type": "event", "event": "sidecar_exited", "t": 0.5, "name": "agent", "pid": 9, "signal": "SIGKILL",
         "death": True},
        {"type": "event", "event": "memory_stress_step", "t": 4.0, "step": 0, "target": 100, "held": 100},
        {"type": "event", "event": "window", "t": 8.0, "kind": "memory_step", "start": 4.0, "end": 8.0},
        {"type": "event", "event": "memory_stress_step", "t": 8.0, "step": 1, "target": 200, "held": 200},
        {"type": "event", "event": "window", "t": 12.0, "kind": "memory_step", "start": 8.0, "end": 12.0},
    ]
    return sorted(base + extra, key=lambda r: r["t"])


def test_memory_metrics_and_findings_from_a_journal() -> None:
    data = RunData.from_records(_journal_with_memory())
    assert measure_memory(data, "start_attempts") == (2.0, 2)
    assert measure_memory(data, "startup_s")[0] == pytest.approx(0.9)  # first start at 0.1, ready at 1.0
    assert measure_memory(data, "oom_kills")[0] == 1.0  # the other tenant's kill is not counted
    assert measure_memory(data, "sidecar_deaths")[0] == 1.0
    found = memory_findings(data)
    assert found[0].startswith("the stack was ready only after 2 starts")
    assert any("sidecar agent (pid 9) died (SIGKILL)" in f for f in found)
    summary = memory_summary(data)
    assert summary is not None and summary["startup"]["ready_after_starts"] == 2


def test_each_stress_step_gets_the_error_rate_and_latency_of_its_window() -> None:
    first, second = stress_steps(RunData.from_records(_journal_with_memory()))
    assert (first["target"], first["error_rate"], first["requests"]) == (100, 0.0, 400)
    assert second["error_rate"] == pytest.approx(100 / 400)  # seconds 6 and 7 failed half their requests
    assert second["p99_ms"] is not None and first["throughput_rps"] == pytest.approx(100.0)


def test_cgroup_module_keeps_the_v1_unlimited_constant() -> None:
    assert cgroups.V1_UNLIMITED == 9223372036854771712


def test_a_cgroup_path_the_mount_does_not_show_is_a_clear_error(tmp_path: Path) -> None:
    """Containers often show a /proc/self/cgroup path that is not under the mount: no crash."""
    with pytest.raises(CgroupError, match="v2: .*No such file"):
        hierarchy("v2", Mounts(None, tmp_path), own=lambda _v: "/not/here")
