"""Scrape profiles: the stack says what its /metrics holds, the core scraper names no server.

The vLLM text below is what vLLM's V1 `PrometheusStatLogger` exposes through prometheus_client
(counters as `_total` with a `_created` gauge beside them, histograms with buckets, labels
`engine` and `model_name`), with fewer buckets than the real thing on all but TTFT. Scrape B is
2 s after scrape A: 25 requests finished (20 stop, 4 length, 1 abort), 3 preemptions.
"""

import ast
import json
from pathlib import Path
from string import Template
from typing import Any

import gevent
import pytest

from harness.analysis import RunData
from harness.containers.stack import ContainerStack
from harness.observers.prometheus import PrometheusScraper, Snapshot, derive, parse_metrics, parse_scrape
from harness.observers.scrape_profile import (
    GENERIC_CHARTS,
    GENERIC_PROFILE,
    MetricChart,
    Ratio,
    ScrapeProfile,
    selected,
)
from harness.stacks.base import Stack
from harness.triton.metrics_profile import TRITON_PROFILE
from harness.triton.stack import TritonStack
from harness.vllm.metrics_profile import VLLM_PROFILE
from reports.build import write_reports
from reports.html import _server_charts
from tests.reportpage import time_charts
from tests.unit.helpers import synthetic_records
from tests.unit.observer_helpers import FakeStack, context, records
from tests.unit.test_verdict_and_reports import scenario

VLLM_TEXT = Template("""\
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} $gc
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny-llama"} $running
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny-llama"} $waiting
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny-llama"} $kv
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",engine="0",gpu_memory_utilization="0.9"} 1.0
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="tiny-llama"} $queries
# HELP vllm:prefix_cache_queries_created Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_created gauge
vllm:prefix_cache_queries_created{engine="0",model_name="tiny-llama"} 1.7645e+09
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="tiny-llama"} $hits
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="tiny-llama"} $preemptions
# HELP vllm:num_preemptions_created Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_created gauge
vllm:num_preemptions_created{engine="0",model_name="tiny-llama"} 1.7645e+09
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny-llama"} $prompt
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="tiny-llama"} $generation
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="tiny-llama"} $stop
vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny-llama"} $length
vllm:request_success_total{engine="0",finished_reason="abort",model_name="tiny-llama"} $abort
# HELP vllm:iteration_tokens_total Histogram of number of tokens per engine_step.
# TYPE vllm:iteration_tokens_total histogram
vllm:iteration_tokens_total_bucket{engine="0",le="1.0",model_name="tiny-llama"} 3.0
vllm:iteration_tokens_total_bucket{engine="0",le="+Inf",model_name="tiny-llama"} $iterations
vllm:iteration_tokens_total_count{engine="0",model_name="tiny-llama"} $iterations
vllm:iteration_tokens_total_sum{engine="0",model_name="tiny-llama"} $iteration_tokens
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="tiny-llama"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.005",model_name="tiny-llama"} 0.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="tiny-llama"} 4.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.02",model_name="tiny-llama"} 30.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.04",model_name="tiny-llama"} 46.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.06",model_name="tiny-llama"} 48.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.08",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.25",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.75",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="2.5",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="5.0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="7.5",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="10.0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="20.0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="40.0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="80.0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="160.0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="640.0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="2560.0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_count{engine="0",model_name="tiny-llama"} $ttft_count
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny-llama"} $ttft_sum
# HELP vllm:time_to_first_token_seconds_created Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds_created gauge
vllm:time_to_first_token_seconds_created{engine="0",model_name="tiny-llama"} 1.7645e+09
# HELP vllm:inter_token_latency_seconds Histogram of inter-token latency in seconds.
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.01",model_name="tiny-llama"} 2000.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.025",model_name="tiny-llama"} $itl_count
vllm:inter_token_latency_seconds_bucket{engine="0",le="+Inf",model_name="tiny-llama"} $itl_count
vllm:inter_token_latency_seconds_count{engine="0",model_name="tiny-llama"} $itl_count
vllm:inter_token_latency_seconds_sum{engine="0",model_name="tiny-llama"} $itl_sum
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_name="tiny-llama"} 2.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="2.0",model_name="tiny-llama"} $requests
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="tiny-llama"} $requests
vllm:e2e_request_latency_seconds_count{engine="0",model_name="tiny-llama"} $requests
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="tiny-llama"} $e2e_sum
# HELP vllm:request_queue_time_seconds Histogram of time spent in WAITING phase for request.
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{engine="0",le="0.3",model_name="tiny-llama"} $requests
vllm:request_queue_time_seconds_bucket{engine="0",le="+Inf",model_name="tiny-llama"} $requests
vllm:request_queue_time_seconds_count{engine="0",model_name="tiny-llama"} $requests
vllm:request_queue_time_seconds_sum{engine="0",model_name="tiny-llama"} $queue_sum
# HELP vllm:request_prefill_time_seconds Histogram of time spent in PREFILL phase for request.
# TYPE vllm:request_prefill_time_seconds histogram
vllm:request_prefill_time_seconds_bucket{engine="0",le="0.3",model_name="tiny-llama"} $requests
vllm:request_prefill_time_seconds_bucket{engine="0",le="+Inf",model_name="tiny-llama"} $requests
vllm:request_prefill_time_seconds_count{engine="0",model_name="tiny-llama"} $requests
vllm:request_prefill_time_seconds_sum{engine="0",model_name="tiny-llama"} $prefill_sum
# HELP vllm:request_decode_time_seconds Histogram of time spent in DECODE phase for request.
# TYPE vllm:request_decode_time_seconds histogram
vllm:request_decode_time_seconds_bucket{engine="0",le="2.0",model_name="tiny-llama"} $requests
vllm:request_decode_time_seconds_bucket{engine="0",le="+Inf",model_name="tiny-llama"} $requests
vllm:request_decode_time_seconds_count{engine="0",model_name="tiny-llama"} $requests
vllm:request_decode_time_seconds_sum{engine="0",model_name="tiny-llama"} $decode_sum
""")

