"""`harness run FOLDER` against real Triton servers: every scenario runs, each in its own folder,
and the library says which ended as expected."""

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from harness.exitcodes import ExitCode
from tests.conftest import run_harness

pytestmark = pytest.mark.real

SCENARIO = """\
name: {name}
source: [found-here]
stack: {{kind: triton, model: identity, instances: 1}}
load: {{user: triton_http, users: 4, duration: 3s}}
slo: [{slo}]
"""


def test_a_library_runs_each_scenario_and_reports_each_outcome(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a-holds.yaml").write_text(SCENARIO.format(name="a-holds", slo='"error_rate <= 0.01"'))
    # An SLO no real server meets: this scenario must fail, and the library with it.
    (lib / "b-fails.yaml").write_text(SCENARIO.format(name="b-fails", slo='"throughput_rps >= 10000000"'))
    result = run_harness("run", str(lib), "--runs-dir", "runs", "--json", "--no-progress", cwd=tmp_path,
                         timeout=240)
    assert result.returncode == ExitCode.SLO_FAILED, result.stdout + result.stderr
    obj = json.loads(result.stdout)
    assert obj["kind"] == "library" and obj["exit_code"] == 1
    assert [(e["name"], e["exit_name"]) for e in obj["scenarios"]] == [("a-holds", "PASS"),
                                                                       ("b-fails", "SLO_FAILED")]
    library_dir = tmp_path / obj["run_dir"]  # as given: relative to where the harness ran
    for entry in obj["scenarios"]:
        run_dir = tmp_path / entry["folder"]
        assert run_dir.parent == library_dir
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["totals"]["requests"] > 0  # each really ran against its own server
        assert (run_dir / "report.html").is_file()
    suite = ET.parse(library_dir / "junit.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert "library: 1 of 2 scenarios as expected" in result.stderr
