"""A scenario run inside an ordinary test; the `harness_run` fixture comes with serving-harness."""


def test_identity_model_latency(harness_run):
    result = harness_run("latency.yaml", seed=1)  # found beside this file; runs in a child process

    assert result.verdict == "pass", result.describe()
    p99 = result.slo("p99")  # the only SLO whose name starts with "p99"
    assert p99.passed, p99.describe(result.run_dir)
    assert p99.samples > 0 and result.totals["requests"] > 0
    assert result.totals["errors"] == 0
    assert (result.run_dir / "report.html").is_file()
