"""The pytest plugin (entry point `pytest11`): scenario files as tests, and a `harness_run` fixture.

A file named like `scenario_*.yaml` or `*.scenario.yaml` (ini `harness_scenario_files`) is run once
and becomes one test item for the run (`FILE::run`) and one per SLO (`FILE::slo[p99_ms < 50]`).
The scenario always runs in a child process (`python -m harness.cli run`): the harness imports
Locust, which monkey-patches the standard library with gevent, and that must never happen inside
the user's pytest. The child has a time budget from the scenario; past it, or on Ctrl-C, it gets
SIGTERM (the harness then restores its faults, stops the stack and writes partial reports), and
SIGKILL after a grace period, followed by `harness cleanup` of its run folder.
"""

import fnmatch
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.exitcodes import ExitCode
from harness.pytest_results import HarnessResult, SloOutcome, interval_text, read_result

if TYPE_CHECKING:
    from harness.scenario import Scenario

DEFAULT_FILES = ["scenario_*.yaml", "scenario_*.yml", "*.scenario.yaml", "*.scenario.yml"]
MARGIN_S = 60.0  # reports, Python start-up and a loaded machine, beyond the scenario's own timings
RUN_FOLDER = re.compile(r"^run folder: (.+)$", re.MULTILINE)
_RUN_DIRS = pytest.StashKey[list[Path]]()

HarnessRun = Callable[..., HarnessResult]


@dataclass(frozen=True)
class Launch:
    """One `harness run` child: what to run, where its run folder goes, how long it may take."""

    scenario: Path
    runs_dir: Path
    seed: int | None
    timeout_s: float
    grace_s: float  # SIGTERM to SIGKILL: the harness's teardown (faults, stack stop, reports)

    def argv(self) -> list[str]:
        seed = [] if self.seed is None else ["--seed", str(self.seed)]
        return [sys.executable, "-m", "harness.cli", "run", str(self.scenario), "--runs-dir",
                str(self.runs_dir), "--no-progress", *seed]


def launch_for(scenario: "Scenario", path: Path, runs_dir: Path, seed: int | None,
               timeout_s: float | None = None) -> Launch:
    """Budget: every start attempt may take the whole startup timeout, then the load, then the stop."""
    start = scenario.startup
    startup = scenario.stack.startup_timeout * start.attempts + start.backoff * (start.attempts - 1)
    stop = scenario.stack.stop_timeout
    budget = startup + scenario.load.total_duration + 2 * stop + MARGIN_S
    return Launch(path.resolve(), runs_dir.resolve(), seed, timeout_s or budget, 2 * stop + 30.0)


def run_child(launch: Launch) -> HarnessResult:
    """Run the scenario in a child process and read its run folder; the child never outlives this."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        # Its own session: a terminal Ctrl-C reaches pytest only, which then ends the child once, below.
        child = subprocess.Popen(launch.argv(), stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        timed_out = False
        try:
            code = child.wait(timeout=launch.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            code = end_child(child, launch.grace_s, out)
        except BaseException:  # Ctrl-C or pytest-timeout: stop the run cleanly, then let it propagate
            end_child(child, launch.grace_s, out)
            raise
        text = _read(out)
    run_dir = run_dir_of(text)
    if timed_out and run_dir is not None and not (run_dir / "summary.json").exists():
        _harness("report", run_dir)  # killed before its reports: rebuild them from the journal
    code = int(ExitCode.INTERRUPTED) if timed_out else code
    return read_result(run_dir, code, text[-4000:], timed_out)


def end_child(child: "subprocess.Popen[bytes]", grace_s: float, out: Any) -> int:
    """SIGTERM by PID, wait for the harness's teardown, then SIGKILL and undo what it left."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        return child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        child.kill()
        code = child.wait()
    run_dir = run_dir_of(_read(out))
    if run_dir is not None and (run_dir / "restore.jsonl").exists():
        _harness("cleanup", run_dir)
    return code


