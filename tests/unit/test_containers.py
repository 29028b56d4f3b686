"""The container stack's own logic, without an engine: settings, mounts, image, events, analysis.

What needs Docker itself (restart, pause, cleanup, the engine error) is in
tests/integration/test_containers.py, against a real engine.
"""

import io
import random
import socket
import tarfile
from pathlib import Path
from typing import Any

import pytest

from faults.base import FaultContext, FaultError
from harness.analysis import RunData, measure
from harness.containers.engine import EngineUnreachable, connect, resolve_host
from harness.containers.events import event_fields
from harness.containers.faults import ContainerParams, choose
from harness.containers.image import image_ref, rootfs_tar
from harness.containers.impact import container_outages
from harness.containers.mounts import container_env, plan_mounts
from harness.containers.process import exit_status
from harness.containers.sizes import memory_size, show_size
from harness.errors import UsageError
from harness.restore import RestoreLog, cleanup
from harness.scenario import load_scenario
from tests.unit.helpers import scenario_error

SCENARIO = """\
name: c
stack:
  kind: container
  inner:
    kind: triton
    model: identity
  memory: 1Gi
load: {user: triton_http, duration: 10s}
faults:
  - {kind: container_restart, at: 2s, timeout: 3s}
"""


def test_container_scenario_builds_without_an_engine(scenario_file, tmp_path: Path) -> None:
    scenario = load_scenario(scenario_file(SCENARIO))
    spec: Any = scenario.stack
    assert spec.kind == "container" and spec.inner.kind == "triton" and spec.inner.model == "identity"
    stack: Any = spec.build(tmp_path / "runs" / "c-1" / "stack")
    assert stack.inner.spec.stop_timeout == spec.stop_timeout  # the outer settings apply inside
    ((undo, plan),) = stack.resources()
    assert undo == "harness.containers.cleanup:remove_run_containers"
    assert plan["run_id"].startswith("c-1-") and plan["docker_host"] == stack.docker_host


def test_run_labels_differ_for_same_named_run_folders(tmp_path: Path) -> None:
    from harness.containers.stack import run_id_for

    one, two = run_id_for(tmp_path / "a" / "run-1" / "stack"), run_id_for(tmp_path / "b" / "run-1" / "stack")
    assert one != two and one.startswith("run-1-") and two.startswith("run-1-")


@pytest.mark.parametrize(("change", "line", "expected"), [
    ("    kind: triton\n", "    kind: torchserve\n",
     ":5: stack.inner.kind: stack kind 'torchserve' cannot run in a container (can: triton)"),
    ("    model: identity\n", "    model: resnet\n", ":6: stack.inner.model: unknown model 'resnet'"),
    ("    model: identity\n", "    model: identity\n    startup_timeout: 5s\n",
     ":7: stack.inner.startup_timeout: set it on the container stack"),
    ("  memory: 1Gi\n", "  memory: lots\n", ":7: stack.memory: bad size 'lots'; write bytes (4096)"),
    ("  memory: 1Gi\n", "  memory: 1g\n",
     ":7: stack.memory: `1g` is ambiguous (Docker reads 1 GiB, pydantic 1 GB): write 1Gi or 1G"),
    ("  memory: 1Gi\n", "  memory: 5Mi\n",
     ":7: stack.memory: memory limit 5Mi is below Docker's minimum of 6Mi"),
    ("  memory: 1Gi\n", "  memory: 1Gi\n  docker_host: tcp://10.1.2.3:2375\n",
     ":8: stack.docker_host: use unix:///path/to/docker.sock or tcp://127.0.0.1:PORT (loopback only)"),
    ("timeout: 3s}", "timeout: 3s, container: 5}", ":10: faults.0.container: Input should be a valid string"),
])
def test_bad_container_settings_name_file_line_and_field(scenario_file, change: str, line: str,
                                                         expected: str) -> None:
    path = scenario_file(SCENARIO.replace(change, line))
    message = scenario_error(path)
    assert message.startswith(f"{path}{expected}"), message
    assert "\n" not in message


