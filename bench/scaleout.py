"""Scale-out: throughput with 0, 1, 2 and 4 Locust load workers against one real Triton.

One real Triton identity model is started (bench/loadgen.py's `start_server`) and driven by one
`harness run --workers N` per step, in the closed model, with the same total number of users
(Locust splits them across the workers). `--workers 0` is the local runner: the users run in the
harness process itself. Two wrk -t1 rows in the same run give the references: wrk POSTing the same
inference request with the same connections (the ceiling of server + loopback, from a client
several times cheaper per request than any Python one), and wrk GETting /v2/health/ready (loopback
and Triton's HTTP front without the model).

    python bench/scaleout.py --workers 0,1,2,4 --seconds 10 --users 32 --instances 2 --user triton_http

Measured per step, inside a steady window: the whole seconds from 1.5 s after the journal's
`load_started` to just before the load's end (start-up, the workers' imports and the reports
are left out). Requests/s and mean latency come from the journal's per-second records of those
seconds; CPU is sampled with psutil at the window's two ends and given in cores (CPU seconds
over the window's seconds): the master (the harness process and any non-worker child), every
worker's process tree (`harness worker` children of the master), the Triton server's tree, and
`other`: whatever else the machine spent (other people's work, the kernel's softirqs). Errors
are summary.json's totals for the whole run. The wrk rows use loadgen's `run_measured`: wrk's own
requests/s, its tree's CPU inside loadgen's window, the server's and the rest over the whole run
(wrk starts and stops in milliseconds, so the two agree).

"limited by" is derived from those measures by these rules, first match wins (`limit_of`):

 1. errors: more than 1% of the requests failed; the throughput is not a capacity figure.
 2. machine cores: everything together (client + server + other) used at least 90% of the usable
    cores, or some runnable task waited for a core at least half of the window (Linux PSI,
    /proc/pressure/cpu "some": the direct measure of "more work than cores"; in a closed loop the
    processes hand requests to each other, so a short idle gap at each hand-off can keep the busy
    share under 90% while tasks queue for the cores). No process can go faster without taking a
    core from another. A load process at its own ceiling too is named after it ("also ...").
 3. client CPU: a load process (a worker, or the master for the local runner) used at least 0.90
    cores. Each runs its users in one gevent loop under one GIL, so one core is its ceiling.
 4. server: requests/s at least 90% of wrk's with the same connections: a client much cheaper per
    request gets no more out of this server (and loopback) at this concurrency. wrk speaks HTTP,
    so this rule is applied to `--user triton_http` only.
 5. concurrency: none of the above; with a fixed number of users in the closed model the rate is
    users / latency (Little's law), so the latency (the server's queueing and scheduling) is it.

No network namespaces: they would isolate addresses and routes, not CPU. There is one server on
one machine, every process shares the same cores, and the measured limit is those cores;
loopback is not the bottleneck, which the wrk rows show in the same run: wrk's health GET (the
same loopback, connections and HTTP front, no model) goes 5-8 times faster than its inference
POST, so loopback carries several times any inference rate here (the last line prints the ratio).
A 2 s wrk run warms the server up (its Python backend stubs) before anything is measured.

Figures are from one run on a shared machine. Traffic goes to 127.0.0.1 only; the only
processes this script ends are its own children.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import (  # noqa: E402
    MODEL,
    NOISY_CORES,
    Settings,
    ToolResult,
    Usage,
    ensure_wrk,
    harness_scenario,
    infer_body,
    machine_busy,
    parse_wrk,
    read_summary,
    run_measured,
    run_wrk,
    start_server,
    tree_cpu,
)

WARMUP_S = 2  # an unreported wrk run before the first measured one
WARM_S = 1.5  # after `load_started`: users spawned (10x users per second) and connected
END_MARGIN_S = 0.25  # the last sample is taken this long before the load is due to stop
MAX_ERROR_FRACTION = 0.01  # rule 1
MACHINE_SATURATED = 0.90  # rule 2: fraction of the usable cores busy
PROCESS_SATURATED = 0.90  # rule 3: cores of one single-threaded (GIL) load process
SERVER_CEILING = 0.90  # rule 4: fraction of wrk's requests/s
CPU_WAITING = 0.50  # rule 2: fraction of the window some runnable task waited for a core (PSI)
START_TIMEOUT_S = 90.0  # from `harness run` to `load_started` (workers import and join)
PSI_CPU = Path("/proc/pressure/cpu")


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds at one instant, split by who spent them."""

    at: float  # monotonic
    master: float  # the harness process and its non-worker descendants
    workers: dict[int, float]  # worker pid -> its tree's CPU seconds
    server: float
    busy: float  # the whole machine, not idle
    waiting: float | None  # PSI: seconds some runnable task waited for a core (None: no PSI)


