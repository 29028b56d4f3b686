"""Scenario settings of the OpenAI-compatible user class (`load.openai`)."""

from typing import Any, Literal

from pydantic import Field, model_validator

from harness.llm.goodput import GoodputTargets
from harness.specbase import Strict

MAX_PROMPT_CHARS = 1_000_000


class OpenAISettings(Strict):
    """What each request asks for. Works against any OpenAI-compatible endpoint."""

    api: Literal["chat", "completions"] = "chat"  # /v1/chat/completions or /v1/completions
    stream: bool = True  # TTFT and inter-token latency exist only for streamed responses
    max_tokens: int = Field(32, ge=1, le=1_000_000)
    prompt: str = Field("hello world the", min_length=1, max_length=1_000_000)
    # The prompt sent is `prompt` this many times, joined by spaces: a long prompt (KV-cache
    # pressure, prefill cost) without writing it out in the scenario.
    prompt_repeat: int = Field(1, ge=1, le=100_000)
    # Ask for `usage` in the last streamed chunk (stream_options.include_usage), so output tokens
    # are the server's count rather than the number of chunks.
    stream_usage: bool = True
    # Ask for `usage` in every chunk too (stream_options.continuous_usage_stats, a vLLM extension),
    # so a chunk that carries several tokens counts as several. Off by default: servers that do not
    # know the field may refuse the request.
    continuous_usage: bool = False
    model: str | None = None  # default: the stack's model
    extra_body: dict[str, Any] = Field(default_factory=dict)  # merged into every request body
    # Per-request targets that make a request "good" (harness.llm.goodput): goodput_ratio, goodput_per_s.
    goodput: GoodputTargets | None = None

    @property
    def prompt_text(self) -> str:
        return " ".join([self.prompt] * self.prompt_repeat)

    @model_validator(mode="after")
    def _settings_agree(self) -> "OpenAISettings":
        if len(self.prompt) * self.prompt_repeat > MAX_PROMPT_CHARS:
            raise ValueError(f"at prompt_repeat: the prompt repeated {self.prompt_repeat} times is over "
                             f"{MAX_PROMPT_CHARS:,} characters")
        if self.continuous_usage and not (self.stream and self.stream_usage):
            raise ValueError("at continuous_usage: per-chunk usage needs `stream: true` and "
                             "`stream_usage: true` (the server sends it with the stream's usage only)")
        if self.goodput is not None and not self.stream:
            timed = [name for name in ("ttft_ms", "tpot_ms") if name in self.goodput.given()]
            if timed:
                raise ValueError(f"at goodput.{timed[0]}: an answer that is not streamed has no first "
                                 "token; use `stream: true`, or only an `e2e_ms` target")
        return self
