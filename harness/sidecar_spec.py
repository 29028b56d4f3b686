"""The scenario's `sidecars:` entries, apart from the code that runs them (harness.sidecars uses
gevent; the scenario model must not load it)."""

from typing import Any, Literal

from pydantic import Field

from harness.specbase import Duration, Strict


class SidecarSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    command: list[str] = Field(min_length=1, max_length=1000)
    memory: Literal["own", "stack"] = "own"
    oom_score_adj: int | None = Field(None, ge=-1000, le=1000)
    expect: Literal["running", "exit"] = "running"
    env: dict[str, str] = Field(default_factory=dict)
    stop_timeout: Duration = Field(5.0, gt=0, le=600)


def check_sidecars(sidecars: list[SidecarSpec], startup: Any) -> list[SidecarSpec]:
    """Names are unique; `memory: stack` needs a stack memory group (`startup.memory_limit`)."""
    names: set[str] = set()
    for i, spec in enumerate(sidecars):
        if spec.name in names:
            raise ValueError(f"at sidecars.{i}.name: two sidecars are named {spec.name!r}")
        names.add(spec.name)
        if spec.memory == "stack" and getattr(startup, "memory_limit", None) is None:
            raise ValueError(
                f"at sidecars.{i}.memory: `stack` shares the stack's memory group; set startup.memory_limit"
            )
    return sidecars
