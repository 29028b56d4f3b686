"""Verdict agreement: run one scenario K times and see whether its verdicts would flap.

    python bench/verdict_agreement.py --runs 5 [--scenario FILE] [--runs-dir DIR]

The K runs are one series (harness.series_run, the same code as `harness run --repeat K`, with
the scenario's own `pass_in`s dropped so each run is judged on its own). Printed per SLO and for
the overall verdict: how many runs passed, the agreement (the share of runs that reached the
majority verdict), the spread of the measured values, and whether the runs' confidence
intervals overlap (all of them share a point; and how many of the pairs do). Intervals that
do not overlap mean the runs differ by more than sampling noise within one run explains: the
machine, not the sample size, moved the value, and only repetitions (N of M) smooth that out.

The default scenario (bench/verdict_agreement.yaml) starts a real Triton identity model on
loopback; every process it starts is the harness's, stopped by each run.
"""

import argparse
import json
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any

import locust  # noqa: F401  - before harness: gevent patches the standard library before it loads

from harness.repeat import cis_overlap
from harness.runner import Run
from harness.scenario import Scenario, load_scenario
from harness.series_run import SERIES_JSON, run_series

DEFAULT_SCENARIO = Path(__file__).with_name("verdict_agreement.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="how many times to run the scenario (default 5)")
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/bench"), help="where the series goes")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs: at least 2 runs to compare")
    scenario = independent(load_scenario(args.scenario), args.runs)

    def make_run(root: Path) -> Run:
        return Run(scenario, args.scenario, root, progress=False)

    code = run_series(scenario, args.scenario, args.runs_dir, make_run, args.runs)
    series_dirs = sorted(d for d in args.runs_dir.iterdir() if (d / SERIES_JSON).is_file())
    series = json.loads((series_dirs[-1] / SERIES_JSON).read_text())
    print()
    print("\n".join(agreement_lines(series)))
    return 0 if code in (0, 1) else code  # failed SLOs are the bench's data, not its failure


def independent(scenario: Scenario, runs: int) -> Scenario:
    """The scenario with `repeat: runs` and every SLO judged in each run alone (no pass_in)."""
    slos = [slo.model_copy(update={"pass_in": None}) for slo in scenario.slo]
    return scenario.model_copy(update={"repeat": runs, "slo": slos})


def agreement_lines(series: dict[str, Any]) -> list[str]:
    reps = series["repetitions"]
    done = f"{series['completed']} of {series['repeat']} runs"
    done = f"{series['completed']} of {series['repeat']} runs"
    lines = [f"{series['scenario']}: {done} ({series['series_dir']})"]
    for slo in series["slos"]:
        runs = slo["runs"]
        verdicts = ["pass" if r["passed"] else "fail" for r in runs]
        lines.append(f"{slo['name']}: {_agreement(verdicts)}")
        lines.append(f"    measured: {_spread(slo['spread'])}")
        lines.append(f"    {_overlap([r['ci'] for r in runs])}; marginal in "
                     f"{sum(1 for r in runs if r['marginal'])}/{len(runs)}")
    lines.append(f"overall verdict: {_agreement([r['verdict'] for r in reps])}")
    return lines


def _agreement(verdicts: list[str]) -> str:
    if not verdicts:
        return "no run reached a verdict"
    counts = Counter(verdicts)
    word, most = counts.most_common(1)[0]
    tally = ", ".join(f"{w} {c}/{len(verdicts)}" for w, c in sorted(counts.items()))
    return f"{tally}, agreement {most / len(verdicts):.0%} (majority: {word})"


def _spread(spread: dict[str, float] | None) -> str:
    if spread is None:
        return "nothing measured"
    median = spread["median"]
    relative = f" ({(spread['max'] - spread['min']) / median:.0%} of the median)" if median else ""
    return (f"min {spread['min']:g}, median {median:g}, max {spread['max']:g}, stdev {spread['stdev']:g}; "
            f"range {spread['max'] - spread['min']:.4g}{relative}")


def _overlap(cis: list[list[float | None] | None]) -> str:
    present = [ci for ci in cis if ci is not None]
    if len(present) < 2:
        return "no confidence intervals"
    pairs = list(combinations(present, 2))
    overlapping = sum(1 for a, b in pairs if cis_overlap([a, b]))
    common = "all share a point" if cis_overlap(present) else "no point common to all"
    return f"CIs overlap: {common}, {overlapping}/{len(pairs)} pairs overlap"


if __name__ == "__main__":
    sys.exit(main())
