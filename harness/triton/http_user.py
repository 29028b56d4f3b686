"""Triton's KServe v2 HTTP protocol, through geventhttpclient with one keep-alive connection.

The request body is encoded once per user: the load generator's CPU goes to sending requests.
"""

import json
from typing import Any

from locustfiles.base import HarnessUser
from locustfiles.json_http import JsonPostUser


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
