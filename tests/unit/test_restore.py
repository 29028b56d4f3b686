"""The restore record and `harness cleanup`, on real processes this test starts."""

import signal
import subprocess
import time
from pathlib import Path

import psutil

from harness.procs import ProcessId
from harness.restore import RestoreLog, cleanup, read_restore


def start_sleeper() -> tuple[subprocess.Popen[bytes], ProcessId]:
    proc = subprocess.Popen(["sleep", "120"])
    return proc, ProcessId.of(psutil.Process(proc.pid))


def test_cleanup_thaws_frozen_processes_and_stops_recorded_ones(tmp_path: Path) -> None:
    proc, ident = start_sleeper()
    try:
        log = RestoreLog(tmp_path)
        log.process("server", ident)
        plan = {"role": "server", "targets": [{"pid": ident.pid, "create_time": ident.create_time}]}
        log.fault_planned("f0.0", "process_freeze", plan)
        ident.send(signal.SIGSTOP)
        log.close()  # as if the harness died here, mid-fault
        time.sleep(0.1)
        assert psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED
        actions = cleanup(tmp_path)
        assert actions[0] == "undid fault f0.0 (process_freeze)"
        assert any(f"pid {ident.pid}" in a for a in actions)
        assert proc.wait(5) == -signal.SIGTERM  # thawed first, so it could take SIGTERM
        assert read_restore(tmp_path)[-1]["op"] == "cleanup_done"
        assert cleanup(tmp_path) == []  # nothing left the second time
    finally:
        if proc.poll() is None:
            proc.kill()


def test_restored_faults_and_stopped_processes_are_left_alone(tmp_path: Path) -> None:
    proc, ident = start_sleeper()
    try:
        log = RestoreLog(tmp_path)
        log.process("server", ident)
        log.processes_stopped()
        log.fault_planned("f0.0", "process_freeze", {"targets": []})
        log.fault_restored("f0.0")
        log.close()
        assert cleanup(tmp_path) == []
        assert proc.poll() is None  # recorded as stopped by the harness: not touched
    finally:
        proc.kill()
        proc.wait()


def test_a_reused_pid_is_never_signalled() -> None:
    proc, ident = start_sleeper()
    try:
        impostor = ProcessId(ident.pid, ident.create_time - 100)
        assert impostor.alive() is None and impostor.send(signal.SIGKILL) is False
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_protected_processes_are_refused() -> None:
    import os

    import pytest

    me = ProcessId.of(psutil.Process(os.getpid()))
    with pytest.raises(PermissionError):
        me.send(signal.SIGCONT)