def test_fault_parameters_are_checked_before_any_run(scenario_file) -> None:
    path = scenario_file(SCENARIO.replace("{kind: container_restart, at: 2s, timeout: 3s}",
                                          "{kind: container_update, at: 2s, memory: 1x}"))
    assert "faults.0.memory: bad size '1x'" in scenario_error(path)
    path = scenario_file(SCENARIO.replace("timeout: 3s}", "timeout: 3s, signal: SIGKILL}"))
    assert "faults.0.signal: unknown key" in scenario_error(path)
    path = scenario_file(SCENARIO.replace("container_restart, at: 2s, timeout: 3s",
                                          "container_kill, at: 2s, signal: SIGNOPE"))
    assert "faults.0.signal: unknown signal 'SIGNOPE'" in scenario_error(path)


def test_external_containers_need_a_name_or_label(scenario_file) -> None:
    text = ("name: e\nstack: {kind: container_external, url: 'http://127.0.0.1:8000', model: m}\n"
            "load: {user: triton_http, duration: 1s}\n")
    assert "stack.containers: name the containers, or give a `label`" in scenario_error(scenario_file(text))
    bad = text.replace("model: m}", "model: m, containers: ['no way']}")
    assert "stack.containers.0: 'no way' is not a container name or id" in scenario_error(scenario_file(bad))
    far = text.replace("127.0.0.1", "10.0.0.8").replace("model: m}", "model: m, label: app=x}")
    assert "is not a loopback address" in scenario_error(scenario_file(far))


class FakeStack:
    """Just enough of `harness.containers.capability.RunsContainers`."""

    docker_host = "unix:///nowhere.sock"
    started_wall = None

    def __init__(self, names: list[str]):
        self.names = names

    def containers(self) -> list[dict[str, str]]:
        return [{"name": n, "id": f"{i:064x}"} for i, n in enumerate(self.names, start=0xABCDEF)]

    def event_filters(self) -> dict[str, Any]:
        return {}


def context(stack: Any) -> FaultContext:
    return FaultContext(roles=dict, restart_stack=lambda graceful: 0.0, rng=random.Random(1), stack=stack)


def test_faults_only_ever_choose_the_stacks_own_containers() -> None:
    ctx = context(FakeStack(["sh-run-a", "sh-run-b"]))
    with pytest.raises(FaultError, match="'bystander' is not one of this stack's .sh-run-a, sh-run-b."):
        choose(ctx, ContainerParams(container="bystander"))
    assert [c["name"] for c in choose(ctx, ContainerParams(container="sh-run-b"))] == ["sh-run-b"]
    full_id = FakeStack(["x"]).containers()[0]["id"]
    assert choose(context(FakeStack(["x"])), ContainerParams(container=full_id[:12]))[0]["name"] == "x"
    with pytest.raises(FaultError):
        choose(context(FakeStack(["x"])), ContainerParams(container=full_id[:4]))  # too short to be sure
    assert len(choose(ctx, ContainerParams(pick="all"))) == 2
    picks = {choose(context(FakeStack(["a", "b", "c"])), ContainerParams())[0]["name"] for _ in range(3)}
    assert len(picks) == 1  # the run's seed decides, the same way every time
    with pytest.raises(FaultError, match="need a container stack"):
        choose(context(object()), ContainerParams())


def test_rootfs_is_tiny_deterministic_and_keeps_the_docker_init_mount_point() -> None:
    tar = rootfs_tar()
    assert tar == rootfs_tar() and image_ref(tar) == image_ref(rootfs_tar())
    assert len(tar) < 64 * 1024
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(tar)).getmembers()}
    assert members["sbin"].isdir()  # Docker mounts its init at /sbin/docker-init
    assert members["tmp"].mode == 0o1777
    if Path("/bin").is_symlink():
        assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert members["etc"].isdir() and all(m.mtime == 0 for m in members.values())


