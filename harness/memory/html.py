"""The report's memory section: start attempts, OOM kills, sidecars, stressor steps, and plots
of RSS per role, the memory groups and the host's pressure over the whole run."""

from html import escape
from typing import Any

from harness.analysis import RunData
from harness.sizes import format_size
from reports.charts import Chart, render

MIB = float(1 << 20)
_MARKED = {"stack_start_attempt", "oom_kill", "sidecar_exited", "memory_stress_step", "memory_limit_step",
           "stack_ready", "load_started"}


def memory_section(memory: dict[str, Any] | None, data: RunData) -> str:
    if not memory:
        return ""
    origin = data.load_start or 0.0
    parts = ["<h2>Start-up and memory</h2>", _startup(memory["startup"], origin)]
    parts += _charts(data, origin)
    parts += [_kills(memory["oom_kill_events"], origin), _sidecars(memory["sidecars"], origin),
              _steps(memory["stress_steps"], origin), _notes(memory)]
    return "".join(parts)


def _startup(startup: dict[str, Any], origin: float) -> str:
    attempts = startup["attempts"]
    if not attempts:
        return ""
    ready = startup["ready_after_starts"]
    head = (f"<p><b>ready after {ready} start{'s' if ready != 1 else ''}</b>, "
            f"{startup['startup_s']}s from the first start</p>" if ready else "<p><b>never ready</b></p>")
    rows = "".join(
        f"<tr><td>{a['attempt']}/{a['of']}</td><td class='{'ok' if a['outcome'] == 'ready' else 'bad'}'>"
        f"{escape(a['outcome'])}</td><td>{a['seconds']}</td><td>{_roles(a.get('roles') or {})}</td>"
        f"<td>{(a.get('memory') or {}).get('oom_kills', '-')}</td>"
        f"<td>{format_size((a.get('memory') or {}).get('peak'))}</td>"
        f"<td>{escape(str(a.get('error') or ''))[:240]}</td></tr>"
        for a in attempts
    )
    return (head + "<table><tr><th>start</th><th>outcome</th><th>seconds</th><th>roles: first seen, peak RSS"
            "</th><th>OOM kills</th><th>group peak</th><th>error</th></tr>" + rows + "</table>")


def _roles(roles: dict[str, Any]) -> str:
    return "<br>".join(f"{escape(role)}: +{r['first_seen_s']}s, {escape(r['peak_rss_text'])}"
                       for role, r in roles.items() if r.get("first_seen_s") is not None)


def _charts(data: RunData, origin: float) -> list[str]:
    rss = data.series.get("memory_rss", [])
    if not rss:
        return []
    times = [s["t"] for name in ("memory_rss", "memory_host") for s in data.series.get(name, [])]
    x_range = (min(times) - origin, max(times) - origin)
    markers = [(e["t"] - origin, e["event"]) for e in data.events if e["event"] in _MARKED]
    bands = [(e["start"] - origin, e["end"] - origin, e.get("name", "")) for e in data.events
             if e["event"] == "window" and e.get("kind") == "memory_step"]

    def chart(title: str, unit: str, series: dict[str, list[tuple[float, float]]]) -> str:
        return render(Chart(title, unit, x_range, series, bands, markers)) if series else ""

    return [
        chart("RSS per role (start-up is before 0 s: Ctrl+wheel zooms out to it)", "MiB",
              _points(rss, origin, lambda key: key, MIB)),
        chart("Memory groups: usage and limit", "MiB",
              _points(data.series.get("memory_cgroup", []), origin, _group_key(("usage", "limit")), MIB)),
        chart("Memory pressure (PSI avg10, % of time stalled)", "%",
              _points(data.series.get("memory_host", []), origin, _psi_key, 1.0)),
    ]


def _points(samples: list[dict[str, Any]], origin: float, label: Any, scale: float
            ) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for sample in samples:
        for key, value in sample["values"].items():
            name = label(key)
            if name is not None:
                out.setdefault(name, []).append((sample["t"] - origin, float(value) / scale))
    return out