SCRAPE_A = VLLM_TEXT.substitute(
    gc=120, running=3, waiting=0, kv=0.125, queries=1200, hits=400, preemptions=0, prompt=1200,
    generation=4800, stop=40, length=8, abort=0, iterations=500, iteration_tokens=6000,
    ttft_count=48, ttft_sum=0.96, itl_count=4752, itl_sum=47.52, requests=48, e2e_sum=28.8,
    queue_sum=0.48, prefill_sum=0.72, decode_sum=27.6,
)
SCRAPE_B = VLLM_TEXT.substitute(
    gc=180, running=16, waiting=5, kv=0.9375, queries=2000, hits=600, preemptions=3, prompt=2000,
    generation=8800, stop=60, length=12, abort=1, iterations=900, iteration_tokens=10800,
    ttft_count=73, ttft_sum=2.96, itl_count=8752, itl_sum=147.52, requests=73, e2e_sum=68.8,
    queue_sum=5.48, prefill_sum=2.22, decode_sum=61.1,
)
L = "{engine=0,model_name=tiny-llama}"


def snapshot(t: float, text: str, profile: ScrapeProfile) -> Snapshot:
    parsed = parse_scrape(text, profile)
    return Snapshot(t, parsed.values, parsed.kinds)


def test_vllm_profile_keeps_its_families_without_buckets_or_created() -> None:
    values = parse_metrics(SCRAPE_A, VLLM_PROFILE)
    assert values[f"vllm:num_requests_running{L}"] == 3
    assert values[f"vllm:kv_cache_usage_perc{L}"] == 0.125
    # counters by family name: exposed `vllm:num_preemptions_total`, keyed without `_total`
    assert values[f"vllm:num_preemptions{L}"] == 0
    assert values[f"vllm:prompt_tokens{L}"] == 1200
    assert values["vllm:request_success{engine=0,finished_reason=length,model_name=tiny-llama}"] == 8
    # a histogram as its sum and count
    assert values[f"vllm:time_to_first_token_seconds_count{L}"] == 48
    assert values[f"vllm:time_to_first_token_seconds_sum{L}"] == 0.96
    assert not any("_bucket" in key or "_created" in key or "_total" in key for key in values)
    # what the profile does not name stays out
    unnamed = ("python_gc", "vllm:iteration_tokens", "vllm:cache_config")
    assert not any(key.startswith(unnamed) for key in values)
    # 3 gauges, 2 prefix-cache counters, 3 other counters, successes by 3 reasons, 6 histograms
    assert len(values) == 3 + 2 + 3 + 3 + 2 * 6


