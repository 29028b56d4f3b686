"""Container stacks and faults against a real Docker engine and a real Triton inside it.

The engine is the one at DOCKER_HOST (CI's `.ci/run` starts one), else a private dockerd this
module starts and stops. Every run goes through `harness run` as a user runs it.
"""

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.containers.engine import RUN_LABEL, connect
from harness.containers.image import ensure_image
from harness.exitcodes import ExitCode
from harness.restore import read_restore
from tests.conftest import HARNESS, ROOT, only_run_dir, run_harness
from tests.conftest import journal_events as events
from tests.conftest import wait_for_event as _wait_for
from tests.dockerd import Dockerd, engine_answers, must_have_engine, start_dockerd

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def docker_host() -> Iterator[str]:
    host = os.environ.get("DOCKER_HOST")
    if engine_answers(host):
        assert host is not None
        yield host
        return
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        reason = f"no Docker engine at DOCKER_HOST={host!r}, and no dockerd to start as root"
        if must_have_engine():
            pytest.fail(reason + " (CI must run these tests: .ci/run installs docker.io)")
        pytest.skip(reason)
    daemon: Dockerd = start_dockerd()
    os.environ["DOCKER_HOST"] = daemon.host  # the harness subprocesses read it
    try:
        yield daemon.host
    finally:
        if host is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = host
        daemon.stop()


@pytest.fixture(scope="module")
def docker(docker_host: str) -> Iterator[Any]:
    client = connect(docker_host)
    yield client
    client.close()


def run_scenario(tmp_path: Path, scenario: Path, timeout: float = 120
                 ) -> tuple[int, str, Path, dict[str, Any]]:
    result = run_harness("run", str(scenario), "--runs-dir", "runs", "--no-progress", cwd=tmp_path,
                         timeout=timeout)
    run_dir = only_run_dir(tmp_path / "runs")
    summary = json.loads((run_dir / "summary.json").read_text())
    return result.returncode, result.stdout + result.stderr, run_dir, summary




def run_label(run_dir: Path) -> str:
    return str(events(run_dir, "stack_ready")[0]["stack"]["run_label"])


def labelled(docker: Any, label: str) -> list[Any]:
    return list(docker.containers.list(all=True, filters={"label": f"{RUN_LABEL}={label}"}))


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_scenario_restarts_the_serving_container_twice(tmp_path: Path, docker: Any) -> None:
    code, output, run_dir, summary = run_scenario(tmp_path, ROOT / "scenarios/container-restart.yaml")
    assert code == ExitCode.PASS, output
    ready = events(run_dir, "stack_ready")[0]["stack"]
    assert ready["kind"] == "container" and ready["inner_kind"] == "triton"
    (container,) = ready["containers"]
    outages = summary["containers"]["outages"]
    assert [o["fault_id"] for o in outages] == ["f0.0", "f0.1"]
    for outage in outages:
        assert outage["containers"] == [container["name"]]
        actions = [a.split()[0] for a in outage["actions"]]
        assert actions[:1] == ["kill"] and "die" in actions and "start" in actions, outage["actions"]
        assert outage["signalled_t"] <= outage["gone_t"] < outage["started_t"] < outage["ready_t"]
        # Docker's stop timeout (3 s in the scenario) bounds the shutdown; then SIGKILL.
        assert outage["shutdown_s"] < 4.5
        assert 0.2 < outage["downtime_s"] < 15 and outage["startup_s"] > 0.2  # Triton loads its model
        assert outage["recovery_s"] >= outage["downtime_s"]
        assert outage["failed_requests"] > 0  # requests sent while nothing listened
        if outage["sigkilled_after_stop"]:  # Triton 2.51 keeps serving open connections after SIGTERM
            assert outage["served_while_stopping"] > 0
    # The engine's events are in the journal, timed by the engine.
    docker_events = events(run_dir, "docker_event")
    assert {"create", "start", "kill", "die", "restart", "destroy"} <= {e["action"] for e in docker_events}
    assert all(e["container"] == container["name"] for e in docker_events)
    # The supervisor saw each restart as the server process leaving, and a new one coming.
    exits = [e for e in events(run_dir, "process_exited") if e["role"] == "server" and not e["planned"]]
    assert len(exits) >= 2
    servers = {r["pid"] for r in read_restore(run_dir) if r["op"] == "process" and r["role"] == "server"}
    assert len(servers) == 3  # the first server and one after each restart
    html = (run_dir / "report.html").read_text()
    assert "<h2>Containers</h2>" in html and "downtime (s)" in html
    assert labelled(docker, run_label(run_dir)) == []  # the run removed its container


