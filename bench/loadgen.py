"""Load-generator benchmark: the harness's own load path against plain Locust and wrk.

One real Triton identity model is started (through `harness.triton.stack.TritonStack`) and
every tool drives it in turn at the same concurrency. For each tool the script records the
achieved requests/s, the CPU seconds the client used (getrusage of reaped children, so the
client's whole process tree), the CPU the server used meanwhile, and the CPU everything else
on the machine used (other people's work: a noise indicator).

    python bench/loadgen.py --connections 32 --seconds 15 --rounds 2
    python bench/loadgen.py --seconds 8 --tools wrk,http,grpc,http-baseline,grpc-baseline --baseline OLD_TREE
    python bench/loadgen.py --seconds 8 --tools http,grpc --profile prof/   # then bench/pyspy_top.py

`--tools` picks the tools of a round; the `*-baseline` tools run the same `harness run` with the
code of `--baseline` (a copy of the tree before a change) first on PYTHONPATH, so a change is
measured against its own "before" in one run. `--profile` runs each Python client under py-spy.
Besides the x-wrk ratio it prints the steady client CPU per request against wrk's (goal <= 3)
and the gRPC user's throughput against the HTTP user's (goal 0.8).

Traffic goes to 127.0.0.1 only. The only processes this script ends are the ones it started.
"""

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.triton.modelzoo import ZOO
from harness.triton.spec import TritonSpec
from harness.triton.stack import TritonStack

MODEL = "identity"
GOAL = 0.85  # the harness's HTTP throughput should reach this fraction of wrk's
NOISY_CORES = 0.25  # other processes above this many cores make a measurement unreliable
HARNESS_HTTP = "harness triton_http"
HARNESS_GRPC = "harness triton_grpc"
HARNESS_GRPC_CHANNEL = "harness triton_grpc_channel"
LOCUST = "locust FastHttpUser"
WRK = "wrk -t1"
HTTP_BEFORE = "baseline triton_http"
GRPC_BEFORE = "baseline triton_grpc"
TOOL_KEYS = {"wrk": WRK, "locust": LOCUST, "http": HARNESS_HTTP, "grpc": HARNESS_GRPC,
             "grpc-channel": HARNESS_GRPC_CHANNEL,
             "http-baseline": HTTP_BEFORE, "grpc-baseline": GRPC_BEFORE}
DEFAULT_TOOLS = ["wrk", "locust", "http", "grpc", "grpc-channel"]
GRPC_GOAL = 0.8  # the gRPC user's throughput over the HTTP user's
BASELINE: Path | None = None  # set by --baseline: the tree the *-baseline tools run
PROFILE_RATE = 250  # py-spy samples per second: each sample is 4 ms of a busy process's time
PROFILE_DIR: Path | None = None  # set by --profile


@dataclass(frozen=True)
class Settings:
    connections: int
    seconds: int
    workdir: Path
    http_url: str
    grpc_url: str
    body: bytes

    @property
    def window(self) -> tuple[float, float]:
        """Seconds after a client's start inside every tool's load phase (start-up < 3 s)."""
        return (min(3.0, self.seconds / 3), float(self.seconds))


@dataclass(frozen=True)
class ToolResult:
    """What a tool itself reported about its run."""

    requests: int
    rps: float
    errors: int


@dataclass(frozen=True)
class Usage:
    """CPU seconds spent while one tool ran, split by who spent them."""

    client: float
    server: float
    other: float
    wall: float
    steady_cores: float | None = None  # client CPU rate inside the load window, in cores


@dataclass(frozen=True)
class Row:
    tool: str
    result: ToolResult | None
    usage: Usage | None
    note: str = ""


# ---------------------------------------------------------------- CPU accounting


def children_cpu() -> float:
    """User+system CPU seconds of every child this process has reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu(pid: int) -> float:
    """User+system CPU seconds of a live process and its live descendants."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return total
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle, all cores together."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def sample_window(proc: subprocess.Popen[bytes], window: tuple[float, float]) -> float | None:
    """Client tree CPU rate (cores) between two times after its start, None if it ended first.

    Leaves out start-up (imports) and shutdown (reports), which every tool pays once.
    """
    started = time.monotonic()
    samples: list[tuple[float, float]] = []
    for offset in window:
        try:
            proc.wait(max(0.0, started + offset - time.monotonic()))
            return None  # it exited inside the window
        except subprocess.TimeoutExpired:
            samples.append((time.monotonic(), tree_cpu(proc.pid)))
    (t0, cpu0), (t1, cpu1) = samples
    return (cpu1 - cpu0) / (t1 - t0) if t1 > t0 else None


