import pytest

from harness.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("1m30s", 90), ("250ms", 0.25), ("2h", 7200), (15, 15), (0.5, 0.5), ("1.5s", 1.5)],
)
def test_parses(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["90x", "s", "", "1m 30s", "-5s", -1, True, None, "10s5"])
def test_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_formats() -> None:
    assert format_duration(0.25) == "250ms"
    assert format_duration(90) == "1m30s"
    assert format_duration(3700) == "1h01m"
