"""`harness history SCENARIO`: each metric run by run, with its interval, the verdicts, the stack
versions and the change points, as a terminal table and as a self-contained HTML page."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.store.changepoints import MAX_PVALUE, Change, detect, otava_available
from harness.store.points import History, Point

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from harness.store.models import RunRecord

UP, DOWN = "▲", "▼"


@dataclass(frozen=True)
class Marked:
    """A change point of one metric, placed on the run where the new level begins."""

    metric: str
    run_index: int  # into History.runs
    change: Change
    worse: bool


def change_points(history: History, max_pvalue: float = MAX_PVALUE) -> dict[str, list[Marked]]:
    """Every metric's change points (empty when Otava is missing: see `otava_available`)."""
    if not otava_available():
        return {name: [] for name in history.metrics}
    out: dict[str, list[Marked]] = {}
    for name in history.metrics:
        indices, values = history.values(name)
        marks = []
        for change in detect(values, max_pvalue=max_pvalue):
            worse = (change.after - change.before) * history.better[name] < 0
            marks.append(Marked(name, indices[change.index], change, worse))
        out[name] = marks
    return out


def run_label(run: RunRecord) -> str:
    label = run.started_at.strftime("%Y-%m-%d %H:%M")
    if run.kind == "soak_cycle":
        label += f" c{run.position}"
    elif run.kind == "repetition" and run.position is not None:
        label += f" r{run.position}"
    return label


def fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-" if value is None else str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"
    return f"{value:.3g}"


def cell(point: Point | None) -> str:
    if point is None:
        return "-"
    if point.low is None or point.high is None:
        return fmt(point.value)
    return f"{fmt(point.value)} [{fmt(point.low)}, {fmt(point.high)}]"


def describe_change(mark: Marked, runs: list[RunRecord]) -> str:
    change = mark.change
    return (f"{mark.metric}: {'worse' if mark.worse else 'better'} from run #{mark.run_index + 1} "
            f"({run_label(runs[mark.run_index])}): {fmt(change.before)} -> {fmt(change.after)} "
            f"({change.shown})")


Column = tuple[str, list["Text | str"]]


def print_history(history: History, marks: dict[str, list[Marked]], console: Console | None = None) -> None:
    """The runs, oldest first, then the metrics as many at a time as the terminal is wide (each
    table repeats the run's number), then the change points."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(highlight=False)
    runs = history.runs
    numbers = [str(i + 1) for i in range(len(runs))]
    info: list[Column] = [("started (UTC)", [run_label(r) for r in runs]),
                          ("verdict", [_verdict(r.verdict) for r in runs]),
                          ("stack", [f"{r.stack_kind or '?'} {r.stack_version or ''}".strip() for r in runs]),
                          ("harness", [r.harness_version or "-" for r in runs]),
                          ("scenario", _shas(runs))]
    metrics: list[Column] = [(name, _metric_cells(name, points, marks.get(name, [])))
                             for name, points in history.metrics.items()]
    title = f"{history.scenario}: {len(runs)} run(s), oldest first"
    for chunk in _chunks([*info, *metrics], console.width - 8):
        table = Table(title=title, title_justify="left", show_edge=False)
        title = ""
        table.add_column("#", justify="right", no_wrap=True)
        for header, _ in chunk:
            table.add_column(header, justify="left" if (header, _) in info else "right", no_wrap=True)
        for i, number in enumerate(numbers):
            table.add_row(number, *[cells[i] for _, cells in chunk])
        console.print(table)
    console.print("scenario: the first 8 hex digits of the sha256 of the scenario file each run ran; "
                  "* where it differs from the run before")
    if not otava_available():
        console.print("change points: not marked (Apache Otava is not installed: "
                      "pip install --no-deps apache-otava==0.8.0)")
        return
    found = sorted((m for ms in marks.values() for m in ms), key=lambda m: (m.run_index, m.metric))
    if not found:
        console.print("change points: none")
    for mark in found:
        console.print(f"change point: {describe_change(mark, runs)}")


def _verdict(word: str) -> Text:
    from rich.text import Text

    return Text(word, style="green" if word == "pass" else "red")


def _shas(runs: list[RunRecord]) -> list[Text | str]:
    out: list[Text | str] = []
    for i, run in enumerate(runs):
        sha = (run.scenario_sha256 or "-")[:8]
        out.append(sha + (" *" if i and run.scenario_sha256 != runs[i - 1].scenario_sha256 else ""))
    return out


def _metric_cells(name: str, points: list[Point | None], marks: list[Marked]) -> list[Text | str]:
    from rich.text import Text

    at = {m.run_index: m for m in marks}
    cells: list[Text | str] = []
    for i, point in enumerate(points):
        text = cell(point)
        mark = at.get(i)
        if mark is None:
            cells.append(text)
            continue
        arrow = UP if mark.change.after > mark.change.before else DOWN
        cells.append(Text(f"{arrow} {text}", style="bold red" if mark.worse else "bold green"))
    return cells


def _chunks(columns: list[Column], width: int) -> list[list[Column]]:
    """Columns packed into tables no wider than `width` (a column wider than that gets one alone)."""
    chunks: list[list[Column]] = [[]]
    used = 0
    for column in columns:
        header, cells = column
        need = max([len(header), *(len(str(c)) for c in cells)]) + 3
        if chunks[-1] and used + need > width:
            chunks.append([])
            used = 0
        chunks[-1].append(column)
        used += need
    return chunks


def write_html(history: History, marks: dict[str, list[Marked]], path: Path) -> None:
    from harness.store.history_html import build_history_html

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_history_html(history, marks), encoding="utf-8")
