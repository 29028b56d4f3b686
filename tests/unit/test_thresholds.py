"""SLO thresholds written with units are converted to the metric's own unit, or refused."""

import pytest

from harness.scenario import Scenario, Slo
from harness.suggest import close_match, keys_at


@pytest.mark.parametrize(("written", "metric", "threshold"), [
    ("p99_ms < 250", "p99_ms", 250.0),
    ("p99_ms < 0.25s", "p99_ms", 250.0),
    ("p99_ms < 1500us", "p99_ms", 1.5),
    ("p99 < 250ms", "p99_ms", 250.0),
    ("p99.9 < 1s", "p99.9_ms", 1000.0),
    ("ttft_p99 < 1s", "ttft_p99_ms", 1000.0),
    ("recovery_s < 15s", "recovery_s", 15.0),
    ("recovery_s < 1m", "recovery_s", 60.0),
    ("recovery_s < 500ms", "recovery_s", 0.5),
    ("error_rate <= 1%", "error_rate", 0.01),
    ("error_rate <= 0.5", "error_rate", 0.5),
    ("crashes <= 0", "crashes", 0.0),
])
def test_text_form(written: str, metric: str, threshold: float) -> None:
    slo = Slo.model_validate(written)
    assert (slo.metric, slo.threshold) == (metric, pytest.approx(threshold))


def test_mapping_form_takes_units_too() -> None:
    slo = Slo.model_validate({"metric": "p99_ms", "max": "0.3s"})
    assert (slo.op, slo.threshold) == ("<=", pytest.approx(300.0))
    assert Slo.model_validate({"metric": "error_rate", "min": "5%"}).threshold == pytest.approx(0.05)


@pytest.mark.parametrize(("written", "complaint"), [
    ("error_rate < 5ms", "does not fit"),
    ("crashes < 2s", "plain number"),
    ("p99_ms < 5%", "a time"),
    ("p99_ms < 5 parsecs", "does not fit"),
    ("p99_ms < five", "cannot read"),
    ("p99 < 250", "unknown metric 'p99'"),  # without a unit nothing says which p99 is meant
])
def test_misfits_are_refused(written: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Slo.model_validate(written)


def test_suggestions_come_from_the_model_at_that_place() -> None:
    data = {"load": {"user": "x"}, "stack": {"kind": "triton"}}
    assert "users" in keys_at(Scenario, data, ("load",))
    assert "instances" in keys_at(Scenario, data, ("stack",))  # the union picked by `kind`
    assert close_match("instnces", keys_at(Scenario, data, ("stack",))) == "instances"
    assert close_match("zzzz", ["users", "user"]) is None
    assert close_match("Error_Rate", ["error_rate"]) == "error_rate"
