"""`harness matrix` for real: TorchServe 0.11.1 and 0.12.0 (the smallest server wheels, 25 MB each)
installed from the package index into an empty cache, one real run each, both recorded in the
store with the version each server reported at start; then a version pip cannot find is one line,
exit 2, and leaves nothing in the cache."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.exitcodes import ExitCode
from tests.conftest import HARNESS, write_scenario

pytest.importorskip("sqlalchemy")
pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
                       reason="TorchServe needs Java"),
]

VERSIONS = ("0.11.1", "0.12.0")  # the oldest the harness's TorchServe command line starts, and the newest
SCENARIO = """\
name: matrix-torchserve-echo
stack: {kind: torchserve, handler: echo, workers: 1}
load: {user: torchserve_http, users: 2, duration: 4s}
slo:
  - {metric: error_rate, max: 0.01}
"""


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("ts")  # the harness's own TorchServe: its dependencies are what the layer reuses
    return tmp_path_factory.mktemp("matrix")


def matrix(place: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(place / "cache"), PYTHONUNBUFFERED="1")
    env.pop("HARNESS_STORE", None)
    return subprocess.run([*HARNESS, "matrix", *args, "--runs-dir", str(place / "runs"),
                           "--store", str(place / "results.db")],
                          cwd=place, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_versions_each_in_its_own_environment_recorded_with_its_version(place: Path) -> None:
    from harness.store.db import open_store
    from harness.store.models import RunRecord
    from harness.store.url import StoreUrl, to_url

    scenario = write_scenario(place, SCENARIO)
    started = time.monotonic()
    done = matrix(place, str(scenario), "--versions", *VERSIONS, "--markdown", str(place / "table.md"))
    took = time.monotonic() - started
    assert done.returncode == ExitCode.PASS, done.stdout + done.stderr[-3000:]
    installs = [line for line in done.stderr.splitlines() if line.startswith("matrix: torchserve ")]
    assert len(installs) == 2 and all("installed in" in line for line in installs), installs
    print(f"\nmatrix of 2 versions from an empty cache: {took:.0f} s; " + "; ".join(installs))

    envs = sorted(p.name for p in (place / "cache" / "serving-harness" / "matrix").glob("*/torchserve-*")
                  if p.is_dir())
    assert envs == [f"torchserve-{v}" for v in VERSIONS]
    table = (place / "table.md").read_text()
    for version in VERSIONS:
        # version | the server's own at start | the store's | verdict | error_rate
        assert f"| {version} | {version} | {version} | pass | 0 held |" in table, table

    store = open_store(StoreUrl(to_url(str(place / "results.db")), "test"), create=False)
    try:
        with store.session() as session:
            rows = session.query(RunRecord).order_by(RunRecord.started_at).all()
            stored = [(r.scenario, r.stack_kind, r.stack_version, r.verdict) for r in rows]
    finally:
        store.close()
    assert stored == [("matrix-torchserve-echo", "torchserve", v, "pass") for v in VERSIONS]

    again = matrix(place, str(scenario), "--versions", VERSIONS[0], "--markdown", str(place / "again.md"))
    assert again.returncode == ExitCode.PASS, again.stderr[-2000:]
    assert f"matrix: torchserve {VERSIONS[0]}: cached" in again.stderr


def test_a_version_pip_cannot_find_is_one_line_and_leaves_nothing(place: Path) -> None:
    scenario = write_scenario(place, SCENARIO)
    runs_before = sorted((place / "runs").iterdir()) if (place / "runs").exists() else []
    done = matrix(place, str(scenario), "--versions", "0.12.0", "9.9.9")
    assert done.returncode == ExitCode.USAGE_ERROR, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("harness: torchserve 9.9.9: pip could not install it: No matching distribution found "
                    "for torchserve==9.9.9"), done.stderr
    cache = place / "cache" / "serving-harness" / "matrix"
    left = sorted(p.name for p in cache.glob("*/*") if "9.9.9" in p.name)
    assert left == ["torchserve-9.9.9.lock"], left  # no environment, no temporary folder
    runs_after = sorted((place / "runs").iterdir()) if (place / "runs").exists() else []
    assert runs_after == runs_before  # no run started: every version is installed before any runs
