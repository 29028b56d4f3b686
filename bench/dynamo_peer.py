"""Peer check: the harness's TTFT and inter-token latency against AIPerf's, same load, same stack.

One real Dynamo (frontend + mocker workers) is started through `harness.dynamo.stack`, and both
tools drive it in turn, alternating, with the same concurrency, the same streamed chat request
(3 prompt tokens, 32 output tokens via the mocker's replay annotation) and about the same number
of requests. The script prints both tools' percentiles and their ratio, and writes them as JSON.

    python bench/dynamo_peer.py --aiperf /path/to/venv/bin/aiperf --concurrency 4 --requests 600

AIPerf (PyPI `aiperf`, 0.13.0 seen) is heavy, so it lives in its own virtual environment and stays
out of CI. Offline, it loads a tokenizer only from a Hugging Face cache layout, so the script lays
the harness's tiny model folder out as `HF_HOME/hub/models--harness--tiny-mock/snapshots/<hash>`.
Traffic goes to 127.0.0.1 only; the only processes ended are the ones started here.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.dynamo.spec import DynamoSpec
from harness.dynamo.stack import REPLAY_KEY, DynamoStack

ROOT = Path(__file__).resolve().parent.parent
MODEL = "tiny-mock"
TOKENIZER = "harness/tiny-mock"
SNAPSHOT = "0" * 40
OUTPUT_TOKENS = 32
EXTRA = {"nvext": {"annotations": [f"output_replay_id:{REPLAY_KEY}"]}}
STATS = ("avg", "p50", "p90", "p99")
# How far harness/aiperf may be from 1 and still count as agreement. Medians: both tools time the
# same chunks on the same loopback socket, so they differ by client overhead only (measured
# within 8%); 20% leaves room for the noise of a shared 2-core machine. Means carry the tails,
# which two clients descheduled at different moments on a contended machine do not share.
# p90/p99 are printed but not judged: on such a machine they measure the client's scheduling.
TOLERANCE = {"p50": 0.20, "avg": 0.30}


def hf_cache(model_folder: Path, home: Path) -> Path:
    """The model folder as a Hugging Face cache entry named `harness/tiny-mock` (AIPerf offline)."""
    entry = home / "hub" / "models--harness--tiny-mock"
    snapshot = entry / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True, exist_ok=True)
    for item in model_folder.iterdir():
        shutil.copy(item, snapshot / item.name)
    (entry / "refs").mkdir(exist_ok=True)
    (entry / "refs" / "main").write_text(SNAPSHOT, encoding="utf-8")
    return home


def run_aiperf(
    aiperf: str, url: str, concurrency: int, requests: int, work: Path, hf_home: Path
) -> dict[str, Any]:
    out = work / "aiperf"
    argv = [
        aiperf, "profile", "--model", MODEL, "--url", url, "--endpoint-type", "chat", "--streaming",
        "--concurrency", str(concurrency), "--request-count", str(requests),
        "--tokenizer", TOKENIZER, "--extra-inputs", json.dumps(EXTRA),
        "--synthetic-input-tokens-mean", "3", "--synthetic-input-tokens-stddev", "0",
        "--output-tokens-mean", str(OUTPUT_TOKENS), "--output-tokens-stddev", "0",
        "--warmup-request-count", str(concurrency * 4), "--ui-type", "none", "--artifact-dir", str(out),
    ]
    env = dict(os.environ, HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"aiperf failed ({result.returncode}): {result.stderr[-2000:]}")
    export = next(out.rglob("profile_export_aiperf.json"))
    data = json.loads(export.read_text())
    return {
        "ttft_ms": _aiperf_stats(data, "time_to_first_token"),
        "itl_ms": _aiperf_stats(data, "inter_token_latency"),
        "requests": _aiperf_count(data),
        "seconds": round(time.monotonic() - started, 1),
    }


def _aiperf_stats(data: dict[str, Any], name: str) -> dict[str, float]:
    metric = data.get(name) or next(m for m in data.get("records", []) if m.get("tag") == name)
    return {stat: round(float(metric[stat]), 3) for stat in STATS}


def _aiperf_count(data: dict[str, Any]) -> Any:
    count = data.get("request_count")
    return count.get("avg") if isinstance(count, dict) else count


def run_harness(url: str, concurrency: int, seconds: float, work: Path) -> dict[str, Any]:
    scenario = work / "peer.yaml"
    openai = {"api": "chat", "stream": True, "max_tokens": OUTPUT_TOKENS, "prompt": "hello world the",
              "extra_body": EXTRA}
    scenario.write_text(
        "name: peer\n"
        f"stack: {{kind: external, url: '{url}', model: {MODEL}, ready_path: /health}}\n"
        f"load: {{user: openai, users: {concurrency}, duration: {seconds:g}s, "
        f"openai: {json.dumps(openai)}}}\n",
        encoding="utf-8",
    )
    runs = work / "runs"
    cmd = [sys.executable, "-m", "harness.cli", "run", str(scenario), "--runs-dir", str(runs),
           "--no-progress"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=600)
    run_dir = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    summary = json.loads((run_dir / "summary.json").read_text())
    shutil.rmtree(runs)
    llm = summary["llm"]

    def pick(name: str) -> dict[str, float]:
        return {"avg": llm[name]["mean"], **{s: llm[name][s] for s in ("p50", "p90", "p99")}}

    return {"ttft_ms": pick("ttft_ms"), "itl_ms": pick("itl_ms"), "requests": summary["totals"]["requests"],
            "errors": summary["totals"]["errors"]}


def compare(harness: dict[str, Any], aiperf: dict[str, Any]) -> dict[str, dict[str, float]]:
    """harness / aiperf, per metric and statistic."""
    return {
        name: {stat: round(harness[name][stat] / aiperf[name][stat], 3) for stat in STATS}
        for name in ("ttft_ms", "itl_ms")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aiperf", default=shutil.which("aiperf"), help="the aiperf executable")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--requests", type=int, default=600, help="requests per AIPerf round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--speedup", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("bench-dynamo-peer.json"))
    args = parser.parse_args()
    if not args.aiperf:
        raise SystemExit("aiperf not found: pip install aiperf (in its own venv) and pass --aiperf")
    work = Path(tempfile.mkdtemp(prefix="dynamo-peer-"))
    spec = DynamoSpec(kind="dynamo", workers=2, discovery="file", speedup_ratio=args.speedup,
                      output_tokens=OUTPUT_TOKENS)
    stack = DynamoStack(spec, work / "stack")
    stack.start()
    results: list[dict[str, Any]] = []
    try:
        stack.wait_ready(90)
        url = str(stack.endpoints.http)
        hf_home = hf_cache(work / "stack" / "model", work / "hf")
        for round_ in range(args.rounds):
            folder = work / f"r{round_}"
            aiperf = run_aiperf(args.aiperf, url, args.concurrency, args.requests, folder, hf_home)
            # About as many requests as AIPerf sent, at the rate AIPerf achieved.
            seconds = max(3.0, round(aiperf["seconds"] * 0.6))
            harness = run_harness(url, args.concurrency, seconds, work)
            ratio = compare(harness, aiperf)
            agree = {f"{name}.{stat}": abs(ratio[name][stat] - 1) <= limit
                     for name in ratio for stat, limit in TOLERANCE.items()}
            results.append({"round": round_, "harness": harness, "aiperf": aiperf,
                            "harness_over_aiperf": ratio, "within_tolerance": agree})
            print(json.dumps(results[-1]), flush=True)
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps({"speedup": args.speedup, "concurrency": args.concurrency,
                                    "results": results}, indent=2), encoding="utf-8")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
