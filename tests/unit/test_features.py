"""The feature registry: discovery through entry points, a user's feature end to end, bad plugins."""

import json
import re
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness import features, plugins
from harness.analysis import Measured, RunData, measure
from harness.errors import UsageError
from harness.features import Feature, FeatureError, MetricDef, ReportSection, RunHooksContext, SectionContext
from harness.scenario import Scenario
from harness.sloci import interval_for
from reports.build import write_reports
from tests.unit.helpers import scenario_error, synthetic_records

BUILT_IN = ["memory", "containers", "llm", "tracing", "torchserve", "vllm", "gpu", "store", "exporter"]
# Every summary.json has had these keys, in this order (`vllm` since the vLLM stack, `gpu` since
# the GPU feature).
SUMMARY_KEYS = [
    "schema", "scenario", "description", "expect", "run_dir", "started", "verdict", "exit_code",
    "exit_name", "reason", "aborted", "stack", "load", "totals", "slos", "faults", "containers",
    "error_windows", "llm",
    "log_patterns", "memory", "gpu", "story", "tracing", "torchserve", "vllm", "seed", "findings", "events",
]


def _doubled_ok(data: RunData, metric: str, window: Any) -> Measured:
    ok = sum(r["ok"] for r in data.seconds)
    return Measured(2.0 * ok, ok)


def _busiest(data: RunData, metric: str, window: Any) -> Measured:
    """`mine.top3`: the sum of the 3 busiest seconds' requests."""
    n = int(metric.removeprefix("mine.top"))
    return Measured(float(sum(sorted((r["requests"] for r in data.seconds), reverse=True)[:n])), n)


def _section(ctx: SectionContext) -> dict[str, Any]:
    return {"requests": ctx.totals["requests"], "scenario": ctx.scenario.name}


USER_FEATURE = Feature(
    name="mine",
    metrics=[
        MetricDef("twice the successful requests", _doubled_ok, name="mine.doubled_ok"),
        MetricDef("requests of the N busiest seconds", _busiest, pattern=re.compile(r"mine\.top\d+"),
                  display="mine.topN"),
    ],
    sections=[ReportSection("mine", _section, html=lambda part, data: f"<h2>Mine: {part['requests']}</h2>",
                            findings=lambda data: ["mine: look at this"],
                            story_phrases={"mine_event": lambda e: f"mine happened ({e['what']})"})],
)


def make_user_feature() -> Feature:
    return USER_FEATURE


NOT_A_FEATURE = object()
PLACED = Feature("placed", sections=[ReportSection("placed", lambda ctx: 1, after="faults")])
TWICE = Feature("twice", metrics=[MetricDef("again", _doubled_ok, name="error_rate")])


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    """Entry points of `harness.features` the test adds to (the installed ones are left out)."""
    added: list[EntryPoint] = []

    def fake(group: str) -> list[EntryPoint]:
        return added if group == features.GROUP else []

    monkeypatch.setattr(plugins, "entry_points", fake)
    features.reset_cache()
    yield added
    monkeypatch.undo()
    features.reset_cache()  # the next test sees the real registry again


def add(entry_points: list[EntryPoint], name: str, value: str) -> None:
    entry_points.append(EntryPoint(name=name, value=value, group=features.GROUP))
    features.reset_cache()


def unit_scenario(slo: list[Any]) -> Scenario:
    return Scenario.model_validate({
        "name": "unit", "stack": {"kind": "external", "url": "http://127.0.0.1:1", "model": "m"},
        "load": {"user": "triton_http", "duration": 10}, "slo": slo,
    })


def test_built_in_features_are_found_in_their_order() -> None:
    assert [f.name for f in features.discover()] == BUILT_IN


def test_a_features_entry_point_adds_it_after_the_built_in_ones(entry_points: list[EntryPoint]) -> None:
    add(entry_points, "mine", "tests.unit.test_features:USER_FEATURE")
    assert [f.name for f in features.discover()] == [*BUILT_IN, "mine"]
    assert features.metric_def("mine.doubled_ok") is USER_FEATURE.metrics[0]
    assert features.metric_def("mine.top3") is USER_FEATURE.metrics[1]


def test_an_entry_point_may_name_a_function_that_makes_the_feature(entry_points: list[EntryPoint]) -> None:
    add(entry_points, "mine", "tests.unit.test_features:make_user_feature")
    assert features.discover()[-1] is USER_FEATURE


def test_reset_forgets_what_was_discovered(entry_points: list[EntryPoint]) -> None:
    add(entry_points, "mine", "tests.unit.test_features:USER_FEATURE")
    assert features.metric_def("mine.doubled_ok") is not None
    entry_points.clear()
    assert features.metric_def("mine.doubled_ok") is not None  # cached
    features.reset_cache()
    assert features.metric_def("mine.doubled_ok") is None


