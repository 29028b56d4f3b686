"""The report pages' charts: what Python hands the browser (the browser test draws them)."""

import hashlib
import json
import math
from importlib import resources

from reports.charts import Chart, distribution_points, fill_zeros, nines, render
from reports.style import page
from tests.reportpage import chart_specs


def _spec(chart: Chart) -> dict:
    (spec,) = chart_specs(render(chart))
    return spec


def test_a_missing_stretch_is_a_gap_and_regular_points_are_not() -> None:
    points = [(float(x), 1.0) for x in (0, 1, 2, 3, 8, 9, 10)]  # 4..7 missing
    (line,) = _spec(Chart("c", "ms", (0, 10), {"p99": points}))["series"]
    ys = [y for _, y in line["points"]]
    assert ys.count(None) == 1
    gap = line["points"][ys.index(None)]
    assert 3 < gap[0] < 8  # between the neighbours of the hole
    (regular,) = _spec(Chart("c", "ms", (0, 10), {"p99": [(float(x), 1.0) for x in range(10)]}))["series"]
    assert None not in [y for _, y in regular["points"]]


def test_an_explicit_none_stays_a_hole_and_nan_is_no_value() -> None:
    (line,) = _spec(Chart("c", "ms", (0, 3), {"a": [(0.0, 1.0), (1.0, None), (2.0, math.nan)]}))["series"]
    assert line["points"] == [[0.0, 1.0], [1.0, None], [2.0, None]]


def test_counts_missing_seconds_are_zeros() -> None:
    filled = fill_zeros([(0.5, 3.0), (3.5, 2.0)], 0.5, 5.5)
    assert filled == [(0.5, 3.0), (1.5, 0.0), (2.5, 0.0), (3.5, 2.0), (4.5, 0.0)]


def test_text_cannot_end_the_script_that_carries_the_data() -> None:
    html = render(Chart("</script><b>x", "ms", (0, 1), {"</script>": [(0.0, 1.0)]},
                        markers=[(0.5, "</script>")]))
    assert html.count("</script>") == 1  # only the element's own end
    (spec,) = chart_specs(html)
    assert spec["title"] == "</script><b>x" and spec["series"][0]["label"] == "</script>"


def test_the_old_microsecond_spelling_reads_as_a_unit() -> None:
    assert _spec(Chart("c", "us", (0, 1)))["unit"] == "µs"


def test_the_distribution_ends_at_the_maximum_where_the_samples_run_out() -> None:
    points = distribution_points(lambda p: p * 2, 1000)  # 1,000 samples: beyond 99.9% is the max
    assert points[0] == (0.0, 0.0)
    assert points[-1] == (3.0, 200.0)
    assert all(x < 3.0 for x, _ in points[:-1]) and math.isclose(nines(99.0), 2.0)


def test_a_page_carries_the_chart_library_only_when_it_draws_a_chart() -> None:
    assert "uPlot" not in page("t", "", "<p>no charts</p>")
    with_chart = page("t", "", render(Chart("c", "ms", (0, 1), {"a": [(0.0, 1.0)]})))
    assert "var uPlot=" in with_chart and "HarnessCharts" in with_chart
    assert "<script src" not in with_chart  # inline: the page opens offline


def test_the_vendored_library_is_the_published_one() -> None:
    vendor = resources.files("reports") / "vendor" / "uplot"
    for line in (vendor / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    assert "v1.6.32" in (vendor / "uPlot.iife.min.js").read_text()[:80]
    json.dumps(_spec(Chart("c", "ms", (0, 1))))  # plain JSON, no NaN


def test_the_compare_page_draws_each_run_from_its_first_fault() -> None:
    from harness.analysis import RunData
    from harness.compare import RunRow
    from reports.compare_html import build_compare_html
    from tests.unit.helpers import synthetic_records

    def row(name: str, fault_at: float) -> RunRow:
        records = synthetic_records(seconds=10, failing={5})
        records.append({"type": "event", "event": "fault_injected", "t": fault_at, "id": "f0.0", "kind": "k"})
        return RunRow(f"runs/{name}", name, "pass", {}, "k", 1000, 0, None, None, None, None,
                      data=RunData.from_records(records))

    html = build_compare_html([row("a", 4.0), row("b", 6.0)])
    throughput, p99 = chart_specs(html)
    assert [s["label"] for s in throughput["series"]] == ["1: a", "2: b"]
    first_a, first_b = (s["points"][0][0] for s in throughput["series"])
    assert first_a - first_b == 2.0  # each run's own fault is its 0
    assert p99["unit"] == "ms" and throughput["x_label"].startswith("s from the run's first fault")
