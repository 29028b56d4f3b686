"""harness.load.percentiles gives hdrh's own percentiles, without hdrh's per-bucket Python walk."""

import random
import time
from collections.abc import Callable

import pytest
from hdrh.histogram import HdrHistogram

from harness.load.measures import new_measure_histogram
from harness.load.percentiles import value_at_percentile, values_at_percentiles
from harness.load.recorder import new_histogram

PERCENTILES = (0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0, 150.0)


def _filled(seed: int, count: int) -> HdrHistogram:
    rng = random.Random(seed)
    hist = new_histogram()
    for _ in range(count):
        # A spread of magnitudes: microsecond answers, second-long tails, an hour-long outlier.
        hist.record_value(int(rng.lognormvariate(11, 2.5)) % 3_600_000_000 + 1, rng.choice((1, 1, 3)))
    return hist


@pytest.mark.parametrize("seed", range(12))
def test_the_same_values_as_hdrh(seed: int) -> None:
    hist = _filled(seed, count=1 + seed * 40)
    fast = values_at_percentiles(hist, PERCENTILES)
    assert fast == {p: hist.get_value_at_percentile(p) for p in PERCENTILES}


def test_decoded_and_merged_histograms_too() -> None:
    merged = new_measure_histogram()
    for seed in range(5):
        part = HdrHistogram.decode(_filled(seed, 200).encode())  # what a journal's second holds
        assert values_at_percentiles(part, PERCENTILES) == {p: part.get_value_at_percentile(p)
                                                            for p in PERCENTILES}
        merged.add(part)
    assert values_at_percentiles(merged, PERCENTILES) == {p: merged.get_value_at_percentile(p)
                                                          for p in PERCENTILES}


def test_one_value_and_an_empty_histogram() -> None:
    hist = new_histogram()
    assert values_at_percentiles(hist, (50.0, 99.0)) == {50.0: 0, 99.0: 0}
    hist.record_value(400_000)
    assert value_at_percentile(hist, 99.0) == hist.get_value_at_percentile(99.0)
    assert value_at_percentile(hist, 0.0) == hist.get_value_at_percentile(0.0)


def test_a_second_of_an_llm_run_costs_well_under_hdrhs_walk() -> None:
    """Seven histograms, four percentiles each, once a second on the load's event loop."""
    rng = random.Random(0)
    hists = [new_histogram() for _ in range(7)]
    for hist in hists:  # TTFTs, e2e times: 5 ms to 600 ms, in microseconds
        for _ in range(30):
            hist.record_value(rng.randint(5_000, 600_000))

    def timed(work: Callable[[HdrHistogram], object]) -> float:
        best = float("inf")
        for _ in range(3):  # the best of three: a shared machine may preempt any one
            started = time.perf_counter()
            for hist in hists:
                work(hist)
            best = min(best, time.perf_counter() - started)
        return best

    fast = timed(lambda hist: values_at_percentiles(hist, (50, 90, 99, 99.9)))
    slow = timed(lambda hist: [hist.get_value_at_percentile(p) for p in (50, 90, 99, 99.9)])
    assert fast < slow / 5, (fast, slow)
