"""Goodput: which requests meet the scenario's per-request targets, its SLO metrics and intervals,
the summary and report, and scenarios that ask for it without targets."""

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness import features, metrics
from harness.analysis import RunData, measure, totals
from harness.cli import main
from harness.features import SectionContext
from harness.llm.feature import FEATURE
from harness.llm.goodput import GOOD, GoodputTargets, is_good, mark_good
from harness.llm.html import llm_section
from harness.llm.metrics import GOODPUT_RATE, GOODPUT_RATIO
from harness.llm.openai_settings import OpenAISettings
from harness.load.recorder import Recorder
from harness.sloci import interval_for
from harness.stats import wilson
from tests.unit.helpers import FakeClock

TARGETS = GoodputTargets(ttft_ms=200, tpot_ms=50)


# --- which requests are good


def test_a_request_is_good_when_it_meets_every_target_given() -> None:
    assert is_good({"ttft_ms": 150.0, "tpot_ms": 40.0, "e2e_ms": 9000.0}, TARGETS)  # e2e: no target
    assert not is_good({"ttft_ms": 250.0, "tpot_ms": 40.0}, TARGETS)
    assert not is_good({"ttft_ms": 150.0, "tpot_ms": 60.0}, TARGETS)


def test_a_value_equal_to_its_target_meets_it() -> None:  # vLLM and AIPerf compare `<=`
    assert is_good({"ttft_ms": 200.0, "tpot_ms": 50.0}, TARGETS)


def test_a_one_token_answer_meets_a_tpot_target() -> None:  # no TPOT: met, as in vllm bench serve
    assert is_good({"ttft_ms": 100.0, "output_tokens": 1.0}, TARGETS)


def test_a_missing_ttft_cannot_meet_its_target() -> None:
    assert not is_good({"tpot_ms": 10.0}, TARGETS)


def test_mark_good_adds_the_measure_only_for_good_requests() -> None:
    assert mark_good({"ttft_ms": 100.0}, GoodputTargets(ttft_ms=200))[GOOD] == 1.0
    assert GOOD not in mark_good({"ttft_ms": 300.0}, GoodputTargets(ttft_ms=200))
    assert GOOD not in mark_good({"ttft_ms": 100.0}, None)


@pytest.mark.parametrize("targets", [{}, {"ttft_ms": 0}, {"tpot_ms": -5}, {"e2e_ms": 3_600_001},
                                     {"ttft_ms": float("inf")}, {"ttft": 200}])