def run_measured(
    argv: list[str], log: Path, server_pid: int, timeout: float, window: tuple[float, float],
    env: dict[str, str] | None = None,
) -> Usage:
    """Run a client to completion; the CPU it, the server and everyone else used meanwhile."""
    client0, server0, busy0 = children_cpu(), tree_cpu(server_pid), machine_busy()
    wall0 = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env)
        steady = sample_window(proc, window)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child, by its handle
            proc.wait()
            raise RuntimeError(f"{argv[0]} ran past {timeout:.0f}s; log {log}") from None
    client = children_cpu() - client0
    server = tree_cpu(server_pid) - server0
    busy = machine_busy() - busy0
    if code not in (0, 1):  # harness exits non-zero on a failed verdict; still measured
        print(f"  note: {' '.join(argv[:3])} exited {code}; log {log}", file=sys.stderr)
    wall = time.monotonic() - wall0
    return Usage(client, server, max(0.0, busy - client - server), wall, steady)


# ---------------------------------------------------------------- request body


def infer_body(model: str) -> bytes:
    """The KServe v2 JSON body the harness's HTTP user sends (harness/triton/http_user.py)."""
    zoo = ZOO[model]
    shape = [1, *zoo.dims]
    count = 1
    for dim in shape:
        count *= dim
    request = {
        "inputs": [
            {
                "name": zoo.input_name,
                "shape": shape,
                "datatype": zoo.datatype,
                "data": [float(i) for i in range(count)],
            }
        ]
    }
    return json.dumps(request).encode()


# ---------------------------------------------------------------- the harness itself


def harness_scenario(s: Settings, user: str) -> str:
    stack = {"kind": "external", "url": s.http_url, "grpc_url": s.grpc_url, "model": MODEL}
    load = {"user": user, "users": s.connections, "duration": f"{s.seconds}s"}
    scenario = {"name": f"bench-{user}", "stack": stack, "load": load, "slo": []}
    return json.dumps(scenario, indent=2)  # JSON is YAML


def read_summary(runs: Path) -> ToolResult:
    folders = sorted(p for p in runs.iterdir() if p.is_dir())
    if not folders:
        raise RuntimeError(f"harness made no run folder under {runs}")
    totals = json.loads((folders[-1] / "summary.json").read_text())["totals"]
    rps = float(totals["throughput_rps"] or 0.0)
    return ToolResult(int(totals["ok"]), rps, int(totals["errors"]))


def profiled(argv: list[str], name: str) -> list[str]:
    """`argv` under py-spy (collapsed stacks into PROFILE_DIR/<name>.txt) when --profile is given."""
    if PROFILE_DIR is None:
        return argv
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = PROFILE_DIR / f"{name.replace(' ', '_')}.txt"
    # --gil: only samples holding the GIL, i.e. Python running; a thread in a syscall (or
    # preempted inside one, as a 2-core machine shared with the server often does) is left out.
    return [spy, "record", "--format", "raw", "--rate", str(PROFILE_RATE), "--nonblocking", "--gil",
            "--subprocesses", "-o", str(out), "--", *argv]


def run_harness(
    s: Settings, user: str, server_pid: int, tree: Path | None = None
) -> tuple[ToolResult, Usage]:
    """One `harness run`; with `tree`, the harness code in that folder (first on PYTHONPATH)."""
    folder = Path(tempfile.mkdtemp(prefix=f"harness-{user}-", dir=s.workdir))
    scenario = folder / "scenario.yaml"
    scenario.write_text(harness_scenario(s, user))
    runs = folder / "runs"
    name = f"harness-{user}" + ("-baseline" if tree else "")
    argv = profiled([sys.executable, "-m", "harness.cli", "run", str(scenario), "--runs-dir", str(runs),
                     "--no-progress"], name)
    env = None
    if tree is not None:
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    usage = run_measured(argv, folder / "client.log", server_pid, s.seconds + 120, s.window, env)
    return read_summary(runs), usage