def test_pause_is_a_hang_and_unpause_recovers(tmp_path: Path, docker: Any) -> None:
    scenario = write(tmp_path, """\
name: c-pause
stack: {kind: container, inner: {kind: triton, instances: 1}, memory: 1Gi}
load: {user: triton_http, users: 4, duration: 10s, request_timeout: 1s}
faults: [{kind: container_pause, at: 3s, duration: 3s}]
slo: [{metric: container_downtime_s, max: 5}, {metric: crashes, max: 0}]
""")
    code, output, run_dir, summary = run_scenario(tmp_path, scenario)
    (hang,) = events(run_dir, "hang_detected")  # alive all along, not answering
    crashed = [e for e in events(run_dir, "process_exited") if e["role"] == "server" and not e["planned"]]
    (outage,) = summary["containers"]["outages"]
    assert [a.split()[0] for a in outage["actions"]][:2] == ["pause", "unpause"]
    if crashed:
        # Seen in 2 of about 10 runs: Triton 2.51 dies of Signal 11 a moment after the thaw. That
        # is the server failing, and the run must say so (crash counted, SLO failed), not hide it.
        assert crashed[0]["signal"] == "SIGSEGV" and crashed[0]["t"] > hang["t"], crashed
        assert code == ExitCode.SLO_FAILED and "crashes <= 0" in output, output
    else:
        assert code == ExitCode.PASS, output
        assert 2.5 < outage["downtime_s"] < 4.5  # held 3 s; the probe answers within 200 ms of the thaw
    assert outage["errors_by_kind"].get("timeout", 0) > 0  # the users' 1 s timeouts
    ops = [r["op"] for r in read_restore(run_dir)]
    assert ops.index("fault") < ops.index("restored")
    assert labelled(docker, run_label(run_dir)) == []


def test_kill_stop_and_memory_update_are_each_restored(tmp_path: Path, docker: Any) -> None:
    scenario = write(tmp_path, """\
name: c-mix
stack: {kind: container, inner: {kind: triton, instances: 1}, memory: 2Gi}
load: {user: triton_http, users: 4, duration: 20s, request_timeout: 1s}
faults:
  - {kind: container_update, at: 1s, duration: 2s, memory: 1Gi}
  - {kind: container_kill, at: 5s, duration: 1s, signal: SIGKILL}
  - {kind: container_stop, at: 12s, duration: 1s, timeout: 1s}
""")
    code, output, run_dir, summary = run_scenario(tmp_path, scenario)
    assert code == ExitCode.PASS, output
    injected = {e["kind"]: e for e in events(run_dir, "fault_injected")}
    update = injected["container_update"]
    assert list(update["memory_now"].values()) == ["1Gi"]
    assert list(update["memory_before"].values()) == ["2Gi"]
    restored = {e["kind"]: e for e in events(run_dir, "fault_restored")}
    assert all(r["error"] is None for r in restored.values()), restored  # update restore reads back 2Gi
    outages = {o["kind"]: o for o in summary["containers"]["outages"]}
    assert outages["container_update"]["gone_t"] is None  # a limit change it can live with: no outage
    kill = outages["container_kill"]
    assert kill["actions"][0].startswith("kill 9") and any(a.startswith("die 137") for a in kill["actions"])
    assert kill["started_t"] - kill["gone_t"] >= 0.9  # held down for the fault's 1 s, then started
    assert kill["ready_t"] is not None and kill["failed_requests"] > 0
    stop = outages["container_stop"]
    assert stop["gone_t"] is not None and stop["ready_t"] is not None
    assert stop["shutdown_s"] < 2.5  # Docker's 1 s stop timeout, then SIGKILL if need be
    exited = [e for e in events(run_dir, "process_exited") if e["role"] == "server" and not e["planned"]]
    assert exited[0]["signal"] == "SIGKILL"  # Docker's 137 read as the signal it means
    assert labelled(docker, run_label(run_dir)) == []


def test_a_signal_the_init_would_drop_is_refused_before_any_load(tmp_path: Path, docker: Any) -> None:
    # Seen: `docker kill --signal SIGSEGV` reached Docker's init and went no further (Triton lived on).
    scenario = write(tmp_path, """\
name: c-segv
stack: {kind: container, inner: {kind: triton, instances: 1}}
load: {user: triton_http, users: 1, duration: 5s}
faults: [{kind: container_kill, at: 1s, signal: SIGSEGV}]
""")
    code, output, run_dir, summary = run_scenario(tmp_path, scenario)
    assert code == ExitCode.USAGE_ERROR, output
    assert "SIGSEGV sent with `docker kill` stops at" in summary["reason"]
    assert "`process_kill` (role: server, signal: SIGSEGV)" in summary["reason"]
    assert not events(run_dir, "load_started")
    assert labelled(docker, run_label(run_dir)) == []




