"""A target for OpenAI-compatible LLM endpoints: what a stack adds to every request body."""

import json
from dataclasses import dataclass, field
from typing import Any

from harness.load.target import Target
from harness.stacks.base import Health, probe_post


@dataclass(frozen=True)
class LlmTarget(Target):
    # Merged into every request body, under the scenario's own `load.openai.extra_body`
    # (e.g. Dynamo's mocker needs `nvext.annotations` to stream text; see stacks/dynamo.py).
    extra_body: dict[str, Any] = field(default_factory=dict)


def chat_canary(target: LlmTarget, timeout: float) -> Health:
    """One short chat completion (not streamed, one token): the whole serving path of an
    OpenAI-compatible stack (frontend, router, engine). Ok only on a 200 that carries a choice."""
    body = {"model": target.model, "messages": [{"role": "user", "content": "canary"}], "max_tokens": 1,
            "stream": False, **target.extra_body}
    return probe_post(f"{target.http_url}/v1/chat/completions", json.dumps(body).encode(), timeout)
