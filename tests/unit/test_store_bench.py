"""bench/regress_bench.py's figures on synthetic per-second aggregates: its A/A and change
histories are judged by `harness regress`'s own code (the bench itself runs a real Triton)."""

import random

import pytest

pytest.importorskip("sqlalchemy")

from bench.regress_bench import _parse, measure  # noqa: E402
from harness.store.changepoints import otava_available  # noqa: E402
from harness.store.models import RunSecond  # noqa: E402

pytestmark = pytest.mark.skipif(not otava_available(), reason="Apache Otava is not installed")


def seconds(rng: random.Random, p50: float, p99: float, n: int = 40) -> list[RunSecond]:
    return [RunSecond(t=i, requests=800, ok=800, errors=0, p50_ms=rng.gauss(p50, 0.03 * p50),
                      p99_ms=rng.gauss(p99, 0.08 * p99)) for i in range(n)]


def test_no_false_alarm_on_a_steady_history_and_the_change_found_at_once() -> None:
    rng = random.Random(3)
    a = [seconds(rng, 6.0, 9.0) for _ in range(3)]
    b = [seconds(rng, 9.0, 12.0) for _ in range(2)]
    figures = measure(a, b, _parse(["--store", "unused.db"]))
    assert figures.histories == 20 and figures.false_alarms <= 1
    assert figures.detected >= 19 and max(figures.delays) <= 3


def test_no_change_is_not_detected() -> None:
    rng = random.Random(4)
    a = [seconds(rng, 6.0, 9.0) for _ in range(3)]
    figures = measure(a, [seconds(rng, 6.0, 9.0) for _ in range(2)], _parse(["--store", "unused.db"]))
    assert figures.detected <= 1
