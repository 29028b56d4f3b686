"""`abort: true` against a real Triton, through `harness run`: a frozen server makes the load's
requests time out, `error_rate` breaks its abort SLO, and the run stops long before its planned
60 s, thaws the server on its usual way out and fails with the abort's reason.

An open model (50 arrivals/s): every request sent into the freeze fails after its 1 s timeout, so
the error rate over the run passes 0.05 within a second or two of the first timeouts (a closed
model's few users would send a handful of requests into the freeze against thousands before it).

About 15-25 s of wall time: Triton's start, 2 s of load, a 1 s timeout, the grace, the teardown.
"""

import json
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import psutil
import pytest

from harness.exitcodes import ExitCode
from harness.restore import read_restore
from tests.conftest import journal_events, only_run_dir, run_harness
from tests.unit.test_cli_json import parse_run_json

pytestmark = pytest.mark.real

PLANNED_S = 60
SCENARIO = f"""\
name: abort-freeze
stack: {{kind: triton, model: identity, instances: 2}}
load: {{user: triton_http, rate: 50, users: 64, duration: {PLANNED_S}s, request_timeout: 1s}}
faults:
  - {{kind: process_freeze, at: 2s, duration: 50s, role: server}}
slo:
  - {{metric: error_rate, max: 0.05, abort: true, abort_grace: 1s}}
  - "p99_ms < 5000"
"""


def test_a_frozen_server_aborts_the_run_early_and_is_thawed(tmp_path: Path) -> None:
    scenario = tmp_path / "abort.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    started = time.monotonic()
    result = run_harness("run", str(scenario), "--runs-dir", "runs", "--no-progress", "--json", cwd=tmp_path,
                         timeout=120)
    wall_s = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == ExitCode.SLO_FAILED, output
    run_dir = only_run_dir(tmp_path / "runs")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "fail", summary["reason"]
    assert summary["reason"].startswith("aborted at ") and "error_rate <= 0.05 failed" in summary["reason"]
    assert summary["aborted"]["slo"] == "error_rate <= 0.05" and summary["aborted"]["measured"] > 0.05
    # `--json`: stdout is the one object, and it tells the same story as summary.json.
    obj = parse_run_json(result.stdout)
    assert (obj["verdict"], obj["exit_code"], obj["reason"]) == ("fail", 1, summary["reason"])
    assert [s["name"] for s in obj["slos"]] == [s["name"] for s in summary["slos"]]
    assert "verdict: FAIL" in result.stderr  # the human lines went to stderr

    (aborted,) = journal_events(run_dir, "run_aborted")
    assert 2.0 < aborted["at_s"] < 15  # after the freeze (and the grace), long before the 60 s
    load_started = journal_events(run_dir, "load_started")[0]["t"]
    load_stopped = journal_events(run_dir, "load_stopped")[0]["t"]
    assert load_stopped - load_started < 20 < PLANNED_S
    assert wall_s < PLANNED_S

    # Thawed on the usual way out: restored, recorded, and the server stopped as a live process.
    (restored,) = journal_events(run_dir, "fault_restored")
    assert restored["id"] == "f0.0" and restored["error"] is None
    ops = [(r["op"], r.get("id")) for r in read_restore(run_dir)]
    assert ("restored", "f0.0") in ops and ops[-1][0] == "processes_stopped"
    server_pid = journal_events(run_dir, "stack_ready")[0]["stack"]["pid"]
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() != psutil.STATUS_STOPPED
    stopped = journal_events(run_dir, "stack_stopped")[-1]["report"]["exits"]["server"]
    assert stopped["exit_code"] is not None

    suite = ET.parse(run_dir / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "fail" and props["aborted"] == summary["reason"]
    case = next(c for c in suite.findall("testcase") if c.get("name") == "error_rate <= 0.05")
    assert case.find("failure") is not None
