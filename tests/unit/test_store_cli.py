"""`harness store import`, `harness history` and `harness regress` on histories made of real
summaries: what they print, the page, the exit codes, and one line naming the field on bad input."""

import argparse
import os
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from harness.store import cli  # noqa: E402
from harness.store.changepoints import Change, detect, otava_available  # noqa: E402
from harness.store.url import STORE_ENV  # noqa: E402
from tests.reportpage import chart_specs
from tests.unit.store_runs import make_history, make_run  # noqa: E402

needs_otava = pytest.mark.skipif(not otava_available(), reason="Apache Otava is not installed")


def harness(*args: str) -> int:
    return cli.main(list(args))


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "results.db")


def test_import_then_history_prints_each_metric_run_by_run(
        tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_history(tmp_path / "runs", [5.0, 5.0, 5.0])
    assert harness("store", "import", str(tmp_path / "runs"), "--store", store) == 0
    assert "3 recorded, 0 already there, 0 skipped" in capsys.readouterr().out
    page = tmp_path / "out" / "history.html"
    assert harness("history", "nightly", "--store", store, "--html", str(page)) == 0
    out = capsys.readouterr().out
    assert "nightly: 3 run(s), oldest first" in out
    assert "external 2.51.0" in out and "pass" in out
    assert "p99_ms" in out and "9.9 [9.9, 9.95]" in out  # the SLO's value and its interval
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and len(chart_specs(html)) >= 4
    assert "<script src" not in html and "href=" not in html  # self-contained: opens offline


@needs_otava
def test_history_marks_a_change_point_where_the_level_moved(
        tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_history(tmp_path / "runs", [5.0] * 10 + [8.0] * 6, noise=0.02)
    harness("store", "import", str(tmp_path / "runs"), "--store", store)
    capsys.readouterr()
    page = tmp_path / "history.html"
    assert harness("history", "nightly", "--store", store, "--metric", "p99_ms", "--html", str(page)) == 0
    out = capsys.readouterr().out
    assert "change point: p99_ms: worse from run #11" in out
    assert "▲" in out
    (chart,) = chart_specs(page.read_text())
    assert [m[0] for m in chart["markers"]] == [10.5] and chart["markers"][0][1].startswith("worse: p99_ms")


@needs_otava
def test_regress_fails_on_a_regression_beyond_the_threshold_and_says_since_when(
        tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_history(tmp_path / "runs", [5.0] * 14 + [6.0] * 3, noise=0.02)
    harness("store", "import", str(tmp_path / "runs"), "--store", store)
    capsys.readouterr()
    assert harness("regress", "nightly", "--store", store, "--threshold", "10", "--metric", "p*_ms") == 1
    out = capsys.readouterr().out
    assert "p99_ms: regressed since run #15" in out and "(+20.0%, p<1e-12)" in out
    assert "regress: 2 metric(s) of nightly regressed beyond 10%: p50_ms, p99_ms" in out
    # Beyond what it moved: the same change is news, not a regression.
    assert harness("regress", "nightly", "--store", store, "--threshold", "30", "--metric", "p99_ms") == 0
    assert "p99_ms: moved the worse way, within the threshold since run #15" in capsys.readouterr().out


@needs_otava
def test_regress_passes_a_steady_history_and_an_improvement(
        tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_history(tmp_path / "runs", [6.0] * 14 + [5.0] * 3, noise=0.02)
    harness("store", "import", str(tmp_path / "runs"), "--store", store)
    assert harness("regress", "nightly", "--store", store, "--threshold", "5", "--metric", "p99_ms") == 0
    assert "p99_ms: improved since run #15" in capsys.readouterr().out
    # An old change is history: with only the newest 2 runs as news, nothing moved.
    assert harness("regress", "nightly", "--store", store, "--threshold", "5", "--recent", "2",
                   "--metric", "p99_ms") == 0
    assert "p99_ms: steady over 17 runs" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "field"), [
    (["--threshold", "-1"], "--threshold"),
    (["--threshold", "nan"], "--threshold"),
    (["--threshold", "5", "--recent", "0"], "--recent"),
    (["--threshold", "5", "--max-pvalue", "2"], "--max-pvalue"),
    (["--threshold", "5", "--last", "1"], "--last"),
    (["--threshold", "5", "--metric", "nosuch*"], "--metric 'nosuch*'"),
])
def test_bad_input_to_regress_is_one_line_naming_the_field_exit_2(
        tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str], args: list[str], field: str) -> None:
    make_run(tmp_path / "runs" / "r1")
    harness("store", "import", str(tmp_path / "runs"), "--store", store)
    capsys.readouterr()
    assert harness("regress", "unit", "--store", store, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"harness: {field}")


def test_an_unknown_scenario_or_a_missing_store_is_one_line_exit_2(
        tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness("history", "unit", "--store", store) == 2
    assert "no such file" in capsys.readouterr().err
    make_run(tmp_path / "runs" / "r1")
    harness("store", "import", str(tmp_path / "runs"), "--store", store)
    capsys.readouterr()
    assert harness("history", "nosuch", "--store", store) == 2
    err = capsys.readouterr().err
    assert "scenario 'nosuch': no runs of it in store" in err and "(scenarios there: unit)" in err


def test_history_takes_a_scenario_file_for_its_name(
        tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = make_run(tmp_path / "runs" / "r1")
    harness("store", "import", str(run_dir), "--store", store)
    assert harness("history", str(run_dir / "scenario.yaml"), "--store", store) == 0
    assert "unit: 1 run(s)" in capsys.readouterr().out


def test_store_migrate_makes_the_schema(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert harness("store", "migrate", "--store", store) == 0
    assert "schema at revision 0001" in capsys.readouterr().out


def test_register_puts_store_on_run_and_soak_and_the_flag_is_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORE_ENV, raising=False)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run").add_argument("scenario")
    sub.add_parser("soak").add_argument("scenario")
    cli.register(sub)
    assert {"store", "history", "regress"} <= set(sub.choices)
    parser.parse_args(["run", "s.yaml", "--store", "nightly.db"])
    assert os.environ[STORE_ENV] == "nightly.db"
    parser.parse_args(["soak", "s.yaml", "--store", "postgresql://h/db"])
    assert os.environ[STORE_ENV] == "postgresql://h/db"


@needs_otava
def test_change_points_by_otava_on_plain_series() -> None:
    assert detect([1.0] * 12) == []  # no spread: nothing to split
    assert detect([1.0, 2.0, 1.0]) == []  # too few to say
    [change] = detect([10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.1, 12.0, 12.1, 11.9, 12.2])
    assert change.index == 7 and change.before == pytest.approx(10.014, abs=0.01)
    assert change.change_pct == pytest.approx(20, abs=1) and change.pvalue < 0.001
    assert Change(3, 0.0, 0.5, 0.0).change_pct == float("inf")


@pytest.mark.parametrize("command", ["store", "history", "regress"])
def test_each_command_says_what_it_writes_its_exit_codes_and_examples(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        harness(command, "--help")
    out = capsys.readouterr().out
    for heading in ("writes:", "exit codes:", "examples:", STORE_ENV):
        assert f"\n{heading}" in out or heading == STORE_ENV and heading in out, (command, heading)
    assert "  2  USAGE_ERROR     " in out
