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
    assert failure is None and measures == {"output_tokens": 2.0, "e2e_ms": 500.0, "tokens_per_s": 4.0}
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
    continuous = request_body(OpenAISettings(continuous_usage=True), "m", {})
    assert continuous["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    chat = request_body(OpenAISettings(stream=False, model="other"), "m", {})
    assert chat["model"] == "other" and chat["messages"][0]["role"] == "user" and "stream_options" not in chat


# --- Recorded streams, written as the server sends them (vLLM's chat format; ids shortened).
# Each is (seconds after the send, line); the body ends at END.
END = 0.200

ONE_TOKEN_PER_CHUNK = [
    (0.040, 'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}'),
    (0.040, ""),
    (0.050, 'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"content":" w0"},"logprobs":null,"finish_reason":null}]}'),
    (0.050, ""),
    (0.070, 'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"content":" w1"},"logprobs":null,"finish_reason":null}]}'),
    (0.090, 'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"content":" w2"},"logprobs":null,"finish_reason":null}]}'),
    (0.110, 'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"content":" w3"},"logprobs":null,"finish_reason":"length","stop_reason":null}]}'),
    (0.150, 'data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[],'
            '"usage":{"prompt_tokens":3,"total_tokens":7,"completion_tokens":4}}'),
    (0.150, "data: [DONE]"),
]

# stream_options: {include_usage: true, continuous_usage_stats: true}; three tokens a chunk.
THREE_TOKENS_PER_CHUNK = [
    (0.040, 'data: {"id":"c2","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"role":"assistant","content":""},"finish_reason":null}],'
            '"usage":{"prompt_tokens":3,"total_tokens":3,"completion_tokens":0}}'),
    (0.100, 'data: {"id":"c2","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"content":" w0 w1 w2"},"finish_reason":null}],'
            '"usage":{"prompt_tokens":3,"total_tokens":6,"completion_tokens":3}}'),
    (0.130, 'data: {"id":"c2","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"content":" w3 w4 w5"},"finish_reason":null}],'
            '"usage":{"prompt_tokens":3,"total_tokens":9,"completion_tokens":6}}'),
    (0.160, 'data: {"id":"c2","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            '"delta":{"content":" w6 w7 w8"},"finish_reason":"length"}],'
            '"usage":{"prompt_tokens":3,"total_tokens":12,"completion_tokens":9}}'),
    (0.170, 'data: {"id":"c2","object":"chat.completion.chunk","model":"m","choices":[],'
            '"usage":{"prompt_tokens":3,"total_tokens":12,"completion_tokens":9}}'),
    (0.170, "data: [DONE]"),
]

# A character split over byte-level tokens: vLLM streams `""` until the character is whole.
EMPTY_CHUNKS = [
    (0.040, 'data: {"id":"c3","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
            '"finish_reason":null}],"usage":{"completion_tokens":0}}'),
    (0.050, 'data: {"id":"c3","choices":[{"index":0,"delta":{"content":""},"finish_reason":null}],'
            '"usage":{"completion_tokens":1}}'),
    (0.080, 'data: {"id":"c3","choices":[{"index":0,"delta":{"content":"\\ud83d\\ude00"},'
            '"finish_reason":null}],"usage":{"completion_tokens":2}}'),
    (0.090, 'data: {"id":"c3","choices":[{"index":0,"delta":{"content":""},"finish_reason":null}],'
            '"usage":{"completion_tokens":3}}'),
    (0.120, 'data: {"id":"c3","choices":[{"index":0,"delta":{"content":" w1"},"finish_reason":"stop"}],'
            '"usage":{"completion_tokens":4}}'),
    (0.130, 'data: {"id":"c3","choices":[],"usage":{"completion_tokens":4}}'),
    (0.130, "data: [DONE]"),
]

# vLLM's engine died mid-answer: the status was 200 already, so the error comes as an event.
ENGINE_DIED = [
    *ONE_TOKEN_PER_CHUNK[:4],
    (0.060, 'data: {"error": {"object": "error", "message": "EngineCore encountered an issue. See stack '
            'trace (above) for the root cause.", "type": "InternalServerError", "param": null, '
            '"code": 500}}'),
    (0.060, ""),
    (0.060, "data: [DONE]"),
]


def replay(stream: list[tuple[float, str]], sent_at: float = 0.0) -> StreamAccount:
    account = StreamAccount(sent_at)
    for t, line in stream:
        account.feed_line(f"{line}\n".encode(), sent_at + t)
    return account


