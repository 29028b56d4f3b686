"""Sidecars: helper processes that run beside the stack and belong to no stack (a config agent,
a log shipper, a watchdog). The harness starts them before the stack, watches them, and
reports when one dies during the run, even when the stack itself is fine.

    sidecars:
      - name: config-agent
        command: ["{python}", "-m", "harness.sidecar_agent", "--every", "1s"]
        memory: stack          # share the stack's memory cgroup (one pod); default: own
        oom_score_adj: 500     # as the agent's service unit would set it
        expect: running        # running: any exit during the run is a death; exit: it may end (code 0)

`{python}` in a command is the harness's own interpreter; `{run_dir}` the run folder.
"""

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent

from harness.journal import Journal
from harness.procs import ManagedProcess, ProcessId
from harness.restore import RestoreLog
from harness.sidecar_spec import SidecarSpec

POLL_S = 0.1


@dataclass
class Sidecar:
    spec: SidecarSpec
    process: ManagedProcess
    exited: bool = False

    @property
    def role(self) -> str:
        return f"sidecar:{self.spec.name}"


class Sidecars:
    def __init__(self, specs: list[SidecarSpec], run_dir: Path, journal: Journal, restore: RestoreLog):
        self.specs = specs
        self.run_dir = run_dir
        self.journal = journal
        self.restore = restore
        self.running: list[Sidecar] = []
        self._watcher: gevent.Greenlet | None = None

    def start(self, place: Callable[[SidecarSpec, int], None]) -> None:
        """Start each one; `place` puts it in a memory group where its spec asks."""
        for spec in self.specs:
            argv = [part.format(python=sys.executable, run_dir=self.run_dir) for part in spec.command]
            log = self.run_dir / "sidecars" / f"{spec.name}.log"
            try:
                process = ManagedProcess(argv, {**os.environ, **spec.env}, log, cwd=self.run_dir)
            except OSError as exc:
                from harness.errors import UsageError

                raise UsageError(f"sidecars: {spec.name}: cannot start {argv[0]!r}: {exc.strerror}") from None
            if spec.oom_score_adj is not None:
                _set_oom_score_adj(process.pid, spec.oom_score_adj)
            place(spec, process.pid)
            sidecar = Sidecar(spec, process)
            self.running.append(sidecar)
            self.journal.event("sidecar_started", name=spec.name, pid=process.pid, argv=argv,
                               memory=spec.memory, expect=spec.expect, log=str(log))
        self.record()
        if self.running:
            self._watcher = gevent.spawn(self._watch)

    def record(self) -> None:
        """(Again) in the restore record: a stack stop there marks earlier processes as gone."""
        for sidecar in self.running:
            if not sidecar.exited:
                self.restore.process(sidecar.role, sidecar.process.ident)

    def processes(self) -> dict[str, list[ProcessId]]:
        return {s.role: [s.process.ident] for s in self.running if not s.exited}

    def _watch(self) -> None:
        while True:
            gevent.sleep(POLL_S)
            for sidecar in self.running:
                if not sidecar.exited and sidecar.process.returncode() is not None:
                    sidecar.exited = True
                    self._on_exit(sidecar)

    def _on_exit(self, sidecar: Sidecar) -> None:
        code = sidecar.process.returncode()
        fields: dict[str, Any] = {"name": sidecar.spec.name, "pid": sidecar.process.pid, "exit_code": code}
        if code is not None and code < 0:
            import signal

            fields["signal"] = signal.Signals(-code).name
        fields["death"] = sidecar.spec.expect == "running" or code != 0
        self.journal.event("sidecar_exited", **fields)

    def stop(self) -> dict[str, Any]:
        """Stop the watcher first, so planned stops are not reported as deaths."""
        if self._watcher is not None:
            self._watcher.kill()
        summary: dict[str, Any] = {}
        for sidecar in self.running:
            if not sidecar.exited and sidecar.process.returncode() is not None:
                sidecar.exited = True
                self._on_exit(sidecar)  # died in the last poll interval: still a finding
            alive = not sidecar.exited
            result = sidecar.process.stop(sidecar.spec.stop_timeout)
            summary[sidecar.spec.name] = {"pid": sidecar.process.pid, "alive_at_end": alive,
                                          "exit_code": result.exit_code, "forced_kill": result.forced}
        if self.running:
            self.journal.event("sidecars_stopped", sidecars=summary)
        return summary


def _set_oom_score_adj(pid: int, value: int) -> None:
    try:
        Path(f"/proc/{pid}/oom_score_adj").write_text(str(value), encoding="ascii")
    except OSError:
        pass  # it exited already; the watcher reports that
