"""soak.html: a soak's trends on one self-contained page (inline charts, styles and data).

Leak detection (the target's RSS and its least-squares slope), the harness's own RSS, p50/p99
per cycle and their drift, each cycle's error windows and recovery, and one row per cycle with a
link to that cycle's own report.html.
"""

from html import escape
from typing import Any

from reports.charts import Chart, render
from reports.style import BASE_CSS, CHART_HELP, fmt, kv_table, page

_CSS = BASE_CSS + """
body{max-width:1100px} td,th{vertical-align:top}
"""
MAX_ROWS = 400  # cycle rows shown in full; beyond, failed cycles and the first and last ones
EDGE_ROWS = 100

Points = list[tuple[float, float]]


def build_soak_html(soak: dict[str, Any]) -> str:
    title = f"soak: {soak['scenario']}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p class='muted'>{escape(soak.get('description') or '')}</p>",
        f"<p><span class='verdict {escape(soak['verdict'])}'>{escape(soak['verdict'].upper())}</span>"
        f" &nbsp;exit {soak['exit_code']} ({escape(soak['exit_name'])}) &mdash; {escape(soak['reason'])}</p>",
        _settings(soak),
        _limits(soak.get("limits", [])),
        "<h2>Trends</h2>",
        _trend_table(soak),
        "<p class='muted'>Time in seconds from the start of the soak's load. Dashed lines mark "
        f"cycles whose SLOs failed (the line under a chart names the cycle). {CHART_HELP}</p>",
        *_charts(soak),
        "<h2>Cycles</h2>",
        _cycles_table(soak["cycles"]),
    ]
    return page(f"{title}: {soak['verdict']}", _CSS, "".join(body))


def _settings(soak: dict[str, Any]) -> str:
    s = soak["settings"]
    rows = [
        ("soak length (planned)", f"{s['for_s']:g} s"),
        ("cycle (the scenario's load)", f"{s['cycle_s']:g} s"),
        ("cycles planned / complete", f"{soak['cycles_planned']} / {soak['cycles_done']}"),
        ("cycles failed", ", ".join(str(n) for n in soak["cycles_failed"][:50]) or "none"),
        ("cut short at the end (shown, not judged)", ", ".join(str(n) for n in soak.get("cycles_partial", []))
         or "none"),
        ("RSS warm-up left out of slopes", f"{s['warmup_s']:g} s"),
        ("run folder", soak["run_dir"]),
    ]
    return kv_table(rows)


def _limits(limits: list[dict[str, Any]]) -> str:
    if not limits:
        return "<p class='muted'>No soak-level limit was set (e.g. --max-rss-slope-mb-per-h).</p>"
    rows = "".join(
        f"<tr><td>{escape(s['name'])}</td><td>{fmt(s['measured'])}</td><td>{escape(s['op'])} "
        f"{s['threshold']:g}</td><td>{s['samples']}</td>"
        f"<td class='{'ok' if s['passed'] else 'bad'}'>{'held' if s['passed'] else 'FAILED'}</td></tr>"
        for s in limits
    )
    return ("<table><tr><th>soak limit</th><th>measured</th><th>threshold</th><th>samples</th>"
            f"<th>result</th></tr>{rows}</table>")


def _trend_table(soak: dict[str, Any]) -> str:
    target, harness, p99, windows, totals = (soak["target_rss"], soak["harness_rss"], soak["p99"],
                                             soak["error_windows"], soak["totals"])
    rows = [
        ("target RSS slope (MB/hour, least squares)", target["slope_mb_per_h"]),
        ("target RSS first / last / max (MiB)", _trio(target)),
        ("target RSS samples used (from s)", f"{target['samples']} (from {fmt(target['from_s'])})"),
        ("harness RSS slope (MB/hour)", harness["slope_mb_per_h"]),
        ("harness RSS first / last / max (MiB)", _trio(harness)),
        (f"p99 first / last {p99.get('compared', 0)} cycle(s) (ms)",
         f"{fmt(p99['first_ms'])} / {fmt(p99['last_ms'])}"),
        ("p99 drift (ms, %)", f"{fmt(p99['drift_ms'])} ({fmt(p99['drift_pct'])}%)"),
        ("p99 slope (ms/hour)", p99["slope_ms_per_h"]),
        ("error window per cycle: max / mean (s)", f"{fmt(windows['max_s'])} / {fmt(windows['mean_s'])}"),
        ("error window slope (s/hour)", windows["slope_s_per_h"]),
        ("longest recovery (s); faults never recovered",
         f"{fmt(windows['recovery_max_s'])}; {windows['unrecovered']}"),
        ("requests / failed / error rate",
         f"{totals['requests']} / {totals['errors']} / {fmt(totals['error_rate'])}"),
        ("throughput (ok/s)", totals["throughput_rps"]),
        ("faults injected; requests failed in their windows",
         f"{totals['faults']}; {totals['failed_in_faults']}"),
    ]
    return kv_table(rows)


def _trio(trend: dict[str, Any]) -> str:
    return f"{fmt(trend['first_mb'])} / {fmt(trend['last_mb'])} / {fmt(trend['max_mb'])}"


