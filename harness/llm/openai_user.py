"""OpenAI-compatible LLM endpoints: /v1/chat/completions and /v1/completions, streamed or not.

Per request it records, besides the latency every user records: time to first token, inter-token
latency, time per output token, end-to-end time, output tokens and tokens/s (see
`harness.llm.openai_stream` for where each clock starts and stops), `good` when the scenario gives
goodput targets and the request met them (`harness.llm.goodput`), and failures by HTTP status with
the server's error message. It needs only an OpenAI-compatible URL and a model name, so it
runs against any such server (`stack: {kind: external, url: ..., model: ...}`), not only Dynamo.
"""

import json
import time
from http.client import HTTPException
from typing import Any

from geventhttpclient import HTTPClient
from geventhttpclient.url import URL

from harness.llm.goodput import mark_good
from harness.llm.openai_settings import OpenAISettings
from harness.llm.openai_stream import Failure, StreamAccount, error_message, request_body, unary_result
from harness.llm.target import LlmTarget
from harness.load.failures import exception_detail, http_detail, timeout_detail, wrong_answer_detail
from locustfiles.base import HarnessUser, Outcome

_HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}
PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


class OpenAIUser(HarnessUser):
    abstract = True  # made concrete by the load driver, which sets `target` and `load_spec`
    protocol = "openai"
    load_spec: Any = None  # the scenario's `load:` section; its `openai:` holds our settings

    def on_start(self) -> None:
        self.settings: OpenAISettings = getattr(self.load_spec, "openai", None) or OpenAISettings()
        if not self.target.http_url:
            raise RuntimeError("the openai user needs a stack with an HTTP endpoint")
        timeout = self.target.request_timeout
        url = URL(self.target.http_url)
        self.client = HTTPClient(url.host, url.port, concurrency=1, connection_timeout=timeout,
                                 network_timeout=timeout)
        self.path = PATHS[self.settings.api]
        self.request_name = f"POST {self.path}"  # for failure messages, made once
        stack_extra = self.target.extra_body if isinstance(self.target, LlmTarget) else {}
        self.body = json.dumps(request_body(self.settings, self.target.model, stack_extra)).encode()

    def on_stop(self) -> None:
        self.client.close()

    def send(self) -> Outcome:
        sent_at = time.monotonic()
        try:
            response = self.client.post(self.path, body=self.body, headers=_HEADERS)
            if response.status_code != 200:
                payload = response.read()
                detail = http_detail(self.request_name, response.status_code, _http_error(payload),
                                     response.status_message)
                return Outcome(f"http_{response.status_code}", len(payload), detail)
            if self.settings.stream:
                return self._read_stream(response, sent_at)
            payload = response.read()
        except TimeoutError:
            return Outcome("timeout", 0, timeout_detail(self.target.request_timeout, self.request_name))
        except (OSError, HTTPException) as exc:  # refused, reset, closed mid-answer
            return Outcome(type(exc).__name__, 0, exception_detail(exc, self.request_name))
        failure, measures = unary_result(payload, sent_at, time.monotonic())
        if failure is not None:
            return Outcome(failure[0], len(payload), self._failure_detail(failure, payload))
        return self._succeeded(len(payload), measures)

    def _succeeded(self, length: int, measures: dict[str, float]) -> Outcome:
        """A complete answer: its measures, and whether it was good (met every goodput target)."""
        return Outcome(None, length, measures=mark_good(measures, self.settings.goodput))

    def _failure_detail(self, failure: Failure, payload: bytes = b"") -> str:
        """A 200 that delivered no complete answer, said with the request it answered."""
        kind, message = failure
        if kind == "bad_json":
            return wrong_answer_detail(self.request_name, "the body is not JSON", payload)
        if kind == "stream_error":
            message = f"the server reported an error: {message or '(no message)'}"
        return f"{self.request_name} -> 200 OK, but {message or kind}"

    def _read_stream(self, response: Any, sent_at: float) -> Outcome:
        account = StreamAccount(sent_at)
        length = 0
        while True:
            line = response.readline(b"\n")
            if not line:
                break
            length += len(line)
            account.feed_line(line, time.monotonic())
        finished_at = time.monotonic()
        failure = account.failure()
        if failure is not None:
            return Outcome(failure[0], length, self._failure_detail(failure))
        return self._succeeded(length, account.measures(finished_at))


def _http_error(payload: bytes) -> str:
    try:
        return error_message(json.loads(payload))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return payload[:200].decode(errors="replace")