def run_dir_of(output: str) -> Path | None:
    """The folder `harness run` announced on its first line."""
    match = RUN_FOLDER.search(output)
    return Path(match.group(1).strip()) if match else None


def _read(out: Any) -> str:
    out.flush()
    out.seek(0)
    return str(out.read())


def _harness(command: str, run_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "harness.cli", command, str(run_dir)], capture_output=True,
                   timeout=120, check=False)


def load_or_fail(path: Path) -> "Scenario":
    """The validated scenario; a bad file is one line naming file, line and field (as `harness validate`)."""
    from harness.errors import UsageError
    from harness.scenario import load_scenario  # lazily: pytest sessions without scenarios never pay

    try:
        return load_scenario(path)
    except UsageError as exc:
        raise ScenarioFailure(f"{exc} (exit {int(exc.code)} {exc.code.name})") from None


class ScenarioFailure(Exception):
    """A scenario item's failure; its text is the whole report (no Python traceback)."""


# --- options and hooks ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "serving-harness scenarios")
    group.addoption("--harness-runs-dir", type=Path, default=None,
                    help="where scenario run folders go (default: harness-runs under pytest's basetemp)")
    group.addoption("--harness-seed", type=int, default=None,
                    help="passed to `harness run --seed` for every scenario (replay a run)")
    parser.addini("harness_scenario_files", type="args", default=DEFAULT_FILES,
                  help="glob(s) of file names collected as harness scenarios; empty: collect none")
    parser.addini("harness_runs_dir", default="", help="where run folders go, relative to the rootdir")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RUN_DIRS] = []


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> "ScenarioFile | None":
    patterns: list[str] = parent.config.getini("harness_scenario_files")
    if any(fnmatch.fnmatch(file_path.name, pattern) for pattern in patterns):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run_dirs = config.stash.get(_RUN_DIRS, [])
    if run_dirs:
        terminalreporter.section("harness run folders")
        for run_dir in run_dirs:
            terminalreporter.write_line(str(run_dir))


def default_runs_dir(config: pytest.Config) -> Path:
    chosen: Path | None = config.getoption("harness_runs_dir")
    if chosen is not None:
        return config.invocation_params.dir / chosen
    ini = str(config.getini("harness_runs_dir"))
    if ini:
        return config.rootpath / ini
    # The tmpdir plugin keeps its factory here; it is the only route to basetemp outside a fixture.
    factory: pytest.TempPathFactory | None = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return config.invocation_params.dir / "runs"
    return factory.getbasetemp() / "harness-runs"


def _record(config: pytest.Config, result: HarnessResult) -> None:
    if result.run_dir is not None:
        config.stash[_RUN_DIRS].append(result.run_dir)


# --- a scenario file as test items ---------------------------------------------------------------


class ScenarioFile(pytest.File):
    """Runs its scenario once, on the first item that asks, and shares the result with the rest."""

    launch: Launch  # set by collect(), from the validated scenario
    _result: HarnessResult | None = None
    _error: str | None = None

    def collect(self) -> Iterator[pytest.Item]:
        try:
            scenario = load_or_fail(self.path)
        except ScenarioFailure as exc:
            raise self.CollectError(str(exc)) from None
        seed = self.config.getoption("harness_seed")
        self.launch = launch_for(scenario, self.path, default_runs_dir(self.config), seed)
        items: list[pytest.Item] = [ScenarioRunItem.from_parent(self, name="run")]
        for index, (name, label) in enumerate(_item_names([slo.label for slo in scenario.slo])):
            items.append(SloItem.from_parent(self, name=name, index=index, label=label))
        if self.config.pluginmanager.hasplugin("timeout"):  # pytest-timeout must not cut the run short
            for item in items:
                item.add_marker(pytest.mark.timeout(self.launch.timeout_s + self.launch.grace_s + MARGIN_S))
        yield from items

    def result(self) -> HarnessResult:
        if self._error is not None:
            raise ScenarioFailure(self._error)
        if self._result is None:
            try:
                self._result = run_child(self.launch)
            except (OSError, subprocess.SubprocessError) as exc:
                self._error = f"{self.path.name}: could not run the harness: {exc}"
                raise ScenarioFailure(self._error) from None
            _record(self.config, self._result)
        return self._result