@dataclass(frozen=True)
class Cores:
    """CPU rates (cores) over a window; `workers` holds one figure per worker."""

    seconds: float
    master: float
    workers: list[float]
    server: float
    other: float
    waiting: float | None  # share of the window some runnable task waited for a core

    @property
    def client(self) -> float:
        return self.master + sum(self.workers)

    @property
    def machine(self) -> float:
        return self.client + self.server + self.other

    @property
    def load_processes(self) -> list[float]:
        """The processes running users: the workers, or the master for the local runner."""
        return self.workers or [self.master]


@dataclass(frozen=True)
class Step:
    name: str
    workers: int | None  # None: a wrk reference row
    rps: float
    errors: int
    requests: int
    cores: Cores | None
    mean_ms: float | None = None
    limit: str = ""
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- sampling


def worker_pids(master: int) -> list[int]:
    """The master's `harness worker` children (started before `load_started`, so all there)."""
    pids: list[int] = []
    try:
        children = psutil.Process(master).children()
    except psutil.Error:
        return pids
    for child in children:
        try:
            if "worker" in child.cmdline():
                pids.append(child.pid)
        except psutil.Error:
            continue
    return pids


def cpu_waiting() -> float | None:
    """Linux PSI: total seconds in which at least one runnable task had no core to run on."""
    try:
        some = PSI_CPU.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    total = some.rsplit("total=", 1)[-1]
    return int(total) / 1e6 if total.isdigit() else None


def waiting_share(first: float | None, last: float | None, span: float) -> float | None:
    return (last - first) / span if first is not None and last is not None and span > 0 else None


def sample(master: int, workers: list[int], server: int) -> CpuSample:
    per_worker = {pid: tree_cpu(pid) for pid in workers}
    # tree_cpu(master) includes the workers' trees: the master's own share is the rest.
    return CpuSample(time.monotonic(), tree_cpu(master) - sum(per_worker.values()), per_worker,
                     tree_cpu(server), machine_busy(), cpu_waiting())


def rates(first: CpuSample, last: CpuSample) -> Cores:
    span = last.at - first.at
    # A worker gone by the last sample reads 0 there: counted as 0, not negative.
    workers = [max(0.0, last.workers[pid] - first.workers[pid]) / span for pid in first.workers]
    master = (last.master - first.master) / span
    server = (last.server - first.server) / span
    busy = (last.busy - first.busy) / span
    other = max(0.0, busy - master - sum(workers) - server)
    return Cores(span, master, workers, server, other, waiting_share(first.waiting, last.waiting, span))


# ---------------------------------------------------------------- one harness step


def read_journal(runs: Path) -> list[dict[str, Any]]:
    """The records of the one run under `runs` so far (the journal is flushed as it goes)."""
    journals = sorted(runs.glob("*/journal.jsonl"))
    if not journals:
        return []
    records = []
    for line in journals[-1].read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # the line being written
            continue
    return records