def test_mounts_keep_paths_the_same_and_only_the_run_folder_writable(tmp_path: Path) -> None:
    workdir = tmp_path / "run" / "stack"
    workdir.mkdir(parents=True)
    model = workdir / "models"
    model.mkdir()
    extra, sockets = tmp_path / "extra", tmp_path / "sockets"
    extra.mkdir()
    sockets.mkdir()
    argv = ["/usr/bin/env", f"--model-repository={model}", "--port=80", f"-Dtmpdir={sockets}", str(sockets)]
    mounts = plan_mounts(argv, workdir, [str(extra)])
    by_path = {m.path: m.writable for m in mounts}
    assert by_path[str(workdir.resolve())] is True and by_path[str(sockets)] is True  # the stack writes there
    assert by_path["/usr"] is False and by_path[str(extra)] is False
    assert str(model) not in by_path and "/usr/bin/env" not in by_path  # inside mounts already there
    assert sum(w for w in by_path.values()) == 2
    import sys

    assert any(sys.prefix.startswith(p) for p in by_path)  # the Python that stacks run


def test_container_environment_keeps_what_the_stack_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_HOST_SECRET", "s3cret")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = {"PATH": "/venv/bin:/usr/bin", "SOME_HOST_SECRET": "s3cret", "LD_LIBRARY_PATH": "/libs", "NEW": "1"}
    assert container_env(env) == {"PATH": "/venv/bin:/usr/bin", "LD_LIBRARY_PATH": "/libs", "NEW": "1"}


def test_docker_exit_codes_read_as_signals() -> None:
    assert exit_status(137) == -9 and exit_status(143) == -15 and exit_status(139) == -11
    assert exit_status(0) == 0 and exit_status(1) == 1 and exit_status(255) == 255


def test_sizes() -> None:  # what is Docker's own; the reading itself: test_sizes.py
    assert memory_size("512Mi") == 512 << 20 and memory_size("1.5Gi") == 3 << 29
    assert memory_size("2G") == 2 * 10**9
    assert memory_size(6 << 20) == 6 << 20 and show_size(2 << 30) == "2Gi" and show_size(60 << 20) == "60Mi"
    for bad in ("12 parsecs", "512m", "1.5g", 4096):
        with pytest.raises(ValueError):
            memory_size(bad)


def test_engine_events_become_journal_fields() -> None:
    attributes = {"exitCode": "137", "name": "sh-x", "image": "i"}
    raw = {"Type": "container", "Action": "die", "timeNano": 1_000_000_012_500_000_000,
           "Actor": {"ID": "0123456789abcdef", "Attributes": attributes}}
    fields = event_fields(raw, wall_origin=1_000_000_000.0)
    assert fields == {"action": "die", "container_id": "0123456789ab", "exit_code": 137, "container": "sh-x",
                      "image": "i", "engine_t": 12.5}
    exec_raw = {**raw, "Action": "exec_start: sh -c true"}
    assert (event_fields(exec_raw, 0.0) or {})["action"] == "exec_start"
    assert event_fields({**raw, "Type": "network"}, 0.0) is None


def engine(t: float, action: str, **extra: Any) -> dict[str, Any]:
    return {"type": "event", "event": "docker_event", "t": t + 0.01, "engine_t": t, "action": action,
            "container": "sh-c", **extra}


def journal_with_a_restart(recovered: bool = True) -> RunData:
    plan = {"containers": [{"name": "sh-c", "id": "c" * 64}]}
    records: list[dict[str, Any]] = [
        {"type": "event", "event": "load_started", "t": 1.0},
        {"type": "event", "event": "fault_injected", "t": 5.02, "id": "f0.0", "kind": "container_restart",
         "name": "restart", "plan": plan},
        engine(5.03, "kill", signal="15"), engine(8.05, "kill", signal="9"),
        engine(8.10, "die", exit_code=137), engine(8.30, "start"), engine(8.31, "restart"),
        {"type": "event", "event": "process_exited", "t": 8.15, "role": "server", "pid": 1, "planned": False},
        {"type": "event", "event": "fault_restored", "t": 8.4, "id": "f0.0"},
        {"type": "event", "event": "window", "t": 8.4, "kind": "fault", "fault_id": "f0.0", "start": 5.0,
         "end": 8.4},
    ]
    # Whole seconds of load: served through the SIGTERM (5-7), refused while down (8-10).
    records += [{"type": "second", "t": float(t), "requests": 100, "ok": 100 if t < 8 or t > 10 else 0,
                 "errors": {} if t < 8 or t > 10 else {"ConnectionRefusedError": 100}} for t in range(1, 16)]
    if recovered:
        records.append({"type": "event", "event": "recovered", "t": 11.2, "after": "exited"})
    records += [{"type": "event", "event": "load_stopped", "t": 16.0},
                {"type": "event", "event": "supervisor_stopped", "t": 16.1},
                engine(16.2, "kill", signal="15")]  # the teardown's stop: no fault's
    return RunData.from_records(records)


