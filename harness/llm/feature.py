"""The LLM feature: TTFT, inter-token latency, output tokens and tokens/s from the openai user's
per-request measures (harness.llm.metrics), and each fault's error window to the millisecond
(harness.llm.errorwindow), as metrics and the report's `llm` and `error_windows` sections."""

from typing import Any

from harness.analysis import whole_run
from harness.features import Feature, MetricDef, ReportSection, SectionContext
from harness.llm.errorwindow import error_windows, window_metric
from harness.llm.html import error_windows_section, llm_section
from harness.llm.metrics import FAMILIES, THROUGHPUT, llm_totals, percentile_interval, window_measure

# Per measure: how its family is written in lists, and what it means.
FAMILY_MEANINGS = {
    "ttft_ms": ("ttft_pNN_ms", "time to first token of streamed responses (also ttft_mean_ms, ttft_max_ms)"),
    "itl_ms": ("itl_pNN_ms", "inter-token latency per request: (last token - first token) / (tokens - 1)"),
    "output_tokens": ("output_tokens_pNN", "output tokens per response (also _mean, _max)"),
    "tokens_per_s": ("tokens_per_s_pNN", "output tokens / request time, per request (also _mean, _max)"),
}
WINDOW_METRICS = {
    "error_window_s": "longest span from a fault's first failed request to its last",
    "last_error_s": "longest time from a fault's injection to its last failed request",
}


def _llm(ctx: SectionContext) -> Any:
    return llm_totals(ctx.data.seconds_in(*ctx.data.bounds("all")), ctx.totals["duration_s"])


def _error_windows(ctx: SectionContext) -> Any:
    return [w.to_dict() for w in error_windows(ctx.data)]


FEATURE = Feature(
    name="llm",
    metrics=[
        *(MetricDef(meaning, window_measure, pattern=FAMILIES[measure], display=display,
                    interval=percentile_interval)
          for measure, (display, meaning) in FAMILY_MEANINGS.items()),
        MetricDef("output tokens of the window / its length", window_measure, name=THROUGHPUT),
        *(MetricDef(meaning, whole_run(window_metric), name=name)
          for name, meaning in WINDOW_METRICS.items()),
    ],
    # report.html shows the LLM figures first; summary.json has always had the error windows first.
    sections=[
        ReportSection("llm", _llm, html=llm_section, after="error_windows"),
        ReportSection("error_windows", _error_windows, html=error_windows_section, after="faults"),
    ],
)
