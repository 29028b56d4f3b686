"""The report's containers section: per container fault, the engine's actions and the outage."""

from html import escape
from typing import Any


def containers_section(containers: dict[str, Any] | None) -> str:
    if not containers:
        return ""
    parts = ["<h2>Containers</h2>"]
    outages = containers.get("outages") or []
    if outages:
        parts.append(
            "<p class='muted'>Engine times are Docker's own event times. Downtime runs from the "
            "server going away (its process exited, or the container was frozen) to the harness's "
            "health probe answering again; shutdown from the engine's signal to the exit; startup "
            "from the container running again to serving; recovery from the injection to serving.</p>"
        )
        parts.append(_outage_table(outages))
        parts += [f"<p>{escape(line)}</p>" for line in outage_findings(outages)]
    counts = containers.get("engine_actions") or {}
    if counts:
        text = ", ".join(f"{escape(k)} {v}" for k, v in sorted(counts.items()))
        parts.append(f"<p class='muted'>Engine events for this run's containers: {text}.</p>")
    return "".join(parts)


def outage_findings(outages: list[dict[str, Any]]) -> list[str]:
    """Lines worth a serving engineer's attention."""
    lines = []
    for outage in outages:
        if outage["sigkilled_after_stop"]:
            served = outage.get("served_while_stopping")
            meanwhile = f"; it answered {served} requests meanwhile" if served else ""
            lines.append(f"{outage['fault_id']} {outage['name']}: the server did not exit on SIGTERM within "
                         f"Docker's stop timeout ({_s(outage['shutdown_s'])}s) and was SIGKILLed{meanwhile}")
        if outage["gone_t"] is not None and outage["ready_t"] is None:
            lines.append(f"{outage['fault_id']} {outage['name']}: no serving again before the load ended")
    return lines


def _outage_table(outages: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(o['fault_id'])}</td><td>{escape(o['name'])}</td>"
        f"<td>{escape(', '.join(o['containers']))}</td><td>{escape('; '.join(o['actions']))}</td>"
        f"<td>{_s(o['shutdown_s'])}</td><td>{_downtime(o)}</td><td>{_s(o['startup_s'])}</td>"
        f"<td>{_s(o['recovery_s'])}</td><td>{o['failed_requests']}</td>"
        f"<td>{escape(', '.join(f'{k}: {v}' for k, v in o['errors_by_kind'].items()))}</td></tr>"
        for o in outages
    )
    return (
        "<table><tr><th>id</th><th>fault</th><th>container</th><th>engine did (from injection)</th>"
        "<th>shutdown (s)</th><th>downtime (s)</th><th>startup (s)</th><th>recovery (s)</th>"
        f"<th>failed requests</th><th>errors</th></tr>{rows}</table>"
    )


def _downtime(outage: dict[str, Any]) -> str:
    if outage["gone_t"] is None:
        return "no outage"
    if outage["ready_t"] is None:
        return "<b>not back</b>"
    return _s(outage["downtime_s"])


def _s(value: Any) -> str:
    return "&ndash;" if value is None else f"{float(value):.2f}"
