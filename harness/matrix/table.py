"""The matrix's answer: a row per version (what it reported at start, what the store holds, the
verdict) and a column per SLO of the scenario (its measured value and whether it held), printed
with rich and, on request, written as Markdown for a note or an issue."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich import box
from rich.table import Table
from rich.text import Text

from harness.console import make_console, number
from harness.matrix.runs import VersionRun

FIXED = ("version", "server at start", "in store", "verdict")
_VERDICT_STYLE = {"pass": "green", "reproduced": "green", "fail": "bold red"}


@dataclass(frozen=True)
class Grid:
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    verdicts: list[str]


def slo_columns(runs: Sequence[VersionRun]) -> list[str]:
    """Every SLO any run judged, by name (`ts.workers_ready_s <= 25`), in the scenario's order."""
    names: list[str] = []
    for run in runs:
        for slo in run.slos:
            name = str(slo.get("name") or slo.get("metric") or "?")
            if name not in names:
                names.append(name)
    return names


def slo_cell(slo: dict[str, Any] | None) -> str:
    if slo is None:
        return "-"  # the run ended before judging (a stack that never became ready)
    measured = slo.get("measured")
    if measured is None:
        return "no data"
    return f"{number(measured)} {'held' if slo.get('passed') else 'FAILED'}"


def server_cell(run: VersionRun) -> str:
    found = run.reported_version
    if found is None:  # the stack never started far enough to say; what its environment holds
        return f"- (installed {run.installed})" if run.installed else "-"
    return found if found == run.version else f"{found} (asked {run.version})"


def store_cell(run: VersionRun) -> str:
    if not run.recorded:
        return "not recorded"
    return run.stored_version or "- (recorded)"  # recorded, but the stack never said its version


def build_grid(runs: Sequence[VersionRun]) -> Grid:
    names = slo_columns(runs)
    rows = []
    for run in runs:
        by_name = {str(s.get("name") or s.get("metric") or "?"): s for s in run.slos}
        rows.append((run.version, server_cell(run), store_cell(run), run.verdict,
                     *(slo_cell(by_name.get(name)) for name in names)))
    return Grid((*FIXED, *names), rows, [run.verdict for run in runs])


def rich_table(grid: Grid, title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, title_justify="left")
    for i, name in enumerate(grid.header):
        table.add_column(name, justify="right" if i >= len(FIXED) else "left", no_wrap=i < len(FIXED))
    for row, verdict in zip(grid.rows, grid.verdicts, strict=True):
        cells: list[str | Text] = list(row)
        cells[3] = Text(verdict, style=_VERDICT_STYLE.get(verdict, "bold red"))
        cells[len(FIXED):] = [Text(c, style="bold red") if c.endswith("FAILED") or c == "no data" else c
                              for c in row[len(FIXED):]]
        table.add_row(*cells)
    return table


def print_table(grid: Grid, title: str, out: TextIO | None = None) -> None:
    console = make_console(out, width=max(120, 18 * len(grid.header)))
    console.print(rich_table(grid, title))


def markdown(grid: Grid, title: str) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [f"**{title}**", "", line(grid.header), line(["---"] * len(grid.header))]
    out += [line(row) for row in grid.rows]
    return "\n".join(out) + "\n"
