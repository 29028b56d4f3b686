"""Running a series: the scenario's full runs one after another, in this process, then the verdict.

The repetitions are harness.runner.Run objects made by the caller (so every option of `harness
run`, workers included, applies to each), executed in sequence in this process: a Run already
sets up and tears down everything it starts, and staying in one process keeps Ctrl-C simple
(one process to stop, and the series report is still written with what was done).
"""

import json
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from harness.errors import UsageError
from harness.repeat import Repetition, judge_series
from harness.repeatspec import MAX_REPEAT
from harness.rundir import make_stamped_dir
from harness.scenario import Scenario
from harness.yamlsrc import load_yaml
from reports.series_html import build_series_html
from reports.series_junit import build_series_junit

SERIES_JSON = "series.json"


class RunLike(Protocol):
    run_dir: Path

    def execute(self) -> tuple[Any, dict[str, Any]]: ...


RunFactory = Callable[[Path], RunLike]  # runs root -> a Run whose folder is made under it


def series_length(scenario: Scenario, scenario_file: Path, override: int | None) -> int:
    """The repetitions to run: `--repeat` over the file's `repeat`; pass_in must count the same."""
    if override is not None and not 1 <= override <= MAX_REPEAT:
        raise UsageError(f"--repeat {override}: give 1 to {MAX_REPEAT} repetitions")
    if override is None or override == scenario.repeat or override == 1:
        return scenario.repeat if override is None else override
    for i, slo in enumerate(scenario.slo):
        if slo.pass_in is not None and slo.pass_in.of != override:
            line = load_yaml(scenario_file).line_of(("slo", i, "pass_in"))
            raise UsageError(f"{scenario_file}:{line}: slo.{i}.pass_in: {slo.pass_in.text} counts "
                             f"{slo.pass_in.of} repetitions but --repeat asks for {override}")
    return override


class StopBetweenRuns:
    """Ctrl-C or SIGTERM between runs (a series' repetitions, a library's scenarios): none starts.

    During a repetition the Run's own handlers take over (it winds down and reports); when they go,
    the Run puts back the handlers it found, these.
    """

    def __init__(self) -> None:
        self.signal = ""
        self.saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.install()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signal = signal.Signals(sig).name

    def install(self) -> None:
        for sig in self.saved:
            signal.signal(sig, self._on_signal)

    def restore(self) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def run_series(scenario: Scenario, scenario_file: Path, runs_root: Path, make_run: RunFactory,
               repeat: int) -> int:
    """Run the series, write series.json, junit.xml and series.html; the series' exit code."""
    series_dir = make_series_dir(runs_root, scenario.name, scenario_file)
    print(f"series folder: {series_dir} ({repeat} repetitions)", flush=True)
    reps: list[Repetition] = []
    stop = StopBetweenRuns()
    try:
        for index in range(1, repeat + 1):
            if stop.signal:
                break
            run = make_run(series_dir)
            print(f"repetition {index}/{repeat}: run folder {run.run_dir}", flush=True)
            verdict, summary = run.execute()
            reps.append(Repetition.from_summary(index, summary))
            print(f"repetition {index}/{repeat}: {verdict.word.upper()} (exit {int(verdict.code)}): "
                  f"{verdict.reason}", flush=True)
            if not reps[-1].judged or reps[-1].aborted_failed:
                break  # no verdict, or an abort SLO failed: the series' verdict is decided
        series = judge_series(scenario, reps, repeat, str(series_dir), stop.signal)
        write_series_reports(series_dir, series)
    finally:
        stop.restore()
    print(f"series verdict: {series['verdict'].upper()} (exit {series['exit_code']} {series['exit_name']}): "
          f"{series['reason']}")
    print(f"reports: {series_dir / 'series.html'}  {series_dir / SERIES_JSON}  {series_dir / 'junit.xml'}")
    return int(series["exit_code"])


def write_series_reports(series_dir: Path, series: dict[str, Any]) -> None:
    (series_dir / SERIES_JSON).write_text(json.dumps(series, indent=2, default=str), encoding="utf-8")
    (series_dir / "junit.xml").write_bytes(build_series_junit(series))
    (series_dir / "series.html").write_text(build_series_html(series), encoding="utf-8")


def make_series_dir(root: Path, name: str, scenario_file: Path) -> Path:
    """`runs/<name>-series-<time>/` (a suffix when taken), with a copy of the scenario."""
    try:
        path = make_stamped_dir(root, f"{name}-series")
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    shutil.copyfile(scenario_file, path / "scenario.yaml")
    return path
