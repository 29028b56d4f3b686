"""`MarkerFault` (kind `fake_marker`): a fault whose effect is a file, so a test can see it undone.

`inject` writes the file, `restore` and `undo` remove it. It can be told to fail at `validate`
or `plan` (a FaultError, as a fault with no target), to raise an unexpected error in `plan` (a
bug in a plugin), or to fail at `inject` or at `restore`. Its `fault_injected`
details say whether the run's restore record held its plan when `inject` ran.
"""

from pathlib import Path
from typing import Any

from faults.base import Fault, FaultContext, FaultError, FaultParams
from harness.restore import read_restore

KIND = "fake_marker"
TARGET = "tests.unit.fakes.faults:MarkerFault"


class MarkerParams(FaultParams):
    path: str
    restore_dir: str | None = None  # the run folder whose restore record `inject` checks
    fail_validate: bool = False
    fail_plan: bool = False
    crash_plan: bool = False
    fail_inject: bool = False
    fail_restore: bool = False


class MarkerFault(Fault):
    kind = KIND
    params_model = MarkerParams

    @property
    def settings(self) -> MarkerParams:
        assert isinstance(self.params, MarkerParams)
        return self.params

    def validate(self, ctx: FaultContext) -> None:
        if self.settings.fail_validate:
            raise FaultError("the marker's folder is read-only")

    def plan(self, ctx: FaultContext) -> dict[str, Any]:
        if self.settings.fail_plan:
            raise FaultError("no target for the marker")
        if self.settings.crash_plan:
            raise KeyError("targets")  # a plugin's bug, not a FaultError
        return {"path": self.settings.path}

    def inject(self, ctx: FaultContext, plan: dict[str, Any]) -> dict[str, Any]:
        recorded = None
        if self.settings.restore_dir is not None:
            records = read_restore(Path(self.settings.restore_dir))
            recorded = any(r["op"] == "fault" and r["plan"] == plan for r in records)
        if self.settings.fail_inject:
            Path(plan["path"]).write_text("half-injected", encoding="utf-8")  # it did part of it
            raise RuntimeError("inject broke half way")
        Path(plan["path"]).write_text("injected", encoding="utf-8")
        return {"marker": plan["path"], "recorded_before_inject": recorded}

    def restore(self, ctx: FaultContext, plan: dict[str, Any]) -> None:
        if self.settings.fail_restore:
            raise RuntimeError("restore broke")
        self.undo(plan)

    @classmethod
    def undo(cls, plan: dict[str, Any]) -> None:
        Path(plan["path"]).unlink(missing_ok=True)
