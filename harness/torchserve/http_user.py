"""TorchServe's inference API: `POST /predictions/MODEL` with a JSON body, one keep-alive connection.

With the harness's echo/delay handlers the answer must equal the request: a 200 with another
body is counted as an error (`wrong_answer`), not as a success.
"""

import json

from harness.load.failures import wrong_answer_detail
from harness.torchserve.target import TorchServeTarget
from locustfiles.base import Outcome
from locustfiles.json_http import JsonPostUser


def request_body(shape: tuple[int, ...]) -> dict[str, list[float]]:
    count = 1
    for dim in shape:
        count *= dim
    return {"data": [float(i) for i in range(count)]}


class TorchServeHttpUser(JsonPostUser):
    abstract = True  # made concrete by the load driver, which sets `target`
    protocol = "torchserve_http"

    def path(self) -> str:
        return f"/predictions/{self.target.model}"

    def body(self) -> bytes:
        self.expected = request_body(self.target.shape)
        self.check_echo = isinstance(self.target, TorchServeTarget) and self.target.echo
        return json.dumps(self.expected).encode()

    def check(self, payload: bytes) -> Outcome | None:
        if self.check_echo and not self._echoed(payload):
            detail = wrong_answer_detail(self.request_name, "not the request echoed back", payload)
            return Outcome("wrong_answer", len(payload), detail)
        return None

    def _echoed(self, payload: bytes) -> bool:
        try:
            return bool(json.loads(payload) == self.expected)
        except ValueError:
            return False
