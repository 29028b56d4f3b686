"""Triton's KServe v2 HTTP protocol, through geventhttpclient with one keep-alive connection.

The request body is encoded once per user: the load generator's CPU goes to sending requests.
"""

import json
from typing import Any

from geventhttpclient import HTTPClient
from geventhttpclient.url import URL

from locustfiles.base import HarnessUser, Outcome

_HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}


def infer_body(user: HarnessUser) -> bytes:
    target = user.target
    count = 1
    for dim in target.shape:
        count *= dim
    request: dict[str, Any] = {
        "inputs": [
            {
                "name": target.input_name,
                "shape": list(target.shape),
                "datatype": target.datatype,
                "data": [float(i) for i in range(count)],
            }
        ]
    }
    return json.dumps(request).encode()


class TritonHttpUser(HarnessUser):
    abstract = True  # made concrete by the load driver, which sets `target`
    protocol = "triton_http"

    def on_start(self) -> None:
        if not self.target.http_url:
            raise RuntimeError("triton_http needs a stack with an HTTP endpoint")
        timeout = self.target.request_timeout
        url = URL(self.target.http_url)
        self.client = HTTPClient(
            url.host,
            url.port,
            concurrency=1,
            connection_timeout=timeout,
            network_timeout=timeout,
        )
        self.path = f"/v2/models/{self.target.model}/infer"
        self.body = infer_body(self)

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
            detail = payload[:200].decode(errors="replace")
            return Outcome(f"http_{response.status_code}", len(payload), detail)
        return Outcome(None, len(payload))