def test_vllm_profile_derives_rates_and_histogram_means() -> None:
    d = derive(snapshot(10.0, SCRAPE_A, VLLM_PROFILE), snapshot(12.0, SCRAPE_B, VLLM_PROFILE), VLLM_PROFILE)
    assert d[f"vllm:num_preemptions:per_s{L}"] == 1.5
    assert d[f"vllm:prompt_tokens:per_s{L}"] == 400
    assert d[f"vllm:generation_tokens:per_s{L}"] == 2000
    assert d[f"vllm:request_success:per_s{L}"] == 12.5  # finished_reason summed away: 20 + 4 + 1 in 2 s
    # the mean of what was observed between the scrapes, not since the server started
    assert d[f"vllm:time_to_first_token_seconds:mean{L}"] == pytest.approx(0.08)
    assert d[f"vllm:inter_token_latency_seconds:mean{L}"] == pytest.approx(0.025)
    assert d[f"vllm:e2e_request_latency_seconds:mean{L}"] == pytest.approx(1.6)
    assert d[f"vllm:request_queue_time_seconds:mean{L}"] == pytest.approx(0.2)
    assert d[f"vllm:request_prefill_time_seconds:mean{L}"] == pytest.approx(0.06)
    assert d[f"vllm:request_decode_time_seconds:mean{L}"] == pytest.approx(1.34)
    assert d[f"vllm:prefix_cache_hit_rate:mean{L}"] == 0.25
    # gauges are not derived; the prefix-cache counters only feed their ratio
    assert not any("num_requests" in k or "kv_cache" in k or "prefix_cache_queries" in k for k in d)
    assert len(d) == 4 + 6 + 1


def test_idle_interval_gives_zero_rates_and_no_means() -> None:
    d = derive(snapshot(0.0, SCRAPE_B, VLLM_PROFILE), snapshot(0.25, SCRAPE_B, VLLM_PROFILE), VLLM_PROFILE)
    assert d[f"vllm:request_success:per_s{L}"] == 0
    assert not any(":mean" in key for key in d)  # nothing observed: no mean rather than a made-up 0


def test_histogram_means_survive_a_server_restart() -> None:
    restarted = VLLM_TEXT.substitute(
        gc=0, running=1, waiting=0, kv=0.01, queries=10, hits=0, preemptions=0, prompt=20,
        generation=40, stop=2, length=0, abort=0, iterations=10, iteration_tokens=60,
        ttft_count=2, ttft_sum=0.1, itl_count=38, itl_sum=0.38, requests=2, e2e_sum=0.5,
        queue_sum=0.0, prefill_sum=0.04, decode_sum=0.46,
    )
    d = derive(snapshot(0.0, SCRAPE_B, VLLM_PROFILE), snapshot(1.0, restarted, VLLM_PROFILE), VLLM_PROFILE)
    assert d[f"vllm:time_to_first_token_seconds:mean{L}"] == pytest.approx(0.05)  # the new server's
    assert d[f"vllm:request_success:per_s{L}"] == 2


