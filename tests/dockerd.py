"""A private Docker engine for the container tests: its own socket, data root and exec root.

Started only when no engine answers at DOCKER_HOST; stopped (and its files removed) at the end
of the test session. The options are the ones that work in this sandbox (see shared/STACKS.md):
no iptables, no bridge network (containers use the host's), the vfs storage driver.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.procs import ProcessId, kill_all

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


@dataclass
class Dockerd:
    root: Path
    process: subprocess.Popen[bytes]
    ident: ProcessId

    @property
    def host(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    def stop(self) -> None:
        """SIGTERM (dockerd stops its containerd too), SIGKILL what is left, remove the files."""
        family = [self.ident, *_children(self.ident)]
        self.ident.send(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.ident.send(signal.SIGKILL)
            self.process.wait(10)
        kill_all(family, grace=5.0)
        for mount in _mounts_under(self.root):  # dockerd leaves its network namespace mounted
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    """Mount points below `root`, deepest first."""
    prefix = str(root) + "/"
    lines = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _children(ident: ProcessId) -> list[ProcessId]:
    proc = ident.alive()
    if proc is None:
        return []
    try:
        return [ProcessId.of(child) for child in proc.children(recursive=True)]
    except psutil.Error:
        return []


def start_dockerd() -> Dockerd:
    binary = shutil.which("dockerd")
    if binary is None:
        raise FileNotFoundError("dockerd is not installed (Debian: apt-get install docker.io)")
    root = Path(tempfile.mkdtemp(prefix="harness-dockerd-", dir="/tmp"))
    (root / "daemon.json").write_text(json.dumps({}), encoding="utf-8")  # not the host's config
    argv = [binary, "--config-file", str(root / "daemon.json"), "--host", f"unix://{root / 'docker.sock'}",
            "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "dockerd.pid"),
            "--iptables=false", "--ip-masq=false", "--bridge=none", "--storage-driver=vfs"]
    with (root / "dockerd.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    daemon = Dockerd(root, process, ProcessId(process.pid, psutil.Process(process.pid).create_time()))
    _wait_until_up(daemon)
    return daemon


def _wait_until_up(daemon: Dockerd) -> None:
    from harness.containers.engine import connect
    from harness.errors import StackFailed

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            break
        try:
            connect(daemon.host).close()
            return
        except StackFailed:
            time.sleep(0.2)
    log = (daemon.root / "dockerd.log").read_text(errors="replace")[-2000:]
    daemon.stop()
    raise RuntimeError(f"dockerd did not come up at {daemon.host}: {log}")


def engine_answers(host: str | None) -> bool:
    from harness.containers.engine import connect
    from harness.errors import HarnessError

    if not host:
        return False
    try:
        connect(host).close()
        return True
    except HarnessError:
        return False


def must_have_engine() -> bool:
    """In CI the container tests run for real: a missing engine fails them instead of skipping."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