def _item_names(labels: list[str]) -> list[tuple[str, str]]:
    """`slo[LABEL]`, with `#2`, `#3` for repeated labels so every node id stays unique."""
    seen: dict[str, int] = {}
    names = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        suffix = "" if seen[label] == 1 else f" #{seen[label]}"
        names.append((f"slo[{label}{suffix}]", label))
    return names


class _ScenarioItem(pytest.Item):
    parent: ScenarioFile

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name  # pytest turns dots before any "[" into "::"


class ScenarioRunItem(_ScenarioItem):
    """The run itself: the stack started, the harness reached a verdict without an internal error."""

    def runtest(self) -> None:
        result = self.parent.result()
        self.user_properties += [("verdict", result.verdict), ("run_dir", str(result.run_dir))]
        if not result.reached_verdict:
            tail = result.output[-2000:]
            raise ScenarioFailure(f"{result.describe()}\n--- harness output (tail) ---\n{tail}")
        if not result.passed and not result.failed_slos:  # a failed verdict no SLO item accounts for
            raise ScenarioFailure(result.describe())


class SloItem(_ScenarioItem):
    """One SLO of the run: measured against its threshold."""

    def __init__(self, *, index: int, label: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = index
        self.label = label

    def runtest(self) -> None:
        result = self.parent.result()
        outcome = _outcome(result, self.index, self.label)
        if outcome is None:
            raise ScenarioFailure(f"SLO {self.label} was not evaluated: {result.describe()}")
        self.user_properties += _properties(outcome, result)
        if not outcome.passed:
            raise ScenarioFailure(outcome.describe(result.run_dir))


def _outcome(result: HarnessResult, index: int, label: str) -> SloOutcome | None:
    """summary.json lists SLOs in the scenario's order; the name guards against a mismatch."""
    if index < len(result.slos) and result.slos[index].name == label:
        return result.slos[index]
    return next((slo for slo in result.slos if slo.name == label), None)


def _properties(outcome: SloOutcome, result: HarnessResult) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = [
        ("measured", outcome.measured), ("threshold", f"{outcome.op} {outcome.threshold:g}"),
        ("samples", outcome.samples), ("run_dir", str(result.run_dir)),
    ]
    if outcome.ci is not None:
        props.append(("ci", interval_text(outcome.ci)))
    return props


# --- the fixture ---------------------------------------------------------------------------------


@pytest.fixture
def harness_run(request: pytest.FixtureRequest) -> HarnessRun:
    """`harness_run(path, seed=None, timeout=None, runs_dir=None)` runs a scenario and returns its result.

    A relative path is looked up beside the test file first, then in the current directory.
    """
    config = request.config

    def run(scenario: str | Path, seed: int | None = None, timeout: float | None = None,
            runs_dir: str | Path | None = None) -> HarnessResult:
        path = _find(Path(scenario), request.path.parent)
        try:
            loaded = load_or_fail(path)
        except ScenarioFailure as exc:
            pytest.fail(str(exc), pytrace=False)
        chosen_seed = seed if seed is not None else config.getoption("harness_seed")
        folder = Path(runs_dir) if runs_dir is not None else default_runs_dir(config)
        result = run_child(launch_for(loaded, path, folder, chosen_seed, timeout))
        _record(config, result)
        return result

    return run


def _find(path: Path, test_dir: Path) -> Path:
    if path.is_absolute() or not (test_dir / path).is_file():
        return path
    return test_dir / path
