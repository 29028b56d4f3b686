"""Run folders: `runs/<scenario>-<time>/` with the journal, logs, a copy of the scenario, reports."""

import shutil
import time
from pathlib import Path

SCENARIO_COPY = "scenario.yaml"


def make_run_dir(root: Path, scenario_name: str, scenario_file: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(100):
        suffix = "" if attempt == 0 else f"-{attempt}"
        run_dir = root / f"{scenario_name}-{stamp}{suffix}"
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        (run_dir / "logs").mkdir()
        shutil.copyfile(scenario_file, run_dir / SCENARIO_COPY)
        return run_dir
    raise RuntimeError(f"cannot make a run folder under {root}")
