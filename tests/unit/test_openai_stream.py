"""Reading OpenAI-compatible answers: streamed chunks, timing, token counts and failures."""

import json

import pytest

from harness.llm.openai_settings import OpenAISettings
from harness.llm.openai_stream import StreamAccount, choice_text, error_message, request_body, unary_result

NO_TEXT = "the response carried no generated text"


def chat_chunk(content: str | None = None, role: bool = False, finish: str | None = None) -> bytes:
    delta: dict = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n".encode()


def feed(account: StreamAccount, lines: list[tuple[float, bytes]]) -> None:
    for t, line in lines:
        account.feed_line(line, t)


def test_ttft_itl_and_tokens_of_a_streamed_chat() -> None:
    account = StreamAccount(sent_at=10.0)
    feed(account, [
        (10.010, chat_chunk(role=True)),             # the role alone is no token
        (10.050, chat_chunk(" w0")),
        (10.060, b"\n"),
        (10.070, chat_chunk(" w1")),
        (10.110, chat_chunk(" w2", finish="length")),
        (10.111, b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3}}\n'),
        (10.112, b"data: [DONE]\n"),
    ])
    assert account.failure() is None
    measures = account.measures(finished_at=10.2)
    assert measures["ttft_ms"] == pytest.approx(50.0)
    assert measures["itl_ms"] == pytest.approx(30.0)  # (110 - 50) / (3 - 1)
    assert measures["output_tokens"] == 3
    assert measures["tokens_per_s"] == pytest.approx(3 / 0.2)
    assert "".join(account.text) == " w0 w1 w2"


def test_server_token_count_wins_over_chunks() -> None:
    account = StreamAccount(sent_at=0.0)
    feed(account, [(0.1, chat_chunk("two words")), (0.3, chat_chunk(" more", finish="stop")),
                   (0.3, b'data: {"choices":[],"usage":{"completion_tokens":5}}\n'),
                   (0.3, b"data: [DONE]\n")])
    measures = account.measures(0.4)
    assert measures["output_tokens"] == 5 and measures["itl_ms"] == pytest.approx(50.0)  # 200 ms / 4


def test_completions_text_counts_as_tokens() -> None:
    account = StreamAccount(sent_at=0.0)
    account.feed_line(b'data: {"choices":[{"text":" w0","index":0,"finish_reason":null}]}', 0.02)
    account.feed_line(b"data: [DONE]", 0.03)
    assert account.failure() is None and account.measures(0.03)["ttft_ms"] == pytest.approx(20.0)


@pytest.mark.parametrize(("lines", "kind"), [
    ([chat_chunk(role=True), chat_chunk(finish="length"), b"data: [DONE]\n"], "no_tokens"),
    ([chat_chunk(" w0")], "incomplete_stream"),
    ([chat_chunk(" w0"), b'data: {"error":{"message":"Service temporarily unavailable","code":503}}\n'],
     "stream_error"),
    ([b"event: error\n", b"data: {}\n"], "stream_error"),
    ([chat_chunk(" w0"), b"data: {not json\n"], "stream_error"),
])
def test_failed_streams(lines: list[bytes], kind: str) -> None:
    account = StreamAccount(sent_at=0.0)
    for line in lines:
        account.feed_line(line, 0.1)
    failure = account.failure()
    assert failure is not None and failure[0] == kind


def test_stream_error_keeps_the_servers_message() -> None:
    account = StreamAccount(sent_at=0.0)
    account.feed_line(b'data: {"error":{"message":"Service temporarily unavailable","code":503}}', 0.1)
    assert account.failure() == ("stream_error", "Service temporarily unavailable")


def test_unary_answers() -> None:
    body = {"choices": [{"message": {"content": "w0 w1"}}], "usage": {"completion_tokens": 2}}
    failure, measures = unary_result(json.dumps(body).encode(), 0.0, 0.5)
    assert failure is None and measures == {"output_tokens": 2.0, "tokens_per_s": 4.0}
    empty = {"choices": [{"text": "", "finish_reason": "length"}], "usage": {"completion_tokens": 8}}
    assert unary_result(json.dumps(empty).encode(), 0.0, 0.5)[0] == ("no_tokens", NO_TEXT)
    assert unary_result(b"<html>", 0.0, 0.5)[0] == ("bad_json", "<html>")


def test_error_bodies_and_choice_text() -> None:
    assert error_message({"error": {"message": "Model not found", "type": "not_found"}}) == "Model not found"
    assert error_message({"message": "busy"}) == "busy"
    assert choice_text({"delta": {"reasoning_content": "hmm"}}) == "hmm"
    assert choice_text("junk") == ""


def test_request_body_layers_stack_then_scenario_extras() -> None:
    extra = {"nvext": {"x": 1}, "temperature": 0}
    settings = OpenAISettings(api="completions", max_tokens=8, extra_body=extra)
    body = request_body(settings, "m", {"nvext": {"annotations": ["a"]}, "top_p": 1})
    assert body["prompt"] == settings.prompt and "messages" not in body
    assert body["stream_options"] == {"include_usage": True}
    assert body["nvext"] == {"x": 1} and body["top_p"] == 1 and body["temperature"] == 0
    chat = request_body(OpenAISettings(stream=False, model="other"), "m", {})
    assert chat["model"] == "other" and chat["messages"][0]["role"] == "user" and "stream_options" not in chat
