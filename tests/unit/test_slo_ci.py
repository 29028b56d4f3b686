"""Confidence intervals of SLO values: the order-statistic ranks, Wilson's interval, and the reports."""

import json
import math
import random
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness import stats
from harness.analysis import RunData
from harness.load.recorder import Recorder, new_histogram
from harness.scenario import Scenario
from harness.slo import evaluate_all
from harness.sloci import quantile_interval
from harness.verdict import decide
from reports.build import write_reports
from tests.unit.helpers import FakeClock, synthetic_records


def binom_cdf(k: int, n: int, q: float) -> float:
    """P(B <= k), B ~ Binomial(n, q), by plain summation of math.comb terms (no windows, no logs)."""
    return math.fsum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(0, k + 1))


def test_median_of_ten_and_twenty_match_the_textbook_ranks() -> None:
    # n=10: P(B<=1) = 11/1024 = 0.0107 <= 0.025 < P(B<=2) = 56/1024, so X(2)..X(9), coverage 0.9785.
    assert (stats.quantile_ranks(10, 0.5).lower, stats.quantile_ranks(10, 0.5).upper) == (2, 9)
    # n=20: P(B<=5) = 0.0207, P(B<=6) = 0.0577: X(6)..X(15), coverage 1 - 2 * 0.0207 = 0.9586.
    assert (stats.quantile_ranks(20, 0.5).lower, stats.quantile_ranks(20, 0.5).upper) == (6, 15)
    assert 1 - 2 * binom_cdf(5, 20, 0.5) == pytest.approx(0.9586, abs=1e-4)


@pytest.mark.parametrize("n", [6, 10, 37, 100, 368, 1000])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99, 0.999])
def test_ranks_are_the_tightest_that_keep_each_tail_within_alpha_half(n: int, q: float) -> None:
    ranks = stats.quantile_ranks(n, q, 0.95)
    below = binom_cdf(ranks.lower - 1, n, q) if ranks.lower >= 1 else 0.0  # P(B <= l - 1)
    above = 1 - binom_cdf(ranks.upper - 1, n, q) if ranks.upper <= n else 0.0  # P(B >= u)
    assert below <= 0.025 + 1e-12 and above <= 0.025 + 1e-12
    if ranks.lower < n:  # one rank tighter would let more than alpha/2 out
        assert binom_cdf(ranks.lower, n, q) > 0.025
    if ranks.upper >= 2:
        assert 1 - binom_cdf(ranks.upper - 2, n, q) > 0.025


def test_too_few_samples_leave_the_interval_open() -> None:
    # The largest of n samples bounds the p99 from above at 95% only if 1 - 0.99^n >= 0.975.
    assert not stats.quantile_ranks(367, 0.99).bounded_above  # 0.99^367 = 0.0251
    assert stats.quantile_ranks(368, 0.99).bounded_above  # 0.99^368 = 0.0248
    assert stats.min_samples(0.99) == 368
    assert stats.min_samples(0.999) == 3688
    assert stats.min_samples(0.5) == 6  # 0.5^6 = 0.0156 <= 0.025 < 0.5^5
    assert not stats.quantile_ranks(5, 0.5).bounded_below


def test_normal_approximation_agrees_with_the_exact_ranks_for_large_n() -> None:
    exact = stats.quantile_ranks(100_000, 0.99)
    normal = stats._normal_ranks(100_000, 0.99, 0.95)
    assert exact.method == "exact binomial" and normal.method == "normal approximation"
    assert abs(exact.lower - normal.lower) <= 1 and abs(exact.upper - normal.upper) <= 1
    huge = stats.quantile_ranks(10**9, 0.5)
    assert huge.method == "normal approximation"
    assert huge.lower == math.floor(5e8 - 1.959964 * math.sqrt(2.5e8) + 0.5)


@pytest.mark.parametrize(("n", "q"), [(200, 0.9), (600, 0.99), (15, 0.5)])
def test_coverage_by_simulation(n: int, q: float) -> None:
    """Draw exponential samples; the interval must hold the true quantile about 95% of the time."""
    rng = random.Random(1234)
    truth = -math.log(1 - q)  # the q-quantile of Exp(1)
    ranks = stats.quantile_ranks(n, q)
    trials = 2000
    covered = 0
    for _ in range(trials):
        sample = sorted(rng.expovariate(1.0) for _ in range(n))
        covered += sample[ranks.lower - 1] <= truth <= sample[ranks.upper - 1]
    exact = binom_cdf(ranks.upper - 1, n, q) - binom_cdf(ranks.lower - 1, n, q)
    assert exact >= 0.95
    assert abs(covered / trials - exact) < 0.015  # 3 standard errors of 2000 trials