def wait_load_started(proc: subprocess.Popen[bytes], runs: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for record in read_journal(runs):
            if record.get("event") == "load_started":
                return record
        if proc.poll() is not None:
            raise RuntimeError(f"harness exited {proc.returncode} before the load started")
        time.sleep(0.05)
    raise RuntimeError(f"no load_started within {START_TIMEOUT_S:g}s")


def sleep_until_wall(wall: float) -> None:
    time.sleep(max(0.0, wall - time.time()))


def window_of(started: dict[str, Any], seconds: int) -> tuple[int, int]:
    """The whole seconds (run clock, [first, end)) inside the steady part of the load."""
    t0 = float(started["t"])
    return math.ceil(t0 + WARM_S), math.floor(t0 + seconds - END_MARGIN_S)


def measure_window(
    proc: subprocess.Popen[bytes], runs: Path, server: int, seconds: int
) -> tuple[tuple[int, int], Cores]:
    started = wait_load_started(proc, runs)
    first, end = window_of(started, seconds)
    if end <= first:
        raise RuntimeError(f"--seconds {seconds} leaves no steady window")
    # Run clock -> wall time through the event's own pair of stamps.
    to_wall = float(started["wall"]) - float(started["t"])
    sleep_until_wall(to_wall + first)
    workers = worker_pids(proc.pid)
    begin = sample(proc.pid, workers, server)
    sleep_until_wall(to_wall + end)
    return (first, end), rates(begin, sample(proc.pid, workers, server))


def window_requests(runs: Path, window: tuple[int, int]) -> tuple[int, float | None]:
    """Requests in the window's seconds and their mean latency (ms), from the journal."""
    requests, sum_us = 0, 0.0
    for record in read_journal(runs):
        if record.get("type") == "second" and window[0] <= int(record["t"]) < window[1]:
            requests += int(record["requests"])
            sum_us += float(record.get("sum_us") or 0.0)
    return requests, (sum_us / requests / 1000 if requests else None)


def run_step(s: Settings, user: str, workers: int, server: int) -> Step:
    folder = Path(tempfile.mkdtemp(prefix=f"scaleout-w{workers}-", dir=s.workdir))
    scenario = folder / "scenario.yaml"
    scenario.write_text(harness_scenario(s, user))
    runs = folder / "runs"
    argv = [sys.executable, "-m", "harness.cli", "run", str(scenario), "--runs-dir", str(runs),
            "--no-progress", "--workers", str(workers)]
    with (folder / "harness.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        try:
            window, cores = measure_window(proc, runs, server, s.seconds)
            proc.wait(s.seconds + 120)
        finally:
            if proc.poll() is None:
                proc.kill()  # our own child, by its handle
                proc.wait()
    totals = read_summary(runs)
    requests, mean_ms = window_requests(runs, window)
    name = "local runner" if workers == 0 else f"{workers} worker" + ("s" if workers > 1 else "")
    notes = []
    if workers and len(cores.workers) != workers:
        notes.append(f"{len(cores.workers)} worker processes seen, {workers} expected")
    return Step(name, workers, requests / cores.seconds, totals.errors, totals.requests + totals.errors,
                cores, mean_ms, notes=notes)


# ---------------------------------------------------------------- wrk references


def wrk_cores(usage: Usage, waiting: float | None) -> Cores | None:
    if usage.steady_cores is None or usage.wall <= 0:
        return None
    return Cores(usage.wall, usage.steady_cores, [], usage.server / usage.wall, usage.other / usage.wall,
                 waiting)


def wrk_step(name: str, measured: tuple[ToolResult, Usage], waited0: float | None) -> Step:
    """A wrk row; `waited0`: PSI before it ran (its share is over the whole run, as its server CPU)."""
    result, usage = measured
    waiting = waiting_share(waited0, cpu_waiting(), usage.wall)
    return Step(name, None, result.rps, result.errors, result.requests + result.errors,
                wrk_cores(usage, waiting))


def run_wrk_health(s: Settings, server: int) -> Step:
    """wrk GET /v2/health/ready: loopback and Triton's HTTP front, no inference."""
    wrk = shutil.which("wrk")
    assert wrk is not None
    folder = Path(tempfile.mkdtemp(prefix="wrk-health-", dir=s.workdir))
    log = folder / "client.log"
    argv = [wrk, "-t1", f"-c{s.connections}", f"-d{s.seconds}s", f"{s.http_url}/v2/health/ready"]
    waited0 = cpu_waiting()
    usage = run_measured(argv, log, server, s.seconds + 60, s.window)
    return wrk_step("wrk GET health", (parse_wrk(log.read_text(errors="replace")), usage), waited0)


# ---------------------------------------------------------------- limits


def limit_of(step: Step, wrk_rps: float | None, usable: int) -> str:
    # wrk_rps is None where it does not apply (no wrk row, or the gRPC user: wrk is an HTTP client)
    """The rules of the module docstring, in order; the first that holds says what limits."""
    c = step.cores
    if c is None:
        return "n/a (no CPU window)"
    if step.requests and step.errors / step.requests > MAX_ERROR_FRACTION:
        return f"errors: {step.errors / step.requests:.1%} of requests failed"
    saturated = client_saturation(step, c)
    waited = c.waiting is not None and c.waiting >= CPU_WAITING
    if c.machine >= MACHINE_SATURATED * usable or waited:
        noise = f" + other {c.other:.2f}" if c.other > NOISY_CORES else ""
        wait = f", a task waiting for a core {c.waiting:.0%} of the time" if c.waiting is not None else ""
        also = f"; also {saturated}" if saturated else ""
        return f"machine cores: client+server{noise} = {c.machine:.2f} of {usable} cores{wait}{also}"
    if saturated:
        return f"client CPU: {saturated}"
    if wrk_rps and step.workers is not None and step.rps >= SERVER_CEILING * wrk_rps:
        return f"server: {step.rps / wrk_rps:.2f} x wrk's {wrk_rps:.0f} req/s, server at {c.server:.2f} cores"
    latency = f", mean latency {step.mean_ms:.2f} ms" if step.mean_ms is not None else ""
    return f"concurrency: nothing CPU-bound (machine {c.machine:.2f} of {usable} cores){latency}"


def client_saturation(step: Step, c: Cores) -> str:
    """Which load processes are at their one-core ceiling, or '' if none."""
    busy = [cores for cores in c.load_processes if cores >= PROCESS_SATURATED]
    if not busy:
        return ""
    if step.workers is None:
        return f"wrk thread at {busy[0]:.2f} cores"
    if not c.workers:
        return f"master (users in-process) at {busy[0]:.2f} cores"
    each = " each" if len(c.workers) > 1 else ""
    return f"{len(busy)} of {len(c.workers)} workers at {min(busy):.2f}+ cores{each}"


# ---------------------------------------------------------------- report


HEADER = (
    f"{'step':<15} {'req/s':>7} {'x 1w':>5} {'errors':>6} {'mean':>6} {'master':>6} {'workers':>7} "
    f"{'max':>6} {'server':>6} {'other':>6} {'total':>6} {'cpu':>5} {'client':>7} {'window':>6}  limited by\n"
    f"{'':<15} {'':>7} {'':>5} {'':>6} {'ms':>6} {'cores':>6} {'cores':>7} "
    f"{'worker':>6} {'cores':>6} {'cores':>6} {'cores':>6} {'wait':>5} {'us/req':>7} {'s':>6}"
)


FOOTER = """\
req/s, mean and cores: the steady window of each step (wrk rows: wrk's figures, its CPU in loadgen's
window, server/other/cpu wait over its run); errors: the whole run; master: the harness process (the
users too for the local runner); cpu wait: share of the window in which some runnable task waited for
a core (Linux PSI, /proc/pressure/cpu); client us/req: master+workers (wrk: wrk) CPU per request;
x 1w: over the 1-worker step; CPU seconds = cores x window seconds"""


def format_step(step: Step, one_worker_rps: float | None) -> str:
    ratio = f"{step.rps / one_worker_rps:5.2f}" if one_worker_rps and step.workers is not None else "    -"
    mean = f"{step.mean_ms:6.2f}" if step.mean_ms is not None else "     -"
    c = step.cores
    if c is None:
        cpu = f"{'':>6} {'':>7} {'':>6} {'':>6} {'':>6} {'':>6} {'':>5} {'':>7} {'':>6}"
    else:
        workers = f"{sum(c.workers):7.2f}" if c.workers else "      -"
        top = f"{max(c.workers):6.2f}" if c.workers else "     -"
        per_req = c.client * 1e6 / step.rps if step.rps else float("nan")
        wait = f"{c.waiting:5.0%}" if c.waiting is not None else "    -"
        cpu = (f"{c.master:6.2f} {workers} {top} {c.server:6.2f} {c.other:6.2f} {c.machine:6.2f} "
               f"{wait} {per_req:7.1f} {c.seconds:6.1f}")
    return f"{step.name:<15} {step.rps:7.0f} {ratio} {step.errors:6d} {mean} {cpu}  {step.limit}"


def print_report(steps: list[Step], args: argparse.Namespace, usable: int) -> None:
    one = next((s.rps for s in steps if s.workers == 1), None)
    print(f"\nscale-out: {args.user}, {args.users} users in total (closed model), {args.seconds}s per "
          f"step, Triton {MODEL} x{args.instances} instances; machine: {usable} usable cores")
    print(HEADER)
    for step in steps:
        print(format_step(step, one))
        for note in step.notes:
            print(f"  note: {note}")
    print(FOOTER)
    print_loopback(steps)
    noisy = [f"{s.name} {s.cores.other:.2f}" for s in steps if s.cores and s.cores.other > NOISY_CORES]
    if noisy:  # other people's work on the same cores: those steps measured less than the bench
        print(f"warning: other processes took cores during: {', '.join(noisy)}: those rows are noisy")


def print_loopback(steps: list[Step]) -> None:
    """The measured case against namespaces: loopback carries more than any inference step."""
    by_name = {s.name: s for s in steps}
    infer, health = by_name.get("wrk POST infer"), by_name.get("wrk GET health")
    harness = [s.rps for s in steps if s.workers is not None]
    if infer is None or health is None or not infer.rps or not harness:
        return
    print(f"loopback: wrk GET health {health.rps:.0f} req/s = {health.rps / infer.rps:.2f} x wrk POST "
          f"infer {infer.rps:.0f} req/s; best harness step {max(harness):.0f} req/s = "
          f"{max(harness) / infer.rps:.2f} x wrk infer")


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--workers", default="0,1,2,4", help="load worker counts, comma-separated (0: local)")
    parser.add_argument("--seconds", type=int, default=10, help="load duration per step")
    parser.add_argument("--users", type=int, default=32, help="users in total, split across the workers")
    parser.add_argument("--instances", type=int, default=2, help="Triton model instances")
    parser.add_argument("--user", default="triton_http", choices=["triton_http", "triton_grpc"])
    parser.add_argument("--no-wrk", action="store_true", help="leave out the wrk reference rows")
    return parser.parse_args(argv)


def run_all(args: argparse.Namespace, workdir: Path) -> list[Step]:
    stack = start_server(workdir, args.instances)
    try:
        assert stack.process is not None and stack.endpoints.http and stack.endpoints.grpc
        server = stack.process.pid
        s = Settings(args.users, args.seconds, workdir, stack.endpoints.http, stack.endpoints.grpc,
                     infer_body(MODEL))
        print(f"triton: pid {server}, {s.http_url}, grpc {s.grpc_url}", flush=True)
        steps: list[Step] = []
        if not args.no_wrk and ensure_wrk():
            run_wrk(replace(s, seconds=WARMUP_S), server)  # not reported: the first seconds run slower
            print(f"  wrk -t1 -c{args.users}: POST infer, GET health ...", flush=True)
            waited0 = cpu_waiting()
            steps.append(wrk_step("wrk POST infer", run_wrk(s, server), waited0))
            steps.append(run_wrk_health(s, server))
        for workers in (int(w) for w in args.workers.split(",")):
            time.sleep(1.0)  # let the server drain before the next step
            print(f"  {args.user}, {workers} worker(s), {args.users} users, {args.seconds}s ...", flush=True)
            try:
                steps.append(run_step(s, args.user, workers, server))
            except (RuntimeError, OSError, KeyError, ValueError) as exc:
                steps.append(Step(f"{workers} workers", workers, 0.0, 0, 0, None, notes=[f"failed: {exc}"]))
        return steps
    finally:
        report = stack.stop()
        if report.leaks:
            print(f"triton stop: {'; '.join(report.leaks)}")


def with_limits(steps: list[Step], usable: int, user: str) -> list[Step]:
    wrk_rps = next((s.rps for s in steps if s.name == "wrk POST infer"), None)
    if user != "triton_http":
        wrk_rps = None
    return [Step(s.name, s.workers, s.rps, s.errors, s.requests, s.cores, s.mean_ms,
                 limit_of(s, wrk_rps, usable), s.notes) for s in steps]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    usable = usable_cores()
    workdir = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    try:
        steps = with_limits(run_all(args, workdir), usable, args.user)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(steps, args, usable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
