"""What span accounting costs the load: harness HTTP throughput at trace rate 1 against tracing off.

Each variant is one `harness run` of the same closed-model scenario against a real Triton
identity model that the harness starts (its trace settings are fixed at start, so every variant
gets its own server with the same model, instances and port layout):

- `off`: no tracing;
- `rate1`: OpenTelemetry tracing of every request to the harness's own collector, which now
  runs in a process of its own (harness/tracing/receiver_process.py);
- `rate1-discard`: the same tracing, but Triton exports to a sink this script starts (its own
  process) that answers every export 200 and reads nothing of it: Triton's own cost of tracing
  and exporting every request, without any accounting. `rate1` over `rate1-discard` is then what
  the accounting itself costs the load; `rate1-discard` over `off` is the server's share, which
  no receiver can change;
- `rate1-inproc` (with `--baseline DIR`): the same with the code in DIR (e.g. a copy of the tree
  before the change, whose receiver ran inside the load process), put first on PYTHONPATH.

It prints requests/s, each variant's ratio to `off`, the CPU per request of the harness process
itself (`load`: Locust, the journal and, in the baseline, the receiver), of the receiver's own
process and of the server (sampled from outside with psutil), and the span accounting of the traced runs
from summary.json (spans expected per kind, received, lost, explained by dropped-span warnings
or refusals): the accounting must stay exact while it gets cheaper.

    python bench/otlp_receiver.py --seconds 8 --users 32
    python bench/otlp_receiver.py --seconds 8 --baseline /tmp/perf-baseline

Traffic goes to 127.0.0.1 only; the harness ends the servers it starts, and this script ends
only its own children.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

GOAL = 0.90  # rate-1 throughput over tracing-off throughput

# The discard sink: HTTP/1.1 keep-alive (as Triton's exporter connects), every POST read and
# answered 200 with an empty OTLP/JSON response; nothing decoded, nothing counted.
DISCARD_SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass(frozen=True)
class Variant:
    name: str
    trace: dict[str, Any] | None
    pythonpath: Path | None = None


def scenario(users: int, seconds: int, trace: dict[str, Any] | None) -> dict[str, Any]:
    stack: dict[str, Any] = {"kind": "triton", "model": "identity", "instances": 2}
    if trace is not None:
        stack["trace"] = trace
    return {"name": "bench-otlp", "stack": stack, "slo": [],
            "load": {"user": "triton_http", "users": users, "duration": f"{seconds}s"}}


def run_variant(variant: Variant, users: int, seconds: int, workdir: Path) -> dict[str, Any]:
    folder = workdir / variant.name
    folder.mkdir()
    path = folder / "scenario.yaml"
    path.write_text(json.dumps(scenario(users, seconds, variant.trace)))  # JSON is YAML
    env = dict(os.environ)
    if variant.pythonpath is not None:
        env["PYTHONPATH"] = f"{variant.pythonpath}{os.pathsep}{env.get('PYTHONPATH', '')}"
    argv = [sys.executable, "-m", "harness.cli", "run", str(path), "--runs-dir", str(folder / "runs"),
            "--no-progress"]
    with (folder / "harness.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
        cpu = watch_cpu(proc, seconds + 240)
        code = proc.returncode
    runs = sorted(p for p in (folder / "runs").iterdir() if p.is_dir())
    if not runs:
        raise RuntimeError(f"{variant.name}: no run folder (exit {code}); see {folder / 'harness.log'}")
    summary: dict[str, Any] = json.loads((runs[-1] / "summary.json").read_text())
    summary["_exit"] = code
    summary["_cpu"] = cpu
    return summary


class DiscardSink:
    """The sink of `rate1-discard`, in a process of its own; `cpu()` is what it has used."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", DISCARD_SINK], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}/v1/traces"

    def cpu(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self.proc.terminate()  # our own child, by its handle
        self.proc.wait(10)


def role_of(proc: psutil.Process, root: int) -> str:
    if proc.pid == root:
        return "load"
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    return "receiver" if "receiver_process" in cmdline else "server"


def watch_cpu(proc: "subprocess.Popen[bytes]", timeout: float) -> dict[str, float]:
    """CPU seconds of the harness process itself, its receiver child and the server tree, sampled
    every 0.2 s until it exits (the last sample before each process ended)."""
    last: dict[int, tuple[str, float]] = {}
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()  # our own child, by its handle
            proc.wait()
            raise RuntimeError("harness ran past its time")
        try:
            root = psutil.Process(proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            procs = []
        for child in procs:
            try:
                times = child.cpu_times()
                last[child.pid] = (last[child.pid][0] if child.pid in last else role_of(child, proc.pid),
                                   times.user + times.system)
            except psutil.Error:
                continue
        time.sleep(0.2)
    totals: dict[str, float] = {}
    for role, seconds in last.values():
        totals[role] = totals.get(role, 0.0) + seconds
    return totals


def accounting_line(summary: dict[str, Any]) -> str:
    spans = (summary.get("tracing") or {}).get("spans")
    if not spans:
        return "no span accounting in summary.json"
    return (f"server requests {spans['server_requests']} ({spans['requests_from']}), expected/kind "
            f"{spans['expected_per_kind']}, received {spans['received']}, lost {spans['lost_total']}, "
            f"dropped-span warnings {spans['dropped_span_warnings']}, "
            f"refused {spans['rejected_by_collector']}, unexplained {spans['unexplained_loss']}, "
            f"exports {spans['exports']}")


def crash_of(summary: dict[str, Any]) -> str | None:
    """How the server went down during the run, if it did (its entry process exited unplanned).

    At trace rate 1 and a high request rate Triton 2.51 can die of the Signal 11 this project
    reproduces (seeds/): a variant whose server crashed measures the crash, not a cost.
    """
    for event in summary.get("events", []):
        lost_entry = event.get("loss") == "entry" and not event.get("planned")
        if event.get("event") == "process_exited" and lost_entry:
            return f"{event.get('role')} {event.get('ended', 'exited')} at t={event.get('t')}s"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a tree whose receiver runs in the load process, for a third variant")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    trace = {"mode": "opentelemetry", "level": "TIMESTAMPS", "rate": 1, "collector": "harness",
             "bsp_max_queue_size": 2048, "bsp_max_export_batch_size": 512}
    sink = DiscardSink()
    variants = [Variant("off", None), Variant("rate1-discard", {**trace, "collector": sink.url}),
                Variant("rate1", trace)]
    if args.baseline is not None:
        variants.append(Variant("rate1-inproc", trace, args.baseline.resolve()))
    workdir = Path(tempfile.mkdtemp(prefix="bench-otlp-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        for variant in variants:
            print(f"  {variant.name}: {args.users} users, {args.seconds}s ...", flush=True)
            sink_before = sink.cpu()
            results[variant.name] = run_variant(variant, args.users, args.seconds, workdir)
            if variant.name == "rate1-discard":
                results[variant.name]["_cpu"]["receiver"] = sink.cpu() - sink_before
    finally:
        sink.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    off = float(results["off"]["totals"]["throughput_rps"] or 0.0)
    print(f"\n{'variant':<14} {'req/s':>8} {'errors':>7} {'x off':>6} {'load':>8} {'receiver':>8} "
          f"{'server':>8}  (one run each, same machine, one server per variant)")
    print(f"{'':<14} {'':>8} {'':>7} {'':>6} {'CPU us/r':>8} {'CPU us/r':>8} {'CPU us/r':>8}")
    for name, summary in results.items():
        totals = summary["totals"]
        rps = float(totals["throughput_rps"] or 0.0)
        ratio = f"{rps / off:6.2f}" if off else "   n/a"
        requests = max(int(totals["requests"]), 1)
        cpu = {role: f"{summary['_cpu'].get(role, 0.0) * 1e6 / requests:8.1f}"
               for role in ("load", "receiver", "server")}
        print(f"{name:<14} {rps:8.0f} {totals['errors']:7d} {ratio} {cpu['load']} {cpu['receiver']} "
              f"{cpu['server']}")
        if name not in ("off", "rate1-discard"):
            print(f"  spans: {accounting_line(summary)}")
        crash = crash_of(summary)
        if crash:
            print(f"  the server CRASHED: {crash}; errors {totals.get('errors_by_kind')}")
    crashed = [name for name, summary in results.items() if crash_of(summary)]
    if crashed:
        print(f"no ratio: the server crashed in {', '.join(crashed)} (Triton's Signal 11 under tracing at "
              f"this rate); run again, or with fewer --users")
        return 0
    rate1, discard = (float(results[name]["totals"]["throughput_rps"] or 0.0)
                      for name in ("rate1", "rate1-discard"))
    if off:
        over_off = rate1 / off
        print(f"ratio rate1/off: {over_off:.2f}: goal >= {GOAL} {'MET' if over_off >= GOAL else 'NOT met'}")
        print(f"  of which the server's tracing and export (rate1-discard/off): {discard / off:.2f}")
    if discard:
        accounting = rate1 / discard
        print(f"  and the harness's span accounting (rate1/rate1-discard): {accounting:.2f}: "
              f"within {GOAL} {'yes' if accounting >= GOAL else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
