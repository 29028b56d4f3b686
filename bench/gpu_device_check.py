"""GPU device check: the NVML observer's reading and the GPU memory stressor, against a real driver.

    python3 bench/gpu_device_check.py [--device 0] [--no-xid] [--json OUT.json]

Needs only the project's files, the standard library and nvidia-ml-py (pynvml): it imports
harness.gpu's plain modules (cuda, stressor, child, pidfile, nvml, xid), none of the harness's
packages, so it runs on a lent GPU machine that has no package index. Where pydantic, psutil and
gevent import too (carried as wheels, see bench/gpu_device_check.md), a second part drives the
harness's own `gpu_memory_stress` fault, `GpuObserver` and `harness cleanup` the same way.

What it does, in about a minute and a half, on one device:
1. the stressor's probe (in its own process) names the device; a device past the last is refused;
2. NVML is sampled every 0.5 s all along (harness.gpu.nvml.DeviceReader), Xid events are
   waited for on their own thread (harness.gpu.xid.XidWatch);
3. a small "stack" (this script, `--stack-child`: its own CUDA context, 1 GiB held) tries a
   512 MiB allocation every 0.25 s and reports each try;
4. the stressor takes half the free memory, then all of it (topped up while the stack's tries
   come and go), holds, and is ended by end of input: the stack's tries must fail while it
   holds and succeed again after; NVML must see the memory go and come back;
5. a "harness" holding a stressor is SIGKILLed: the stressor must end and free by itself;
6. a stressor whose pipe is still open is ended from its pidfile, as `harness cleanup` does;
7. (unless --no-xid) a throwaway process makes a kernel write to address 0: NVML should deliver
   a critical Xid (31, a page fault). Not seeing it is a warning, not a failure.

Prints each figure and check; exits 0 when every check passed, 1 when one failed, 3 when there
is no NVIDIA driver or GPU here (nothing was checked), 4 when the driver is here but pynvml is not.
Only processes this script started are ever signalled.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The stressor children are `python -m harness.gpu.stressor`: they find the project the same way.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

from harness.gpu import child as stress_child  # noqa: E402 - after the path above
from harness.gpu import cuda as cu  # noqa: E402
from harness.gpu import pidfile  # noqa: E402
from harness.gpu.nvml import DeviceReader, decode_throttle, load_nvml  # noqa: E402
from harness.gpu.xid import XidWatch  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_NO_GPU, EXIT_NO_NVML = 0, 1, 3, 4
GIB, MIB = 1 << 30, 1 << 20
STACK_BASE = GIB
STACK_TRY = 512 * MIB
STACK_EVERY_S = 0.25
SAMPLE_S = 0.5
SELF = [sys.executable, str(Path(__file__).resolve())]


def gib(n: float | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f} GiB"


class Report:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.figures: dict[str, Any] = {}

    def check(self, name: str, ok: bool, detail: str, soft: bool = False) -> bool:
        status = "PASS" if ok else ("WARN" if soft else "FAIL")
        self.rows.append({"check": name, "status": status, "detail": detail})
        print(f"[{status}] {name}: {detail}", flush=True)
        return ok

    def figure(self, name: str, value: Any) -> None:
        self.figures[name] = value
        print(f"    {name}: {value}", flush=True)

    @property
    def failed(self) -> list[str]:
        return [r["check"] for r in self.rows if r["status"] == "FAIL"]


# --- NVML, all along


class Sampler(threading.Thread):
    """harness.gpu.nvml.DeviceReader every SAMPLE_S, with the roles of the processes started here."""

    def __init__(self, reader: DeviceReader, index: int):
        super().__init__(daemon=True)
        self.reader = reader
        self.index = index
        self.roles: dict[int, str] = {}
        self.samples: list[tuple[float, dict[str, float], dict[int, int]]] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                reading = self.reader.read(dict(self.roles))
                self.samples.append((time.monotonic(), reading.values, reading.throttle))
            except Exception as exc:  # noqa: BLE001 - counted and printed
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self.stopping.wait(SAMPLE_S)

    def values(self, key: str, since: float = 0.0, until: float = float("inf")) -> list[float]:
        return [v[key] for t, v, _ in self.samples if since <= t <= until and key in v]

    def used(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        return self.values(f"mem_used{{gpu={self.index}}}", since, until)


class XidThread(threading.Thread):
    def __init__(self, watch: XidWatch):
        super().__init__(daemon=True)
        self.watch = watch
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set() and self.failures < 5:
            try:
                event = self.watch.wait_once(500)
            except Exception:  # noqa: BLE001 - recorded in the watch
                self.failures += 1
                time.sleep(0.5)
                continue
            if event is not None:
                self.events.append((time.monotonic(), event))


def used_now(nvml: Any, reader: DeviceReader, index: int) -> int:
    return int(nvml.nvmlDeviceGetMemoryInfo(reader.handle(index)).used)


def wait_used_below(nvml: Any, reader: DeviceReader, index: int, limit: float, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while True:
        used = used_now(nvml, reader, index)
        if used <= limit or time.monotonic() >= deadline:
            return used
        time.sleep(0.2)


def median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


# --- the "stack": a process of its own that holds memory and keeps allocating


def stack_child(device: int) -> int:
    cuda = cu.Cuda()
    cuda.init()
    cuda.use_primary_context(cuda.device(device))
    base = cuda.alloc(STACK_BASE)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    def until_end_of_input() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_end_of_input, daemon=True).start()
    print(json.dumps({"event": "ready", "pid": os.getpid(), "free": cuda.memory_info()[0]}), flush=True)
    while not stop.is_set():
        try:
            cuda.free(cuda.alloc(STACK_TRY))
            ok, error = True, None
        except cu.CudaError as exc:
            ok, error = False, exc.name
        print(json.dumps({"t": time.monotonic(), "ok": ok, "error": error}), flush=True)
        stop.wait(STACK_EVERY_S)
    cuda.free(base)
    return 0


class Stack:
    def __init__(self, device: int):
        self.proc = subprocess.Popen([*SELF, "--stack-child", "--device", str(device)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("{"):
            self.proc.kill()
            raise RuntimeError(f"the stack process did not start (exit {self.proc.wait()})")
        self.ready = json.loads(line)
        self.tries: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.tries.append(json.loads(line))

    def between(self, since: float, until: float) -> tuple[int, int, list[str]]:
        """(tries, failures, error names) in [since, until]."""
        rows = [t for t in self.tries if since <= t["t"] <= until]
        errors = sorted({str(t["error"]) for t in rows if not t["ok"]})
        return len(rows), sum(1 for t in rows if not t["ok"]), errors

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- a "harness" that holds a stressor and is SIGKILLed


def harness_child(device: int, pidfile_path: str, amount: int) -> int:
    child = stress_child.StressChild(device, pidfile_path)
    child.start()
    step = child.ask({"amount": amount})
    print(json.dumps({"stressor_pid": child.pid, "held": step.get("held")}), flush=True)
    time.sleep(600)  # until the check SIGKILLs this process
    return 0


# --- a kernel that writes to address 0: the driver's Xid 31 (an MMU fault), in a throwaway process

PTX = b"""
.version 6.0
.target sm_50
.address_size 64
.visible .entry poke(.param .u64 p)
{
    .reg .u64 %rd<2>;
    .reg .u32 %r<2>;
    ld.param.u64 %rd1, [p];
    mov.u32 %r1, 42;
    st.global.u32 [%rd1], %r1;
    ret;
}
\x00"""


def xid_child(device: int) -> int:
    cuda = cu.Cuda()
    cuda.init()
    cuda.use_primary_context(cuda.device(device))
    module, function = ctypes.c_void_p(), ctypes.c_void_p()
    cuda.call("cuModuleLoadData", ctypes.pointer(module), PTX)
    cuda.call("cuModuleGetFunction", ctypes.pointer(function), module, b"poke")
    address = ctypes.c_uint64(0)
    params = (ctypes.c_void_p * 1)(ctypes.cast(ctypes.pointer(address), ctypes.c_void_p))
    result = "no error"
    try:
        cuda.call("cuLaunchKernel", function, 1, 1, 1, 1, 1, 1, 0, None, params, None)
        cuda.synchronize()
    except cu.CudaError as exc:
        result = exc.name
    print(json.dumps({"event": "xid_child", "result": result}), flush=True)
    return 0


# --- the check


def stress_phase(rep: Report, nvml: Any, reader: DeviceReader, sampler: Sampler, stack: Stack,
                 device: int, workdir: Path) -> None:
    index = sampler.index
    t_base = time.monotonic()
    time.sleep(3.0)
    base_used = median(sampler.used(t_base))
    tries, fails, _ = stack.between(t_base, time.monotonic())
    rep.figure("device memory used with the stack running, before the stressor", gib(base_used))
    rep.check("the stack allocates freely before the stressor", tries > 0 and fails == 0,
              f"{tries} tries, {fails} failed")

    child = stress_child.StressChild(device, str(workdir / "stress.pid"))
    started = time.monotonic()
    ready = child.start()
    sampler.roles[child.pid or -1] = "stressor"
    rep.figure("stressor ready after", f"{time.monotonic() - started:.2f}s (free {gib(ready['free'])} "
               f"of {gib(ready['total'])}, CUDA's view with its own context)")
    half = child.ask({"fraction": 0.5})
    rep.figure("step 1 (0.5 of free)", f"held {gib(half.get('held'))} of {gib(half.get('target'))} in "
               f"{half.get('seconds')}s, OOM refusals {half.get('oom')}, free after {gib(half.get('free'))}")
    rep.check("step 1 holds what it asked", half.get("held") == half.get("target") and not half.get("capped"),
              f"held {half.get('held')} target {half.get('target')}")
    time.sleep(3.0)
    full = child.ask({"fraction": 1.0})
    t_full = time.monotonic()
    for _ in range(3):  # the stack's 512 MiB comes and goes: take what it gave back
        time.sleep(0.3)
        full = child.ask({"fraction": 1.0})
    rep.figure("step 2 (1.0 of free)", f"held {gib(full.get('held'))} of {gib(full.get('target'))}, "
               f"capped {full.get('capped')}, OOM refusals {full.get('oom')}, "
               f"free after {gib(full.get('free'))}")
    honest = full.get("held", 0) >= 0.97 * full.get("target", 0) or (full.get("capped") and full.get("oom"))
    rep.check("step 2 says honestly what it got", bool(honest) and full.get("error") is None,
              f"held {gib(full.get('held'))}, asked {gib(full.get('target'))}, oom {full.get('oom')}")
    t_hold = time.monotonic()
    time.sleep(4.0)
    t_hold_end = time.monotonic()
    peak = max(sampler.used(t_full, t_hold_end), default=None)
    rep.figure("device memory used while held (NVML)", gib(peak))
    grew = peak is not None and base_used is not None and peak - base_used >= 0.9 * (full.get("held") or 0)
    rep.check("NVML sees the stressor's memory", grew,
              f"{gib(base_used)} -> {gib(peak)} for {gib(full.get('held'))} held")
    role = max(sampler.values("mem{role=stressor}", t_full, t_hold_end), default=None)
    rep.check("NVML's process list gives the stressor's memory by role",
              role is not None and role >= 0.9 * (full.get("held") or 0),
              f"mem{{role=stressor}} {gib(role)}", soft=True)
    stack_role = max(sampler.values("mem{role=stack}", t_base), default=None)
    rep.check("NVML's process list gives the stack's memory by role",
              stack_role is not None and stack_role >= STACK_BASE, f"mem{{role=stack}} {gib(stack_role)}",
              soft=True)
    tries, fails, errors = stack.between(t_hold, t_hold_end)
    rep.figure("stack allocations while held", f"{fails} of {tries} failed {errors}")
    rep.check("the stack's allocations fail while the stressor holds the device",
              tries > 0 and fails >= max(1, tries // 2),
              f"{fails}/{tries} failed: {', '.join(errors) or '-'}")

    ended = child.end()
    t_end = time.monotonic()
    rep.figure("restore", f"{ended['how']}, exit {ended['exit_code']}, freed {gib(ended.get('freed'))} in "
               f"{ended['seconds']}s, free after {gib(ended.get('free_after'))}")
    rep.check("restore ends the stressor and it freed all it held",
              ended["ended"] and ended["how"] == "end of input" and ended["exit_code"] == 0
              and ended.get("freed") == full.get("held") and ended.get("held_at_end") == 0, json.dumps(ended))
    left = pidfile.end_recorded(str(workdir / "stress.pid"))
    rep.check("its pidfile finds nothing left to end", left is None, f"end_recorded -> {left}")
    after = wait_used_below(nvml, reader, index, (base_used or 0) + 512 * MIB, 10.0)
    time.sleep(2.5)
    rep.figure("device memory used after restore (NVML)", gib(after))
    rep.check("the memory came back", base_used is not None and after <= base_used + 512 * MIB,
              f"{gib(after)} vs {gib(base_used)} before")
    tries, fails, _ = stack.between(t_end + 1.0, time.monotonic())
    rep.check("the stack allocates again after restore", tries > 0 and fails == 0,
              f"{tries} tries, {fails} failed")


def killed_harness_phase(rep: Report, nvml: Any, reader: DeviceReader, index: int, device: int,
                         workdir: Path) -> None:
    before = used_now(nvml, reader, index)
    path = str(workdir / "killed.pid")
    proc = subprocess.Popen([*SELF, "--harness-child", "--device", str(device), "--pidfile", path],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = json.loads(proc.stdout.readline())
    record = pidfile.read_pidfile(path)
    holding = used_now(nvml, reader, index)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = time.monotonic()
    gone = False
    while record is not None and time.monotonic() - killed < 15:
        if not pidfile.running(record["pid"], record["start_ticks"]):
            gone = True
            break
        time.sleep(0.1)
    after = wait_used_below(nvml, reader, index, before + 256 * MIB, 10.0)
    rep.figure("SIGKILLed harness", f"stressor pid {line['stressor_pid']} held {gib(line['held'])} "
               f"(NVML {gib(before)} -> {gib(holding)}); it ended {time.monotonic() - killed:.2f}s after; "
               f"NVML after {gib(after)}")
    rep.check("a SIGKILLed harness's stressor frees and ends on its own (end of input)",
              gone and after <= before + 256 * MIB, f"ended: {gone}, used {gib(after)} vs {gib(before)}")
    done = pidfile.end_recorded(path)
    rep.check("cleanup afterwards finds nothing to end and removes the pidfile",
              done is None and not Path(path).exists(), f"end_recorded -> {done}")


def cleanup_phase(rep: Report, nvml: Any, reader: DeviceReader, index: int, device: int,
                  workdir: Path) -> None:
    before = used_now(nvml, reader, index)
    path = str(workdir / "live.pid")
    child = stress_child.StressChild(device, path)
    child.start()
    held = child.ask({"amount": 2 * GIB}).get("held")
    holding = used_now(nvml, reader, index)
    done = pidfile.end_recorded(path)  # what `harness cleanup` calls, while the stressor's pipe is open
    assert child.proc is not None
    code = child.proc.wait(10)
    after = wait_used_below(nvml, reader, index, before + 256 * MIB, 10.0)
    rep.figure("cleanup of a live stressor", f"{done}; held {gib(held)} "
               f"(NVML {gib(before)} -> {gib(holding)} -> {gib(after)}), exit {code}")
    rep.check("cleanup ends a live stressor from its pidfile and the memory comes back",
              done is not None and "SIGTERM" in done and code == 0 and after <= before + 256 * MIB,
              f"{done}, exit {code}")


def xid_phase(rep: Report, xids: XidThread, watching: list[int], index: int, device: int) -> None:
    if index not in watching:
        rep.check("Xid events can be watched on this device", False,
                  f"not registered (unsupported: {xids.watch.unsupported}, error: {xids.watch.error})",
                  soft=True)
        return
    started = time.monotonic()
    done = subprocess.run([*SELF, "--xid-child", "--device", str(device)], capture_output=True, text=True,
                          timeout=60, check=False)
    result: dict[str, Any] = next((json.loads(line) for line in done.stdout.splitlines()
                                   if line.startswith("{")), {})
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline and not [e for t, e in xids.events if t >= started]:
        time.sleep(0.2)
    seen = [e for t, e in xids.events if t >= started]
    outcome = result.get("result", done.stderr.strip()[-200:])
    rep.figure("provoked fault", f"kernel write to address 0: {outcome}")
    said = [(e["device"], e["xid"], e["meaning"]) for e in seen]
    rep.check("NVML delivers the provoked critical Xid", bool(seen), f"{said}" if seen else "none within 8 s",
              soft=True)


def nvml_figures(rep: Report, sampler: Sampler, reader: DeviceReader, index: int, started: float) -> None:
    span = time.monotonic() - started
    samples = [v for _, v, _ in sampler.samples]
    rep.figure("NVML samples", f"{len(samples)} in {span:.0f}s ({sampler.errors[:1] or 'no errors'})")
    last = samples[-1] if samples else {}
    fields = sorted({k.split("{")[0] for k in last if k.endswith(f"{{gpu={index}}}")})
    rep.figure("fields read", ", ".join(fields))
    rep.figure("fields not supported (skipped)", dict(reader.unsupported).get(index) or "none")
    for key in ("util", "temp_c", "power_w"):
        seen = sampler.values(f"{key}{{gpu={index}}}")
        if seen:
            rep.figure(key, f"min {min(seen):g}, max {max(seen):g}")
    masks = sorted({m[index] for _, _, m in sampler.samples if index in m})
    rep.figure("clock reasons seen", [f"{m:#x} {decode_throttle(m)}" for m in masks] or "not reported")
    rep.check("NVML samples came all along", len(samples) >= 0.6 * span / SAMPLE_S and "mem_used" in fields,
              f"{len(samples)} samples, mem_used {'present' if 'mem_used' in fields else 'MISSING'}")
    rep.check("utilisation, temperature and power are read (or skipped as unsupported)",
              all(f in fields or n in (reader.unsupported.get(index) or set())
                  for f, n in (("util", "utilisation"), ("temp_c", "temperature"), ("power_w", "power"))),
              f"read {fields}")
    rep.check("no NVML read failed", reader.errors == 0, f"{reader.errors} ({reader.last_error})", soft=True)


def harness_part(rep: Report, workdir: Path) -> None:
    """The harness's own fault, observer and cleanup, where their packages import (carried wheels)."""
    missing = []
    for name in ("pydantic", "gevent", "psutil"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        rep.check("the harness's own fault and observer (part 2)", True,
                  f"skipped: {', '.join(missing)} not importable (carry the wheels: gpu_device_check.md)")
        return
    done = subprocess.run([*SELF, "--harness-part", "--workdir", str(workdir)], capture_output=True,
                          text=True, timeout=180, check=False)
    rows = []
    for line in done.stdout.splitlines():
        if line.startswith("CHECK "):
            row = json.loads(line.removeprefix("CHECK "))
            rows.append(row)
            rep.rows.append(row)
            print(f"[{row['status']}] {row['check']}: {row['detail']}", flush=True)
        else:
            print(line, flush=True)
    if done.returncode != 0 or not rows:
        rep.check("part 2 ran", False, f"exit {done.returncode}: {done.stderr.strip()[-600:]}")


# --- part 2: the harness's own code (pydantic, psutil and gevent needed), in processes of its own


def _harness_imports() -> Any:
    from gevent import monkey

    monkey.patch_all()  # as the harness runs (Locust patches the same way)
    import types

    import gevent
    import psutil

    from faults.base import FaultContext, FaultError, known_faults
    from harness.gpu.observer import GpuObserver
    from harness.gpu.stress_fault import GpuMemoryStress, GpuStressParams
    from harness.journal import Journal, read_journal
    from harness.observers.base import ObserverContext
    from harness.procs import ProcessId
    from harness.restore import RestoreLog, cleanup

    return types.SimpleNamespace(
        gevent=gevent, psutil=psutil, FaultContext=FaultContext, FaultError=FaultError,
        known_faults=known_faults,
        GpuObserver=GpuObserver, GpuMemoryStress=GpuMemoryStress, GpuStressParams=GpuStressParams,
        Journal=Journal, read_journal=read_journal, ObserverContext=ObserverContext, ProcessId=ProcessId,
        RestoreLog=RestoreLog, cleanup=cleanup)


def _fault_context(h: Any, journal: Any, roles: Any) -> Any:
    import random

    return h.FaultContext(roles=roles, restart_stack=lambda graceful: 0.0, rng=random.Random(0),
                          journal=journal)


def _part_check(name: str, ok: bool, detail: str, soft: bool = False) -> None:
    status = "PASS" if ok else ("WARN" if soft else "FAIL")
    print("CHECK " + json.dumps({"check": f"part 2: {name}", "status": status, "detail": detail}), flush=True)


def harness_kill_child(device: int, run_dir: Path) -> int:
    """A harness that injected `gpu_memory_stress` (plan in restore.jsonl first) and is then SIGKILLed."""
    h = _harness_imports()
    journal = h.Journal(run_dir / "journal.jsonl")
    ctx = _fault_context(h, journal, dict)
    fault = h.GpuMemoryStress(h.GpuStressParams(device=device, amount=2 * GIB))
    plan = fault.plan(ctx)
    log = h.RestoreLog(run_dir)
    log.fault_planned("f0.0", "gpu_memory_stress", plan)
    details = fault.inject(ctx, plan)
    h.gevent.sleep(1.0)
    print(json.dumps({"pidfile": plan["pidfile"], "stressor_pid": details["pid"]}), flush=True)
    h.gevent.sleep(600)
    return 0


def _known_to_cleanup(h: Any, workdir: Path) -> str:
    """`harness cleanup` finds fault kinds by entry point; an uninstalled checkout (this machine)
    has none for gpu_memory_stress unless faults/base.py lists it: register it for this process."""
    if "gpu_memory_stress" in h.known_faults():
        return "registered"
    dist = workdir / "entry-points" / "harness_gpu_check-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-gpu-check\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[harness.faults]\ngpu_memory_stress = harness.gpu.stress_fault:GpuMemoryStress\n")
    sys.path.append(str(dist.parent))
    return "registered for this check (not in faults/base.py's built-in list)"


