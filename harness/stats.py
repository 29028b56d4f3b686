"""Confidence intervals for SLO values: quantiles from order statistics, rates by Wilson's score.

Quantiles (p50, p99, ...) get a distribution-free interval: for a true q-quantile Q, the number
B of samples at or below Q is Binomial(n, q) whatever the latency distribution is. The sample's
order statistics X(l) <= Q <= X(u) then hold with probability P(l <= B <= u - 1), and we choose
the narrowest ranks l and u that leave at most (1 - confidence) / 2 outside on each side. The
binomial tails are summed exactly (in a window of the distribution wide enough that what lies
outside is far below 1e-20); only when that window would be very large (n q (1 - q) above a
million) does the normal approximation take over, where its rank error is a fraction of a rank.

When even the sample's extreme cannot bound Q on a side (l < 1 or u > n) the interval is open
there (None): with n samples the largest bounds the q-quantile from above at confidence c only
if 1 - q^n >= (1 + c) / 2, so a p99 needs 368 samples at 95%, a p99.9 needs 3,688.
"""

import math
from dataclasses import dataclass
from statistics import NormalDist

DEFAULT_CONFIDENCE = 0.95
_EXACT_LIMIT = 1_000_000.0  # n q (1 - q) up to this: exact binomial tails (about 24k terms at most)
_TAIL_SDS = 12.0  # the window of exact summation: mean +/- 12 sd (+ 12): outside is below 1e-20


@dataclass(frozen=True)
class Ranks:
    """1-based order-statistic ranks of a quantile's interval; 0 or n + 1 mean unbounded there."""

    lower: int
    upper: int
    n: int
    method: str  # "exact binomial" or "normal approximation"

    @property
    def bounded_below(self) -> bool:
        return self.lower >= 1

    @property
    def bounded_above(self) -> bool:
        return self.upper <= self.n


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile: 1.96 for 0.95."""
    _check_confidence(confidence)
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def quantile_ranks(n: int, q: float, confidence: float = DEFAULT_CONFIDENCE) -> Ranks:
    """Ranks l, u with P(X(l) <= Q_q <= X(u)) >= confidence for n samples of any distribution."""
    _check_confidence(confidence)
    if n < 1 or not 0.0 < q < 1.0:
        raise ValueError(f"need n >= 1 and 0 < q < 1, got n={n}, q={q}")
    alpha_half = (1.0 - confidence) / 2
    if n * q * (1 - q) > _EXACT_LIMIT:
        return _normal_ranks(n, q, confidence)
    lower_tail, upper_tail, first, last = _binomial_tails(n, q)
    # lower: the largest k with P(B <= k - 1) <= alpha/2; below the window that mass is ~0.
    lower = first
    for k in range(first, last + 1):
        if lower_tail[k - first] <= alpha_half:
            lower = k + 1
        else:
            break
    # upper: the smallest k with P(B >= k) <= alpha/2; above the window that mass is ~0.
    upper = last + 1
    for k in range(last, first - 1, -1):
        if upper_tail[k - first] <= alpha_half:
            upper = k
        else:
            break
    return Ranks(min(lower, n + 1), max(upper, 0), n, "exact binomial")


def _binomial_tails(n: int, q: float) -> tuple[list[float], list[float], int, int]:
    """P(B <= k) and P(B >= k) for k in a window [first, last] holding all but ~1e-20 of the mass."""
    mean, sd = n * q, math.sqrt(n * q * (1 - q))
    first = max(0, math.floor(mean - _TAIL_SDS * sd - _TAIL_SDS))
    last = min(n, math.ceil(mean + _TAIL_SDS * sd + _TAIL_SDS))
    log_q, log_p = math.log(q), math.log1p(-q)
    log_n = math.lgamma(n + 1)
    pmf = [
        math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_p)
        for k in range(first, last + 1)
    ]
    lower, running = [], 0.0
    for mass in pmf:  # each tail summed from its own end: no cancellation near 1
        running += mass
        lower.append(running)
    upper, running = [0.0] * len(pmf), 0.0
    for i in range(len(pmf) - 1, -1, -1):
        running += pmf[i]
        upper[i] = running
    return lower, upper, first, last


def _normal_ranks(n: int, q: float, confidence: float) -> Ranks:
    """Continuity-corrected normal approximation of the same ranks, for very large n."""
    z = z_value(confidence)
    mean, sd = n * q, math.sqrt(n * q * (1 - q))
    lower = math.floor(mean - z * sd + 0.5)
    upper = math.ceil(mean + z * sd + 0.5)
    return Ranks(max(0, min(lower, n + 1)), max(0, min(upper, n + 1)), n, "normal approximation")


def min_samples(q: float, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """The fewest samples whose interval for the q-quantile is bounded on both sides."""
    _check_confidence(confidence)
    alpha_half = (1.0 - confidence) / 2
    # the largest bounds Q from above once q^n <= alpha/2; the smallest from below once (1-q)^n is.
    above = math.log(alpha_half) / math.log(q)
    below = math.log(alpha_half) / math.log1p(-q)
    return math.ceil(max(above, below) - 1e-9)


def wilson(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval for a proportion (error rate, late rate); None without trials."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0..n, got {successes} of {n}")
    z = z_value(confidence)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    # At 0 (or n) successes the low (high) end is 0 (1) exactly; the float sum leaves dust there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def _check_confidence(confidence: float) -> None:
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must lie in [0.5, 1), got {confidence}")