# ---------------------------------------------------------------- plain Locust


LOCUSTFILE = """\
from locust import FastHttpUser, constant, task

BODY = {body!r}
HEADERS = {{"Content-Type": "application/json"}}


class Infer(FastHttpUser):
    wait_time = constant(0)

    @task
    def infer(self):
        self.client.post("/v2/models/{model}/infer", data=BODY, headers=HEADERS)
"""


def read_locust_csv(stats: Path) -> ToolResult:
    with stats.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                failures = int(row["Failure Count"])
                ok = int(row["Request Count"]) - failures
                return ToolResult(ok, float(row["Requests/s"]), failures)
    raise RuntimeError(f"{stats}: no Aggregated row")


def run_locust(s: Settings, server_pid: int) -> tuple[ToolResult, Usage]:
    folder = Path(tempfile.mkdtemp(prefix="locust-", dir=s.workdir))
    locustfile = folder / "locustfile.py"
    locustfile.write_text(LOCUSTFILE.format(body=s.body, model=MODEL))
    prefix = folder / "out"
    n = str(s.connections)
    argv = profiled([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", n, "-r", n,
                     "-t", f"{s.seconds}s", "--host", s.http_url, "--csv", str(prefix)], "locust")
    usage = run_measured(argv, folder / "client.log", server_pid, s.seconds + 120, s.window)
    return read_locust_csv(Path(f"{prefix}_stats.csv")), usage


# ---------------------------------------------------------------- wrk