def harness_part_child(device: int, workdir: Path) -> int:
    h = _harness_imports()
    run_dir = workdir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    journal = h.Journal(run_dir / "journal.jsonl")
    count = stress_child.probe(device).get("count", 1)
    stack = Stack(device)
    ident = h.ProcessId.of(h.psutil.Process(stack.proc.pid))

    def roles() -> dict[str, list[Any]]:
        return {"stack": [ident]}

    ctx = _fault_context(h, journal, roles)
    try:
        h.GpuMemoryStress(h.GpuStressParams(device=count + 3, amount=GIB)).validate(ctx)
        refusal = "(not refused)"
    except h.FaultError as exc:
        refusal = str(exc)
    _part_check("validation refuses a device past the last, in one line",
                "out of range" in refusal and "\n" not in refusal, refusal)
    observer = h.GpuObserver(roles=roles)
    observer.start(h.ObserverContext(journal, None))
    fault = h.GpuMemoryStress(h.GpuStressParams.model_validate(
        {"device": device, "steps": [{"after": 0, "fraction": 0.5}, {"after": 2, "fraction": 1.0}]}))
    fault.validate(ctx)
    plan = fault.plan(ctx)
    log = h.RestoreLog(run_dir)
    log.fault_planned("f0.0", "gpu_memory_stress", plan)
    h.gevent.sleep(2.0)
    fault.inject(ctx, plan)
    t_inject = time.monotonic()
    h.gevent.sleep(5.0)
    fault.restore(ctx, plan)
    t_restore = time.monotonic()
    log.fault_restored("f0.0")
    h.gevent.sleep(2.0)
    summary = observer.stop()
    journal.event("observer_stopped", observer="gpu", summary=summary)
    stack.stop()
    journal.close()
    records = h.read_journal(run_dir / "journal.jsonl")
    events = [r for r in records if r.get("type") == "event"]
    series = [r["values"] for r in records if r.get("type") == "series" and r.get("name") == "gpu"]
    steps = [e for e in events if e["event"] == "gpu_memory_stress_step"]
    ended: dict[str, Any] = next((e for e in events if e["event"] == "gpu_memory_stress_ended"), {})
    print(f"    part 2: {len(series)} gpu samples, observer summary {json.dumps(summary)[:400]}")
    for e in steps:
        print(f"    part 2: step {e['step']}: asked {e['asked']}, held {e['held_text']} (oom {e['oom']})")
    _part_check("GpuObserver journals the gpu series and the devices", summary.get("available") is True
                and len(series) >= 6 and any(e["event"] == "gpu_devices" for e in events),
                f"{len(series)} samples, unsupported {summary.get('unsupported')}")
    _part_check("both steps are journaled with what was held",
                len(steps) == 2 and steps[0]["held"] == steps[0]["target"]
                and steps[1]["held"] > steps[0]["held"],
                "; ".join(f"{e['asked']} -> {e['held_text']}" for e in steps))
    tries, fails, errors = stack.between(t_inject + 2.5, t_restore)
    _part_check("the stack's allocations fail while the fault holds",
                tries > 0 and fails >= max(1, tries // 2), f"{fails}/{tries} failed {errors}")
    freed_all = bool(steps) and ended.get("freed") == steps[-1]["held"]
    _part_check("the restore ends the stressor and says so",
                ended.get("ended") is True and ended.get("how") == "end of input" and freed_all,
                json.dumps({k: ended.get(k) for k in ("ended", "how", "exit_code", "freed_text")}))
    roles_seen = max((v.get("mem{role=stack}", 0.0) for v in series), default=0.0)
    _part_check("the series has the stack role's device memory", roles_seen >= STACK_BASE,
                f"mem{{role=stack}} up to {gib(roles_seen)}", soft=True)

    run2 = workdir / "run2"
    run2.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([*SELF, "--harness-kill-child", "--device", str(device), "--workdir", str(run2)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    injected = json.loads(proc.stdout.readline())
    record = pidfile.read_pidfile(injected["pidfile"]) or {}
    proc.kill()  # SIGKILL: no restore runs
    proc.wait()
    how = _known_to_cleanup(h, workdir)
    actions = h.cleanup(run2)
    deadline = time.monotonic() + 15
    while record and pidfile.running(record["pid"], record["start_ticks"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    gone = bool(record) and not pidfile.running(record["pid"], record["start_ticks"])
    _part_check("`harness cleanup` after a SIGKILLed harness: the fault undone, the stressor gone",
                "undid fault f0.0 (gpu_memory_stress)" in actions and gone
                and not Path(injected["pidfile"]).exists(), f"{actions}; kind {how}")
    _part_check("a second cleanup finds nothing", h.cleanup(run2) == [], "idempotent")
    return 0


def phases(rep: Report, args: argparse.Namespace, nvml: Any, reader: DeviceReader, sampler: Sampler,
           xids: XidThread, watching: list[int], workdir: Path, idle: float | None) -> None:
    index = sampler.index
    stack = Stack(args.device)
    sampler.roles[stack.proc.pid] = "stack"
    rep.figure("device memory used before the stack; free once the stack is up",
               f"{gib(idle)}; {gib(stack.ready['free'])}")
    try:
        stress_phase(rep, nvml, reader, sampler, stack, args.device, workdir)
    finally:
        stack.stop()
    killed_harness_phase(rep, nvml, reader, index, args.device, workdir)
    cleanup_phase(rep, nvml, reader, index, args.device, workdir)
    harness_part(rep, workdir)
    if not args.no_xid:
        xid_phase(rep, xids, watching, index, args.device)


def run_check(args: argparse.Namespace) -> int:
    rep = Report()
    found = stress_child.probe(args.device)
    if not found.get("ok"):
        if found.get("reason") in ("no_driver", "no_device"):
            print(f"NO GPU HERE: {found.get('error')}")
            print(f"nothing was checked; exit {EXIT_NO_GPU} (run it where an NVIDIA GPU and its driver are)")
            return EXIT_NO_GPU
        rep.check("the stressor's probe", False, str(found.get("error")))
        return EXIT_FAILED
    rep.figure("device", f"{args.device}: {found['name']}, {gib(found['total'])}, PCI {found['pci_bus_id']}, "
               f"CUDA driver {found['driver_version']}, {found['count']} device(s)")
    past = stress_child.probe(found["count"] + 3)
    rep.check("a device past the last is refused", past.get("reason") == "out_of_range",
              str(past.get("error")))
    nvml = load_nvml()
    if nvml is None:
        try:
            import pynvml  # noqa: F401
        except ImportError:
            print(f"pynvml (nvidia-ml-py) is not importable: carry its wheel; exit {EXIT_NO_NVML}")
            return EXIT_NO_NVML
        rep.check("NVML initialises", False, "nvmlInit failed or no device")
        return EXIT_FAILED
    reader = DeviceReader(nvml)
    devices = reader.devices()
    bus = found["pci_bus_id"].lower()[-7:]  # `3b:00.0`: NVML writes 8 digits of domain, CUDA 4
    index = next((d["index"] for d in devices if str(d.get("pci_bus_id") or "").lower().endswith(bus)),
                 args.device)
    rep.figure("NVML device", f"{index}: {devices[index] if index < len(devices) else '?'}")
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    started = time.monotonic()
    sampler = Sampler(reader, index)
    sampler.start()
    watch = XidWatch(nvml, {d["index"]: reader.handle(d["index"]) for d in devices})
    watching = watch.open()
    xids = XidThread(watch)
    xids.start()
    rep.figure("Xid events watched on", f"{watching} (unsupported {watch.unsupported}, error {watch.error})")
    time.sleep(1.5)
    idle = median(sampler.used(started))
    try:
        phases(rep, args, nvml, reader, sampler, xids, watching, workdir, idle)
    except Exception as exc:  # noqa: BLE001 - a broken phase is a failed check, and the rest still ends
        rep.check("the check ran to its end", False, f"{type(exc).__name__}: {exc}")
    finally:
        # Stressors run in sessions of their own, which would outlive this script on the machine.
        for left in workdir.glob("*.pid"):
            ended = pidfile.end_recorded(str(left))
            if ended:
                rep.check("no stressor left behind", False, ended)
    sampler.stopping.set()
    xids.stopping.set()
    sampler.join(5)
    xids.join(5)
    nvml_figures(rep, sampler, reader, index, started)
    if not xids.is_alive():
        watch.close()
        nvml.nvmlShutdown()
    total = time.monotonic() - started
    print(f"\n{len(rep.rows)} checks in {total:.0f}s: {len(rep.failed)} failed"
          + (f" ({', '.join(rep.failed)})" if rep.failed else ""), flush=True)
    if args.json:
        out = {"checks": rep.rows, "figures": rep.figures}
        Path(args.json).write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    return EXIT_FAILED if rep.failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--no-xid", action="store_true", help="do not provoke an Xid")
    parser.add_argument("--json", default=None, help="also write the checks and figures here")
    parser.add_argument("--stack-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--harness-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--xid-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--harness-part", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--harness-kill-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pidfile", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stack_child:
        return stack_child(args.device)
    if args.harness_child:
        return harness_child(args.device, args.pidfile, 2 * GIB)
    if args.xid_child:
        return xid_child(args.device)
    if args.harness_part:
        return harness_part_child(args.device, Path(args.workdir))
    if args.harness_kill_child:
        return harness_kill_child(args.device, Path(args.workdir))
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())