def test_a_user_features_metric_validates_and_is_measured(entry_points: list[EntryPoint]) -> None:
    add(entry_points, "mine", "tests.unit.test_features:USER_FEATURE")
    scenario = unit_scenario(["mine.doubled_ok > 10", "mine.top3 >= 300"])
    data = RunData.from_records(synthetic_records(seconds=10, per_second=100))
    assert measure(data, "mine.doubled_ok") == Measured(2000.0, 1000)
    assert measure(data, "mine.top3") == Measured(300.0, 3)
    assert interval_for(data, "mine.doubled_ok", "all", 0.95) is None  # it declares none
    assert [s.metric for s in scenario.slo] == ["mine.doubled_ok", "mine.top3"]


def test_without_the_feature_its_metric_is_unknown(scenario_file: Any) -> None:
    path = scenario_file(
        "name: unit\nstack: {kind: external, url: 'http://127.0.0.1:1', model: m}\n"
        "load: {user: triton_http, duration: 10}\nslo:\n  - 'mine.doubled_ok > 10'\n"
    )
    message = scenario_error(path)
    assert ":5: slo.0.metric: unknown metric 'mine.doubled_ok'" in message
    assert "ttft_pNN_ms" in message and "pNN_ms" in message and "container_downtime_s" in message


def test_a_user_features_section_findings_and_story_reach_the_reports(
    entry_points: list[EntryPoint], tmp_path: Path,
) -> None:
    add(entry_points, "mine", "tests.unit.test_features:USER_FEATURE")
    records = synthetic_records()
    records.insert(3, {"type": "event", "event": "mine_event", "t": 3.0, "what": "x"})
    _write_journal(tmp_path, records)
    write_reports(tmp_path, unit_scenario(["error_rate < 0.01"]))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == [*SUMMARY_KEYS, "mine"]  # no `after`: at the end
    assert summary["mine"] == {"requests": 1000, "scenario": "unit"}
    assert summary["findings"][-1] == "mine: look at this"
    assert any("mine happened (x)" in line for line in summary["story"])
    html = (tmp_path / "report.html").read_text()
    assert html.index("<h2>Mine: 1000</h2>") < html.index("<h2>Totals</h2>")


def test_a_section_goes_after_the_key_it_names(entry_points: list[EntryPoint], tmp_path: Path) -> None:
    add(entry_points, "placed", "tests.unit.test_features:PLACED")
    _write_journal(tmp_path, synthetic_records())
    write_reports(tmp_path, unit_scenario([]))
    keys = list(json.loads((tmp_path / "summary.json").read_text()))
    # After the built-in sections that follow `faults` (containers, then error_windows and llm).
    assert keys[keys.index("faults"):keys.index("log_patterns")] == [
        "faults", "containers", "error_windows", "llm", "placed"]


def test_summary_keys_stay_those_of_older_summaries(tmp_path: Path) -> None:
    _write_journal(tmp_path, synthetic_records(failing={3}))
    write_reports(tmp_path, unit_scenario(["error_rate < 0.01"]))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == SUMMARY_KEYS
    assert summary["containers"] is None and summary["memory"] is None and summary["tracing"] is None
    assert summary["torchserve"] is None and summary["llm"] == {} and summary["error_windows"] == []
    assert summary["vllm"] is None


@pytest.mark.parametrize("value, error", [
    ("no_such_module_xyz:FEATURE",
     "entry point 'broken' (no_such_module_xyz:FEATURE) failed to load: "
     "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    ("tests.unit.test_features:NOT_A_FEATURE",
     "entry point 'broken' (tests.unit.test_features:NOT_A_FEATURE) is not a Feature (got object)"),
])
def test_a_bad_entry_point_is_one_line_naming_it(
    entry_points: list[EntryPoint], value: str, error: str,
) -> None:
    add(entry_points, "broken", value)
    with pytest.raises(FeatureError) as info:
        features.discover()
    assert str(info.value) == f"harness.features {error}"
    assert isinstance(info.value, UsageError) and "\n" not in str(info.value)


def test_a_metric_declared_twice_is_refused(entry_points: list[EntryPoint]) -> None:
    add(entry_points, "twice", "tests.unit.test_features:TWICE")
    twice = "metric 'error_rate' is declared by both the core and feature 'twice'"
    with pytest.raises(FeatureError, match=twice):
        features.metric_def("error_rate")


def test_a_metric_def_has_a_name_or_a_pattern() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MetricDef("neither", _doubled_ok)
    with pytest.raises(ValueError, match="exactly one"):
        MetricDef("both", _doubled_ok, name="a", pattern=re.compile("a"))