def test_older_vllm_spellings() -> None:
    text = """\
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.5
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{engine="0",model_name="m"} $n
# HELP vllm:gpu_prefix_cache_queries_total GPU prefix cache queries.
# TYPE vllm:gpu_prefix_cache_queries_total counter
vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} $q
# HELP vllm:gpu_prefix_cache_hits_total GPU prefix cache hits.
# TYPE vllm:gpu_prefix_cache_hits_total counter
vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} $h
# HELP vllm:time_per_output_token_seconds Histogram of time per output token in seconds.
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} $c
vllm:time_per_output_token_seconds_count{engine="0",model_name="m"} $c
vllm:time_per_output_token_seconds_sum{engine="0",model_name="m"} $s
"""
    a = Template(text).substitute(n=1, q=100, h=10, c=100, s=1.0)
    b = Template(text).substitute(n=3, q=200, h=60, c=200, s=3.0)
    m = "{engine=0,model_name=m}"
    assert parse_metrics(a, VLLM_PROFILE)[f"vllm:gpu_cache_usage_perc{m}"] == 0.5
    d = derive(snapshot(0.0, a, VLLM_PROFILE), snapshot(1.0, b, VLLM_PROFILE), VLLM_PROFILE)
    assert d[f"vllm:num_preemptions:per_s{m}"] == 2
    assert d[f"vllm:time_per_output_token_seconds:mean{m}"] == pytest.approx(0.02)
    assert d[f"vllm:prefix_cache_hit_rate:mean{m}"] == 0.5


def test_generic_profile_keeps_everything_and_rates_every_counter() -> None:
    values = parse_metrics(SCRAPE_A, GENERIC_PROFILE)
    assert values["python_gc_objects_collected{generation=0}"] == 120
    assert values["vllm:cache_config_info{block_size=16,engine=0,gpu_memory_utilization=0.9}"] == 1
    assert values[f"vllm:iteration_tokens_total_sum{L}"] == 6000
    # prometheus_client's `_created` timestamps and the buckets stay out even here
    assert not any("_created" in key or "_bucket" in key for key in values)
    d = derive(snapshot(10.0, SCRAPE_A, GENERIC_PROFILE), snapshot(12.0, SCRAPE_B, GENERIC_PROFILE))
    assert d["python_gc_objects_collected:per_s{generation=0}"] == 30
    assert d[f"vllm:prefix_cache_hits:per_s{L}"] == 100
    # nothing summed away: one rate per finished_reason
    assert d["vllm:request_success:per_s{engine=0,finished_reason=stop,model_name=tiny-llama}"] == 10
    assert d[f"vllm:iteration_tokens_total:mean{L}"] == 12  # every histogram's mean
    assert not any(":per_s" in k and ("num_requests" in k or "kv_cache" in k) for k in d)  # gauges


def test_histogram_means_can_be_turned_off_and_summaries_get_them_too() -> None:
    text = Template("""\
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds_count $c
rpc_seconds_sum $s
""")
    a, b = text.substitute(c=10, s=2.0), text.substitute(c=20, s=5.0)
    d = derive(snapshot(0, a, GENERIC_PROFILE), snapshot(1, b, GENERIC_PROFILE))
    assert d == {"rpc_seconds:mean": 0.3}
    assert parse_metrics(a)["rpc_seconds{quantile=0.5}"] == 0.2
    off = ScrapeProfile(histogram_means=False)
    assert derive(snapshot(0, a, off), snapshot(1, b, off), off) == {}


def test_ratio_names_and_selectors() -> None:
    per_request = Ratio("{numerator}:per_request", lambda name: name.endswith("_us"), "ok")
    assert per_request.result_name("queue_us") == "queue_us:per_request"
    assert Ratio("batch:mean", "count", "exec").result_name("count") == "batch:mean"
    assert selected(None)("anything") and selected("a")("a") and not selected("a")("ab")
    assert selected({"a", "b"})("b") and selected(lambda n: n.startswith("x"))("xy")
    profile = ScrapeProfile(rates=(), ratios=(per_request,))
    a = Snapshot(0, {"ok{m=a}": 10, "queue_us{m=a}": 100, "queue_us{m=b}": 5})
    b = Snapshot(2, {"ok{m=a}": 20, "queue_us{m=a}": 300, "queue_us{m=b}": 9})
    # per label set; model b has no denominator, so no mean
    assert derive(a, b, profile) == {"queue_us:per_request{m=a}": 20.0}


