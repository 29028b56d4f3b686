"""What `harness list` prints."""

from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError
from harness.exitcodes import ExitCode
from harness.features import Feature, all_metrics, discover
from harness.triton.modelzoo import ZOO
from harness.users import known_users


def sections(what: str, scenario_dir: Path) -> Iterator[tuple[str, list[str]]]:
    if what in ("all", "scenarios"):
        yield "scenarios", list(_scenarios(scenario_dir))
    if what in ("all", "users"):
        yield "users", [f"{name}  ({target})" for name, target in sorted(known_users().items())]
    if what in ("all", "stacks"):
        yield "stacks", list(_stacks())
    if what in ("all", "models"):
        yield "models", [f"{name}  {m.datatype}{list(m.dims)}" for name, m in ZOO.items()]
    if what in ("all", "metrics"):
        yield "metrics", [f"{d.label}  {d.meaning}" for d in all_metrics()]
    if what in ("all", "features"):
        yield "features", [_feature_line(feature) for feature in discover()]
    if what in ("all", "exit-codes"):
        yield "exit codes", [f"{int(code)}  {code.name}" for code in ExitCode]


def _feature_line(feature: Feature) -> str:
    parts = [f"{len(feature.metrics)} metric(s)"]
    if feature.sections:
        parts.append("report: " + ", ".join(section.key for section in feature.sections))
    if feature.observers is not None:
        parts.append("observers")
    return f"{feature.name}  ({'; '.join(parts)})"


def _stacks() -> Iterator[str]:
    from harness.stacks.registry import stack_spec_classes

    for cls in stack_spec_classes():
        kind = cls.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        roles = ", ".join(f"{r.name} ({r.loss})" for r in cls.ROLES) or "none"
        yield f"{kind}  {summary} (roles: {roles})"


def _scenarios(folder: Path) -> Iterator[str]:
    from harness.scenario import load_scenario

    for path in sorted(folder.rglob("*.yaml")):
        try:
            scenario = load_scenario(path)
            yield f"{path}  {scenario.description.strip().splitlines()[0] if scenario.description else ''}"
        except HarnessError as exc:
            yield f"{path}  INVALID: {str(exc).splitlines()[0]}"
