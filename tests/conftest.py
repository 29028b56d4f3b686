import os
import shutil
import subprocess
import sys
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
