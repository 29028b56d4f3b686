"""The reproduction tests' runs: each bundled scenario run once through `harness run`, when the
first test that reads it asks (a test left out, as the nightly ones are in CI, costs no run)."""

import json
import subprocess
from pathlib import Path

import pytest

from harness.journal import read_journal
from tests.conftest import ROOT, only_run_dir, run_harness


class Ran:
    """One finished run: the CLI's output, its summary and its journal."""

    def __init__(self, result: subprocess.CompletedProcess[str], run_dir: Path):
        self.result = result
        self.run_dir = run_dir
        self.summary = json.loads((run_dir / "summary.json").read_text())
        self.records = read_journal(run_dir / "journal.jsonl")

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr

    def events(self, name: str) -> list[dict]:
        return [r for r in self.records if r.get("event") == name]

    def slo(self, name: str) -> dict:
        """The SLO result named `name` (or, unnamed, on metric `name`): exactly one."""
        (found,) = [s for s in self.summary["slos"] if s.get("name") == name or s.get("metric") == name]
        return found

    @property
    def window(self) -> dict:
        """The run's one error window (a test of a single fault)."""
        (window,) = self.summary["error_windows"]
        return window

    def log_count(self, pattern: str) -> int:
        return int(self.summary["log_patterns"][pattern]["count"])


class LazyRuns:
    """`runs[key]`: the scenario `scenarios[key]` (a path under the repository) run once."""

    def __init__(self, factory: pytest.TempPathFactory, scenarios: dict[str, str]):
        self.factory = factory
        self.scenarios = scenarios
        self.done: dict[str, Ran] = {}

    def __getitem__(self, key: str) -> Ran:
        if key not in self.done:
            folder = self.factory.mktemp(key)
            result = run_harness("run", str(ROOT / self.scenarios[key]), "--runs-dir", "runs",
                                 "--no-progress", cwd=folder)
            self.done[key] = Ran(result, only_run_dir(folder / "runs"))
        return self.done[key]
