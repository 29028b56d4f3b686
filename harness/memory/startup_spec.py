"""The scenario's `startup:` section (attempts, backoff, memory limit), apart from the code that
runs the attempts (harness.memory.startup uses gevent; the scenario model must not load it)."""

from pydantic import Field

from harness.memory.cgroups import Choice
from harness.sizes import Size
from harness.specbase import Duration, Strict


class StartupSpec(Strict):
    attempts: int = Field(1, ge=1, le=10)
    backoff: Duration = Field(1.0, le=3600)
    memory_limit: Size | None = Field(None, ge=16 << 20)
    cgroup: Choice = "auto"
