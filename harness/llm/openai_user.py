"""OpenAI-compatible LLM endpoints: /v1/chat/completions and /v1/completions, streamed or not.

Per request it records, besides the latency every user records: time to first token, inter-token
latency, output tokens and tokens/s (see `harness.llm.openai_stream`), and failures by HTTP status
with the server's error message. It needs only an OpenAI-compatible URL and a model name, so it
runs against any such server (`stack: {kind: external, url: ..., model: ...}`), not only Dynamo.
"""

import json
import time
from typing import Any

from geventhttpclient import HTTPClient
from geventhttpclient.url import URL

from harness.llm.openai_settings import OpenAISettings
from harness.llm.openai_stream import StreamAccount, error_message, request_body, unary_result
from harness.llm.target import LlmTarget
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
                return Outcome(f"http_{response.status_code}", len(payload), _http_error(payload))
            if self.settings.stream:
                return self._read_stream(response, sent_at)
            payload = response.read()
        except TimeoutError:
            return Outcome("timeout", 0, f"no answer within {self.target.request_timeout:g}s")
        except OSError as exc:
            return Outcome(type(exc).__name__, 0, str(exc))
        failure, measures = unary_result(payload, sent_at, time.monotonic())
        if failure is not None:
            return Outcome(failure[0], len(payload), failure[1])
        return Outcome(None, len(payload), measures=measures)

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
            return Outcome(failure[0], length, failure[1])
        return Outcome(None, length, measures=account.measures(finished_at))


def _http_error(payload: bytes) -> str:
    try:
        return error_message(json.loads(payload))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return payload[:200].decode(errors="replace")
