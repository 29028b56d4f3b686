"""The GPU feature: its metrics and the report's `gpu` section (NVML series, Xid events, clock
reasons, the GPU memory stressor's steps), all from the journal.

Its observer (harness.gpu.observer) is started by the memory side of the run
(harness.memory.runpart), before the stack's first start, so it is not in `observers` here; its
fault, `gpu_memory_stress`, is registered in the light `harness.faults` group. This module stays
light (no gevent): validating a scenario discovers every feature.
"""

from typing import Any

from harness.analysis import whole_run
from harness.features import Feature, MetricDef, ReportSection, SectionContext
from harness.gpu.html import gpu_section
from harness.gpu.report_data import STORY_PHRASES, gpu_findings, gpu_summary, measure_gpu

METRICS = {
    "gpu_xid_errors": "critical Xid events NVML reported on any GPU during the run (none: nobody listened)",
    "gpu_mem_peak_mb": "most device memory in use on any one GPU during the run, in MiB (NVML)",
    "gpu_stress_oom": "allocations the driver refused the GPU memory stressor (CUDA_ERROR_OUT_OF_MEMORY)",
}


def _summary(ctx: SectionContext) -> Any:
    return gpu_summary(ctx.data)


FEATURE = Feature(
    name="gpu",
    metrics=[MetricDef(meaning, whole_run(measure_gpu), name=name) for name, meaning in METRICS.items()],
    sections=[ReportSection("gpu", _summary, html=gpu_section, findings=gpu_findings,
                            story_phrases=STORY_PHRASES, after="memory")],
)
