"""The LLM feature: TTFT, ITL, TPOT, end-to-end time, output tokens, tokens/s and goodput from the
openai user's per-request measures (harness.llm.metrics), and each fault's error window to the
millisecond (harness.llm.errorwindow), as metrics and the report's `llm` and `error_windows` sections."""

from typing import Any

from harness.analysis import whole_run
from harness.features import Feature, MetricDef, ReportSection, SectionContext
from harness.llm.errorwindow import error_windows, window_metric
from harness.llm.goodput import GoodputTargets
from harness.llm.html import error_windows_section, llm_section
from harness.llm.metrics import (
    FAMILIES,
    GOODPUT_METRICS,
    GOODPUT_RATE,
    GOODPUT_RATIO,
    THROUGHPUT,
    goodput_interval,
    goodput_summary,
    llm_totals,
    percentile_interval,
    window_measure,
)
from harness.scenario import Scenario

# Per measure: how its family is written in lists, and what it means.
FAMILY_MEANINGS = {
    "ttft_ms": ("ttft_pNN_ms", "time to first token: request sent to the first chunk with text "
                               "(also ttft_mean_ms, ttft_max_ms)"),
    "itl_ms": ("itl_pNN_ms", "inter-token latency per request: (last text chunk - first text chunk) / "
                             "tokens between them (AIPerf's inter_token_latency)"),
    "tpot_ms": ("tpot_pNN_ms", "time per output token per request: (response complete - first text chunk) / "
                               "tokens after the first chunk (vllm bench serve's TPOT)"),
    "e2e_ms": ("e2e_pNN_ms", "end-to-end time per request: request sent to response complete "
                             "(vLLM's E2EL; also e2e_mean_ms, e2e_max_ms)"),
    "output_tokens": ("output_tokens_pNN", "output tokens per response (also _mean, _max)"),
    "tokens_per_s": ("tokens_per_s_pNN", "output tokens / request time, per request (also _mean, _max)"),
}
GOODPUT_MEANINGS = {
    GOODPUT_RATIO: "good requests (met every load.openai.goodput target) / requests that ended, "
                   "failed ones included",
    GOODPUT_RATE: "good requests (met every load.openai.goodput target) per second of the window",
}
WINDOW_METRICS = {
    "error_window_s": "longest span from a fault's first failed request to its last",
    "last_error_s": "longest time from a fault's injection to its last failed request",
}


def goodput_targets(scenario: Scenario) -> GoodputTargets | None:
    openai = scenario.load.openai
    return None if openai is None else openai.goodput


def check_scenario(scenario: Scenario) -> list[str]:
    """Goodput SLOs need targets: without them no request could be good, and the SLO would
    measure 0 for a reason nobody meant. A ratio is a share: over 1 it can never decide."""
    problems = []
    targets = goodput_targets(scenario)
    for i, slo in enumerate(scenario.slo):
        if slo.metric in GOODPUT_METRICS and targets is None:
            problems.append(f"at slo.{i}.metric: {slo.metric} needs per-request targets under "
                            "load.openai.goodput (ttft_ms, tpot_ms, e2e_ms); without them no request is good")
        elif slo.metric == GOODPUT_RATIO and slo.threshold > 1:
            problems.append(f"at slo.{i}.threshold: {slo.threshold:g} is over 1; {slo.metric} is a share "
                            "(write 0.9)")
    return problems


def _llm(ctx: SectionContext) -> Any:
    records = ctx.data.seconds_in(*ctx.data.bounds("all"))
    out = llm_totals(records, ctx.totals["duration_s"])
    targets = goodput_targets(ctx.scenario)
    if targets is not None:
        out["goodput"] = goodput_summary(records, ctx.totals["duration_s"], targets)
    return out


def _error_windows(ctx: SectionContext) -> Any:
    return [w.to_dict() for w in error_windows(ctx.data)]


FEATURE = Feature(
    name="llm",
    metrics=[
        *(MetricDef(meaning, window_measure, pattern=FAMILIES[measure], display=display,
                    interval=percentile_interval)
          for measure, (display, meaning) in FAMILY_MEANINGS.items()),
        MetricDef("output tokens of the window / its length", window_measure, name=THROUGHPUT),
        *(MetricDef(meaning, window_measure, name=name, interval=goodput_interval)
          for name, meaning in GOODPUT_MEANINGS.items()),
        *(MetricDef(meaning, whole_run(window_metric), name=name)
          for name, meaning in WINDOW_METRICS.items()),
    ],
    # report.html shows the LLM figures first; summary.json has always had the error windows first.
    sections=[
        ReportSection("llm", _llm, html=llm_section, after="error_windows"),
        ReportSection("error_windows", _error_windows, html=error_windows_section, after="faults"),
    ],
    check_scenario=check_scenario,
)