@pytest.fixture
def bystanders(docker: Any) -> Iterator[list[Any]]:
    """Two containers the harness must never touch: one unlabelled, one of another run."""
    from docker.types import Mount

    image = ensure_image(docker)
    made = [
        docker.containers.run(image, ["/bin/sleep", "300"], detach=True, init=True, labels=labels,
                              name=f"bystander-{i}-{os.getpid()}",
                              mounts=[Mount("/usr", "/usr", type="bind", read_only=True)])
        for i, labels in enumerate([{}, {RUN_LABEL: "some-other-run"}])
    ]
    yield made
    for container in made:
        container.remove(force=True)


def test_sigkilled_harness_then_cleanup_removes_only_its_containers(
    tmp_path: Path, docker: Any, bystanders: list[Any]
) -> None:
    scenario = write(tmp_path, """\
name: c-killed
stack: {kind: container, inner: {kind: triton, instances: 1}}
load: {user: triton_http, users: 2, duration: 60s, request_timeout: 1s}
faults: [{kind: container_pause, at: 2s, duration: 50s}]
""")
    proc = subprocess.Popen([*HARNESS, "run", str(scenario), "--runs-dir", "runs", "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_dir = _wait_for(tmp_path / "runs", "fault_injected")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    (left,) = labelled(docker, run_label(run_dir))
    assert left.status == "paused"  # left frozen by the dead harness
    result = run_harness("cleanup", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "undid fault f0.0 (container_pause)" in result.stdout
    assert f"removed container {left.name} (running)" in result.stdout  # unpaused first, then removed
    assert labelled(docker, run_label(run_dir)) == []
    for container in bystanders:
        container.reload()
        assert container.status == "running"
    again = run_harness("cleanup", str(run_dir), cwd=tmp_path)
    assert again.returncode == 0 and "0 action(s)" in again.stdout


@pytest.fixture
def foreign_triton(tmp_path: Path, docker_host: str) -> Iterator[tuple[str, str]]:
    """A Triton container the scenario did not make: the external stack attaches to it by name."""
    from harness.containers.stack import ContainerStack
    from harness.scenario import Scenario

    spec = Scenario.model_validate({
        "name": "foreign", "stack": {"kind": "container", "inner": {"kind": "triton", "instances": 1}},
        "load": {"user": "triton_http", "duration": 1},
    }).stack
    stack = spec.build(tmp_path / "foreign" / "stack")
    assert isinstance(stack, ContainerStack)
    stack.start()
    try:
        stack.wait_ready(60)
        (container,) = stack.containers()
        yield container["name"], str(stack.endpoints.http)
    finally:
        stack.stop(graceful=False)


def test_external_container_stack_attaches_by_name_and_leaves_it_running(
    tmp_path: Path, docker: Any, foreign_triton: tuple[str, str]
) -> None:
    name, url = foreign_triton
    scenario = write(tmp_path, f"""\
name: c-external
stack: {{kind: container_external, containers: [{name}], url: "{url}", model: identity}}
load: {{user: triton_http, users: 4, duration: 12s, request_timeout: 1s}}
faults: [{{kind: container_restart, at: 3s, timeout: 1s}}]
slo: [{{metric: recovery_s, max: 8}}]
""")
    code, output, run_dir, summary = run_scenario(tmp_path, scenario)
    assert code == ExitCode.PASS, output
    (outage,) = summary["containers"]["outages"]
    assert outage["containers"] == [name] and outage["ready_t"] is not None
    assert {e["container"] for e in events(run_dir, "docker_event")} == {name}
    container = docker.containers.get(name)
    assert container.status == "running"  # restarted by the fault, and not removed by the run


def test_unreachable_engine_is_one_clear_line_naming_the_socket(tmp_path: Path) -> None:
    missing = tmp_path / "no-docker.sock"
    scenario = write(tmp_path, f"""\
name: c-noengine
stack: {{kind: container, inner: {{kind: triton}}, docker_host: "unix://{missing}"}}
load: {{user: triton_http, duration: 2s}}
""")
    code, output, run_dir, summary = run_scenario(tmp_path, scenario, timeout=60)
    assert code == ExitCode.STACK_FAILED, output
    expected = f"no Docker engine answers at unix://{missing} (from scenario): {missing} does not exist"
    assert expected in summary["reason"] and expected in output
    env = dict(os.environ, DOCKER_HOST=f"unix://{missing}")
    text = scenario.read_text().replace(f', docker_host: "unix://{missing}"', "")
    moved = write(tmp_path, text, "env.yaml")
    result = subprocess.run([*HARNESS, "run", str(moved), "--runs-dir", "runs2", "--no-progress"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == ExitCode.STACK_FAILED
    assert f"at unix://{missing} (from DOCKER_HOST)" in result.stdout
