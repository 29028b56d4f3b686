"""Reading an OpenAI-compatible response: server-sent events, tokens, timing, failures.

Pure logic (no network, no Locust) so it can be tested on recorded streams. The clocks, all
`time.monotonic()` in the openai user (harness.llm.openai_user):

- sent: just before the POST is written (a new connection's set-up included);
- a chunk's time: when the client has read its whole `data:` line;
- first text / last text: the first and the last chunk whose `content` (chat; or
  `reasoning_content`) or `text` (completions) is not empty. A role-only chunk, a `""` chunk (vLLM
  sends those while a byte-level token is an incomplete character) and a usage-only chunk with
  empty `choices` carry no text;
- complete: when the body has ended (read after `data: [DONE]`, the trailing usage chunk included).

Per successful request:

- `ttft_ms` = first text - sent;
- `itl_ms` = (last text - first text) / (tokens in that window); AIPerf's `inter_token_latency`
  ((request_latency - ttft) / (osl - first chunk's tokens), its request latency ending at the last
  content response), the same clocks;
- `tpot_ms` = (complete - first text) / (tokens after the first text chunk): `vllm bench serve`'s
  TPOT ((latency - ttft) / (output_len - 1)), except that vLLM's latency ends at the last chunk
  with choices and this one at the end of the body (it includes what the server sends after the
  last token: normally well under a millisecond, but a server slow to end its stream shows);
- `e2e_ms` = complete - sent: vLLM's E2EL and AIPerf's request latency, with the same difference
  at the end. It is the request's own time from its send; the core's `pNN_ms` of an open-model run
  start at the intended send time instead (coordinated omission), and include this one;
- `output_tokens`: the server's `usage.completion_tokens` when given, else the text chunks seen;
- `tokens_per_s` = output tokens / (complete - sent).

Tokens, not chunks: the divisors count tokens. Without per-chunk usage (the default, and all that
most servers send) each chunk is taken as one token, so the windows hold output tokens - 1, as in
vLLM and AIPerf. With `continuous_usage` vLLM puts the running `usage.completion_tokens` in every
chunk; a chunk's tokens are the increase, so ITL's window holds (count at the last text chunk -
count at the first text chunk) and TPOT's (final count - count at the first text chunk). AIPerf's
`--per-chunk-usage` also takes the first chunk's tokens off, from the final count for both (the
same here but for tokens after the last text, such as an end-of-sequence token). A window
without tokens has no value (a one-token answer has neither ITL nor TPOT). vLLM's own ITL is
different again: every gap between successive chunks, pooled over all requests, whatever each
chunk carries; no figure here is that one.
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
    usage_tokens: int | None = None  # the latest `usage.completion_tokens`: a running count if per chunk
    # The running count in the first and the last text chunk: None when those chunks had no usage.
    tokens_at_first_text: int | None = None
    tokens_at_last_text: int | None = None
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
        # vLLM, after its 200, when the engine dies: `data: {"error": {"message": ..., "code": 500}}`;
        # older servers sent the error body's fields at the top (`"object": "error"`).
        if chunk.get("error") or chunk.get("object") == "error":
            self.error = self.error or error_message(chunk)
            return
        count = completion_tokens(chunk)
        if count is not None:
            self.usage_tokens = count
        for choice in chunk.get("choices") or []:
            piece = choice_text(choice)
            if piece:
                self._text(piece, now, count)
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _text(self, piece: str, now: float, count: int | None) -> None:
        self.text.append(piece)
        self.text_chunks += 1
        if self.first_text_at is None:
            self.first_text_at = now
            self.tokens_at_first_text = count
        self.last_text_at = now
        self.tokens_at_last_text = count

    @property
    def output_tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else self.text_chunks

    def tokens_after_first_text(self, upto: int | None) -> int:
        """Tokens that came after the first text chunk, up to the running count `upto`.

        Only per-chunk usage says how many tokens the first chunk held; without it (or with a count
        that contradicts the text, such as 0 tokens for a chunk with text: usage lagging a chunk)
        the first chunk is taken as one token, AIPerf's fallback and vLLM's only rule.
        """
        first = self.tokens_at_first_text
        if first is None or first < 1 or upto is None or upto < first:
            return self.output_tokens - 1
        return upto - first

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
        """TTFT, ITL, TPOT, end-to-end (ms), output tokens and tokens/s of a successful stream."""
        out = whole_request_measures(self.output_tokens, self.sent_at, finished_at)
        if self.first_text_at is None or self.last_text_at is None:
            return out
        out["ttft_ms"] = (self.first_text_at - self.sent_at) * 1000.0
        itl_tokens = self.tokens_after_first_text(self.tokens_at_last_text)
        if itl_tokens >= 1:
            out["itl_ms"] = (self.last_text_at - self.first_text_at) * 1000.0 / itl_tokens
        tpot_tokens = self.tokens_after_first_text(self.usage_tokens)
        if tpot_tokens >= 1:
            out["tpot_ms"] = (finished_at - self.first_text_at) * 1000.0 / tpot_tokens
        return out


def whole_request_measures(tokens: int, sent_at: float, finished_at: float) -> dict[str, float]:
    """What any answer has, streamed or not: output tokens, end-to-end time and tokens/s."""
    out: dict[str, float] = {"output_tokens": float(tokens)}
    total = finished_at - sent_at
    if total > 0:
        out["e2e_ms"] = total * 1000.0
        out["tokens_per_s"] = tokens / total
    return out


def completion_tokens(chunk: dict[str, Any]) -> int | None:
    """`usage.completion_tokens` of a chunk or body, when it has one."""
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        count = usage.get("completion_tokens")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return count
    return None


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
    """A non-streamed answer: (failure or None, measures). No TTFT, ITL or TPOT: the whole answer
    came at once; its end-to-end time is the one timing it has."""
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
    return None, whole_request_measures(account.output_tokens, sent_at, finished_at)


def request_body(settings: OpenAISettings, model: str, stack_extra: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": settings.model or model, "max_tokens": settings.max_tokens,
                            "stream": settings.stream}
    if settings.api == "chat":
        body["messages"] = [{"role": "user", "content": settings.prompt_text}]
    else:
        body["prompt"] = settings.prompt_text
    if settings.stream and settings.stream_usage:
        body["stream_options"] = {"include_usage": True}
        if settings.continuous_usage:
            body["stream_options"]["continuous_usage_stats"] = True
    body.update(stack_extra)  # what the stack needs (e.g. Dynamo's replay annotation)
    body.update(settings.extra_body)  # the scenario has the last word
    return body
