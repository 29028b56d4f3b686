"""`harness matrix`'s logic without a server: versions, declarations, the cache (complete or
absent, one install under concurrent callers), the layered venv (its own copy wins on sys.path),
pip's errors as one line, the child's JSON, the table."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.exitcodes import ExitCode
from harness.matrix import envs
from harness.matrix.envs import (
    MARKER,
    MatrixError,
    VersionEnv,
    cache_root,
    check_wins,
    ensure_env,
    layer_lines,
    missing_requirements,
    pip_error,
    probe,
    site_packages,
)
from harness.matrix.packages import parse_versions, server_packages
from harness.matrix.runs import VersionRun, child_argv, child_environ, parse_result
from harness.matrix.table import build_grid, markdown
from harness.plugins import load
from harness.stacks.registry import known_stacks
from tests.conftest import HARNESS, write_scenario

PACKAGES = ("fakeserver", "fakeserver-tools")


# --- versions and declarations -------------------------------------------------------------

def test_versions_by_spaces_and_commas_in_the_order_given() -> None:
    assert parse_versions(["0.12.0", "0.10.0,0.11.1"]) == ["0.12.0", "0.10.0", "0.11.1"]


@pytest.mark.parametrize(("given", "says"), [
    ([], "at least one version"),
    (["0.1,,0.2"], "an empty entry"),
    (["latest"], "'latest' is not a version"),
    (["0.11", "0.11.0"], "given twice"),
])
def test_a_bad_versions_list_is_one_line(given: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_versions(given)


def test_the_stacks_that_install_their_server_declare_its_packages() -> None:
    specs = {kind: load(target) for kind, target in known_stacks().items()}
    assert server_packages(specs["torchserve"], "torchserve") == ("torchserve", "torch-model-archiver")
    assert server_packages(specs["triton"], "triton") == ("nvidia-pytriton",)
    assert server_packages(specs["dynamo"], "dynamo") == ("ai-dynamo", "ai-dynamo-runtime")
    with pytest.raises(UsageError, match="stack kind 'external' declares no server package"):
        server_packages(specs["external"], "external")


def test_a_declaration_that_is_not_a_tuple_of_names_is_refused() -> None:
    class Odd:
        SERVER_PACKAGES = "torchserve"

    with pytest.raises(UsageError, match="must be a tuple of package names"):
        server_packages(Odd, "odd")  # type: ignore[arg-type]


# --- the cache -----------------------------------------------------------------------------

def test_the_cache_root_follows_xdg_and_the_flag(tmp_path: Path) -> None:
    assert cache_root(None, {"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "serving-harness" / "matrix"
    assert cache_root(tmp_path / "envs", {}) == tmp_path / "envs"
    assert cache_root(None, {}).parts[-2:] == ("serving-harness", "matrix")


def _fake_install(calls: list[str], delay: float = 0.0, fail: bool = False):
    def install(tmp: Path, packages: tuple[str, ...], version: str, log: object) -> tuple[str, ...]:
        calls.append(version)
        (tmp / "lib").mkdir(parents=True)
        (tmp / "lib" / "payload").write_bytes(b"x" * 1000)
        time.sleep(delay)
        if fail:
            raise MatrixError(f"{packages[0]} {version}: pip could not install it: No matching distribution")
        return ()
    return install


def test_an_environment_is_made_once_and_then_found_in_the_cache(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(envs, "_install", _fake_install(calls))
    made = ensure_env(tmp_path, PACKAGES, "1.0")
    assert made.install_s is not None and made.size_bytes >= 1000
    assert made.path.name == "fakeserver-1.0" and (made.path / MARKER).is_file()
    again = ensure_env(tmp_path, PACKAGES, "1.0")
    assert again.install_s is None and again.path == made.path and calls == ["1.0"]
    marker = json.loads((made.path / MARKER).read_text())
    assert marker["packages"] == list(PACKAGES) and marker["version"] == "1.0"


def test_a_failed_install_leaves_nothing_under_any_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(envs, "_install", _fake_install([], fail=True))
    with pytest.raises(MatrixError, match="No matching distribution"):
        ensure_env(tmp_path, PACKAGES, "9.9")
    left = [p.name for p in (tmp_path / envs.base_tag()).iterdir()]
    assert left == ["fakeserver-9.9.lock"], left  # the lock file only: no env, no temporary folder


def test_a_killed_install_s_temporary_folder_is_removed_by_the_next(tmp_path: Path, monkeypatch) -> None:
    stale = tmp_path / envs.base_tag() / ".fakeserver-1.0.tmp-99999"
    (stale / "lib").mkdir(parents=True)
    monkeypatch.setattr(envs, "_install", _fake_install([]))
    ensure_env(tmp_path, PACKAGES, "1.0")
    assert not stale.exists()


def test_a_folder_without_the_marker_is_not_taken_for_an_environment(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / envs.base_tag() / "fakeserver-1.0").mkdir(parents=True)
    monkeypatch.setattr(envs, "_install", _fake_install([]))
    with pytest.raises(MatrixError, match="not a matrix environment"):
        ensure_env(tmp_path, PACKAGES, "1.0")


_INSTALL_IN_A_CHILD = """
import sys, time
from pathlib import Path
from harness.matrix import envs