def test_bad_targets_are_refused(targets: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GoodputTargets.model_validate(targets)


def test_the_openai_user_marks_good_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.llm import openai_user

    class Response:
        def __init__(self, lines: list[bytes]) -> None:
            self.lines = lines

        def readline(self, _: bytes) -> bytes:
            return self.lines.pop(0) if self.lines else b""

    times = iter([0.05, 0.06, 0.07, 0.08, 0.09])
    monkeypatch.setattr(openai_user.time, "monotonic", lambda: next(times))
    user = openai_user.OpenAIUser.__new__(openai_user.OpenAIUser)  # no Locust environment needed
    user.request_name = "POST /v1/chat/completions"
    stream = [b'data: {"choices":[{"delta":{"content":"w0"}}]}\n',
              b'data: {"choices":[{"delta":{"content":" w1"},"finish_reason":"stop"}]}\n', b"data: [DONE]\n"]
    user.settings = OpenAISettings(goodput={"ttft_ms": 100, "tpot_ms": 50})
    outcome = user._read_stream(Response(list(stream)), sent_at=0.0)
    assert outcome.error_kind is None and outcome.measures is not None
    assert outcome.measures["ttft_ms"] == pytest.approx(50.0) and outcome.measures[GOOD] == 1.0
    times = iter([0.05, 0.06, 0.07, 0.08, 0.09])
    user.settings = OpenAISettings(goodput={"ttft_ms": 40})
    slow = user._read_stream(Response(list(stream)), sent_at=0.0)
    assert slow.measures is not None and GOOD not in slow.measures


# --- SLO metrics from the journal


def journal(good_per_second: int, ok_per_second: int = 20, failed_per_second: int = 0,
            seconds: int = 10) -> list[dict[str, Any]]:
    """Load from t=2: per second `ok_per_second` successes, the first `good_per_second` of them good."""
    clock = FakeClock()
    recorder = Recorder(clock)
    records: list[dict[str, Any]] = [{"type": "event", "event": "load_started", "t": 2.0}]
    for second in range(seconds):
        for i in range(ok_per_second):
            clock.t = 2.0 + second + i / (ok_per_second + failed_per_second)
            ttft = 100.0 if i < good_per_second else 900.0
            values = {"ttft_ms": ttft, "tpot_ms": 20.0, "output_tokens": 8.0}
            recorder.record(0.2, None, measures=mark_good(values, TARGETS))
        for i in range(failed_per_second):
            clock.t = 2.0 + second + (ok_per_second + i) / (ok_per_second + failed_per_second)
            recorder.record(0.001, "http_503", message="http_503: busy")
        records += [{"type": "second", **r} for r in recorder.pop_complete(now=clock.t + 1)]
    records.append({"type": "event", "event": "load_stopped", "t": 2.0 + seconds})
    return records


def test_goodput_ratio_counts_failures_as_not_good() -> None:
    data = RunData.from_records(journal(good_per_second=15, ok_per_second=20, failed_per_second=5))
    ratio = measure(data, GOODPUT_RATIO)
    assert ratio.value == pytest.approx(150 / 250) and ratio.samples == 250  # every request that ended
    rate = measure(data, GOODPUT_RATE)
    assert rate.value == pytest.approx(15.0) and rate.samples == 150  # good requests / 10 s


def test_goodput_ratio_has_wilsons_interval_over_the_requests() -> None:
    data = RunData.from_records(journal(good_per_second=18, failed_per_second=2))
    interval = interval_for(data, GOODPUT_RATIO, "all", 0.95)
    assert interval is not None and interval.method == "Wilson score" and interval.samples == 220
    assert (interval.low, interval.high) == pytest.approx(wilson(180, 220, 0.95))
    assert interval_for(data, GOODPUT_RATE, "all", 0.95) is None


def test_goodput_over_a_window_and_without_requests() -> None:
    from harness.scenario import Window

    data = RunData.from_records(journal(good_per_second=10))
    windowed = measure(data, GOODPUT_RATIO, Window.model_validate({"from": 0, "to": 2}))
    assert windowed.samples == 40 and windowed.value == pytest.approx(0.5)
    empty = RunData.from_records([r for r in journal(good_per_second=10) if r["type"] != "second"])
    assert measure(empty, GOODPUT_RATIO).value is None
    assert interval_for(empty, GOODPUT_RATIO, "all", 0.95) is None


@pytest.mark.parametrize("name", ["goodput_ratio", "goodput_per_s", "tpot_p99_ms", "tpot_mean_ms",
                                  "e2e_p50_ms", "e2e_max_ms"])
def test_new_names_are_known_and_listed(name: str) -> None:
    assert metrics.is_known(name)


def test_list_metrics_shows_the_families_and_goodput() -> None:
    from harness.listing import section_data

    labels = {record["label"] for record in section_data("metrics", Path("scenarios"))["metrics"]}
    assert {"tpot_pNN_ms", "e2e_pNN_ms", GOODPUT_RATIO, GOODPUT_RATE} <= labels


# --- summary and report


def scenario_with(openai: dict[str, Any], slo: list[Any] | None = None) -> Any:
    from harness.scenario import Scenario

    return Scenario.model_validate({
        "name": "g", "stack": {"kind": "external", "url": "http://127.0.0.1:8000", "model": "m"},
        "load": {"user": "openai", "users": 2, "duration": 10, "openai": openai}, "slo": slo or [],
    })


def llm_summary(data: RunData, scenario: Any, tmp_path: Path) -> Any:
    section = next(s for s in FEATURE.sections if s.key == "llm")
    return section.summary(SectionContext(tmp_path, scenario, data, totals(data)))


def test_the_summary_shows_goodput_when_targets_were_given(tmp_path: Path) -> None:
    data = RunData.from_records(journal(good_per_second=15, failed_per_second=5))
    llm = llm_summary(data, scenario_with({"goodput": {"ttft_ms": 200, "tpot_ms": 50}}), tmp_path)
    assert llm["goodput"] == {"targets": {"ttft_ms": 200.0, "tpot_ms": 50.0}, "good": 150, "requests": 250,
                              "ratio": 0.6, "per_s": 15.0}
    assert llm["tpot_ms"]["count"] == 200
    page = llm_section(llm, data)
    assert "Goodput" in page and "150 of 250 requests good" in page and "60.0%" in page
    assert "time per output token (ms)" in page and "Time per output token" in page
    assert "goodput" not in llm_summary(data, scenario_with({}), tmp_path)


# --- scenarios that ask for goodput wrongly: `harness validate`, one line naming the field, exit 2

SCENARIO = """\
name: goodput
stack: {kind: external, url: "http://127.0.0.1:8000", model: m, ready_path: /health}
load:
  user: openai
  users: 2
  duration: 10s
  openai: {api: chat, max_tokens: 16}
slo:
  - {metric: error_rate, max: 0.01}
  - "goodput_ratio >= 0.9"
"""


def _with(old: str, new: str) -> str:
    assert old in SCENARIO, old
    return SCENARIO.replace(old, new, 1)


BAD: list[tuple[str, str, tuple[int, str, str]]] = [
    ("ratio-without-targets", SCENARIO, (10, "slo.1.metric", "load.openai.goodput")),
    ("rate-without-targets", _with('"goodput_ratio >= 0.9"', "{metric: goodput_per_s, min: 5}"),
     (10, "slo.1.metric", "load.openai.goodput")),
    ("no-openai-section", _with("  openai: {api: chat, max_tokens: 16}\n", ""),
     (9, "slo.1.metric", "goodput")),
    ("ratio-over-one", _with("max_tokens: 16}", "max_tokens: 16, goodput: {ttft_ms: 200}}").replace(
        ">= 0.9", ">= 90"), (10, "slo.1.threshold", "over 1")),
    ("no-target", _with("max_tokens: 16}", "max_tokens: 16, goodput: {}}"),
     (7, "load.openai.goodput", "at least one")),
    ("target-zero", _with("max_tokens: 16}", "max_tokens: 16, goodput: {ttft_ms: 0}}"),
     (7, "load.openai.goodput.ttft_ms", "greater than 0")),
    ("target-absurd", _with("max_tokens: 16}", "max_tokens: 16, goodput: {tpot_ms: 1.0e+9}}"),
     (7, "load.openai.goodput.tpot_ms", "3600000")),
    ("target-typo", _with("max_tokens: 16}", "max_tokens: 16, goodput: {tpot: 50}}"),
     (7, "load.openai.goodput.tpot", "did you mean 'tpot_ms'")),
    ("ttft-not-streamed", _with("max_tokens: 16}", "max_tokens: 16, stream: false, goodput: {ttft_ms: 200}}"),
     (7, "load.openai.goodput.ttft_ms", "not streamed")),
    ("continuous-without-usage",
     _with("max_tokens: 16}", "max_tokens: 16, stream_usage: false, continuous_usage: true}"),
     (7, "load.openai.continuous_usage", "stream_usage")),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, expected", [(t, e) for _, t, e in BAD], ids=[c for c, _, _ in BAD])
def test_refused_by_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                             expected: tuple[int, str, str]) -> None:
    path = _write(tmp_path, text)
    code = main(["validate", str(path)])
    err = capsys.readouterr().err.strip()
    line, field, word = expected
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    match = re.fullmatch(rf"{re.escape(str(path))}:(\d+): (.+?): (.+)", err)
    assert match is not None, err
    assert (int(match.group(1)), match.group(2)) == (line, field), err
    assert word.lower() in match.group(3).lower(), err


@pytest.mark.parametrize("goodput", ["{ttft_ms: 200, tpot_ms: 50}", "{e2e_ms: 2000}",
                                     "{ttft_ms: 200, tpot_ms: 50, e2e_ms: null}"])
def test_accepted_with_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str], goodput: str) -> None:
    path = _write(tmp_path, _with("max_tokens: 16}", f"max_tokens: 16, goodput: {goodput}}}"))
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("ok: ")


def test_an_e2e_target_needs_no_stream(tmp_path: Path) -> None:
    settings = OpenAISettings(stream=False, goodput={"e2e_ms": 500})
    assert settings.goodput is not None and settings.goodput.given() == {"e2e_ms": 500.0}


def test_the_hook_reports_its_first_problem_and_how_many_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """Feature.check_scenario is generic: any feature's objections refuse the scenario."""
    picky = features.Feature("picky", check_scenario=lambda s: ["at load.users: too few", "at name: dull"])
    monkeypatch.setattr(features, "discover", lambda: [picky])
    with pytest.raises(ValidationError) as info:
        scenario_with({})
    assert "at load.users: too few (and 1 more problem)" in str(info.value)
