"""The report's TorchServe section: verdict on recoverability, retry settings and schedule,
workers READY over time, worker faults, and each worker's state changes."""

from html import escape
from typing import Any

from harness.analysis import RunData
from harness.torchserve.measures import worker_samples
from reports.charts import Chart, render

SHOWN_STATE_ROWS = 80


def torchserve_section(section: dict[str, Any] | None, data: RunData) -> str:
    if not section:
        return ""
    origin = data.load_start or 0.0
    parts = [
        f"<h2>TorchServe: workers and retries ({escape(section['model'])}, handler "
        f"{escape(section['handler'])})</h2>",
        _verdict(section),
        _settings(section["settings"]),
        _schedule(section["retries"], section["fibonacci"], origin),
        _ready_chart(data, section["settings"]["workers"], origin),
        _faults(section["faults"], origin),
        _outages(section.get("no_worker_ready", []), origin),
        _states(section["states"], origin),
    ]
    return "".join(parts)


def _verdict(section: dict[str, Any]) -> str:
    reason = section.get("not_recoverable")
    if not reason:
        return "<p>No retry storm, no worker given up.</p>"
    storm = section.get("storm") or {}
    cause = storm.get("error") or next((g["error"] for g in section["given_up"] if g.get("error")), None)
    root = f"<p>Root cause (first error line): <code>{escape(cause)}</code></p>" if cause else ""
    return f"<p style='color:#b22'><b>NOT RECOVERABLE</b>: {escape(reason)}</p>{root}"


def _settings(settings: dict[str, Any]) -> str:
    configured = settings["configured_max_retry_timeout_s"]
    rows = [
        ("maxRetryTimeoutInSec (scenario)", "TorchServe default" if configured is None else configured),
        ("maxRetryTimeoutInSec (management API)", settings["effective_max_retry_timeout_s"]),
        ("responseTimeout (s)", settings["response_timeout_s"]),
        ("workers", settings["workers"]),
        ("retry back-off", settings["backoff"]),
        ("storm after (same error, failed starts)", settings["storm_after"]),
    ]
    cells = "".join(f"<tr><td>{escape(k)}</td><td>{escape(_text(v))}</td></tr>" for k, v in rows)
    return f"<h3>Retry settings</h3><table>{cells}</table>"


def _schedule(steps: list[dict[str, Any]], fibonacci: bool | None, origin: float) -> str:
    if not steps:
        return "<h3>Retry schedule</h3><p class='muted'>TorchServe retried no worker.</p>"
    verdict = "matches" if fibonacci else "does <b>not</b> match"
    rows = "".join(
        f"<tr><td>{s['n']}</td><td>{escape(s['worker'])}</td><td>{_rel(s['t'], origin)}</td>"
        f"<td>{s['announced_s']}</td><td>{s['expected_s']}</td><td>{_text(s['waited_s'])}</td>"
        f"<td>{_text(s['since_previous_s'])}</td>"
        f"<td class='{'ok' if s['matches'] else 'bad'}'>{'yes' if s['matches'] else 'NO'}</td></tr>"
        for s in steps
    )
    return (
        f"<h3>Retry schedule</h3><p>Observed back-off {verdict} TorchServe's Fibonacci table. "
        "<span class='muted'>announced: the log's <code>Retry worker: ID in N seconds</code>; waited: "
        "from that line to the next launch of the worker; since previous: between retries of "
        "the episode (back-off + worker start + failure).</span></p>"
        "<table><tr><th>retry</th><th>worker</th><th>at</th><th>announced (s)</th>"
        "<th>Fibonacci (s)</th><th>waited (s)</th><th>since previous (s)</th><th>matches</th></tr>"
        f"{rows}</table>"
    )


def _ready_chart(data: RunData, expected: int, origin: float) -> str:
    samples = worker_samples(data)
    if not samples:
        return ""
    end = max([s["t"] for s in data.seconds] + [samples[-1]["t"]]) + 1
    points: list[tuple[float, float]] = []
    for sample in samples:
        t = sample["t"] - origin
        if points:
            points.append((t, points[-1][1]))  # a step, not a ramp
        points.append((t, float(sample["ready"])))
    points.append((end - origin, points[-1][1]))
    markers = [(e["t"] - origin, e["event"]) for e in data.events
               if e["event"] in ("fault_injected", "ts_retry_storm", "ts_worker_given_up")]
    chart = Chart(f"Workers READY (management API; {expected} configured)", "workers",
                  (min(0.0, points[0][0]), end - origin), {"READY": points}, [], markers)
    return render(chart)


def _faults(faults: list[dict[str, Any]], origin: float) -> str:
    if not faults:
        return ""
    rows = "".join(
        f"<tr><td>{escape(f['id'])}</td><td>{escape(f['name'])}</td><td>{_rel(f['injected_t'], origin)}</td>"
        f"<td>{_rel(f['down_t'], origin)}</td><td>{_rel(f['ready_t'], origin)}</td><td>{_ready(f)}</td></tr>"
        for f in faults
    )
    return (
        "<h3>Worker faults: until every worker is READY again</h3>"
        "<table><tr><th>id</th><th>fault</th><th>at</th><th>first worker not READY</th>"
        f"<th>all READY again</th><th>seconds</th></tr>{rows}</table>"
        "<p class='muted'>The client's error window for each fault is in the faults table above.</p>"
    )


def _outages(spans: list[dict[str, Any]], origin: float) -> str:
    if not spans:
        return ""
    items = "".join(
        f"<li>{_rel(s['from_t'], origin)} to {_rel(s['to_t'], origin)}: {s['seconds']:.2f}s</li>"
        for s in spans
    )
    return ("<p><b>No worker READY</b> (management API): the model could serve nothing, requests "
            f"waited in TorchServe's queue or failed.</p><ul>{items}</ul>")


def _ready(fault: dict[str, Any]) -> str:
    if fault["down_t"] is None:
        return "workers never left READY (per the API)"
    if fault["ready_s"] is None:
        return "<b>never</b>"
    return f"{fault['ready_s']:.2f}"


def _states(states: list[dict[str, Any]], origin: float) -> str:
    if not states:
        return ""
    shown = states[:SHOWN_STATE_ROWS]
    rows = "".join(
        f"<tr><td>{_rel(s['t'], origin)}</td><td>{escape(s['worker'])}</td><td>{escape(s['source'])}</td>"
        f"<td>{escape(str(s['state']))}</td><td>{_text(s['pid'])}</td></tr>"
        for s in shown
    )
    hidden = len(states) - len(shown)
    more = f"<p class='muted'>{hidden} more in summary.json.</p>" if hidden else ""
    return (
        "<h3>Worker states over time</h3><table><tr><th>t</th><th>worker</th><th>source</th><th>state</th>"
        f"<th>pid</th></tr>{rows}</table>{more}"
    )


def _rel(t: Any, origin: float) -> str:
    return "-" if t is None else f"{float(t) - origin:+.2f}s"


def _text(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)