def install(tmp, packages, version, log):
    (tmp / "lib").mkdir(parents=True)
    (tmp / "lib" / "payload").write_bytes(b"x" * 1000)
    print("installing", flush=True)
    time.sleep(1.0)
    return ()

envs._install = install
got = envs.ensure_env(Path(sys.argv[1]), ("fakeserver", "fakeserver-tools"), "2.0")
print("installed" if got.install_s is not None else "cached", flush=True)
"""


def test_two_matrices_at_once_install_once_and_both_get_it(tmp_path: Path) -> None:
    # Two processes, as two matrix runs would be: the pytest process may be gevent-patched by the
    # other tests (Locust), where threads are greenlets that a blocking flock would freeze.
    children = [subprocess.Popen([sys.executable, "-c", _INSTALL_IN_A_CHILD, str(tmp_path)],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [child.communicate(timeout=60)[0].split() for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    assert sorted(outputs) == [["cached"], ["installing", "installed"]], outputs


# --- the layered venv, for real (no network: a distribution written by hand) -----------------

def _layered_venv(path: Path) -> Path:
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
    (site_packages(path) / envs.LAYER_PTH).write_text(layer_lines(envs.base_sites()), encoding="utf-8")
    return path / "bin" / "python"


def _dist(site: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_the_venv_s_own_copy_wins_over_the_harness_s(tmp_path: Path) -> None:
    python = _layered_venv(tmp_path / "env")
    # `rich` is installed beside the harness; a copy in the venv must be the one found.
    _dist(site_packages(tmp_path / "env"), "rich", "0.0.1", ("surely-absent-package>=1", "psutil"))
    found = probe(python, ["rich", "psutil"])
    assert found["rich"]["version"] == "0.0.1"
    assert Path(found["rich"]["location"]).resolve() == site_packages(tmp_path / "env").resolve()
    assert found["rich"]["unmet"] == ["surely-absent-package>=1"]  # psutil comes from the harness's
    check_wins(found, ["rich"], "0.0.1", tmp_path / "env")
    with pytest.raises(MatrixError, match="finds psutil"):
        check_wins(found, ["psutil"], "0.0.1", tmp_path / "env")  # the harness's, not the venv's
    # and the harness itself runs there, from its own install
    out = subprocess.run([str(python), "-m", "harness", "--version"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.startswith("harness ")


def test_a_renamed_environment_still_works(tmp_path: Path) -> None:
    """Environments are made in a temporary folder and renamed: nothing in them may name the first path."""
    python = _layered_venv(tmp_path / ".tmp-env")
    _dist(site_packages(tmp_path / ".tmp-env"), "rich", "0.0.2")
    os.rename(tmp_path / ".tmp-env", tmp_path / "env")
    found = probe(tmp_path / "env" / "bin" / "python", ["rich"])
    assert found["rich"]["version"] == "0.0.2"
    assert not python.exists()


def test_missing_requirements_leave_out_the_harness_s_own_gaps() -> None:
    layered = {"ai-dynamo": {"version": "1.5.0", "unmet": ["aisimulate==0.12.0", "msgspec>=0.19"]}}
    base = {"ai-dynamo": {"version": "1.6.1", "unmet": ["aisimulate==0.13.0; python_version >= \"3.11\""]}}
    assert missing_requirements(layered, base) == ["msgspec>=0.19"]
    assert missing_requirements(layered, {"ai-dynamo": None}) == ["aisimulate==0.12.0", "msgspec>=0.19"]


def test_pip_s_error_is_its_last_error_line() -> None:
    stderr = ("WARNING: Location 'file:///x' is ignored\n"
              "ERROR: Could not find a version that satisfies the requirement torchserve==9.9.9 (from "
              "versions: 0.1.1, 0.12.0)\nERROR: No matching distribution found for torchserve==9.9.9\n")
    assert pip_error(stderr) == "No matching distribution found for torchserve==9.9.9"
    assert pip_error("something broke\n\n") == "something broke"


# --- the child run and the table ------------------------------------------------------------

def _env(tmp_path: Path) -> VersionEnv:
    return VersionEnv(tmp_path / "env", PACKAGES, "1.0", None, 0)


def test_the_child_is_the_harness_run_by_the_version_s_interpreter(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_STORE", "elsewhere.db")
    env = _env(tmp_path)
    argv = child_argv(env, Path("/s.yaml"), Path("/runs"), 7)
    assert argv[:5] == [str(env.python), "-m", "harness", "run", "/s.yaml"]
    assert "--json" in argv and argv[-2:] == ["--seed", "7"]
    environ = child_environ(env)
    assert "HARNESS_STORE" not in environ  # the matrix records, once, in its own store
    assert environ["PATH"].split(os.pathsep)[0] == str(env.python.parent)


def test_the_child_s_json_is_read_with_the_server_version_it_reported(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"stack": {"info": {"version": "0.11.1"}}}))
    out = json.dumps({"verdict": "fail", "exit_code": 1, "reason": "1 SLO failed", "run_dir": str(run_dir),
                      "slos": [{"name": "p99_ms < 5", "measured": 7.5, "passed": False}]}, indent=2)
    run = parse_result("0.11.1", 1, out)
    assert (run.verdict, run.exit_code, run.reported_version) == ("fail", 1, "0.11.1")
    broken = parse_result("0.11.1", -9, "not json")
    assert broken.verdict == "error" and "exit -9" in broken.reason


def test_the_table_has_a_row_per_version_and_a_column_per_slo() -> None:
    runs = [
        VersionRun("0.10.0", 3, "stack_failed", installed="0.10.0"),
        VersionRun("0.11.1", 1, "fail", reported_version="0.12.0", recorded=True, stored_version="0.12.0",
                   slos=[{"name": "a | b", "measured": 3.25, "passed": False},
                         {"name": "c", "measured": None, "passed": False}]),
        VersionRun("0.12.0", 0, "pass", reported_version="0.12.0", recorded=True, stored_version="0.12.0",
                   slos=[{"name": "a | b", "measured": 1, "passed": True}]),
    ]
    grid = build_grid(runs)
    assert grid.header == ("version", "server at start", "in store", "verdict", "a | b", "c")
    assert grid.rows[0] == ("0.10.0", "- (installed 0.10.0)", "not recorded", "stack_failed", "-", "-")
    assert grid.rows[1][1] == "0.12.0 (asked 0.11.1)"  # a version that did not win shows as itself
    assert grid.rows[1][4:] == ("3.25 FAILED", "no data")
    assert grid.rows[2][4:] == ("1 held", "-")
    text = markdown(grid, "t")
    assert "| a \\| b |" in text and text.count("\n| 0.") == 3


# --- the command's refusals, for real (exit 2, one line, nothing installed) ------------------

def _matrix(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    return subprocess.run([*HARNESS, "matrix", *args, "--runs-dir", str(tmp_path / "runs")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)


def test_a_stack_kind_without_a_server_package_is_exit_2(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path, "name: ext\nstack: {kind: external, url: 'http://127.0.0.1:9', "
                                        "model: m}\nload: {user: triton_http, users: 1, duration: 2s}\n")
    done = _matrix(tmp_path, str(scenario), "--versions", "1.0", "2.0")
    assert done.returncode == ExitCode.USAGE_ERROR, done.stderr
    assert done.stderr.strip().splitlines() == [
        "harness: stack kind 'external' declares no server package (SERVER_PACKAGES on its settings class): "
        "the harness does not install its server, so there is no version to vary"]
    assert not (tmp_path / "cache").exists()


def test_a_bad_versions_list_is_exit_2_before_anything(tmp_path: Path) -> None:
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "repro" / "torchserve-worker-kill.yaml"
    done = _matrix(tmp_path, str(scenario), "--versions", "0.12.0", "0.12")
    assert done.returncode == ExitCode.USAGE_ERROR
    assert done.stderr.strip() == "harness: --versions: '0.12' is given twice (as '0.12.0' already)"
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()


def test_help_names_the_exit_codes() -> None:
    done = subprocess.run([*HARNESS, "matrix", "--help"], capture_output=True, text=True, check=True)
    assert "--versions" in done.stdout and "USAGE_ERROR" in done.stdout
