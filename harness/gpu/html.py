"""The report's GPU section: the GPU series drawn on the client's time axis, right beside the client's
own view (ok/s, errors/s, p99), with the stressor's steps shaded and Xid events and clock-reason
changes marked, then the tables (stressor steps and what the load saw in each, Xids, clock reasons).
"""

from html import escape
from typing import Any

from harness.analysis import RunData
from harness.gpu.report_data import MIB, notable_reasons
from harness.sizes import format_size
from reports.charts import Chart, Point, render
from reports.html import latency_lines, throughput_lines
from reports.style import fmt

_MARKED = {"gpu_xid", "gpu_memory_stress_step", "gpu_memory_stress_ended", "fault_injected", "load_started",
           "load_stopped", "process_exited", "restarted"}
Lines = dict[str, list[Point]]


def gpu_section(gpu: dict[str, Any] | None, data: RunData) -> str:
    if not gpu or (gpu.get("available") is False and not gpu.get("stress_steps")):
        return ""  # no GPU here: the memory section already says so in one line
    origin = data.load_start or 0.0
    parts = ["<h2>GPU</h2>", _devices(gpu), *_charts(data, origin), _steps(gpu["stress_steps"], origin),
             _ended(gpu["stress_ended"], origin), _xids(gpu["xid_events"], origin),
             _throttle(gpu["throttle"], origin), _notes(gpu)]
    return "".join(parts)


def _devices(gpu: dict[str, Any]) -> str:
    rows = []
    for d in gpu["devices"]:
        key = f"gpu={d.get('index')}"
        rows.append(
            f"<tr><td>{d.get('index')}</td><td>{escape(str(d.get('name') or '-'))}</td>"
            f"<td>{escape(str(d.get('pci_bus_id') or '-'))}</td><td>{format_size(d.get('total'))}</td>"
            f"<td>{format_size(gpu['peak_mem_used'].get(key))}</td><td>{fmt(gpu['max_temp_c'].get(key))}</td>"
            f"<td>{fmt(gpu['max_power_w'].get(key))}</td></tr>")
    if not rows:
        return ""
    return ("<table><tr><th>GPU</th><th>name</th><th>PCI</th><th>memory</th><th>peak used</th>"
            f"<th>max &deg;C</th><th>max W</th></tr>{''.join(rows)}</table>")


def _x_range(data: RunData, origin: float) -> tuple[float, float]:
    """The client charts' axis (harness/reports): the same seconds, so the two read together."""
    if data.seconds:
        return (min(0.0, data.seconds[0]["t"] - origin), max(s["t"] for s in data.seconds) + 1 - origin)
    times = [s["t"] - origin for s in data.series.get("gpu", [])]
    return (min(times), max(times)) if times else (0.0, 1.0)


def _charts(data: RunData, origin: float) -> list[str]:
    samples = data.series.get("gpu", [])
    if not samples:
        return []
    x_range = _x_range(data, origin)
    bands = [(e["start"] - origin, e["end"] - origin, e.get("name", "")) for e in data.events
             if e["event"] == "window" and e.get("kind") in ("gpu_memory_step", "fault")]
    markers = [(e["t"] - origin, _marker_name(e)) for e in data.events if e["event"] in _MARKED
               or (e["event"] == "gpu_throttle" and notable_reasons(e.get("reasons")))]

    def chart(title: str, unit: str, series: Lines) -> str:
        return render(Chart(title, unit, x_range, series, bands, markers)) if series else ""

    memory = _lines(samples, origin, _memory_label, MIB)
    return [
        "<p class='muted'>Same time axis as the client's charts above (seconds from the start of the "
        "load); shaded: the GPU stressor's steps and faults; dashed: Xid events, stressor steps, "
        "clock slowdowns.</p>",
        chart("GPU memory: used and total per device, held per stack role", "MiB", memory),
        _client(data, origin, chart),
        chart("GPU utilisation", "%", _lines(samples, origin, _pick("util", "mem_util"), 1.0)),
        chart("GPU temperature", "°C", _lines(samples, origin, _pick("temp_c"), 1.0)),
        chart("GPU power", "W", _lines(samples, origin, _pick("power_w"), 1.0)),
    ]


def _memory_label(name: str, label: str) -> str | None:
    """`GPU 0 used`, `GPU 0 total`, and a role's own name (`server`) for what its processes hold."""
    if name in ("mem_used", "mem_total"):
        return f"{label} {name.removeprefix('mem_')}"
    return label.removeprefix("role=") if name == "mem" else None


def _marker_name(event: dict[str, Any]) -> str:
    if event["event"] == "gpu_xid":
        return f"Xid {event.get('xid')} on GPU {event.get('device')}"
    if event["event"] == "gpu_throttle":
        return f"GPU {event.get('device')}: {', '.join(notable_reasons(event.get('reasons')))}"
    return str(event["event"])


