"""Extra per-request measurements (an LLM's TTFT, inter-token latency, ...) as HDR histograms.

A user class returns them in `Outcome.measures` (name -> value); the recorder keeps one histogram
per name per second, written into that second's journal record under `measures`. Values are
kept in thousandths so milliseconds, token counts and tokens/s all keep three decimals.
"""

from typing import Any

from hdrh.histogram import HdrHistogram

from harness.load.percentiles import value_at_percentile, values_at_percentiles

SCALE = 1000.0
# Same range and precision as the latency histograms: 0.001 .. 3.6 million units, 3 digits.
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3
REPORTED_PERCENTILES = (50, 90, 99, 99.9)


def new_measure_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def record_measures(hists: dict[str, HdrHistogram], values: dict[str, float],
                    totals: dict[str, float] | None = None) -> None:
    """Record each value; `totals` (if given) keeps each measure's sum of scaled values for its mean."""
    for name, value in values.items():
        hist = hists.get(name)
        if hist is None:
            hist = hists[name] = new_measure_histogram()
        scaled = min(HIGHEST_US, max(LOWEST_US, int(round(value * SCALE))))
        hist.record_value(scaled)
        if totals is not None:
            totals[name] = totals.get(name, 0.0) + scaled


def measure_summary(hist: HdrHistogram, total: float | None = None) -> dict[str, float]:
    """count, pNN, mean and max in the measure's own unit.

    Pass `total` (the sum of the scaled values) where it is known: hdrh's mean walks the whole
    histogram in Python through an iterator that also keeps the histogram alive until a full
    garbage collection. Its percentiles walk it in Python too: harness.load.percentiles instead.
    """
    if hist.get_total_count() == 0:
        return {}
    values = values_at_percentiles(hist, REPORTED_PERCENTILES)
    out: dict[str, float] = {f"p{p:g}": values[p] / SCALE for p in REPORTED_PERCENTILES}
    mean = hist.get_mean_value() if total is None else total / hist.get_total_count()
    out["mean"] = mean / SCALE
    out["max"] = hist.get_max_value() / SCALE
    out = {key: round(value, 3) for key, value in out.items()}
    out["count"] = hist.get_total_count()
    return out


def measures_record(hists: dict[str, HdrHistogram], totals: dict[str, float] | None = None) -> dict[str, Any]:
    """What one second's journal record holds: per measure its summary, sum and encoded histogram."""
    totals = totals or {}
    out: dict[str, Any] = {}
    for name, hist in hists.items():
        if not hist.get_total_count():
            continue
        out[name] = {**measure_summary(hist, totals.get(name)), "hdr": hist.encode().decode("ascii")}
        if name in totals:
            out[name]["sum"] = totals[name]  # lets a master merge workers' seconds with an exact mean
    return out


def merged_measure(records: list[dict[str, Any]], name: str) -> HdrHistogram:
    """One histogram of `name` over many seconds' records."""
    hist = new_measure_histogram()
    for record in records:
        encoded = record.get("measures", {}).get(name, {}).get("hdr")
        if encoded:
            hist.add(HdrHistogram.decode(encoded))
    return hist


def measure_value(hist: HdrHistogram, stat: str) -> float | None:
    """`p99`, `p99.9`, `mean` or `max` of a merged histogram; None when it is empty."""
    if hist.get_total_count() == 0:
        return None
    if stat == "mean":
        return hist.get_mean_value() / SCALE
    if stat == "max":
        return hist.get_max_value() / SCALE
    return value_at_percentile(hist, float(stat.removeprefix("p"))) / SCALE