def test_core_and_feature_metrics_are_each_declared_once() -> None:
    labels = [d.label for d in features.all_metrics()]
    assert len(labels) == len(set(labels))
    families = ("p99_ms", "p99.9_ms", "log.oom", "ttft_p99_ms", "itl_mean_ms", "tokens_per_s_p10")
    assert all(features.metric_def(name) is not None for name in families)
    assert features.metric_def("p0_ms") is None and features.metric_def("p100_ms") is None


def test_hooks_run_in_feature_order_and_share_the_context(tmp_path: Path) -> None:
    calls: list[str] = []

    def first(ctx: RunHooksContext) -> None:
        calls.append("first")
        ctx.services["thing"] = 1
        ctx.stack_args["collector_url"] = "127.0.0.1:1/v1/traces"

    def second(ctx: RunHooksContext) -> None:
        calls.append(f"second saw {ctx.services['thing']}")

    ctx = RunHooksContext(scenario=SimpleNamespace(), run_dir=tmp_path, journal=None)
    features.call_hooks([Feature("a", before_start=first), Feature("b"), Feature("c", before_start=second)],
                        lambda feature: feature.before_start, ctx)
    assert calls == ["first", "second saw 1"] and ctx.stack_args == {"collector_url": "127.0.0.1:1/v1/traces"}


def test_tracing_gives_a_stack_with_an_absent_collector_a_url_nobody_serves(tmp_path: Path) -> None:
    from harness.tracing.feature import FEATURE as tracing

    absent = SimpleNamespace(mode="opentelemetry", collector="absent")
    traced = SimpleNamespace(stack=SimpleNamespace(trace=absent))
    ctx = RunHooksContext(scenario=traced, run_dir=tmp_path, journal=None)
    assert tracing.before_start is not None
    tracing.before_start(ctx)
    assert re.fullmatch(r"127\.0\.0\.1:\d+/v1/traces", ctx.stack_args["collector_url"])
    untraced = RunHooksContext(scenario=SimpleNamespace(stack=SimpleNamespace()), run_dir=tmp_path,
                               journal=None)
    tracing.before_start(untraced)
    assert untraced.stack_args == {} and untraced.services == {}


def test_tracing_starts_the_harness_collector_for_the_stack_observer_and_faults(tmp_path: Path) -> None:
    from harness.journal import Journal, read_journal
    from harness.tracing.feature import COLLECTOR
    from harness.tracing.feature import FEATURE as tracing

    harness_collector = SimpleNamespace(mode="opentelemetry", collector="harness")
    scenario = SimpleNamespace(stack=SimpleNamespace(kind="triton", trace=harness_collector))
    journal = Journal(tmp_path / "journal.jsonl")
    ctx = RunHooksContext(scenario=scenario, run_dir=tmp_path, journal=journal)
    assert tracing.before_start and tracing.observers and tracing.after_stop and tracing.per_soak_cycle
    tracing.before_start(ctx)
    receiver = ctx.services[COLLECTOR]
    try:
        assert ctx.stack_args == {"collector_url": str(receiver.url)}
        (observer,) = tracing.observers(features.ObserverSetup(scenario, SimpleNamespace(), journal, tmp_path,
                                                               ctx.services))
        assert observer.receiver is receiver and observer.tailer is None  # spans, not trace files
        builder = observer.builder
        tracing.per_soak_cycle(ctx)
        assert observer.builder is not builder  # each soak cycle's breakdown is its own
    finally:
        tracing.after_stop(ctx)
    assert COLLECTOR not in ctx.services
    journal.close()
    assert [r["event"] for r in read_journal(tmp_path / "journal.jsonl")] == ["collector_started"]


def test_stack_observers_come_from_the_feature_of_their_kind(tmp_path: Path) -> None:
    from harness.containers.feature import FEATURE as containers
    from harness.torchserve.feature import FEATURE as torchserve

    watched = ["docker events", "inner"]

    class Stack:
        def extra_observers(self) -> list[str]:
            return watched

    def setup(kind: str) -> features.ObserverSetup:
        return features.ObserverSetup(SimpleNamespace(stack=SimpleNamespace(kind=kind)), Stack(),
                                      None, tmp_path, {})

    assert containers.observers is not None and torchserve.observers is not None
    assert containers.observers(setup("container")) == watched
    assert containers.observers(setup("torchserve")) == []
    assert torchserve.observers(setup("torchserve")) == watched
    assert torchserve.observers(setup("triton")) == []


def _write_journal(run_dir: Path, records: list[dict[str, Any]]) -> None:
    with (run_dir / "journal.jsonl").open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
