"""Small inline-SVG line charts, so report.html needs no script and no network."""

from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 900, 230
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 34, 30
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

Point = tuple[float, float]


@dataclass
class Chart:
    title: str
    y_label: str
    x_range: tuple[float, float]
    series: dict[str, list[Point]] = field(default_factory=dict)
    bands: list[tuple[float, float, str]] = field(default_factory=list)  # shaded windows
    markers: list[tuple[float, str]] = field(default_factory=list)  # vertical lines


def render(chart: Chart) -> str:
    x0, x1 = chart.x_range
    if x1 <= x0:
        x1 = x0 + 1
    values = [y for points in chart.series.values() for _, y in points]
    y_max = _nice_ceiling(max(values, default=1.0))

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT)

    def sy(y: float) -> float:
        return HEIGHT - BOTTOM - y / y_max * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart">',
        f'<text x="{LEFT}" y="12" class="title">{escape(chart.title)}</text>',
    ]
    for start, end, label in chart.bands:
        a, b = sx(max(start, x0)), sx(min(end, x1))
        parts.append(
            f'<rect x="{a:.1f}" y="{TOP}" width="{max(b - a, 1):.1f}" '
            f'height="{HEIGHT - TOP - BOTTOM}" class="band"><title>{escape(label)}</title></rect>'
        )
    parts += _axes(x0, x1, y_max, sx, sy, chart.y_label)
    for x, label in chart.markers:
        if x0 <= x <= x1:
            parts.append(
                f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
                f'class="marker"><title>{escape(label)}</title></line>'
            )
    for i, (name, points) in enumerate(chart.series.items()):
        colour = COLOURS[i % len(COLOURS)]
        if points:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        parts.append(
            f'<text x="{WIDTH - RIGHT - 150}" y="{16 + 14 * i}" fill="{colour}" '
            f'class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _axes(x0: float, x1: float, y_max: float, sx, sy, y_label: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = [
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" class="axis"/>',
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{sy(0):.1f}" class="axis"/>',
        f'<text x="{LEFT}" y="{TOP - 4}" class="label">{escape(y_label)}</text>',
    ]
    for i in range(5):
        y = y_max * i / 4
        out.append(f'<text x="{LEFT - 6}" y="{sy(y) + 4:.1f}" class="tick" text-anchor="end">{y:g}</text>')
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" class="grid"/>')
    step = _nice_step((x1 - x0) / 8)
    x = (x0 // step + 1) * step if x0 % step else x0
    while x <= x1:
        out.append(f'<text x="{sx(x):.1f}" y="{HEIGHT - 10}" class="tick" text-anchor="middle">{x:g}s</text>')
        x += step
    return out


def _nice_step(raw: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if raw <= step:
            return float(step)
    return 7200.0


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    for factor in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return value