def _charts(soak: dict[str, Any]) -> list[str]:
    cycles = soak["cycles"]
    end = max([float(soak["settings"]["for_s"])] + [_end(r) for r in cycles])
    markers = [(_mid(r), f"cycle {r['cycle']}: {r['verdict']}") for r in cycles if _flagged(r)]

    def chart(title: str, y_label: str, series: dict[str, Points]) -> str:
        return render(Chart(title, y_label, (0.0, end), {k: v for k, v in series.items()}, markers=markers))

    target = [(float(t), float(v)) for t, v in soak["series"]["target_rss"]]
    harness = [(float(t), float(v)) for t, v in soak["series"]["harness_rss"]]
    rss = {"target RSS (MiB)": target}
    fitted = _fitted(target, soak["target_rss"])
    if fitted:
        rss[f"least squares: {soak['target_rss']['slope_mb_per_h']:+g} MB/h"] = fitted
    return [
        chart("Target RSS: the stack's processes, summed (leak detection)", "MiB", rss),
        chart("Harness RSS (the load generator's own memory)", "MiB", {"harness RSS (MiB)": harness}),
        chart("Latency per cycle", "ms",
              {"p99": _per_cycle(cycles, "p99_ms"), "p50": _per_cycle(cycles, "p50_ms")}),
        chart("Error window per cycle (first to last failed request after a fault)", "s",
              {"largest error window (s)": _per_cycle(cycles, "error_window_s"),
               "longest recovery (s)": _per_cycle(cycles, "recovery_s")}),
        chart("Failed requests per cycle", "requests", {"failed": _per_cycle(cycles, "errors")}),
        chart("Throughput per cycle", "ok/s", {"throughput": _per_cycle(cycles, "throughput_rps")}),
    ]


def _flagged(row: dict[str, Any]) -> bool:
    """A cycle that did not pass and counts: a cut-short last cycle is not judged."""
    if row["verdict"] in ("pass", "reproduced"):
        return False
    return not row.get("partial") or row["verdict"] in ("interrupted", "incomplete", "error")


def _fitted(points: Points, trend: dict[str, Any]) -> Points:
    """The least-squares line over the samples the slope used (its two ends)."""
    from harness.soak.trend import fit_line

    used = [(t, v) for t, v in points if v > 0 and trend["from_s"] is not None and t >= trend["from_s"]]
    line = fit_line(used)
    if line is None:
        return []
    b, a = line
    x0, x1 = used[0][0], used[-1][0]
    return [(x0, a + b * x0), (x1, a + b * x1)]


def _per_cycle(cycles: list[dict[str, Any]], key: str) -> Points:
    return [(_mid(r), float(r[key])) for r in cycles if r.get(key) is not None]


def _mid(row: dict[str, Any]) -> float:
    return float(row.get("offset_s") or 0.0) + float(row.get("duration_s") or 0.0) / 2


def _end(row: dict[str, Any]) -> float:
    return float(row.get("offset_s") or 0.0) + float(row.get("duration_s") or 0.0)


def _cycles_table(cycles: list[dict[str, Any]]) -> str:
    shown, note = _rows_to_show(cycles)
    rows = "".join(_cycle_row(r) for r in shown)
    return (
        (f"<p class='muted'>{escape(note)}</p>" if note else "")
        + "<table><tr><th>cycle</th><th>from</th><th>requests</th><th>failed</th><th>error rate</th>"
        "<th>p50 / p99 (ms)</th><th>error windows (per fault)</th><th>target RSS (MiB)</th>"
        f"<th>harness RSS (MiB)</th><th>verdict</th></tr>{rows}</table>"
    )


def _rows_to_show(cycles: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    if len(cycles) <= MAX_ROWS:
        return cycles, ""
    keep = {r["cycle"] for r in cycles[:EDGE_ROWS] + cycles[-EDGE_ROWS:]}
    keep |= {r["cycle"] for r in cycles if r["verdict"] not in ("pass", "reproduced")}
    shown = [r for r in cycles if r["cycle"] in keep]
    return shown, (f"{len(cycles)} cycles: shown are the first and last {EDGE_ROWS} and every one that did "
                   "not pass; soak.json and soak.jsonl hold them all.")


def _cycle_row(r: dict[str, Any]) -> str:
    link = f"<a href='{escape(r['dir'])}/report.html'>{r['cycle']}</a>"
    faults = "<br>".join(_fault_text(f) for f in r.get("faults", [])) or "-"
    verdict = escape(r["verdict"])
    if r.get("slos_failed"):
        verdict += "<br><span class='muted'>" + escape("; ".join(r["slos_failed"])) + "</span>"
    good = r["verdict"] in ("pass", "reproduced")
    if r.get("partial") and r["verdict"] not in ("interrupted", "incomplete"):
        verdict += "<br><span class='muted'>cut short at --for: not judged</span>"
    return (
        f"<tr><td>{link}</td><td class='num'>{fmt(r.get('offset_s'))}s</td>"
        f"<td class='num'>{r['requests']}</td>"
        f"<td class='num'>{r['errors']}</td><td class='num'>{fmt(r['error_rate'])}</td>"
        f"<td class='num'>{fmt(r['p50_ms'])} / {fmt(r['p99_ms'])}</td><td>{faults}</td>"
        f"<td class='num'>{fmt(r.get('target_rss_mb'))}</td>"
        f"<td class='num'>{fmt(r.get('harness_rss_mb'))}</td>"
        f"<td class='{'ok' if good else 'bad'}'>{verdict}</td></tr>"
    )


def _fault_text(fault: dict[str, Any]) -> str:
    if fault.get("detected") and fault.get("recover_s") is None:
        recovery = "<b>never recovered</b>"
    elif fault.get("recover_s") is not None:
        recovery = f"recovered {fmt(fault['recover_s'])} s"
    else:
        recovery = "no failure seen"
    return (f"{escape(fault['name'])} ({escape(fault['id'])}): window {fmt(fault['window_s'])} s, "
            f"{fault['failed_requests']} failed, {recovery}")
