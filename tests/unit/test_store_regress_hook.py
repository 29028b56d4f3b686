"""`harness run --store URL --regress PCT`: once the run is recorded, the scenario's history is
judged as `harness regress` judges it, and a passing run whose history regressed exits 1."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")

from harness.exitcodes import ExitCode  # noqa: E402
from harness.features import Feature  # noqa: E402
from harness.runner import judged_after_report  # noqa: E402
from harness.store.changepoints import otava_available  # noqa: E402
from harness.store.hook import judge_regress, record_after_report  # noqa: E402
from harness.store.importer import import_runs  # noqa: E402
from harness.store.url import REGRESS_ENV, STORE_ENV, StoreUrl, to_url  # noqa: E402
from harness.verdict import Verdict  # noqa: E402
from tests.unit.store_runs import make_history  # noqa: E402


def _ctx(run_dir: Path) -> Any:
    return SimpleNamespace(run_dir=run_dir, scenario=SimpleNamespace(name="nightly"), services={})


@pytest.mark.skipif(not otava_available(), reason="Apache Otava is not installed")
def test_the_newest_run_s_regression_fails_it_after_it_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    runs = make_history(tmp_path / "runs", [5.0] * 14 + [6.0] * 3, noise=0.02)
    store = str(tmp_path / "results.db")
    import_runs(runs[:-1], StoreUrl(to_url(store), "test"))
    capsys.readouterr()
    monkeypatch.setenv(STORE_ENV, store)
    monkeypatch.setenv(REGRESS_ENV, "10")
    ctx = _ctx(runs[-1])
    record_after_report(ctx)
    reason = judge_regress(ctx)
    out = capsys.readouterr().out
    assert "store: 1 run(s) recorded" in out
    assert "p99_ms: regressed since run #15" in out, out
    assert reason is not None and reason.startswith("regressed beyond 10%") and "p99_ms" in reason
    monkeypatch.setenv(REGRESS_ENV, "50")  # the same move, within a larger threshold
    assert judge_regress(ctx) is None
    assert "regress: no metric of nightly regressed beyond 50%" in capsys.readouterr().out


def test_regress_without_a_store_says_so_and_fails_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    monkeypatch.setenv(REGRESS_ENV, "10")
    ctx = _ctx(tmp_path)
    record_after_report(ctx)
    assert judge_regress(ctx) is None
    assert capsys.readouterr().out.strip() == (
        f"regress: not judged (--regress needs --store or ${STORE_ENV}: the history is there)")


def test_a_run_the_store_did_not_take_is_not_judged_on_the_old_history(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "results.db"))
    monkeypatch.setenv(REGRESS_ENV, "10")
    assert judge_regress(_ctx(tmp_path)) is None  # services has no record of this run
    assert "this run is not in the store" in capsys.readouterr().out


def test_a_judge_fails_only_a_passing_run_and_a_broken_judge_fails_nothing() -> None:
    def moved(ctx: Any) -> str:
        return "regressed beyond 10%: p99_ms"

    def broken(ctx: Any) -> str:
        raise RuntimeError("no database")

    both = [Feature(name="broken", judge_after_report=broken),
            Feature(name="store", judge_after_report=moved)]
    passed = judged_after_report(both, _ctx(Path(".")), Verdict("pass", ExitCode.PASS, "3 SLO(s) held"))
    assert passed.code == ExitCode.SLO_FAILED and passed.word == "fail"
    assert passed.reason == "3 SLO(s) held; then store: regressed beyond 10%: p99_ms"
    crashed = Verdict("stack_failed", ExitCode.STACK_FAILED, "no server")
    assert judged_after_report(both, _ctx(Path(".")), crashed) is crashed
    ok = Verdict("pass", ExitCode.PASS, "held")
    assert judged_after_report(both[:1], _ctx(Path(".")), ok) is ok
