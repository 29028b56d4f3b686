"""FaultRunner on the load's clock: plan, record, inject, hold, restore, always.

The fault is `MarkerFault` (tests.unit.fakes.faults): its effect is a file, so the test sees it
injected and undone. It is registered the way a plugin package's fault is found, under its kind
in the `harness.faults` lookup (`faults.base._BUILTIN`, the map an entry point would add to), so
`FaultSpec` validates it and `fault_class` builds it with no special path.
"""

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401 - first, so gevent patches the standard library as in `harness run`
import pytest

import faults.base
from faults.base import FaultContext, FaultError
from harness.faultrun import FaultRunner
from harness.journal import Journal
from harness.restore import RestoreLog, cleanup, read_restore
from harness.scenario import FaultSpec
from harness.timeline import plan_timeline
from tests.unit.fakes import faults as fake_faults
from tests.unit.fakes.journal import events, names, wait_event


class Rig:
    def __init__(self, folder: Path, specs: list[dict[str, Any]], load_s: float = 10.0):
        self.folder = folder
        self.path = folder / "journal.jsonl"
        self.marker = folder / "marker"
        self.journal = Journal(self.path)
        self.restore = RestoreLog(folder)
        parsed = [FaultSpec.model_validate({"kind": fake_faults.KIND, "path": str(self.marker),
                                            "restore_dir": str(folder), **spec}) for spec in specs]
        ctx = FaultContext(roles=dict, restart_stack=lambda graceful: 0.0, rng=random.Random(7),
                           journal=self.journal)
        self.runner = FaultRunner(plan_timeline(parsed, load_s, random.Random(7)), ctx, self.journal,
                                  self.restore)
        self.origin = 0.0
        self.closed = False

    def start(self) -> None:
        self.origin = self.journal.now()
        self.runner.start(origin=self.origin)

    def wait(self, name: str, timeout: float = 3.0, **match: Any) -> dict[str, Any]:
        return wait_event(self.path, name, timeout, **match)

    def events(self, name: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return events(self.path, name, **match)

    def close(self) -> None:
        if not self.closed:
            self.runner.stop()
            self.restore.close()
            self.journal.close()
            self.closed = True


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Rig]]:
    monkeypatch.setitem(faults.base._BUILTIN, fake_faults.KIND, fake_faults.TARGET)
    made: list[Rig] = []

    def make(*specs: dict[str, Any], load_s: float = 10.0) -> Rig:
        folder = tmp_path / f"run{len(made)}"
        folder.mkdir()
        made.append(Rig(folder, list(specs), load_s))
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_plan_record_inject_hold_restore_window(rig: Callable[..., Rig]) -> None:
    run = rig({"at": 0.1, "duration": 0.3, "name": "marker"})
    run.start()
    injected = run.wait("fault_injected")
    assert injected["id"] == "f0.0" and injected["name"] == "marker" and injected["kind"] == "fake_marker"
    assert injected["recorded_before_inject"] is True  # the restore record had the plan first
    assert injected["plan"] == {"path": str(run.marker)}
    assert injected["t"] - run.origin >= 0.1 - 0.005
    assert run.marker.read_text() == "injected"  # held
    restored = run.wait("fault_restored")
    assert restored["error"] is None and not run.marker.exists()
    window = run.wait("window")
    assert window["kind"] == "fault" and window["fault_id"] == "f0.0" and window["name"] == "marker"
    assert window["end"] - window["start"] == pytest.approx(0.3, abs=0.1)
    run.close()
    assert names(run.path) == ["fault_scheduled", "fault_injected", "fault_restored", "window"]
    ops = [(r["op"], r["id"]) for r in read_restore(run.folder)]
    assert ops == [("fault", "f0.0"), ("restored", "f0.0")]


