"""Soak benchmark: the harness's own RSS over a long soak at as many requests/s as the machine gives.

It runs `harness soak` on a quickstart-style scenario (a real Triton identity model from the
nvidia-pytriton wheel, closed model, no think time) for `--minutes`, samples the harness
process's RSS from outside every `--every` seconds (psutil, the whole process: Locust, gevent,
the journal writer, everything), and prints the RSS over time: at the start of the load, after
the warm-up, at the end, the maximum and the least-squares slope after the warm-up in MB/hour,
with the requests per second the soak sustained (from its soak.json).

    python bench/soak_rss.py --minutes 10
    python bench/soak_rss.py --minutes 5 --users 32 --cycle 30s --keep runs-bench

A flat harness must show a slope near zero once warmed up: HDR histograms and per-second records
only, one journal file per cycle, per-cycle state reset. Traffic goes to 127.0.0.1 only; the
only processes this script ends are the ones it started.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from harness.durations import format_duration, parse_duration
from harness.soak.trend import slope

SCENARIO = """\
name: bench-soak-rss
description: soak_rss benchmark (quickstart style, as fast as the machine goes)
stack: {{kind: triton, model: identity, instances: 2}}
load: {{user: triton_http, users: {users}, duration: {cycle}}}
slo:
  - {{metric: error_rate, max: 0.001}}
"""
MIB = 1024 * 1024


def main() -> int:
    args = _parse()
    workdir = Path(tempfile.mkdtemp(prefix="soak-rss-"))
    runs = Path(args.keep) if args.keep else workdir / "runs"
    scenario = workdir / "bench-soak-rss.yaml"
    scenario.write_text(SCENARIO.format(users=args.users, cycle=args.cycle), encoding="utf-8")
    command = [sys.executable, "-m", "harness.cli", "soak", str(scenario), "--for", f"{args.minutes}m",
               "--runs-dir", str(runs), "--no-progress", "--warmup", f"{args.warmup_minutes}m"]
    print("running:", " ".join(command), flush=True)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        samples = _sample(proc, args.every)
    finally:
        if proc.poll() is None:  # this script was interrupted: stop the soak it started
            proc.terminate()
            proc.wait(120)
    output = proc.stdout.read() if proc.stdout else ""
    print(output.strip())
    run_dir = next((Path(line.split(": ", 1)[1].strip()) for line in output.splitlines()
                    if line.startswith("run folder: ")), None)
    _report(samples, run_dir, args)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if proc.returncode == 0 else 1


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length (default 10)")
    parser.add_argument("--warmup-minutes", type=float, default=1.0,
                        help="RSS before this is warm-up, left out of the slope (default 1)")
    parser.add_argument("--cycle", default="60s", help="the scenario's load duration: one cycle (60s)")
    parser.add_argument("--users", type=int, default=16, help="closed-model users (default 16)")
    parser.add_argument("--every", type=float, default=5.0, help="RSS sampling interval in s (default 5)")
    parser.add_argument("--keep", metavar="RUNS_DIR", help="keep the run folder under RUNS_DIR")
    args = parser.parse_args()
    parse_duration(args.cycle)  # a bad value fails here, before anything starts
    return args


def _sample(proc: subprocess.Popen[str], every: float) -> list[tuple[float, float]]:
    """(seconds since start, RSS MiB) of the harness process until it exits."""
    harness = psutil.Process(proc.pid)
    started = time.monotonic()
    samples = []
    while proc.poll() is None:
        try:
            samples.append((time.monotonic() - started, harness.memory_info().rss / MIB))
        except psutil.Error:
            break
        time.sleep(every)
    return samples


def _report(samples: list[tuple[float, float]], run_dir: Path | None, args: argparse.Namespace) -> None:
    found = run_dir is not None and (run_dir / "soak.json").is_file()
    soak = json.loads((run_dir / "soak.json").read_text()) if run_dir is not None and found else {}
    load_start = _load_start(run_dir)
    warm = load_start + args.warmup_minutes * 60
    during = [(t, mb) for t, mb in samples if t >= load_start]
    settled = [(t, mb) for t, mb in during if t >= warm]
    print("\nharness RSS over time (MiB, sampled from outside):")
    step = max(1, len(samples) // 24)
    for t, mb in samples[::step]:
        print(f"  {format_duration(t):>7}  {mb:8.1f}")
    print()
    if during:
        print(f"at the load's start : {during[0][1]:8.1f} MiB")
    if settled:
        print(f"after the warm-up   : {settled[0][1]:8.1f} MiB  ({args.warmup_minutes:g} min into the load)")
        print(f"at the end          : {settled[-1][1]:8.1f} MiB")
        print(f"largest             : {max(mb for _, mb in settled):8.1f} MiB")
        per_s = slope(settled)
        print(f"slope after warm-up : {per_s * 3600 if per_s is not None else float('nan'):+8.2f} MB/hour "
              f"({len(settled)} samples, least squares)")
    totals = soak.get("totals", {})
    if totals:
        rates = [c["throughput_rps"] for c in soak.get("cycles", []) if c.get("throughput_rps")]
        print(f"requests/s          : {totals['throughput_rps']} over {totals['duration_s']:.0f} s "
              f"({totals['requests']} requests, {totals['errors']} failed; per cycle {min(rates):.0f} to "
              f"{max(rates):.0f})")
        harness = soak.get("harness_rss", {})
        print(f"harness's own record: slope {harness.get('slope_mb_per_h')} MB/hour over "
              f"{harness.get('samples')} samples (soak.json); verdict {soak.get('verdict')}")


def _load_start(run_dir: Path | None) -> float:
    """Seconds from the harness's start to the load's (the main journal's `load_started`)."""
    if run_dir is None:
        return 0.0
    from harness.journal import read_journal

    for record in read_journal(run_dir / "journal.jsonl"):
        if record.get("event") == "load_started":
            return float(record["t"])
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
