"""Triton's KServe v2 HTTP protocol over one persistent connection per user, request pre-built.

The request body, and with it the whole request's bytes, is encoded once per user, and the
connection is the user's own (harness.load.keepalive): the load generator's CPU goes to sending
requests. Sending, error kinds and messages are JsonPostUser's (`send` is not overridden).
"""

import json
from typing import Any

from geventhttpclient.url import URL

from harness.load.keepalive import KeepAliveClient
from locustfiles.base import HarnessUser
from locustfiles.json_http import JsonPostUser

HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}


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


class TritonHttpUser(JsonPostUser):
    abstract = True  # made concrete by the load driver, which sets `target`
    protocol = "triton_http"

    def path(self) -> str:
        return f"/v2/models/{self.target.model}/infer"

    def body(self) -> bytes:
        return infer_body(self)

    def on_start(self) -> None:
        if not self.target.http_url:
            raise RuntimeError(f"{self.protocol} needs a stack with an HTTP endpoint")
        timeout = self.target.request_timeout
        url = URL(self.target.http_url)
        client = KeepAliveClient(url.host, url.port or 80, connection_timeout=timeout,
                                 network_timeout=timeout, headers=HEADERS)
        self.request_path = self.path()
        self.request_body = self.body()
        self.request_name = f"POST {self.request_path}"  # for failure messages, made once
        client.prepare(self.request_path, self.request_body)
        self.client = client  # type: ignore[assignment]  # JsonPostUser.send calls only post()
