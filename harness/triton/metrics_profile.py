"""What the Prometheus scraper keeps from Triton's metrics port, and what the report draws.

Its journal keys are the ones the scraper wrote before stacks declared profiles (same names,
same rounding), so reports, SLOs and tests written against them read new runs the same way.
"""

from harness.observers.scrape_profile import MetricChart, Ratio, ScrapeProfile

# What matters in Triton 2.5x (CPU or GPU): per-model request outcomes and where time goes,
# queue depth, and the host's CPU and memory. GPU families appear only where NVML works.
TRITON_METRICS: frozenset[str] = frozenset(
    {
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
        "nv_inference_pending_request_count",
        "nv_cpu_utilization",
        "nv_cpu_memory_used_bytes",
        "nv_gpu_utilization",
        "nv_gpu_memory_used_bytes",
    }
)

# Counters turned into per-second rates. The `_duration_us` counters are not rated: a rate of
# microseconds is meaningless; they become a mean per successful request instead.
RATE_COUNTERS: frozenset[str] = frozenset(
    {
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
    }
)
REQUESTS_COUNTER = "nv_inference_request_success"
DURATION_SUFFIX = "_duration_us"


def is_duration(family: str) -> bool:
    """Triton's cumulative microsecond counters (queue, compute input/infer/output, request)."""
    return family.endswith(DURATION_SUFFIX)


TRITON_PROFILE = ScrapeProfile(
    name="triton",
    select=TRITON_METRICS,
    rates=RATE_COUNTERS,
    summed_labels=frozenset({"reason"}),  # failures by reason: the rate counts every reason
    dropped_labels=frozenset({"version"}),  # two versions of a model are one model's load
    ratios=(
        # Mean microseconds per successful request over the interval, for each duration counter.
        Ratio("{numerator}:per_request", is_duration, REQUESTS_COUNTER, digits=2),
        # Inferences per model execution: above 1 when the dynamic batcher batches.
        Ratio("nv_inference_batch_size:mean", "nv_inference_count", "nv_inference_exec_count", digits=3),
    ),
    charts=(
        MetricChart("Server: requests per second (Prometheus)", "req/s",
                    prefix="nv_inference_request_", suffix=":per_s", strip="nv_inference_"),
        MetricChart("Server: time per request (Prometheus)", "µs",
                    prefix="nv_inference_", suffix="_us:per_request", strip="nv_inference_"),
    ),
)
