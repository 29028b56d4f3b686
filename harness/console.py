"""What people read: a rich Console on the run's output stream, and the per-SLO table.

The stream is the one given, else `sys.stdout` as it is when the Console is made, never at import:
`harness run --json` points `sys.stdout` at stderr for the run, and the table must follow it.
Whether to draw for a terminal is rich's own reading of that stream (its `isatty()`, and the
`TTY_COMPATIBLE`, `TTY_INTERACTIVE`, `FORCE_COLOR`, `TERM=dumb` conventions); otherwise the output is
plain text, aligned, with no escape codes, for CI logs.
"""

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text


class _HasToDict(Protocol):  # a SloResult, without importing the SLO machinery here
    def to_dict(self) -> dict[str, Any]: ...


SloLike = Mapping[str, Any] | _HasToDict
COLUMNS = ("SLO", "measured", "threshold", "interval", "samples", "result")
_RIGHT = {"measured", "samples"}  # numbers line up on their last digit


def make_console(out: TextIO | None = None, width: int | None = None) -> Console:
    """A Console writing to `out` (default: `sys.stdout` now); it reads TTY-ness from that stream."""
    return Console(file=out if out is not None else sys.stdout, width=width, highlight=False)


def is_live(console: Console) -> bool:
    """Whether the console may redraw in place: a terminal that takes cursor moves, a person at it."""
    return console.is_terminal and console.is_interactive and not console.is_dumb_terminal


def number(value: float | None) -> str:
    """A measured figure, short: integers whole, large ones without decimals, small to 4 figures."""
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class SloRow:
    """One SLO as the table shows it; `outcome` picks its colour on a terminal."""

    name: str
    measured: str
    threshold: str
    interval: str
    samples: str
    result: str
    outcome: str  # held, marginal, failed, no_data

    def cells(self) -> tuple[str, ...]:
        return (self.name, self.measured, self.threshold, self.interval, self.samples, self.result)


def slo_row(result: SloLike) -> SloRow:
    """From one entry of summary.json's `slos` (SloResult.to_dict) or a SloResult itself."""
    data = result if isinstance(result, Mapping) else result.to_dict()
    measured = data.get("measured")
    marginal = bool(data.get("marginal"))
    if measured is None:
        outcome, word = "no_data", "FAILED (no data)"
    elif data.get("passed"):
        outcome, word = ("marginal", "held (marginal)") if marginal else ("held", "held")
    else:
        outcome, word = "failed", ("FAILED (marginal)" if marginal else "FAILED")
    return SloRow(
        name=str(data.get("name", data.get("metric", "?"))),
        measured="no data" if measured is None else number(measured),
        threshold=f"{data.get('op', '?')} {number(data.get('threshold'))}",
        interval=_interval(data.get("ci"), data.get("confidence")),
        samples=str(data.get("samples", 0)),
        result=word,
        outcome=outcome,
    )


def _interval(ci: Any, confidence: Any) -> str:
    if not ci:
        return "-"
    low, high = ci  # a side is None where the sample cannot bound it
    sides = ", ".join("?" if side is None else number(side) for side in (low, high))
    level = f" {float(confidence) * 100:g}%" if confidence is not None else ""
    return f"[{sides}]{level}"


def slo_counts(rows: list[SloRow]) -> str:
    """`3 SLO(s): 2 held, 1 failed (1 marginal)`: the table's one-line caption."""
    held = sum(1 for row in rows if row.outcome in ("held", "marginal"))
    marginal = sum(1 for row in rows if "marginal" in row.result)
    text = f"{len(rows)} SLO(s): {held} held, {len(rows) - held} failed"
    return text + (f" ({marginal} marginal)" if marginal else "")


def slo_table_text(results: Iterable[SloLike]) -> str:
    """The table as aligned plain text (a header, a rule, a row per SLO, a caption), no colour."""
    rows = [slo_row(result) for result in results]
    widths = [max(len(cell) for cell in column) for column in zip(COLUMNS, *(r.cells() for r in rows),
                                                                   strict=False)]

    def line(cells: tuple[str, ...]) -> str:
        padded = [cell.rjust(width) if name in _RIGHT else cell.ljust(width)
                  for name, cell, width in zip(COLUMNS, cells, widths, strict=True)]
        return "  ".join(padded).rstrip()

    lines = [line(COLUMNS), "  ".join("-" * width for width in widths)]
    lines += [line(row.cells()) for row in rows]
    lines.append(slo_counts(rows))
    return "\n".join(lines) + "\n"


_STYLES = {"held": "green", "marginal": "yellow", "failed": "bold red", "no_data": "bold red"}


def slo_table(results: Iterable[SloLike]) -> Table:
    """The same table for a terminal: a rich Table, each result in its colour."""
    rows = [slo_row(result) for result in results]
    table = Table(title="SLOs", caption=slo_counts(rows), box=box.SIMPLE_HEAD, show_edge=False,
                  title_justify="left", caption_justify="left")
    for name in COLUMNS:
        table.add_column(name, justify="right" if name in _RIGHT else "left",
                         overflow="fold", no_wrap=name != "SLO")
    for row in rows:
        *cells, result = row.cells()
        table.add_row(*cells, Text(result, style=_STYLES[row.outcome]))
    return table


def print_slo_table(results: Iterable[SloLike], out: TextIO | None = None,
                    console: Console | None = None) -> None:
    """Print the per-SLO table to `out` (default: `sys.stdout` now): rich on a terminal, else plain.

    `results`: summary.json's `slos` (or `Verdict.slos`). Nothing is printed when there are none.
    """
    results = list(results)
    if not results:
        return
    console = console or make_console(out)
    if console.is_terminal and not console.is_dumb_terminal:
        console.print(slo_table(results))
        return
    stream = console.file
    stream.write(slo_table_text(results))
    stream.flush()