def test_charts_round_trip_through_the_journal_record() -> None:
    for chart in (*VLLM_PROFILE.charts, *TRITON_PROFILE.charts, *GENERIC_CHARTS):
        assert MetricChart.from_record(json.loads(json.dumps(chart.to_record()))) == chart
    assert MetricChart.from_record({}).title  # a bare record still draws something
    ttft = next(c for c in VLLM_PROFILE.charts if "first token" in c.title)
    assert ttft.draws("vllm:time_to_first_token_seconds:mean")
    assert not ttft.draws("vllm:e2e_request_latency_seconds:mean")
    assert ttft.legend("vllm:time_to_first_token_seconds:mean") == "time_to_first_token"
    requests = TRITON_PROFILE.charts[0]
    assert requests.draws("nv_inference_request_success:per_s")
    assert not requests.draws("nv_inference_count:per_s")
    assert requests.legend("nv_inference_request_failure:per_s") == "request_failure"


def _code_strings(path: Path) -> set[str]:
    """The string literals of a module's code, its docstrings left out (they may give examples)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
    }
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_the_core_scraper_and_report_name_no_server_metric() -> None:
    root = Path(__file__).resolve().parents[2]
    core = ("harness/observers/prometheus.py", "harness/observers/scrape_profile.py", "reports/html.py")
    for module in core:
        named = {text for text in _code_strings(root / module) if text.startswith(("nv_", "vllm:", "ts_"))}
        assert not named, f"{module} names a server's metrics: {named}"


def test_stacks_declare_their_profiles() -> None:
    assert Stack.scrape_profile(FakeStack()) is GENERIC_PROFILE  # the base class's default
    assert TritonStack.__new__(TritonStack).scrape_profile() is TRITON_PROFILE
    container = ContainerStack.__new__(ContainerStack)
    container.inner = FakeStack(profile=VLLM_PROFILE)
    assert container.scrape_profile() is VLLM_PROFILE  # the inner stack's, as its endpoints are


def _scraped_vllm_records(tmp_path: Path) -> list[dict[str, Any]]:
    """What the scraper journals for a vLLM stack: its profile event and a few samples."""
    answers = iter([SCRAPE_A, SCRAPE_B])

    def fetch(url: str, timeout: float) -> str:
        return next(answers, SCRAPE_B)

    ctx = context(tmp_path, FakeStack(metrics="http://127.0.0.1:1/metrics", profile=VLLM_PROFILE))
    scraper = PrometheusScraper(interval_s=0.02, fetch=fetch)
    scraper.start(ctx)
    gevent.sleep(0.1)
    summary = scraper.stop()
    assert summary["profile"] == "vllm" and summary["scrape_failures"] == 0
    stop = "vllm:request_success{engine=0,finished_reason=stop,model_name=tiny-llama}"
    assert summary["increase"][stop] == 20
    return records(ctx)


def test_scraper_journals_the_vllm_profile(tmp_path: Path) -> None:
    recs = _scraped_vllm_records(tmp_path)
    declared = [r for r in recs if r.get("event") == "metrics_profile"]
    assert len(declared) == 1 and declared[0]["profile"] == "vllm"
    assert len(declared[0]["charts"]) == len(VLLM_PROFILE.charts)
    samples = [r["values"] for r in recs if r["type"] == "series" and r["name"] == "metrics"]
    assert f"vllm:num_requests_waiting{L}" in samples[0]
    assert samples[1][f"vllm:time_to_first_token_seconds:mean{L}"] == pytest.approx(0.08)
    assert samples[1][f"vllm:num_preemptions:per_s{L}"] > 0


def _drawn(data: RunData) -> dict[str, tuple[str, dict[str, list[tuple[float, float]]]]]:
    out: dict[str, tuple[str, dict[str, list[tuple[float, float]]]]] = {}

    def chart(title: str, unit: str, series: dict[str, list[tuple[float, float]]]) -> str:
        out[title] = (unit, series)
        return title

    _server_charts(data, 0.0, chart)
    return out


def test_report_draws_the_declared_vllm_charts(tmp_path: Path) -> None:
    drawn = _drawn(RunData.from_records(_scraped_vllm_records(tmp_path)))
    assert set(drawn) == {c.title for c in VLLM_PROFILE.charts}
    unit, lines = drawn["Server: requests running and waiting (vLLM)"]
    assert unit == "requests" and set(lines) == {"running", "waiting"}
    unit, lines = drawn["Server: KV cache usage (vLLM)"]
    assert unit == "%" and lines["kv_cache"][0][1] == 12.5  # 0.125 drawn as a percentage
    _, lines = drawn["Server: requests finished and preempted per second (vLLM)"]
    assert set(lines) == {"request_success", "num_preemptions"}
    unit, lines = drawn["Server: time to first token and between tokens, mean per scrape (vLLM)"]
    assert unit == "ms" and lines["time_to_first_token"][0][1] == pytest.approx(80.0)
    assert set(lines) == {"time_to_first_token", "inter_token_latency"}


def test_report_draws_triton_as_before_and_splits_label_sets() -> None:
    declared = {"type": "event", "event": "metrics_profile", "t": 0.5, "profile": "triton",
                "series": "metrics", "charts": TRITON_PROFILE.chart_records()}
    samples = [{"type": "series", "name": "metrics", "t": 1.0 + i, "values": {
        "nv_inference_request_success:per_s{model=identity}": 100.0 + i,
        "nv_inference_request_failure:per_s{model=identity}": 0.0,
        "nv_inference_count:per_s{model=identity}": 100.0,
        "nv_inference_queue_duration_us:per_request{model=identity}": 50.0,
        "nv_inference_request_duration_us:per_request{model=identity}": 80.0,
    }} for i in range(3)]
    rates, times = "Server: requests per second (Prometheus)", "Server: time per request (Prometheus)"
    drawn = _drawn(RunData.from_records([declared, *samples]))
    assert list(drawn) == [rates, times]
    assert drawn[rates][0] == "req/s" and drawn[times][0] == "µs"
    assert set(drawn[rates][1]) == {"request_success", "request_failure"}
    assert set(drawn[times][1]) == {"queue_duration", "request_duration"}
    # two models: one line each rather than one zigzag through both
    for sample in samples:
        sample["values"]["nv_inference_request_success:per_s{model=other}"] = 5.0
    lines = _drawn(RunData.from_records([declared, *samples]))[rates][1]
    split = {"request_success{model=identity}", "request_success{model=other}"}
    assert set(lines) == {*split, "request_failure"}


def test_journal_without_a_profile_event_gets_the_generic_charts() -> None:
    samples = [{"type": "series", "name": "metrics", "t": 1.0, "values": {
        "nv_inference_request_success:per_s{model=identity}": 100.0,
        "nv_inference_queue_duration_us:per_request{model=identity}": 50.0, "scrape_ms": 2.0}}]
    drawn = _drawn(RunData.from_records(samples))
    assert list(drawn) == [c.title for c in GENERIC_CHARTS]
    assert list(drawn["Server: counters per second (Prometheus)"][1]) == ["nv_inference_request_success"]


def test_report_html_holds_the_vllm_charts(tmp_path: Path) -> None:
    (tmp_path / "scrape").mkdir()
    journal = synthetic_records() + _scraped_vllm_records(tmp_path / "scrape")
    (tmp_path / "journal.jsonl").write_text("\n".join(json.dumps(r) for r in journal) + "\n")
    write_reports(tmp_path, scenario())
    html = (tmp_path / "report.html").read_text()
    for chart in VLLM_PROFILE.charts:
        assert chart.title.replace("'", "&#x27;") in html
    assert len(time_charts(html)) == 2 + len(VLLM_PROFILE.charts)  # throughput, latency, and vLLM's own
