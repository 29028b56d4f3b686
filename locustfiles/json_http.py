"""The shared HTTP path of JSON-over-HTTP users: one keep-alive connection, one pre-encoded body.

Subclasses say where to POST (`path`), what (`body`), and may reject a 200 whose payload is
wrong (`check`). Transport errors become error kinds: `timeout`, or the exception's class name;
every failure's message names the request and what came back (harness.load.failures).
"""

from http.client import HTTPException

from geventhttpclient import HTTPClient
from geventhttpclient.url import URL

from harness.load.failures import exception_detail, http_detail, timeout_detail
from locustfiles.base import HarnessUser, Outcome

_HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}


class JsonPostUser(HarnessUser):
    abstract = True

    def path(self) -> str:
        raise NotImplementedError

    def body(self) -> bytes:
        raise NotImplementedError

    def check(self, payload: bytes) -> Outcome | None:
        """An error outcome for a 200 with a wrong payload; None when it is right."""
        return None

    def on_start(self) -> None:
        if not self.target.http_url:
            raise RuntimeError(f"{self.protocol} needs a stack with an HTTP endpoint")
        timeout = self.target.request_timeout
        url = URL(self.target.http_url)
        self.client = HTTPClient(
            url.host, url.port, concurrency=1, connection_timeout=timeout, network_timeout=timeout
        )
        self.request_path = self.path()
        self.request_body = self.body()
        self.request_name = f"POST {self.request_path}"  # for failure messages, made once

    def on_stop(self) -> None:
        self.client.close()

    def send(self) -> Outcome:
        try:
            response = self.client.post(self.request_path, body=self.request_body, headers=_HEADERS)
            payload = response.read()
        except TimeoutError:
            return Outcome("timeout", 0, timeout_detail(self.target.request_timeout, self.request_name))
        except (OSError, HTTPException) as exc:  # refused, reset, closed before the answer
            return Outcome(type(exc).__name__, 0, exception_detail(exc, self.request_name))
        if response.status_code != 200:
            # Servers say why in the body, e.g. TorchServe's 507 "Worker died."
            detail = http_detail(self.request_name, response.status_code, payload, response.status_message)
            return Outcome(f"http_{response.status_code}", len(payload), detail)
        return self.check(payload) or Outcome(None, len(payload))
