"""The memory feature: start-up attempts, OOM kills, sidecars and memory figures, as metrics and
the report's `memory` section (journal events written by harness.memory.runpart's watchers)."""

from typing import Any

from harness.analysis import whole_run
from harness.features import Feature, MetricDef, ReportSection, SectionContext
from harness.memory.html import memory_section
from harness.memory.measures import measure_memory
from harness.memory.report_data import STORY_PHRASES, memory_findings, memory_summary

METRICS = {
    "start_attempts": "stack starts the harness made until it was ready (all of them if it never was)",
    "startup_s": "seconds from the first start attempt to ready, backoffs and failed attempts included",
    "oom_kills": "OOM kills of this run's processes (kernel log) or in its memory groups (cgroup counter)",
    "sidecar_deaths": "sidecars that died during the run (`expect: exit` ones only with a non-zero code)",
    "rss_peak_mb": "largest summed RSS of one stack role during the run, in MiB",
    "memory_psi_some_max": "highest 10 s memory pressure (PSI some avg10, percent) seen during the load",
}


def _summary(ctx: SectionContext) -> Any:
    return memory_summary(ctx.data)


FEATURE = Feature(
    name="memory",
    metrics=[MetricDef(meaning, whole_run(measure_memory), name=name) for name, meaning in METRICS.items()],
    sections=[ReportSection("memory", _summary, html=memory_section, findings=memory_findings,
                            story_phrases=STORY_PHRASES, after="log_patterns")],
)