def test_restart_outage_from_engine_events_and_the_health_probe() -> None:
    (outage,) = container_outages(journal_with_a_restart())
    assert outage.injected_t == 5.0  # from the window: when the harness asked, not when the call returned
    assert outage.actions == ["kill 15 +0.03s", "kill 9 +3.05s", "die 137 +3.10s", "start +3.30s",
                              "restart +3.31s"]
    assert outage.shutdown_s == 3.07 and outage.sigkilled_after_stop  # SIGTERM was not enough
    assert outage.served_while_stopping == 200  # seconds 6 and 7 lie wholly between signal and exit
    assert outage.failed_requests == 300 and outage.errors_by_kind == {"ConnectionRefusedError": 300}
    assert outage.downtime_s == 3.1 and outage.startup_s == 2.9 and outage.recovery_s == 6.2
    assert measure(journal_with_a_restart(), "container_downtime_s").value == 3.1


def test_an_outage_that_never_ended_has_no_downtime_value() -> None:
    data = journal_with_a_restart(recovered=False)
    (outage,) = container_outages(data)
    assert outage.gone_t is not None and outage.ready_t is None and outage.downtime_s is None
    assert measure(data, "container_downtime_s").value is None  # an SLO on it fails, as it should


def test_engine_address_comes_from_scenario_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///env.sock")
    assert resolve_host("unix:///mine.sock") == ("unix:///mine.sock", "scenario")
    assert resolve_host(None) == ("unix:///env.sock", "DOCKER_HOST")
    monkeypatch.delenv("DOCKER_HOST")
    assert resolve_host(None) == ("unix:///var/run/docker.sock", "default")
    monkeypatch.setenv("DOCKER_HOST", "tcp://192.168.1.10:2375")
    with pytest.raises(UsageError, match="loopback only"):
        resolve_host(None)


def test_unreachable_engine_errors_say_which_socket_and_why(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    with pytest.raises(EngineUnreachable) as info:
        connect(f"unix://{missing}")
    assert str(info.value) == (f"no Docker engine answers at unix://{missing} (from scenario): "
                               f"{missing} does not exist; start dockerd there or set DOCKER_HOST")
    plain = tmp_path / "plain.sock"
    plain.write_text("")
    with pytest.raises(EngineUnreachable, match="is not a socket"):
        connect(f"unix://{plain}")
    dead = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(dead))  # bound, never listening: what a crashed engine leaves
    try:
        with pytest.raises(EngineUnreachable, match="connection refused"):
            connect(f"unix://{dead}")
    finally:
        listener.close()


def test_cleanup_calls_the_recorded_undo_and_refuses_foreign_code(tmp_path: Path) -> None:
    log = RestoreLog(tmp_path)
    log.resource("tests.unit.test_containers:never_called", {})
    log.close()
    assert cleanup(tmp_path) == ["skipped 'tests.unit.test_containers:never_called': not a harness function"]
    other = tmp_path / "other"
    other.mkdir()
    log = RestoreLog(other)
    log.resource("harness.containers.cleanup:remove_run_containers",
                 {"docker_host": f"unix://{tmp_path}/gone.sock", "run_id": "r"})
    log.close()
    with pytest.raises(EngineUnreachable, match="gone.sock"):  # a failed undo is an error, not silence
        cleanup(other)


def never_called(plan: dict[str, Any]) -> list[str]:
    raise AssertionError("cleanup must not import code outside the harness from a record")
