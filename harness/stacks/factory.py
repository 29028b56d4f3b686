"""Which Stack class serves a scenario's `stack.kind`."""

from pathlib import Path

from harness.scenario import ExternalStack as ExternalSpec
from harness.scenario import Scenario
from harness.stacks.base import Stack


def make_stack(scenario: Scenario, workdir: Path, collector_url: str | None = None) -> Stack:
    spec = scenario.stack
    if isinstance(spec, ExternalSpec):
        from harness.stacks.external import ExternalStack

        return ExternalStack(spec)
    from harness.stacks.triton import TritonStack

    return TritonStack(spec, workdir, collector_url=collector_url)