def test_every_firing_is_planned_injected_and_restored_on_its_own(rig: Callable[..., Rig]) -> None:
    run = rig({"at": 0.05, "every": 0.2, "count": 3, "duration": 0.05})
    run.start()
    run.wait("window", fault_id="f0.2")
    run.close()
    injected = run.events("fault_injected")
    assert [e["id"] for e in injected] == ["f0.0", "f0.1", "f0.2"]
    assert [e["id"] for e in run.events("fault_restored", error=None)] == ["f0.0", "f0.1", "f0.2"]
    # Each firing at its own slot of the schedule (0.05, 0.25, 0.45 s from the origin), never
    # before it. Not the gaps between firings: a process stalled under load fires one late and the
    # next on time, which is right (the schedule does not drift) and makes a short gap.
    scheduled = run.events("fault_scheduled")
    assert [e["at"] for e in scheduled] == pytest.approx([0.05, 0.25, 0.45])
    origin = scheduled[0]["t"]  # the origin is taken just before this is journaled
    lateness = [e["t"] - (origin + s["at"]) for e, s in zip(injected, scheduled, strict=True)]
    assert all(-0.005 <= late < 0.3 for late in lateness), lateness
    assert not run.marker.exists()


def test_a_fault_whose_inject_raises_is_fault_failed_and_still_restored(rig: Callable[..., Rig]) -> None:
    run = rig({"at": 0.05, "duration": 0.1, "fail_inject": True})
    run.start()
    failed = run.wait("fault_failed")
    assert failed["id"] == "f0.0" and "inject broke half way" in failed["error"]
    restored = run.wait("fault_restored")
    assert restored["error"] is None
    assert not run.marker.exists()  # what it did half way is undone
    run.close()
    assert "fault_injected" not in names(run.path)
    assert [r["op"] for r in read_restore(run.folder)] == ["fault", "restored"]


def test_a_fault_whose_restore_raises_is_left_in_the_restore_record_for_cleanup(
        rig: Callable[..., Rig]) -> None:
    run = rig({"at": 0.05, "duration": 0.05, "fail_restore": True})
    run.start()
    restored = run.wait("fault_restored")
    assert "restore broke" in restored["error"]
    run.wait("window")
    run.close()
    assert run.marker.exists()  # still injected
    records = read_restore(run.folder)
    assert [r["op"] for r in records] == ["fault"]  # not marked restored: cleanup will undo it
    assert cleanup(run.folder) == ["undid fault f0.0 (fake_marker)"]
    assert not run.marker.exists()
    assert cleanup(run.folder) == []  # and only once


def test_stop_during_the_hold_restores_at_once(rig: Callable[..., Rig]) -> None:
    run = rig({"at": 0.05, "duration": 30.0})
    run.start()
    run.wait("fault_injected")
    assert run.marker.exists()
    stopped_at = run.journal.now()
    started = time.monotonic()
    run.runner.stop()
    assert time.monotonic() - started < 1.0
    restored = run.events("fault_restored")
    assert len(restored) == 1 and restored[0]["error"] is None
    assert restored[0]["t"] - stopped_at < 0.2
    assert run.events("window")[0]["end"] - stopped_at < 0.2
    assert not run.marker.exists() and run.runner.active == {}


def test_stop_before_the_fault_is_due_never_injects_it(rig: Callable[..., Rig]) -> None:
    run = rig({"at": 5.0, "duration": 1.0})
    run.start()
    gevent.sleep(0.1)
    started = time.monotonic()
    run.runner.stop()
    assert time.monotonic() - started < 1.0
    assert names(run.path) == ["fault_scheduled"]
    assert read_restore(run.folder) == []  # never planned, so nothing to undo
    assert not run.marker.exists()


def test_a_fault_that_cannot_plan_is_fault_failed_and_never_recorded(rig: Callable[..., Rig]) -> None:
    run = rig({"at": 0.0, "fail_plan": True})
    run.start()
    failed = run.wait("fault_failed")
    assert failed["error"] == "no target for the marker"
    run.close()
    assert read_restore(run.folder) == [] and not run.marker.exists()
    assert "fault_injected" not in names(run.path)


def test_validate_checks_each_fault_entry_before_any_traffic(rig: Callable[..., Rig]) -> None:
    ok = rig({"at": 0.0})
    ok.runner.validate()
    broken = rig({"at": 0.0, "every": 1.0, "count": 3}, {"at": 0.5, "fail_validate": True})
    with pytest.raises(FaultError, match="read-only"):
        broken.runner.validate()
    assert not broken.marker.exists() and names(broken.path) == []


def test_a_plan_that_raises_an_unexpected_error_is_fault_failed(rig: Callable[..., Rig]) -> None:
    run = rig({"at": 0.0, "crash_plan": True})
    run.start()
    failed = run.wait("fault_failed", timeout=1.0)
    assert "targets" in failed["error"]
