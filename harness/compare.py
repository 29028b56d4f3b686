"""`harness compare RUN_DIR...`: runs side by side, so a user sees which setting shortens the window.

Each row is one run: what its stack was set to (discovery, lease TTL, migration), the fault it
took, and what the clients saw: failed requests, the error window (first to last failed request),
when the last failure came after the injection, recovery time, and the error messages.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis import RunData
from harness.errors import UsageError
from harness.llm.errorwindow import error_windows

SETTINGS = ("discovery", "lease_ttl", "reconcile_s", "migration_limit", "workers")


@dataclass
class RunRow:
    run_dir: str
    scenario: str
    verdict: str
    settings: dict[str, Any]
    fault: str
    requests: int
    failed: int
    window_s: float | None
    first_error_after_s: float | None
    last_error_after_s: float | None
    recover_s: float | None
    errors: dict[str, int] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    ttft_p99_ms: float | None = None
    data: RunData | None = field(default=None, repr=False, compare=False)  # for the page's charts


def load_row(run_dir: Path) -> RunRow:
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise UsageError(f"{run_dir}: not a finished run folder (no summary.json)")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    data = RunData.from_run_dir(run_dir)
    windows = error_windows(data)
    info = summary.get("stack", {}).get("info", {})
    ttft = (summary.get("llm") or {}).get("ttft_ms", {})
    return RunRow(
        run_dir=str(run_dir),
        scenario=summary.get("scenario", run_dir.name),
        verdict=summary.get("verdict", "?"),
        settings={key: info.get(key) for key in SETTINGS if key in info},
        fault=_fault_text(data, windows),
        requests=summary.get("totals", {}).get("requests", 0),
        failed=sum(w.failed_requests for w in windows),
        window_s=max((w.window_s for w in windows), default=None),
        first_error_after_s=_first([w.first_error_after_s for w in windows]),
        last_error_after_s=max((w.last_error_after_s for w in windows if w.last_error_after_s is not None),
                               default=None),
        recover_s=max((w.recover_s for w in windows if w.recover_s is not None), default=None),
        errors=_merged(w.errors_by_kind for w in windows),
        messages={k: v for w in windows for k, v in w.error_messages.items()},
        ttft_p99_ms=ttft.get("p99"),
        data=data,
    )


def _fault_text(data: RunData, windows: list[Any]) -> str:
    injected = [e for e in data.events if e["event"] == "fault_injected"]
    if not injected:
        return "none"
    parts = []
    for event in injected:
        what = event.get("name") or event.get("kind")
        signal = event.get("signal")
        parts.append(f"{what} ({signal})" if signal and signal not in str(what) else str(what))
    return "; ".join(parts)


def _first(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _merged(counts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for count in counts:
        for kind, n in count.items():
            out[kind] = out.get(kind, 0) + n
    return out


def text_table(rows: list[RunRow]) -> str:
    header = ["run", "settings", "fault", "requests", "failed", "window s", "last failure", "recovery s",
              "errors"]
    lines = [header]
    for row in rows:
        settings = ", ".join(f"{k}={v}" for k, v in row.settings.items()) or "-"
        errors = ", ".join(f"{k} x{v}" for k, v in row.errors.items()) or "-"
        lines.append([row.scenario, settings, row.fault, str(row.requests), str(row.failed),
                      _num(row.window_s), _after(row.last_error_after_s), _num(row.recover_s), errors])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines]
    return "\n".join(rendered)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _after(value: float | None) -> str:
    return "-" if value is None else f"+{value:.2f}s"


def run_compare(run_dirs: list[Path], html: Path | None) -> int:
    rows = [load_row(run_dir) for run_dir in run_dirs]
    print(text_table(rows))
    if html is not None:
        from reports.compare_html import build_compare_html

        html.write_text(build_compare_html(rows), encoding="utf-8")
        print(f"comparison: {html}")
    return 0
