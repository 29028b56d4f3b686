"""NVIDIA AIPerf's open-model pacing against the harness's, at one fixed arrival rate, on one Triton.

One real Triton identity model is started (bench/loadgen.py:start_server). AIPerf, installed in
its own virtual environment (`--aiperf-venv`; `python3 -m venv V && V/bin/pip install aiperf`),
drives it with constant arrivals (`--request-rate R --arrival-pattern constant`) through its
`template` endpoint, which posts the harness's own KServe v2 JSON body (loadgen.infer_body) to
`/v2/models/identity/infer`; then `harness run` drives the same server at the same rate with
bench/send_lateness.py's probe. Both send-lateness figures are printed side by side.

    python bench/aiperf_pacer.py --aiperf-venv /tmp/aiperf-venv --rate 1000 --seconds 6

What AIPerf reports itself: the achieved `request_throughput` and `credit_to_start_latency`
(request_start_ns - credit_issued_ns: the hop from its rate loop to a worker starting the
request). It does not record the intended send time of a request in request-rate mode, so this
script rebuilds it: with constant arrivals AIPerf's rate loop targets phase start + (n + 1)/R
for credit n (`session_num` in profile_export.jsonl; the phase start is `start_time` in
profile_export_aiperf.json, microseconds), so `issue` lateness is credit_issued_ns minus that
and `send` lateness is request_start_ns minus that. `send` is the one to compare with the
harness's (the time its user starts the request minus the slot). AIPerf re-anchors its schedule
to "now" once it is more than 10 ms behind (AIPERF_TIMING_MAX_CATCHUP_SECONDS), dropping the
backlog rather than sending it late; against the fixed schedule that shows as growing lateness
and an achieved rate below the target.

AIPerf needs a tokenizer even for a fixed body; a tiny word-level one is written locally (no
network). Figures are from one run on a shared machine. Traffic goes to 127.0.0.1 only; the only
processes this script ends are its own children.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import MODEL, infer_body, start_server  # noqa: E402
from send_lateness import LATE_AFTER_MS, run_one  # noqa: E402

MAKE_TOKENIZER = """\
import sys
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
vocab = {"[UNK]": 0, **{chr(c): c - 31 for c in range(32, 127)}}
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(sys.argv[1])
"""


def new_hist() -> HdrHistogram:
    return HdrHistogram(1, 3_600_000_000, 3)


def aiperf_argv(venv: Path, url: str, folder: Path, args: argparse.Namespace) -> list[str]:
    argv = [str(venv / "bin" / "aiperf"), "profile", "--model", MODEL, "--url", url,
            "--endpoint-type", "template", "--custom-endpoint", f"/v2/models/{MODEL}/infer",
            "--extra-inputs", f"payload_template:{folder / 'body.json'}",
            "--extra-inputs", "response_field:outputs[0].name",
            "--tokenizer", str(folder / "tokenizer"),
            "--request-rate", str(args.rate), "--arrival-pattern", "constant",
            "--benchmark-duration", str(args.seconds), "--benchmark-grace-period", "10",
            "--ui-type", "none", "--no-server-metrics", "--export-level", "records",
            "--output-artifact-dir", str(folder / "artifacts")]
    if args.aiperf_workers:
        argv += ["--workers-max", str(args.aiperf_workers)]
    return argv


def run_aiperf(venv: Path, url: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    folder = workdir / "aiperf"
    folder.mkdir()
    (folder / "body.json").write_bytes(infer_body(MODEL))
    # a local path is loaded directly only when HF offline mode is off (aiperf 0.13)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-c", MAKE_TOKENIZER, str(folder / "tokenizer")], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    argv = aiperf_argv(venv, url, folder, args)
    with (folder / "aiperf.out").open("wb") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
                              timeout=args.seconds + 240)
    artifacts = folder / "artifacts"
    summary_path = artifacts / "profile_export_aiperf.json"
    if proc.returncode != 0 or not summary_path.exists():
        tail = (folder / "aiperf.out").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"aiperf exited {proc.returncode}: {' '.join(argv)}\n{tail}")
    summary = json.loads(summary_path.read_text())
    records = [json.loads(line)["metadata"] for line in
               (artifacts / "profile_export.jsonl").read_text().splitlines() if line.strip()]
    # naive local time, as aiperf writes it (datetime.fromtimestamp of the phase's started_at_ns)
    start_ns = datetime.datetime.fromisoformat(summary["start_time"]).timestamp() * 1e9
    interval_ns = 1e9 / args.rate
    issue, send = new_hist(), new_hist()
    late = 0
    for meta in records:
        scheduled = start_ns + (int(meta["session_num"]) + 1) * interval_ns
        send_ns = meta["request_start_ns"] - scheduled
        late += send_ns > LATE_AFTER_MS * 1e6
        send.record_value(max(1, int(send_ns / 1e3)))
        if meta.get("credit_issued_ns") is not None:
            issue.record_value(max(1, int((meta["credit_issued_ns"] - scheduled) / 1e3)))
    log = artifacts / "logs" / "aiperf.log"
    log_text = log.read_text(errors="replace") if log.exists() else ""
    pacers = ("timerfd", "dedicated sleep thread", "event-loop timers")
    pacer = next((p for p in pacers if p in log_text), "?")
    return {"summary": summary, "records": len(records), "issue": issue, "send": send, "late": late,
            "pacer": pacer, "argv": argv, "version": summary.get("aiperf_version", "?")}


def stat(summary: dict[str, Any], key: str, field: str) -> float | None:
    value = summary.get(key, {}).get(field)
    return float(value) if value is not None else None


def fmt(value: float | None, width: int = 8, digits: int = 3) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def hist_ms(hist: HdrHistogram) -> tuple[float, float, float]:
    return (hist.get_value_at_percentile(50) / 1000, hist.get_value_at_percentile(99) / 1000,
            hist.get_max_value() / 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--aiperf-venv", type=Path, required=True, help="virtual environment with aiperf")
    parser.add_argument("--rate", type=int, default=1000, help="arrivals/s")
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--workers", default="0",
                        help="harness load worker counts, comma-separated (0: local)")
    parser.add_argument("--users", type=int, default=64,
                        help="harness: most requests in flight (at least rate/50)")
    parser.add_argument("--aiperf-workers", type=int, default=0, help="aiperf --workers-max (0: its default)")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--no-harness", action="store_true", help="run AIPerf only")
    args = parser.parse_args(argv)
    venv = args.aiperf_venv.resolve()
    if not (venv / "bin" / "aiperf").exists():
        parser.error(f"no aiperf in {venv}/bin")
    workdir = Path(tempfile.mkdtemp(prefix="bench-aiperf-"))
    stack = start_server(workdir, args.instances)
    harness_rows: list[tuple[int, dict[str, Any]]] = []
    try:
        print(f"  aiperf at {args.rate}/s, {args.seconds}s ...", flush=True)
        url = stack.endpoints.http
        if not url:
            raise RuntimeError("the Triton stack has no HTTP endpoint")
        ai = run_aiperf(venv, url, args, workdir)
        if not args.no_harness:
            for workers in (int(w) for w in args.workers.split(",")):
                print(f"  harness at {args.rate}/s, workers {workers}, {args.seconds}s ...", flush=True)
                harness_rows.append((workers, run_one(stack, args.rate, workers, args, workdir)))
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    s = ai["summary"]
    print(f"\naiperf {ai['version']} (pacer: {ai['pacer']}): {' '.join(ai['argv'])}")
    print(f"  its own figures: request_throughput {fmt(stat(s, 'request_throughput', 'avg'), 0, 1)} req/s, "
          f"request_count {fmt(stat(s, 'request_count', 'avg'), 0, 0)}, "
          f"errors {fmt(stat(s, 'request_error_rate', 'avg'), 0, 2)} %, "
          f"credit_to_start_latency p50 {fmt(stat(s, 'credit_to_start_latency', 'p50'), 0)} "
          f"p99 {fmt(stat(s, 'credit_to_start_latency', 'p99'), 0)} "
          f"max {fmt(stat(s, 'credit_to_start_latency', 'max'), 0)} ms")
    print(f"\nsend lateness (actual - intended send) at {args.rate}/s, {args.seconds}s; "
          f"late = later than {LATE_AFTER_MS:g} ms; one run each")
    print(f"{'client':<26} {'sent':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'late':>6} {'req/s':>7}")
    rps = stat(s, "request_throughput", "avg") or 0.0
    p50, p99, top = hist_ms(ai["issue"])
    print(f"{'aiperf credit issue':<26} {ai['records']:7d} {p50:8.3f} {p99:8.3f} {top:8.3f} {'':>6} {'':>7}")
    p50, p99, top = hist_ms(ai["send"])
    print(f"{'aiperf request start':<26} {ai['records']:7d} {p50:8.3f} {p99:8.3f} {top:8.3f} "
          f"{ai['late']:6d} {rps:7.0f}")
    for workers, r in harness_rows:
        p50, p99, top = hist_ms(r["hist"])
        harness_rps = float(r["totals"].get("throughput_rps") or 0.0)
        print(f"{f'harness workers {workers}':<26} {r['requests']:7d} {p50:8.3f} {p99:8.3f} {top:8.3f} "
              f"{r['late_probe']:6d} {harness_rps:7.0f}")
    print("aiperf's intended send is rebuilt (phase start + (n+1)/rate, constant arrivals); "
          "it records only the credit issue and request start times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
