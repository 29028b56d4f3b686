"""Change points of one metric's history, by Apache Otava.

Otava implements the E-divisive means method (Matteson and James) as MongoDB adapted it for
performance test histories ("Hunter", Fleming et al. 2023): windows of the series are split where
the energy distance between the two sides is largest and significant, then weak splits are
merged away by a t-test between neighbouring segments. What it gives each change point is that
t-test's p-value and the two segments' means, which is what `regress` reports.

Only `otava.analysis` is used: it needs numpy and scipy alone (Otava's command line, with its
BigQuery, Slack and Graphite clients, is not used and its dependencies are not installed).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.store.db import StoreError

MAX_PVALUE = 0.001  # Otava's own default
MIN_MAGNITUDE = 0.01  # a change of less than 1% of the level is no change, however significant: a
# metric that hardly varies (a restart back-off's recovery time) would otherwise "change" by 0.1%
WINDOW = 30  # the sliding window of the split step, in runs (Otava's command line default)
MIN_RUNS = 4  # fewer values than this: nothing to compare


@dataclass(frozen=True)
class Change:
    index: int  # the first value of the new segment
    before: float  # the mean of the segment before it
    after: float  # the mean of the segment from it
    pvalue: float

    @property
    def change_pct(self) -> float:
        """The relative change, percent of `before` (infinite when `before` is 0 and `after` is not)."""
        if self.before == 0:
            return 0.0 if self.after == 0 else math.copysign(math.inf, self.after)
        return (self.after - self.before) / abs(self.before) * 100.0

    @property
    def shown(self) -> str:
        """`+25.4%, p=3.9e-07`: the change and its confidence, for a line of text."""
        pct = self.change_pct
        pct_text = f"{pct:+.1f}%" if math.isfinite(pct) else "from 0"
        p_text = "p<1e-12" if self.pvalue < 1e-12 else f"p={self.pvalue:.2g}"
        return f"{pct_text}, {p_text}"


def otava_available() -> bool:
    try:
        import otava.analysis  # noqa: F401
    except ImportError:
        return False
    return True


def detect(values: Sequence[float], max_pvalue: float = MAX_PVALUE, min_magnitude: float = MIN_MAGNITUDE,
           window: int = WINDOW) -> list[Change]:
    """The change points of a series, oldest first."""
    try:
        from otava.analysis import compute_change_points
    except ImportError:
        raise StoreError("change points need Apache Otava: pip install --no-deps apache-otava==0.8.0 "
                         "(and the `store` extra for numpy and scipy)") from None
    if len(values) < MIN_RUNS or len(set(values)) == 1:
        return []  # nothing to split (Otava would divide by a zero spread)
    points, _ = compute_change_points(list(map(float, values)), window_len=window, max_pvalue=max_pvalue,
                                      min_magnitude=min_magnitude)
    return [Change(int(p.index), float(p.stats.mean_1), float(p.stats.mean_2), float(p.stats.pvalue))
            for p in sorted(points, key=lambda p: p.index)]