def without_usage(stream: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """The same stream from a server that sends no per-chunk usage, only the final count."""
    out = []
    for t, line in stream:
        if line.startswith("data: {") and '"choices":[]' not in line:
            chunk = json.loads(line[6:])
            chunk.pop("usage", None)
            line = f"data: {json.dumps(chunk)}"
        out.append((t, line))
    return out


def test_one_token_per_chunk() -> None:
    account = replay(ONE_TOKEN_PER_CHUNK)
    assert account.failure() is None
    m = account.measures(END)
    assert m["ttft_ms"] == pytest.approx(50.0)  # the role chunk with "" is no token
    assert m["itl_ms"] == pytest.approx(20.0)  # (110 - 50) / 3: the usage chunk at 150 is no token
    assert m["tpot_ms"] == pytest.approx(50.0)  # (200 - 50) / 3: to the end of the body
    assert m["e2e_ms"] == pytest.approx(200.0)
    assert m["output_tokens"] == 4 and m["tokens_per_s"] == pytest.approx(20.0)


def test_three_tokens_per_chunk_counted_as_tokens_with_continuous_usage() -> None:
    account = replay(THREE_TOKENS_PER_CHUNK)
    assert account.failure() is None and account.text_chunks == 3
    m = account.measures(END)
    assert m["ttft_ms"] == pytest.approx(100.0)
    assert m["output_tokens"] == 9
    # The first chunk held 3 tokens; 6 came after it: (160 - 100) / 6 and (200 - 100) / 6.
    assert m["itl_ms"] == pytest.approx(10.0)
    assert m["tpot_ms"] == pytest.approx(100.0 / 6)


def test_without_per_chunk_usage_each_chunk_is_taken_as_one_token() -> None:
    m = replay(without_usage(THREE_TOKENS_PER_CHUNK)).measures(END)
    # What vLLM bench and AIPerf (without --per-chunk-usage) report: the final count - 1.
    assert m["output_tokens"] == 9
    assert m["itl_ms"] == pytest.approx(60.0 / 8) and m["tpot_ms"] == pytest.approx(100.0 / 8)


def test_empty_chunks_are_no_text_and_do_not_start_the_clock() -> None:
    account = replay(EMPTY_CHUNKS)
    assert account.failure() is None and account.text_chunks == 2
    assert "".join(account.text) == "\U0001f600 w1"
    m = account.measures(END)
    assert m["ttft_ms"] == pytest.approx(80.0)  # not 50: that chunk was ""
    assert m["output_tokens"] == 4
    # 2 tokens to the first text; 2 more by the last text chunk: (120 - 80) / 2, (200 - 80) / 2.
    assert m["itl_ms"] == pytest.approx(20.0) and m["tpot_ms"] == pytest.approx(60.0)


def test_empty_chunks_without_any_usage_are_not_counted_as_tokens() -> None:
    stream = [(t, line) for t, line in without_usage(EMPTY_CHUNKS) if '"choices":[]' not in line]
    m = replay(stream).measures(END)
    assert m["output_tokens"] == 2  # the two chunks with text, not the five chunks
    assert m["ttft_ms"] == pytest.approx(80.0) and m["itl_ms"] == pytest.approx(40.0)


def test_a_final_usage_only_chunk_sets_the_count_and_is_no_text() -> None:
    account = replay(ONE_TOKEN_PER_CHUNK)
    assert account.usage_tokens == 4 and account.text_chunks == 4
    assert account.last_text_at == pytest.approx(0.110)


def test_an_error_event_mid_stream_fails_the_request() -> None:
    account = replay(ENGINE_DIED)
    failure = account.failure()
    assert failure is not None and failure[0] == "stream_error"
    assert failure[1].startswith("EngineCore encountered an issue")


def test_an_error_body_at_the_top_level_is_an_error_too() -> None:
    account = replay([*ONE_TOKEN_PER_CHUNK[:3],
                      (0.06, 'data: {"object":"error","message":"boom","type":"x","code":500}')])
    assert account.failure() == ("stream_error", "boom")


def test_a_one_token_answer_has_no_itl_or_tpot() -> None:
    stream = [line for line in ONE_TOKEN_PER_CHUNK if '" w1"' not in line[1] and '" w2"' not in line[1]
              and '" w3"' not in line[1]]
    stream = [(t, line.replace('"completion_tokens":4', '"completion_tokens":1')) for t, line in stream]
    m = replay(stream).measures(END)
    assert m["output_tokens"] == 1 and "itl_ms" not in m and "tpot_ms" not in m
    assert m["ttft_ms"] == pytest.approx(50.0)


def test_all_tokens_in_one_chunk_with_continuous_usage_have_no_decode_window() -> None:
    stream = [(0.05, 'data: {"choices":[{"index":0,"delta":{"content":"w0 w1 w2"},"finish_reason":"stop"}],'
                     '"usage":{"completion_tokens":3}}'), (0.05, "data: [DONE]")]
    m = replay(stream).measures(0.06)
    assert "itl_ms" not in m and "tpot_ms" not in m and m["output_tokens"] == 3


def test_usage_that_lags_the_text_falls_back_to_one_token_a_chunk() -> None:
    lagging = [(0.05, 'data: {"choices":[{"delta":{"content":"w0"}}],"usage":{"completion_tokens":0}}'),
               (0.07, 'data: {"choices":[{"delta":{"content":" w1"}}],"usage":{"completion_tokens":1}}'),
               (0.09, 'data: {"choices":[{"delta":{"content":" w2"},"finish_reason":"stop"}],'
                      '"usage":{"completion_tokens":3}}')]
    m = replay(lagging).measures(0.09)
    assert m["itl_ms"] == pytest.approx(20.0)  # (90 - 50) / (3 - 1)
