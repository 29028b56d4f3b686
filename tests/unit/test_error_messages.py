"""Every error kind carries a message a person can act on: never `timeout: ` or `http_404: `."""

from typing import Any

import pytest
from geventhttpclient.response import HTTPConnectionClosed
from locust.env import Environment

from harness.llm.openai_user import OpenAIUser
from harness.load.failures import (
    BODY_CHARS,
    MESSAGE_CHARS,
    exception_detail,
    failure_message,
    grpc_detail,
    http_detail,
    http_status_of,
    timeout_detail,
    wrong_answer_detail,
)
from harness.load.recorder import Recorder
from harness.load.requests import RequestListener
from harness.load.target import Target
from harness.triton.http_user import TritonHttpUser
from locustfiles.base import HarnessUser, Outcome, _as_exception

INFER = "POST /v2/models/identity/infer"


def test_timeout() -> None:
    assert failure_message("timeout", timeout_detail(10, INFER)) == \
        f"timeout: no response within 10s to {INFER} (load.request_timeout)"
    assert timeout_detail(2.5) == "no response within 2.5s (load.request_timeout)"


def test_http_status_with_and_without_a_body() -> None:
    assert http_detail(INFER, 404, b'{"error":"Request for unknown model: \'x\' is not found"}') == \
        f"{INFER} -> 404 Not Found: {{\"error\":\"Request for unknown model: 'x' is not found\"}}"
    assert http_detail(INFER, 503, b"") == f"{INFER} -> 503 Service Unavailable: (empty body)"
    assert http_detail(INFER, 507, b"Worker died.", "Insufficient Storage") == \
        f"{INFER} -> 507 Insufficient Storage: Worker died."
    assert http_detail(INFER, 599, "odd") == f"{INFER} -> 599: odd"  # a status HTTP does not name
    long = http_detail(INFER, 500, b"line one\n  line two\n" + b"x" * 1000)
    assert "line one line two" in long and long.endswith("x") and len(long) < len(INFER) + BODY_CHARS + 40


def test_exceptions_with_and_without_text() -> None:
    assert exception_detail(ConnectionRefusedError(111, "Connection refused"), INFER) == \
        f"{INFER}: [Errno 111] Connection refused"
    assert exception_detail(ConnectionResetError(), INFER) == f"{INFER}: the server reset the connection"
    assert "nothing listens" in exception_detail(ConnectionRefusedError())
    assert exception_detail(BrokenPipeError()).startswith("the server closed the connection")
    closed = HTTPConnectionClosed("connection closed.")
    assert exception_detail(closed, INFER) == f"{INFER}: connection closed."
    assert exception_detail(KeyError()) == "KeyError without a message"


def test_grpc_and_wrong_answers() -> None:
    assert grpc_detail("gRPC ModelInfer identity", "UNAVAILABLE", "failed to connect to all addresses") == \
        "gRPC ModelInfer identity -> UNAVAILABLE: failed to connect to all addresses"
    assert grpc_detail("gRPC ModelInfer identity", "INTERNAL", "") == \
        "gRPC ModelInfer identity -> INTERNAL: (no message)"
    assert wrong_answer_detail("POST /predictions/echo", "not the request echoed back", b'{"data": []}') == \
        'POST /predictions/echo -> 200 OK, but not the request echoed back: {"data": []}'


@pytest.mark.parametrize("kind, expected", [
    ("timeout", "timeout: no response within the request timeout (load.request_timeout)"),
    ("http_404", "http_404: HTTP 404 Not Found; the user class quoted no answer"),
    ("http_599", "http_599: HTTP 599; the user class quoted no answer"),
    ("grpc_UNAVAILABLE", "grpc_UNAVAILABLE: the user class recorded this failure without a message"),
])
def test_a_kind_without_detail_still_says_something(kind: str, expected: str) -> None:
    assert failure_message(kind, "  ") == expected
    assert str(_as_exception(Outcome(kind))) == expected
    assert http_status_of("http_404") == 404
    assert http_status_of("http_x") is None and http_status_of("x") is None


def test_messages_are_capped() -> None:
    assert len(failure_message("http_500", "y" * 5000)) == MESSAGE_CHARS


