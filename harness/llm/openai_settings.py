"""Scenario settings of the OpenAI-compatible user class (`load.openai`)."""

from typing import Any, Literal

from pydantic import Field

from harness.specbase import Strict


class OpenAISettings(Strict):
    """What each request asks for. Works against any OpenAI-compatible endpoint."""

    api: Literal["chat", "completions"] = "chat"  # /v1/chat/completions or /v1/completions
    stream: bool = True  # TTFT and inter-token latency exist only for streamed responses
    max_tokens: int = Field(32, ge=1, le=1_000_000)
    prompt: str = Field("hello world the", min_length=1, max_length=1_000_000)
    # Ask for `usage` in the last streamed chunk (stream_options.include_usage), so output tokens
    # are the server's count rather than the number of chunks.
    stream_usage: bool = True
    model: str | None = None  # default: the stack's model
    extra_body: dict[str, Any] = Field(default_factory=dict)  # merged into every request body