def _group_key(wanted: tuple[str, ...]) -> Any:
    def pick(key: str) -> str | None:
        name = key.split("{", 1)[0]
        return key.replace("{group=", " ").rstrip("}") if name in wanted else None

    return pick


def _psi_key(key: str) -> str | None:
    return f"host {key[4:]}" if key in ("psi_some_avg10", "psi_full_avg10") else None


def _kills(kills: list[dict[str, Any]], origin: float) -> str:
    if not kills:
        return ""
    rows = "".join(
        f"<tr><td>{k['t'] - origin:+.2f}s</td><td>{escape(str(k['process']))}</td><td>{k['pid']}</td>"
        f"<td>{escape(str(k.get('role') or '-'))}</td>"
        f"<td>{'yes' if k['ours'] else 'no (another tenant)'}</td>"
        f"<td>{format_size(k.get('anon_rss'))}</td><td>{escape(str(k.get('memcg') or '-'))}</td></tr>"
        for k in kills
    )
    return ("<h3>OOM kills (kernel log)</h3><table><tr><th>t</th><th>process</th><th>pid</th><th>role</th>"
            f"<th>this run's</th><th>anon RSS</th><th>memory cgroup</th></tr>{rows}</table>")


def _sidecars(sidecars: list[dict[str, Any]], origin: float) -> str:
    if not sidecars:
        return ""
    rows = "".join(
        f"<tr><td>{escape(s['name'])}</td><td>{s['pid']}</td><td>{escape(str(s['memory']))}</td>"
        f"<td>{escape(str(s['expect']))}</td>"
        f"<td class='{'bad' if s['death'] else 'ok'}'>"
        f"{'DIED ' if s['death'] else ''}{escape(s['exit'] or 'ran to the end')}{_at(s['exited_t'], origin)}"
        "</td></tr>"
        for s in sidecars
    )
    return ("<h3>Sidecars</h3><table><tr><th>name</th><th>pid</th><th>memory</th><th>expect</th>"
            f"<th>fate</th></tr>{rows}</table>")


def _at(t: float | None, origin: float) -> str:
    return "" if t is None else f" at {t - origin:+.2f}s"


def _steps(steps: list[dict[str, Any]], origin: float) -> str:
    if not steps:
        return ""
    rows = "".join(
        f"<tr><td>{s['step']}</td><td>{s['start'] - origin:+.1f}s to {s['end'] - origin:+.1f}s</td>"
        f"<td>{escape(str(s['target_text']))}</td>"
        f"<td>{format_size(s['held'])}{' (floor)' if s['capped'] else ''}</td>"
        f"<td>{s['requests']}</td><td>{_num(s['error_rate'])}</td><td>{_num(s['throughput_rps'])}</td>"
        f"<td>{_num(s['p50_ms'])}</td><td>{_num(s['p99_ms'])}</td></tr>"
        for s in steps
    )
    return ("<h3>Memory stressor steps: what the load saw at each</h3><table><tr><th>step</th><th>window</th>"
            "<th>asked</th><th>held</th><th>requests</th><th>error rate</th><th>ok/s</th><th>p50 ms</th>"
            f"<th>p99 ms</th></tr>{rows}</table>")


def _notes(memory: dict[str, Any]) -> str:
    notes = []
    kernel = memory.get("kernel_log") or {}
    if kernel and not kernel.get("readable"):
        notes.append(f"kernel log not readable ({kernel.get('reason')}): "
                     "OOM kills come from cgroup counters only")
    cgroup = memory.get("cgroup")
    if cgroup:
        notes.append(f"memory cgroups: {cgroup['version']} at {cgroup['mount']}")
    if (memory.get("gpu") or {}).get("available") is False:
        notes.append("no GPU (NVML): no GPU series")
    return f"<p class='muted'>{escape('; '.join(notes))}</p>" if notes else ""


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:g}"
