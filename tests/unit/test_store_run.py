"""A whole run recorded by the store at its end (the `after_report` hook), on the fake stack of
tests.unit.test_run_orchestrator: real processes, load, supervisor, reports. And a store that is
unreachable during the run: the run still ends with its reports, the import records it later.

These need the core's `Feature.after_report` (called by `Run.execute` after the reports) and the
store feature registered (`harness.features` entry point `store`); they skip without them."""

import io
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import locust  # noqa: F401 - first, so gevent patches the standard library as in `harness run`
import pytest

pytest.importorskip("sqlalchemy")

from harness import features  # noqa: E402
from harness.features import Feature  # noqa: E402
from harness.store.importer import RECORDED, import_runs  # noqa: E402
from harness.store.url import STORE_ENV, resolve, to_url  # noqa: E402
from tests.unit import test_run_orchestrator as orchestrator  # noqa: E402
from tests.unit.store_runs import tree_digest  # noqa: E402
from tests.unit.test_store import all_runs  # noqa: E402

# The fake stack's fixtures (its user class and fault registered, logging put back) and helpers.
execute, fake_feature = orchestrator.execute, orchestrator.fake_feature
keep_logging = orchestrator.keep_logging
Outcome, scenario = orchestrator.Outcome, orchestrator.scenario

pytestmark = pytest.mark.skipif(
    "after_report" not in {f.name for f in fields(Feature)}
    or "store" not in [f.name for f in features.discover()],
    reason="the core has no after_report hook yet, or the store feature is not registered")

SLO = '["error_rate <= 0.01", "requests >= 20", "p99_ms < 500"]'


def test_a_finished_run_is_recorded_by_its_end(execute: Callable[..., Outcome], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    url = to_url(str(tmp_path / "results.db"))
    monkeypatch.setenv(STORE_ENV, url)
    outcome = execute(scenario(None, name="fake-store", slo=SLO, faults="  []"))
    assert outcome.verdict.word == "pass", outcome.verdict.reason
    assert "store: 1 run(s) recorded in" in capsys.readouterr().out
    [run] = all_runs(url)
    assert (run.scenario, run.kind, run.verdict, run.seed) == ("fake-store", "run", "pass", 1)
    assert run.requests == outcome.summary["totals"]["requests"] and len(run.slos) == 3
    assert run.seconds and sum(s.requests for s in run.seconds) == run.requests


def test_an_unreachable_store_during_a_run_loses_nothing(execute: Callable[..., Outcome], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(STORE_ENV, "postgresql+psycopg://harness@127.0.0.1:1/gone")
    outcome = execute(scenario(None, name="fake-store", slo=SLO, faults="  []"))
    assert outcome.verdict.word == "pass", outcome.verdict.reason  # the store's failure is not the run's
    for report in ("summary.json", "report.html", "junit.xml"):
        assert (outcome.dir / report).is_file()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("store:")]
    assert len(lines) == 1 and lines[0].startswith("store: run not recorded (")
    # harness.log: this test process still logs there (Alembic says it migrated); `harness store
    # import`, its own process, does not.
    before = tree_digest(outcome.dir, but=("harness.log",))
    url = to_url(str(tmp_path / "later.db"))
    outcomes = import_runs([outcome.dir], resolve(url), out=io.StringIO())
    assert [o.status for o in outcomes] == [RECORDED]
    assert tree_digest(outcome.dir, but=("harness.log",)) == before
    assert [r.scenario for r in all_runs(url)] == ["fake-store"]
