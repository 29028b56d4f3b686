"""A target for OpenAI-compatible LLM endpoints: what a stack adds to every request body."""

from dataclasses import dataclass, field
from typing import Any

from harness.load.target import Target


@dataclass(frozen=True)
class LlmTarget(Target):
    # Merged into every request body, under the scenario's own `load.openai.extra_body`
    # (e.g. Dynamo's mocker needs `nvext.annotations` to stream text; see stacks/dynamo.py).
    extra_body: dict[str, Any] = field(default_factory=dict)