def test_wilson_interval_known_values() -> None:
    # 0 of 10 at 95%: low 0, high z^2 / (n + z^2) = 3.8415 / 13.8415 = 0.27753.
    assert stats.wilson(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    # 5 of 10: centre 0.5, half = z / (1 + z^2/n) * sqrt(0.025 + z^2 / 400) = 0.26341.
    low, high = stats.wilson(5, 10) or (0.0, 0.0)
    assert (low, high) == (pytest.approx(0.23659, abs=1e-5), pytest.approx(0.76341, abs=1e-5))
    assert stats.wilson(10, 10) == (pytest.approx(0.72247, abs=1e-5), 1.0)
    assert stats.wilson(0, 0) is None
    # 99% is wider than 95%
    assert stats.wilson(3, 100, 0.99)[1] > stats.wilson(3, 100, 0.95)[1]  # type: ignore[index]


def test_quantile_interval_reads_the_histogram_at_the_ranks() -> None:
    hist = new_histogram()
    for value in range(1, 1001):  # 1..1000 us: exact in an HDR histogram of 3 digits
        hist.record_value(value)
    interval = quantile_interval(hist, 0.5, 0.95, 1000.0)
    ranks = stats.quantile_ranks(1000, 0.5)
    assert interval is not None and interval.samples == 1000
    assert (interval.low, interval.high) == (ranks.lower / 1000, ranks.upper / 1000)
    assert interval.low < 0.5 < interval.high and interval.note == ""
    tail = quantile_interval(hist, 0.999, 0.95, 1000.0)
    assert tail is not None and tail.high is None and "needs at least 3688" in tail.note


def scenario(slo: list[object]) -> Scenario:
    return Scenario.model_validate({
        "name": "ci",
        "stack": {"kind": "external", "url": "http://127.0.0.1:1", "model": "m"},
        "load": {"user": "triton_http", "duration": 10},
        "slo": slo,
    })


def test_slo_results_carry_samples_interval_and_marginal_flag() -> None:
    data = RunData.from_records(synthetic_records(failing={3}))  # 1000 requests, 50 failed
    slos = ["p99_ms < 100", "p50_ms < 7.45", "error_rate < 0.06", "throughput_rps > 1", "p99.99_ms < 100",
            {"metric": "p90_ms", "max": 100, "confidence": 0.99}, "max_ms < 100"]
    p99, p50, errors, rps, p9999, p90, max_ms = evaluate_all(scenario(slos).slo, data)
    assert p99.samples == 950 and p99.ci is not None and p99.confidence == 0.95
    assert p99.ci[0] <= p99.measured <= p99.ci[1] and not p99.marginal  # type: ignore[operator]
    assert p50.marginal and "marginal" in p50.detail  # 7.45 ms sits inside its interval
    assert errors.samples == 1000 and errors.ci_method == "Wilson score" and errors.marginal
    assert rps.samples == 950 and rps.ci is None  # throughput rests on the successful requests
    assert p9999.ci is not None and p9999.ci[1] is None and "too few samples" in p9999.detail
    assert p9999.passed and p9999.marginal  # an open side always holds the threshold
    assert p90.confidence == 0.99 and max_ms.ci is None


def test_reports_show_the_interval(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_text("\n".join(json.dumps(r) for r in synthetic_records()) + "\n", encoding="utf-8")
    write_reports(tmp_path, scenario(["p99_ms < 100", "error_rate < 0.01"]))
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["slos"][0]["ci"] is not None and saved["slos"][0]["confidence"] == 0.95
    assert saved["slos"][1]["ci"][0] == 0.0 and saved["slos"][1]["ci_method"] == "Wilson score"
    cases = ET.parse(tmp_path / "junit.xml").getroot().findall("testcase")
    out = cases[0].findtext("system-out") or ""
    assert "95% CI" in out and "n=1000" in out
    html = (tmp_path / "report.html").read_text()
    assert "confidence interval" in html and "95%: " in html


def test_llm_percentiles_get_an_interval_from_their_measure_histogram() -> None:
    clock = FakeClock()
    recorder = Recorder(clock)
    records: list[dict[str, object]] = [{"type": "event", "event": "load_started", "t": 0.0}]
    for i in range(400):
        clock.t = i / 100
        recorder.record(0.05, None, measures={"ttft_ms": 10 + i % 40, "output_tokens": 32})
    records += [{"type": "second", **r} for r in recorder.pop_complete(everything=True)]
    records.append({"type": "event", "event": "load_stopped", "t": 4.0})
    data = RunData.from_records(records)
    ttft, tokens = evaluate_all(scenario(["ttft_p50_ms < 100", "output_tokens_p99.9 < 100"]).slo, data)
    assert ttft.samples == 400 and ttft.ci is not None and ttft.ci_method.startswith("order statistics")
    assert ttft.ci[0] <= ttft.measured <= ttft.ci[1]  # type: ignore[operator]
    assert tokens.ci is not None and tokens.ci[1] is None  # a p99.9 needs 3688 samples
    assert "needs at least 3688" in tokens.detail
    assert "too few" not in ttft.detail


def test_a_pass_with_marginal_slos_says_so() -> None:
    data = RunData.from_records(synthetic_records())
    (p50,) = evaluate_all(scenario(["p50_ms < 100"]).slo, data)
    assert p50.ci is not None and p50.ci[1] is not None
    just_above = (p50.measured + p50.ci[1]) / 2  # type: ignore[operator]  # inside the interval
    held = decide(scenario([f"p50_ms < {just_above}", "p99_ms < 100"]), data)
    assert held.word == "pass" and "(1 marginal" in held.reason, held.reason
    assert "marginal" not in decide(scenario(["p50_ms < 100"]), data).reason
