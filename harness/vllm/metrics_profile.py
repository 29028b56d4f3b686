"""What the Prometheus scraper keeps from vLLM's /metrics, and what the report draws.

Names as vLLM's V1 engine declares them (`vllm/v1/metrics/loggers.py`, `PrometheusStatLogger`),
every one labelled `model_name` and `engine` (the data-parallel engine's index). prometheus_client
writes a counter declared `vllm:prompt_tokens` as `vllm:prompt_tokens_total`, and its parser reads
that back as family `vllm:prompt_tokens` (older releases declared `vllm:num_preemptions_total`:
the same exposed name, the same family), so the families below carry no `_total`.

Renames kept on both spellings, so one profile reads either release:
- `vllm:gpu_cache_usage_perc` became `vllm:kv_cache_usage_perc` (a fraction, 0 to 1, despite the name);
- `vllm:gpu_prefix_cache_queries` / `_hits` became `vllm:prefix_cache_queries` / `_hits`;
- `vllm:time_per_output_token_seconds` became `vllm:inter_token_latency_seconds` (0.11; the old one
  only with `--show-hidden-metrics-for-version`).
"""

from harness.observers.scrape_profile import MetricChart, Ratio, ScrapeProfile

PREFIX = "vllm:"

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
KV_CACHE_USAGE_OLD = "vllm:gpu_cache_usage_perc"
GAUGES = (RUNNING, WAITING, KV_CACHE_USAGE, KV_CACHE_USAGE_OLD)

PREEMPTIONS = "vllm:num_preemptions"
PROMPT_TOKENS = "vllm:prompt_tokens"
GENERATION_TOKENS = "vllm:generation_tokens"
REQUEST_SUCCESS = "vllm:request_success"  # by `finished_reason`: stop, length, abort, ...
RATE_COUNTERS = (PREEMPTIONS, PROMPT_TOKENS, GENERATION_TOKENS, REQUEST_SUCCESS)

PREFIX_CACHE = ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits")
PREFIX_CACHE_OLD = ("vllm:gpu_prefix_cache_queries", "vllm:gpu_prefix_cache_hits")
PREFIX_CACHE_HIT_RATE = "vllm:prefix_cache_hit_rate:mean"

TTFT = "vllm:time_to_first_token_seconds"
ITL = "vllm:inter_token_latency_seconds"
ITL_OLD = "vllm:time_per_output_token_seconds"
TOKEN_HISTOGRAMS = (TTFT, ITL, ITL_OLD)
E2E = "vllm:e2e_request_latency_seconds"
PHASE_HISTOGRAMS = (
    E2E,
    "vllm:request_queue_time_seconds",  # WAITING
    "vllm:request_prefill_time_seconds",
    "vllm:request_decode_time_seconds",
    "vllm:request_inference_time_seconds",  # RUNNING: prefill and decode
)

VLLM_METRICS: frozenset[str] = frozenset(
    {*GAUGES, *RATE_COUNTERS, *PREFIX_CACHE, *PREFIX_CACHE_OLD, *TOKEN_HISTOGRAMS, *PHASE_HISTOGRAMS}
)


def _means(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{name}:mean" for name in names)


def _rates(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{name}:per_s" for name in names)


VLLM_CHARTS: tuple[MetricChart, ...] = (
    # Queueing: waiting requests grow when the batch is full (KV cache or max_num_seqs).
    MetricChart("Server: requests running and waiting (vLLM)", "requests",
                names=(RUNNING, WAITING), strip="vllm:num_requests_"),
    MetricChart("Server: KV cache usage (vLLM)", "%", names=(KV_CACHE_USAGE, KV_CACHE_USAGE_OLD),
                strip=PREFIX, suffix="_usage_perc", scale=100.0),
    # A preemption throws a request's KV blocks away and prefills it again: a latency spike, no error.
    MetricChart("Server: requests finished and preempted per second (vLLM)", "1/s",
                names=_rates((REQUEST_SUCCESS, PREEMPTIONS)), strip=PREFIX, suffix=":per_s"),
    MetricChart("Server: tokens per second (vLLM)", "tokens/s",
                names=_rates((PROMPT_TOKENS, GENERATION_TOKENS)), strip=PREFIX, suffix=":per_s"),
    MetricChart("Server: time to first token and between tokens, mean per scrape (vLLM)", "ms",
                names=_means(TOKEN_HISTOGRAMS), strip=PREFIX, suffix="_seconds:mean", scale=1000.0),
    MetricChart("Server: request time by phase, mean per scrape (vLLM)", "s",
                names=_means(PHASE_HISTOGRAMS), strip=PREFIX, suffix="_seconds:mean"),
    MetricChart("Server: prefix cache hit rate (vLLM)", "%", names=(PREFIX_CACHE_HIT_RATE,),
                strip=PREFIX, suffix=":mean", scale=100.0),
)

VLLM_PROFILE = ScrapeProfile(
    name="vllm",
    select=VLLM_METRICS,
    rates=frozenset(RATE_COUNTERS),
    summed_labels=frozenset({"finished_reason"}),  # finished requests per second, whatever the reason
    ratios=(
        # Cached tokens per queried token over the interval; both spellings write the same key.
        Ratio(PREFIX_CACHE_HIT_RATE, PREFIX_CACHE[1], PREFIX_CACHE[0], digits=4),
        Ratio(PREFIX_CACHE_HIT_RATE, PREFIX_CACHE_OLD[1], PREFIX_CACHE_OLD[0], digits=4),
    ),
    histogram_means=True,  # TTFT, inter-token latency, e2e and the phases: `<name>:mean` in seconds
    charts=VLLM_CHARTS,
)
