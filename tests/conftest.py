import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness.cli"]


def write_scenario(folder: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def scenario_file(tmp_path: Path):
    def make(text: str, name: str = "scenario.yaml") -> Path:
        return write_scenario(tmp_path, text, name)

    return make


def run_harness(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [*HARNESS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def only_run_dir(runs: Path) -> Path:
    dirs = [d for d in runs.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def triton_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pytriton") is not None and shutil.which("true") is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test against a real server gets one more try, reported as a rerun in the summary.

    These tests share a 2-core machine with real servers whose timing varies (a probe 10 ms late,
    a request racing a deregistration); one that fails twice fails. Unit tests never rerun.
    """
    for item in items:
        if item.get_closest_marker("real") is not None:
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))


def journal_events(run_dir: Path, name: str | None = None) -> list[dict]:
    """The run's journal events, all or those named `name`."""
    from harness.journal import read_journal

    records = read_journal(run_dir / "journal.jsonl")
    return [r for r in records if r.get("type") == "event" and (name is None or r["event"] == name)]


def wait_for_run(runs: Path, ready: Callable[[Path], bool], timeout: float = 90) -> Path:
    """The first run folder under `runs` for which `ready` holds, polled while a run goes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_dir in runs.glob("*"):
            if (run_dir / "journal.jsonl").exists() and ready(run_dir):
                return run_dir
        time.sleep(0.2)
    raise AssertionError(f"no run under {runs} got there in {timeout:.0f}s")


def wait_for_event(runs: Path, name: str, timeout: float = 90) -> Path:
    return wait_for_run(runs, lambda run_dir: bool(journal_events(run_dir, name)), timeout)
