"""Trend math over soak cycle records: slopes, RSS trend, p99 drift, totals."""

import pytest

from harness.soak import trend


def test_slope_is_least_squares() -> None:
    assert trend.slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2)
    assert trend.slope([(0, 0), (1, 1), (2, 0), (3, 1)]) == pytest.approx(0.2)
    assert trend.slope([(1, 5)]) is None
    assert trend.slope([(1, 5), (1, 6)]) is None  # no spread in x
    assert trend.fit_line([(0, 1), (2, 5)]) == pytest.approx((2, 1))


def test_rss_trend_in_mb_per_hour_after_the_warmup() -> None:
    # 100 MiB growing 1 MiB a minute after a warm-up jump; a dead-server 0 is left out.
    points = [(0.0, 20.0), (30.0, 60.0)] + [(60.0 * m, 100.0 + m) for m in range(1, 11)] + [(330.0, 0.0)]
    rss = trend.rss_trend(points, warmup_s=60)
    assert rss.slope_mb_per_h == pytest.approx(60.0)
    assert rss.samples == 10 and rss.first_mb == 101 and rss.last_mb == 110 and rss.max_mb == 110
    flat = trend.rss_trend([(t * 5.0, 80.0) for t in range(100)], warmup_s=0)
    assert flat.slope_mb_per_h == 0
    assert trend.rss_trend([(0.0, 50.0)], warmup_s=60).slope_mb_per_h is None


def test_rss_trend_uses_everything_when_the_warmup_leaves_too_little() -> None:
    rss = trend.rss_trend([(0.0, 10.0), (3600.0, 20.0)], warmup_s=7200)
    assert rss.slope_mb_per_h == pytest.approx(10.0) and rss.samples == 2


def record(cycle: int, p99: float | None, **fields: object) -> dict:
    return {"cycle": cycle, "offset_s": (cycle - 1) * 60.0, "duration_s": 60.0, "p99_ms": p99, **fields}


def test_p99_drift_compares_first_and_last_cycles_and_skips_the_warmup() -> None:
    records = [record(1, 90.0)] + [record(c, 10.0 + c) for c in range(2, 10)]
    drift = trend.p99_drift(records, warmup_s=60)
    assert drift["cycles"] == 8 and drift["compared"] == 2
    assert drift["first_ms"] == pytest.approx(12.5) and drift["last_ms"] == pytest.approx(18.5)
    assert drift["drift_ms"] == pytest.approx(6.0) and drift["drift_pct"] == pytest.approx(48.0)
    assert drift["slope_ms_per_h"] == pytest.approx(60.0)  # 1 ms per 60 s cycle
    assert trend.p99_drift([record(1, None)])["drift_ms"] is None


def test_totals_and_error_windows_add_up_over_cycles() -> None:
    records = [
        record(1, 5.0, requests=100, ok=98, errors_by_kind={"timeout": 2}, faults=[{}], failed_in_faults=2,
               error_window_s=0.5, recovery_s=1.5, unrecovered=0),
        record(2, 5.0, requests=200, ok=190, errors_by_kind={"timeout": 4, "http_503": 6}, faults=[{}],
               failed_in_faults=10, error_window_s=1.5, recovery_s=None, unrecovered=1),
    ]
    totals = trend.totals(records)
    assert totals["requests"] == 300 and totals["errors"] == 12
    assert totals["error_rate"] == pytest.approx(0.04)
    assert totals["errors_by_kind"] == {"timeout": 6, "http_503": 6}
    assert totals["throughput_rps"] == pytest.approx(288 / 120) and totals["faults"] == 2
    windows = trend.error_windows(records)
    assert windows["max_s"] == 1.5 and windows["mean_s"] == 1.0 and windows["unrecovered"] == 1
    assert windows["slope_s_per_h"] == pytest.approx(60.0) and windows["recovery_max_s"] == 1.5


def test_rss_points_and_thin() -> None:
    records = [{"target_rss": [[0, 1], [5, 2]]}, {"target_rss": [[10, 3]]}, {}]
    assert trend.rss_points(records, "target_rss") == [(0, 1), (5, 2), (10, 3)]
    points = [(float(i), 1.0) for i in range(10_001)]
    thinned = trend.thin(points, most=1000)
    assert len(thinned) <= 1001 and thinned[0] == points[0] and thinned[-1] == points[-1]