def wrk_script(body: bytes) -> str:
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = [[{body.decode()}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def parse_wrk(text: str) -> ToolResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if rps is None or total is None:
        raise RuntimeError(f"cannot read wrk's output: {text[-500:]}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(g) for g in sock.groups()) if sock else 0
    return ToolResult(int(total.group(1)) - errors, float(rps.group(1)), errors)


def run_wrk(s: Settings, server_pid: int) -> tuple[ToolResult, Usage]:
    wrk = shutil.which("wrk")
    assert wrk is not None
    folder = Path(tempfile.mkdtemp(prefix="wrk-", dir=s.workdir))
    script = folder / "post.lua"
    script.write_text(wrk_script(s.body))
    url = f"{s.http_url}/v2/models/{MODEL}/infer"
    argv = [wrk, "-t1", f"-c{s.connections}", f"-d{s.seconds}s", "-s", str(script), url]
    log = folder / "client.log"
    usage = run_measured(argv, log, server_pid, s.seconds + 60, s.window)
    return parse_wrk(log.read_text(errors="replace")), usage


def ensure_wrk() -> bool:
    """wrk on PATH, installing Debian's package if it is missing; False if it cannot be had."""
    if shutil.which("wrk"):
        return True
    print("wrk not found: trying `apt-get install -y wrk`", flush=True)
    try:
        subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"apt-get failed: {exc}")
    return shutil.which("wrk") is not None


# ---------------------------------------------------------------- one round


Runner = Callable[[Settings, int], tuple[ToolResult, Usage]]


def tools(have_wrk: bool, chosen: list[str]) -> list[tuple[str, Runner | None]]:
    every: list[tuple[str, Runner | None]] = [
        (WRK, run_wrk if have_wrk else None),
        (LOCUST, run_locust),
        (HARNESS_HTTP, lambda s, pid: run_harness(s, "triton_http", pid)),
        (HARNESS_GRPC, lambda s, pid: run_harness(s, "triton_grpc", pid)),
        (HARNESS_GRPC_CHANNEL, lambda s, pid: run_harness(s, "triton_grpc_channel", pid)),
        (HTTP_BEFORE, lambda s, pid: run_harness(s, "triton_http", pid, BASELINE)),
        (GRPC_BEFORE, lambda s, pid: run_harness(s, "triton_grpc", pid, BASELINE)),
    ]
    names = {TOOL_KEYS[key] for key in chosen}
    return [(name, runner) for name, runner in every if name in names]


def run_one(name: str, runner: Runner | None, s: Settings, server_pid: int) -> Row:
    if runner is None:
        return Row(name, None, None, "skipped: wrk is not installed and could not be")
    print(f"  {name}: {s.connections} connections, {s.seconds}s ...", flush=True)
    try:
        result, usage = runner(s, server_pid)
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        return Row(name, None, None, f"failed: {exc}")
    time.sleep(1.0)  # let the server drain before the next tool
    return Row(name, result, usage)


def run_round(s: Settings, server_pid: int, have_wrk: bool, chosen: list[str]) -> list[Row]:
    return [run_one(name, runner, s, server_pid) for name, runner in tools(have_wrk, chosen)]


# ---------------------------------------------------------------- report


def rps_of(rows: list[Row], tool: str) -> float | None:
    for row in rows:
        if row.tool == tool and row.result is not None:
            return row.result.rps
    return None


def per_request(cpu_s: float, requests: int) -> float:
    return cpu_s * 1e6 / requests if requests else float("nan")


def steady_columns(row: Row) -> str:
    """Client cores and CPU us/request inside the load window (start-up and shutdown left out)."""
    assert row.result is not None and row.usage is not None
    cores = row.usage.steady_cores
    if cores is None or not row.result.rps:
        return f"{'n/a':>6} {'n/a':>8}"
    return f"{cores:6.2f} {cores * 1e6 / row.result.rps:8.1f}"


def format_row(row: Row, wrk_rps: float | None) -> str:
    if row.result is None or row.usage is None:
        return f"{row.tool:<20} {row.note}"
    r, u = row.result, row.usage
    ratio = f"{r.rps / wrk_rps:5.2f}" if wrk_rps else "  n/a"
    return (
        f"{row.tool:<20} {r.rps:7.0f} {u.client:7.2f} {per_request(u.client, r.requests):8.1f} "
        f"{steady_columns(row)} {per_request(u.server, r.requests):8.1f} {u.other:6.2f} "
        f"{r.errors:6d} {ratio}"
    )


HEADER = (
    f"{'tool':<20} {'req/s':>7} {'client':>7} {'client':>8} {'steady':>6} {'steady':>8} "
    f"{'server':>8} {'other':>6} {'errors':>6} {'x wrk':>5}\n"
    f"{'':<20} {'':>7} {'CPU s':>7} {'CPU us/r':>8} {'cores':>6} {'CPU us/r':>8} "
    f"{'CPU us/r':>8} {'CPU s':>6}"
)


def print_table(rows: list[Row], title: str) -> None:
    wrk_rps = rps_of(rows, WRK)
    print(f"\n{title}")
    print(HEADER)
    for row in rows:
        print(format_row(row, wrk_rps))
    print(
        "client CPU: whole client process tree, start to exit; steady: the same inside the "
        "load window only;\nserver: tritonserver and its stubs; other: everything else on "
        "the machine (noise)"
    )
    print_noise(rows)
    print_verdict(rows, wrk_rps)


def print_noise(rows: list[Row]) -> None:
    """Warn where other people's processes took a noticeable share of the machine."""
    for row in rows:
        if row.usage is not None and row.usage.wall > 0:
            cores = row.usage.other / row.usage.wall
            if cores > NOISY_CORES:
                print(f"warning: other processes used {cores:.2f} cores during {row.tool}: noisy")


def print_verdict(rows: list[Row], wrk_rps: float | None) -> None:
    harness_rps, locust_rps = rps_of(rows, HARNESS_HTTP), rps_of(rows, LOCUST)
    if not wrk_rps or harness_rps is None:
        print("goal harness >= 0.85 x wrk: cannot judge (a measurement is missing)")
        return
    if locust_rps is not None:
        print(f"ratio plain-locust/wrk: {locust_rps / wrk_rps:.2f}")
    ratio = harness_rps / wrk_rps
    met = "MET" if ratio >= GOAL else "NOT met"
    print(f"ratio harness(http)/wrk: {ratio:.2f}: goal harness >= {GOAL} x wrk {met}")
    print_cpu_and_grpc(rows)


def steady_us(rows: list[Row], tool: str) -> float | None:
    for row in rows:
        if row.tool == tool and row.result is not None and row.usage is not None:
            cores = row.usage.steady_cores
            return cores * 1e6 / row.result.rps if cores is not None and row.result.rps else None
    return None


def print_cpu_and_grpc(rows: list[Row]) -> None:
    """The other two goals: client CPU per request against wrk's, gRPC throughput against HTTP's."""
    wrk_us, http_us = steady_us(rows, WRK), steady_us(rows, HARNESS_HTTP)
    if wrk_us and http_us:
        ratio = http_us / wrk_us
        print(f"ratio steady client CPU/request harness(http)/wrk: {ratio:.2f}: goal <= 3 "
              f"{'MET' if ratio <= 3 else 'NOT met'}")
    http_rps, grpc_rps = rps_of(rows, HARNESS_HTTP), rps_of(rows, HARNESS_GRPC)
    if http_rps and grpc_rps is not None:
        ratio = grpc_rps / http_rps
        met = "MET" if ratio >= GRPC_GOAL else "NOT met"
        print(f"ratio harness grpc/http: {ratio:.2f}: goal >= {GRPC_GOAL} {met}")
    for now, before in ((HARNESS_HTTP, HTTP_BEFORE), (HARNESS_GRPC, GRPC_BEFORE)):
        now_rps, before_rps = rps_of(rows, now), rps_of(rows, before)
        if now_rps and before_rps:
            print(f"ratio {now}/{before}: {now_rps / before_rps:.2f}")


def print_machine() -> None:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(
        f"machine: {os.cpu_count()} logical cores ({psutil.cpu_count(logical=False)} physical), "
        f"{affinity} usable by this process; load average {os.getloadavg()[0]:.2f}"
    )


# ---------------------------------------------------------------- main


def start_server(workdir: Path, instances: int) -> TritonStack:
    spec = TritonSpec.model_validate({"kind": "triton", "model": MODEL, "instances": instances})
    stack = TritonStack(spec, workdir / "triton")
    stack.start()
    stack.wait_ready(spec.startup_timeout)
    return stack


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=32, help="concurrency of every tool")
    parser.add_argument("--seconds", type=int, default=15, help="load duration per tool")
    parser.add_argument("--rounds", type=int, default=1, help="run the whole comparison N times")
    parser.add_argument("--instances", type=int, default=2, help="Triton model instances")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--tools", type=lambda v: v.split(","), default=DEFAULT_TOOLS,
                        help=f"comma-separated, of {','.join(TOOL_KEYS)} "
                        f"(default: {','.join(DEFAULT_TOOLS)})")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a copy of the tree before a change: the *-baseline tools run the harness "
                        "from it, in the same run as the current one")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record every Python client under py-spy into this folder "
                        "(collapsed stacks; summarise with bench/pyspy_top.py); slows the clients")
    return parser.parse_args(argv)


