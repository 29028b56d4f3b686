"""Run folders: `runs/<scenario>-<time>/` with the journal, logs, a copy of the scenario, reports."""

import shutil
import time
from pathlib import Path

SCENARIO_COPY = "scenario.yaml"


def make_stamped_dir(root: Path, prefix: str) -> Path:
    """`root/<prefix>-<time>/`, new (a `-N` suffix where two start in the same second)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(100):
        path = root / f"{prefix}-{stamp}{'' if attempt == 0 else f'-{attempt}'}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"cannot make a folder {prefix}-{stamp} under {root}")


def make_run_dir(root: Path, scenario_name: str, scenario_file: Path) -> Path:
    run_dir = make_stamped_dir(root, scenario_name)
    (run_dir / "logs").mkdir()
    shutil.copyfile(scenario_file, run_dir / SCENARIO_COPY)
    return run_dir