def _client(data: RunData, origin: float, chart: Any) -> str:
    """The client's view again (the lines the report's own charts draw), right under the GPU
    memory it is to be read against."""
    if not data.seconds:
        return ""
    return str(chart("Client beside the GPU: throughput", "req/s", throughput_lines(data, origin))) + str(
        chart("Client beside the GPU: p99 latency of successful requests", "ms",
              {"p99": latency_lines(data, origin)["p99"]}))


def _pick(*names: str) -> Any:
    def label(name: str, device: str) -> str | None:
        return f"{device} {name}" if name in names else None

    return label


def _lines(samples: list[dict[str, Any]], origin: float, label: Any, scale: float) -> Lines:
    out: Lines = {}
    for sample in samples:
        for key, value in sample["values"].items():
            name, _, rest = key.partition("{")
            legend = label(name, rest.rstrip("}").replace("gpu=", "GPU "))
            if legend is not None:
                out.setdefault(legend, []).append((sample["t"] - origin, float(value) / scale))
    return out


def _steps(steps: list[dict[str, Any]], origin: float) -> str:
    if not steps:
        return ""
    rows = "".join(
        f"<tr><td>{s['step']}</td><td>{s['start'] - origin:+.1f}s to {s['end'] - origin:+.1f}s</td>"
        f"<td>{s['device']}</td><td>{escape(str(s['asked']))}</td><td>{escape(str(s['target_text']))}</td>"
        f"<td class='{'bad' if s['capped'] or s['error'] else 'ok'}'>{escape(str(s['held_text']))}"
        f"{' (capped)' if s['capped'] else ''}{' ' + escape(str(s['error'])) if s['error'] else ''}</td>"
        f"<td>{fmt(s['oom'])}</td><td>{format_size(s['free'])}</td><td>{s['requests']}</td>"
        f"<td>{fmt(s['error_rate'])}</td><td>{fmt(s['throughput_rps'])}</td><td>{fmt(s['p50_ms'])}</td>"
        f"<td>{fmt(s['p99_ms'])}</td></tr>"
        for s in steps
    )
    return ("<h3>GPU stressor steps: what the load saw at each</h3><table><tr><th>step</th><th>window</th>"
            "<th>GPU</th><th>asked</th><th>target</th><th>held</th><th>OOM refusals</th><th>free after</th>"
            "<th>requests</th><th>error rate</th><th>ok/s</th><th>p50 ms</th><th>p99 ms</th></tr>"
            f"{rows}</table>")


def _ended(ended: list[dict[str, Any]], origin: float) -> str:
    if not ended:
        return ""
    rows = "".join(
        f"<tr><td>{e['t'] - origin:+.2f}s</td><td>{e['device']}</td><td>{e['pid']}</td>"
        f"<td class='{'ok' if e['ended'] and e['how'] == 'end of input' else 'bad'}'>"
        f"{'ended' if e['ended'] else 'DID NOT END'} ({escape(str(e['how']))}, "
        f"exit {fmt(e['exit_code'])})</td>"
        f"<td>{escape(str(e['freed_text']))}</td><td>{format_size(e['free_after'])}</td></tr>"
        for e in ended
    )
    return ("<h3>GPU stressor: restore</h3><table><tr><th>t</th><th>GPU</th><th>pid</th><th>end</th>"
            f"<th>freed</th><th>free after</th></tr>{rows}</table>")


def _xids(xids: list[dict[str, Any]], origin: float) -> str:
    if not xids:
        return ""
    rows = "".join(f"<tr><td>{x['t'] - origin:+.2f}s</td><td>{x['device']}</td><td>{x['xid']}</td>"
                   f"<td>{escape(str(x['meaning'] or '-'))}</td></tr>" for x in xids)
    return ("<h3>Critical Xid events (NVML)</h3><table><tr><th>t</th><th>GPU</th><th>Xid</th><th>meaning</th>"
            f"</tr>{rows}</table>")


def _throttle(changes: list[dict[str, Any]], origin: float) -> str:
    if not changes:
        return ""
    rows = "".join(f"<tr><td>{c['t'] - origin:+.2f}s</td><td>{c['device']}</td><td>{fmt(c['mask'])}</td>"
                   f"<td>{escape(', '.join(c['reasons'] or []) or 'none')}</td></tr>" for c in changes)
    return ("<h3>Clock reasons (changes)</h3><table><tr><th>t</th><th>GPU</th><th>mask</th><th>reasons</th>"
            f"</tr>{rows}</table>")


def _notes(gpu: dict[str, Any]) -> str:
    notes = []
    for device, fields in (gpu.get("unsupported") or {}).items():
        notes.append(f"GPU {device} does not report: {', '.join(fields)}")
    watch = gpu.get("xid_watch") or {}
    if watch.get("unsupported"):
        notes.append(f"Xid events not delivered for GPU {', '.join(map(str, watch['unsupported']))}")
    if watch and not watch.get("watching"):
        notes.append(f"no Xid events watched{': ' + str(watch['error']) if watch.get('error') else ''}")
    if gpu.get("errors"):
        notes.append(f"{gpu['errors']} NVML read(s) failed")
    return f"<p class='muted'>{escape('; '.join(notes))}</p>" if notes else ""
