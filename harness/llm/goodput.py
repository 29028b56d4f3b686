"""Goodput: the requests that meet every per-request target of the scenario (`load.openai.goodput`).

As `vllm bench serve --goodput ttft:200 tpot:50 e2el:1000` and AIPerf's `--goodput`: a request is
good when it succeeded and each target given holds, a value equal to its target included (both
tools compare `value <= target`). Targets are in milliseconds, for the openai user's `ttft_ms`,
`tpot_ms` and `e2e_ms` (harness.llm.openai_stream says where each clock starts and stops).

A request without a TPOT (one output token: no decode step to divide by; or, with per-chunk usage,
every token in its first text chunk) counts as meeting a TPOT target. That is vLLM's choice (its
`calculate_metrics` sets `tpot = 0` for `output_len <= 1` "for goodput"); AIPerf instead counts
a request whose metric has no value as not good. The
harness sides with vLLM because a one-token answer that came within its TTFT target was served
as fast as asked: failing it would make `max_tokens: 1` runs report no goodput at all.

The openai user records `good` (1.0) for each good request, so a second's `good` histogram counts
them; harness.llm.metrics turns those counts into `goodput_ratio` and `goodput_per_s`.
"""

from pydantic import Field, model_validator

from harness.limits import MAX_TIMEOUT_S
from harness.specbase import Strict

GOOD = "good"  # the measure recorded once per good request
MAX_TARGET_MS = MAX_TIMEOUT_S * 1000.0  # an hour: longer than any request timeout allows
# A missing value of these counts as met: TPOT does not exist for a one-token answer.
MET_WHEN_ABSENT = frozenset({"tpot_ms"})


class GoodputTargets(Strict):
    """Per-request targets in milliseconds; each optional, at least one given."""

    ttft_ms: float | None = Field(None, gt=0, le=MAX_TARGET_MS)
    tpot_ms: float | None = Field(None, gt=0, le=MAX_TARGET_MS)
    e2e_ms: float | None = Field(None, gt=0, le=MAX_TARGET_MS)

    @model_validator(mode="after")
    def _at_least_one(self) -> "GoodputTargets":
        if not self.given():
            raise ValueError("goodput needs at least one target: ttft_ms, tpot_ms or e2e_ms")
        return self

    def given(self) -> dict[str, float]:
        """Measure name -> target, for the targets the scenario set."""
        targets = {"ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms, "e2e_ms": self.e2e_ms}
        return {name: value for name, value in targets.items() if value is not None}

    def describe(self) -> str:
        """`ttft_ms <= 200, tpot_ms <= 50`: for reports."""
        return ", ".join(f"{name} <= {value:g}" for name, value in self.given().items())


def is_good(measures: dict[str, float], targets: GoodputTargets) -> bool:
    """Whether a successful request's measures meet every target given."""
    for name, target in targets.given().items():
        value = measures.get(name)
        if value is None:
            if name in MET_WHEN_ABSENT:
                continue
            return False  # e.g. no TTFT: cannot show it met the target
        if value > target:
            return False
    return True


def mark_good(measures: dict[str, float], targets: GoodputTargets | None) -> dict[str, float]:
    """The measures, with `good` added when there are targets and the request met them all."""
    if targets is not None and is_good(measures, targets):
        return {**measures, GOOD: 1.0}
    return measures