def benchmark(args: argparse.Namespace, workdir: Path) -> None:
    have_wrk = ensure_wrk()
    if not have_wrk:
        print("wrk is unavailable: its column is skipped")
    stack = start_server(workdir, args.instances)
    try:
        assert stack.process is not None and stack.endpoints.http and stack.endpoints.grpc
        endpoints = stack.endpoints
        print(f"triton: pid {stack.process.pid}, {endpoints.http}, grpc {endpoints.grpc}")
        settings = Settings(
            args.connections, args.seconds, workdir, stack.endpoints.http,
            stack.endpoints.grpc, infer_body(MODEL),
        )
        for index in range(args.rounds):
            print(f"round {index + 1}/{args.rounds}", flush=True)
            rows = run_round(settings, stack.process.pid, have_wrk, args.tools)
            title = f"round {index + 1}: {args.connections} connections, {args.seconds}s each"
            print_table(rows, title)
    finally:
        report = stack.stop()
        if report.leaks:
            print(f"triton stop: {'; '.join(report.leaks)}")


def main(argv: list[str] | None = None) -> int:
    global PROFILE_DIR, BASELINE
    args = parse_args(argv)
    BASELINE = args.baseline.resolve() if args.baseline is not None else None
    if BASELINE is None and any(key.endswith("-baseline") for key in args.tools):
        print("the *-baseline tools need --baseline DIR", file=sys.stderr)
        return 2
    unknown = [key for key in args.tools if key not in TOOL_KEYS]
    if unknown:
        print(f"unknown tool(s) {unknown}; choose from {','.join(TOOL_KEYS)}", file=sys.stderr)
        return 2
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR = args.profile.resolve()
    print_machine()
    workdir = Path(tempfile.mkdtemp(prefix="bench-loadgen-"))
    try:
        benchmark(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_machine()
    return 0


if __name__ == "__main__":
    sys.exit(main())
