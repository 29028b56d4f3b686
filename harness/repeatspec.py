"""Scenario settings for repeated runs: `repeat: M` and an SLO's `pass_in: N of M`."""

import re
from typing import Any

from pydantic import Field, model_validator

from harness.specbase import Strict

MAX_REPEAT = 100
_TEXT = re.compile(r"^\s*(\d+)\s+of\s+(\d+)\s*$")


class PassIn(Strict):
    """The SLO must hold in at least `passes` of `of` repetitions (written `2 of 3`)."""

    passes: int = Field(ge=1)
    of: int = Field(ge=1, le=MAX_REPEAT)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _TEXT.match(value)
            if match is None:
                raise ValueError(f"cannot read pass_in {value!r}; write `N of M` or {{passes: N, of: M}}")
            return {"passes": int(match.group(1)), "of": int(match.group(2))}
        return value

    @model_validator(mode="after")
    def _n_within_m(self) -> "PassIn":
        if self.passes > self.of:
            raise ValueError(f"pass_in {self.text}: N must not exceed M")
        return self

    @property
    def text(self) -> str:
        return f"{self.passes} of {self.of}"


def check_pass_in(pass_ins: list[PassIn | None], repeat: int) -> None:
    """Every `pass_in` counts repetitions of this scenario: its M must be the scenario's `repeat`."""
    for i, pass_in in enumerate(pass_ins):
        if pass_in is not None and pass_in.of != repeat:
            raise ValueError(
                f"at slo.{i}.pass_in: {pass_in.text} counts {pass_in.of} repetitions but the scenario "
                f"runs {repeat} (set `repeat: {pass_in.of}` at the top level)"
            )
