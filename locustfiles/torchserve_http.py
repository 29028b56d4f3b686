"""TorchServe's inference API: `POST /predictions/MODEL` with a JSON body, one keep-alive connection.

With the harness's echo/delay handlers the answer must equal the request: a 200 with another
body is counted as an error (`wrong_answer`), not as a success.
"""

import json

from geventhttpclient import HTTPClient
from geventhttpclient.url import URL

from locustfiles.base import HarnessUser, Outcome

_HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}


def request_body(shape: tuple[int, ...]) -> dict[str, list[float]]:
    count = 1
    for dim in shape:
        count *= dim
    return {"data": [float(i) for i in range(count)]}


class TorchServeHttpUser(HarnessUser):
    abstract = True  # made concrete by the load driver, which sets `target`
    protocol = "torchserve_http"

    def on_start(self) -> None:
        if not self.target.http_url:
            raise RuntimeError("torchserve_http needs a stack with an HTTP endpoint")
        timeout = self.target.request_timeout
        url = URL(self.target.http_url)
        self.client = HTTPClient(url.host, url.port, concurrency=1, connection_timeout=timeout,
                                 network_timeout=timeout)
        self.path = f"/predictions/{self.target.model}"
        self.expected = request_body(self.target.shape)
        self.body = json.dumps(self.expected).encode()
        self.check_echo = bool(getattr(self.target, "echo", False))

    def on_stop(self) -> None:
        self.client.close()

    def send(self) -> Outcome:
        try:
            response = self.client.post(self.path, body=self.body, headers=_HEADERS)
            payload = response.read()
        except TimeoutError:
            return Outcome("timeout")
        except OSError as exc:
            return Outcome(type(exc).__name__, 0, str(exc))
        if response.status_code != 200:
            # TorchServe says why in JSON, e.g. 507 {"message": "Worker died."}
            detail = payload[:200].decode(errors="replace")
            return Outcome(f"http_{response.status_code}", len(payload), detail)
        if self.check_echo and not self._echoed(payload):
            return Outcome("wrong_answer", len(payload), payload[:200].decode(errors="replace"))
        return Outcome(None, len(payload))

    def _echoed(self, payload: bytes) -> bool:
        try:
            return bool(json.loads(payload) == self.expected)
        except ValueError:
            return False
