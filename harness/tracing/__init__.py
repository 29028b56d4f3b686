"""Building blocks for Triton request tracing.

- `config`: validate trace settings and turn them into `--trace-config` arguments;
- `settings`: read and change trace settings at run time (`/v2/trace/setting`);
- `trace_files`: read Triton-mode JSON trace files incrementally while they are written;
- `summary`: the per-model latency breakdown and per-trace timeline of those traces;
- `otlp_receiver`: a small OTLP/HTTP trace collector with failure modes, for OpenTelemetry mode.

Each module stands alone; none of them imports the runner.
"""

from typing import Any, Protocol, runtime_checkable

# The key under which the tracing feature leaves its OTLP receiver in a run's `services`.
COLLECTOR = "collector"


@runtime_checkable
class TakesTraceOverrides(Protocol):
    """A stack whose next start applies other trace settings (the `trace_restart` fault)."""

    trace_overrides: dict[str, Any]
