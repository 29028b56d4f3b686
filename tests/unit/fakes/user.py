"""`FakeUser` (user class `fake_http`): the load's request to the fake stack, POST /infer."""

from locustfiles.json_http import JsonPostUser

NAME = "fake_http"
TARGET = "tests.unit.fakes.user:FakeUser"


class FakeUser(JsonPostUser):
    abstract = True  # the driver binds a concrete subclass to the run's target
    protocol = NAME

    def path(self) -> str:
        return "/infer"

    def body(self) -> bytes:
        return b'{"inputs": [1.0, 2.0, 3.0, 4.0]}'
