"""Reading an OpenAI-compatible response: server-sent events, tokens, timing, failures.

Pure logic (no network, no Locust) so it can be tested on recorded streams. Definitions follow
the common LLM benchmark tools (AIPerf, genai-perf), so figures can be compared with theirs:
- TTFT: request sent -> first chunk that carries generated text;
- inter-token latency (ITL): (last text chunk - first text chunk) / (output tokens - 1);
- output tokens: the server's `usage.completion_tokens` when given, else text chunks seen;
- tokens/s: output tokens / (request sent -> response complete).
"""

import json
from dataclasses import dataclass, field
from typing import Any

from harness.llm.openai_settings import OpenAISettings


@dataclass
class StreamAccount:
    """Accumulates one streamed response as its events arrive."""

    sent_at: float
    first_text_at: float | None = None
    last_text_at: float | None = None
    text_chunks: int = 0
    usage_tokens: int | None = None
    finish_reason: str | None = None
    done: bool = False
    error: str | None = None
    text: list[str] = field(default_factory=list)

    def feed_line(self, line: bytes, now: float) -> None:
        """One line of the event stream (`data: {...}`, `data: [DONE]`, blank, comments)."""
        text = line.decode("utf-8", errors="replace").strip()
        if not text.startswith("data:"):
            if text.startswith("event:") and "error" in text:
                self.error = self.error or text
            return
        payload = text[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError:
            self.error = self.error or f"unreadable event: {payload[:120]}"
            return
        self.feed_chunk(chunk, now)

    def feed_chunk(self, chunk: Any, now: float) -> None:
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            self.error = self.error or error_message(chunk)
            return
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage_tokens = usage["completion_tokens"]
        for choice in chunk.get("choices") or []:
            piece = choice_text(choice)
            if piece:
                self.text.append(piece)
                self.text_chunks += 1
                self.first_text_at = self.first_text_at if self.first_text_at is not None else now
                self.last_text_at = now
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    @property
    def output_tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else self.text_chunks

    def failure(self) -> tuple[str, str] | None:
        """(error kind, message) when the stream did not deliver a complete answer."""
        if self.error is not None:
            return "stream_error", self.error
        if self.text_chunks == 0:
            return "no_tokens", "the response carried no generated text"
        if not self.done and self.finish_reason is None:
            return "incomplete_stream", "the stream ended without finish_reason or [DONE]"
        return None

    def measures(self, finished_at: float) -> dict[str, float]:
        """TTFT, ITL (ms), output tokens and tokens/s of a successful stream."""
        out: dict[str, float] = {"output_tokens": float(self.output_tokens)}
        total = finished_at - self.sent_at
        if total > 0:
            out["tokens_per_s"] = self.output_tokens / total
        if self.first_text_at is not None:
            out["ttft_ms"] = (self.first_text_at - self.sent_at) * 1000.0
        if self.first_text_at is not None and self.last_text_at is not None and self.output_tokens > 1:
            out["itl_ms"] = (self.last_text_at - self.first_text_at) * 1000.0 / (self.output_tokens - 1)
        return out


def choice_text(choice: Any) -> str:
    """Generated text in one choice of a chunk: chat `delta.content` (or reasoning), or `text`."""
    if not isinstance(choice, dict):
        return ""
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return str(delta.get("content") or "") + str(delta.get("reasoning_content") or "")
    message = choice.get("message")
    if isinstance(message, dict):
        return str(message.get("content") or "")
    return str(choice.get("text") or "")


def error_message(body: Any) -> str:
    """The human part of an OpenAI-style error body (`{"error": {"message": ...}}` or `{"message"}`)."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("type") or error)[:300]
        return str(error)[:300]
    return str(body)[:300]


Failure = tuple[str, str]  # (error kind, message)


def unary_result(
    payload: bytes, sent_at: float, finished_at: float
) -> tuple[Failure | None, dict[str, float]]:
    """A non-streamed answer: (failure or None, measures). No TTFT: the whole answer came at once."""
    try:
        body = json.loads(payload)
    except json.JSONDecodeError:
        return ("bad_json", payload[:200].decode(errors="replace")), {}
    account = StreamAccount(sent_at)
    account.feed_chunk(body, finished_at)
    if account.error is not None:
        return ("stream_error", account.error), {}
    if account.text_chunks == 0:
        return ("no_tokens", "the response carried no generated text"), {}
    measures = account.measures(finished_at)
    measures.pop("ttft_ms", None)
    measures.pop("itl_ms", None)
    return None, measures


def request_body(settings: OpenAISettings, model: str, stack_extra: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": settings.model or model, "max_tokens": settings.max_tokens,
                            "stream": settings.stream}
    if settings.api == "chat":
        body["messages"] = [{"role": "user", "content": settings.prompt}]
    else:
        body["prompt"] = settings.prompt
    if settings.stream and settings.stream_usage:
        body["stream_options"] = {"include_usage": True}
    body.update(stack_extra)  # what the stack needs (e.g. Dynamo's replay annotation)
    body.update(settings.extra_body)  # the scenario has the last word
    return body
