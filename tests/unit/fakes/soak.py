"""A real SoakRun of a fake-stack scenario, with its cycles finished in this process (where the
`fake` stack kind and user are known), and the fake stack's processes ended after it."""

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

import harness.soak.run
import harness.users
from harness.scenario import Scenario
from harness.soak.cycle import finish_cycle
from harness.soak.run import CycleFinisher, SoakRun
from tests.unit.fakes import user as fake_user
from tests.unit.fakes.logs import root_logging_kept
from tests.unit.fakes.stack import FakeSpec, FakeStack


class FakeScenario(Scenario):
    stack: FakeSpec  # the `fake` kind is not in the import-time union (test_run_orchestrator.py)


@contextmanager
def in_process_soak(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoakRun]:
    monkeypatch.setitem(harness.users._BUILTIN, fake_user.NAME, fake_user.TARGET)
    scenario = FakeScenario.model_validate(yaml.safe_load(text))

    class InProcessFinisher(CycleFinisher):
        def _finish(self, path: Path) -> None:
            finish_cycle(path, self.run_dir, scenario)

    monkeypatch.setattr(harness.soak.run, "CycleFinisher", InProcessFinisher)
    path = tmp_path / "soak.yaml"
    path.write_text(text, encoding="utf-8")
    with root_logging_kept():  # the run sends the root logger to its harness.log
        run = SoakRun(scenario, path, tmp_path / "runs", for_s=6.0, progress=False, seed=3)
        yield run
        stack = run.stack
        if isinstance(stack, FakeStack):
            stack.stop(graceful=False)
            for ident in stack.leftovers(within=1.0):
                ident.send(signal.SIGKILL)
