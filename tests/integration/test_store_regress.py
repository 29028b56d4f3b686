"""The regression bench's figures on histories built from real short Triton runs (bench/regress_bench.py):
at most 1 false alarm in 20 A/A histories, the delay_ms change flagged within 3 runs in 19 of 20."""

import pytest

pytest.importorskip("sqlalchemy")

from harness.store.changepoints import otava_available  # noqa: E402
from tests.conftest import triton_available  # noqa: E402

pytestmark = [
    pytest.mark.real,
    pytest.mark.nightly,  # a bench (three real runs, 100 s): tox -e nightly; CI's store tests are real too
    pytest.mark.skipif(not triton_available(), reason="needs the nvidia-pytriton wheel (triton extra)"),
    pytest.mark.skipif(not otava_available(), reason="needs Apache Otava"),
]


def test_regress_bench_on_real_short_runs(tmp_path, capsys) -> None:
    from bench.regress_bench import _parse, run_bench

    args = _parse(["--store", str(tmp_path / "results.db"), "--keep", str(tmp_path / "runs"),
                   "--a-runs", "2", "--b-runs", "1", "--seconds", "25"])
    figures = run_bench(args)
    out = capsys.readouterr().out
    assert "false alarms (A/A)" in out and "detection (delay_ms" in out, out
    assert figures.histories == 20
    assert figures.false_alarms <= 1, out
    assert figures.detected >= 19 and max(figures.delays) <= 3, out