def test_the_listener_never_records_an_empty_message() -> None:
    """A user class outside the harness that fires a failure with an empty exception."""
    recorder = Recorder(lambda: 0.5)
    listener = RequestListener(recorder)
    listener.on_request(5.0, RuntimeError(), {"error_kind": "timeout"})
    listener.on_request(5.0, RuntimeError(""), {})
    (record,) = recorder.pop_complete(everything=True)
    assert record["error_messages"] == {
        "timeout": "timeout: no response within the request timeout (load.request_timeout)",
        "RuntimeError": "RuntimeError: the user class recorded this failure without a message",
    }


class _Response:
    def __init__(self, status: int, body: bytes, reason: str = "") -> None:
        self.status_code = status
        self.status_message = reason
        self.body = body

    def read(self) -> bytes:
        return self.body


class _Client:
    def __init__(self, answer: _Response | BaseException) -> None:
        self.answer = answer

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> _Response:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def _triton_user(answer: _Response | BaseException) -> TritonHttpUser:
    """The Triton HTTP user's send path with its connection replaced (no server, no Locust run)."""
    user = object.__new__(TritonHttpUser)
    user.target = Target("http://127.0.0.1:1", None, "identity", request_timeout=10.0)  # type: ignore[misc]
    user.client = _Client(answer)  # type: ignore[assignment]
    user.request_path = user.path()
    user.request_body = b"{}"
    user.request_name = f"POST {user.request_path}"
    return user


@pytest.mark.parametrize("answer, kind, message", [
    (TimeoutError(), "timeout", f"timeout: no response within 10s to {INFER} (load.request_timeout)"),
    (_Response(404, b"", "Not Found"), "http_404", f"http_404: {INFER} -> 404 Not Found: (empty body)"),
    (_Response(400, b'{"error":"unexpected shape"}', "Bad Request"), "http_400",
     f'http_400: {INFER} -> 400 Bad Request: {{"error":"unexpected shape"}}'),
    (ConnectionResetError(), "ConnectionResetError",
     f"ConnectionResetError: {INFER}: the server reset the connection"),
    (HTTPConnectionClosed("connection closed."), "HTTPConnectionClosed",
     f"HTTPConnectionClosed: {INFER}: connection closed."),
])
def test_the_http_users_failures(answer: Any, kind: str, message: str) -> None:
    outcome = _triton_user(answer).send()
    assert outcome.error_kind == kind
    assert str(_as_exception(outcome)) == message


def test_a_user_class_bug_names_the_class() -> None:
    class Broken(HarnessUser):
        abstract = True
        target = Target("http://127.0.0.1:1", None, "m")

        def send(self) -> Outcome:
            raise AssertionError()

    fired: list[dict[str, Any]] = []
    env = Environment()
    env.events.request.add_listener(lambda **kwargs: fired.append(kwargs))
    Broken(env).one_request()
    (request,) = fired
    assert request["context"]["error_kind"] == "AssertionError"
    assert str(request["exception"]) == "AssertionError: in Broken.send: AssertionError without a message"


def test_a_request_the_loads_own_stop_cut_is_not_a_failure() -> None:
    from locust.runners import STATE_CLEANUP, STATE_RUNNING

    class Cut(HarnessUser):
        abstract = True
        target = Target("http://127.0.0.1:1", None, "m")

        def send(self) -> Outcome:
            return Outcome("HTTPConnectionClosed", 0, "closed")

    fired: list[dict[str, Any]] = []
    env = Environment(user_classes=[Cut])
    env.events.request.add_listener(lambda **kwargs: fired.append(kwargs))
    runner = env.create_local_runner()
    runner.state = STATE_CLEANUP  # what Locust's stop() sets while it stops the users
    Cut(env).one_request()
    assert fired == []
    runner.state = STATE_RUNNING  # the same failure while the load runs is recorded
    Cut(env).one_request()
    assert [r["context"]["error_kind"] for r in fired] == ["HTTPConnectionClosed"]


@pytest.mark.parametrize("failure, expected", [
    (("bad_json", ""), "POST /v1/chat/completions -> 200 OK, but the body is not JSON: (empty body)"),
    (("stream_error", "model overloaded"),
     "POST /v1/chat/completions -> 200 OK, but the server reported an error: model overloaded"),
    (("no_tokens", "the response carried no generated text"),
     "POST /v1/chat/completions -> 200 OK, but the response carried no generated text"),
    (("incomplete_stream", ""), "POST /v1/chat/completions -> 200 OK, but incomplete_stream"),
])
def test_the_llm_users_failures(failure: tuple[str, str], expected: str) -> None:
    user = object.__new__(OpenAIUser)
    user.request_name = "POST /v1/chat/completions"
    assert user._failure_detail(failure) == expected
