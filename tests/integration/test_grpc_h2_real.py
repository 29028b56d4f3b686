"""The gRPC user's own HTTP/2 transport against a real tritonserver: the same outcomes as grpc's.

Both users (`triton_grpc_channel` through grpc's channel, `triton_grpc` through harness.load.h2_unary)
send the same calls in each case, and every outcome (error kind, message, response length) must
be the same: a normal answer, the deadline on a frozen server (SIGSTOP), the server killed while
calls wait, and a refused connection.
"""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
from locust.env import Environment

from harness.load.target import Target
from harness.stacks.ports import free_ports
from harness.triton.grpc_user import TritonGrpcChannelUser, TritonGrpcUser
from harness.triton.spec import TritonSpec
from harness.triton.stack import TritonStack
from locustfiles.base import HarnessUser, Outcome

pytestmark = pytest.mark.real

CLASSES = (TritonGrpcChannelUser, TritonGrpcUser)


def started(cls: type[HarnessUser], target: Target) -> HarnessUser:
    """A user of `cls` bound to `target`, started as Locust starts it (no load run)."""
    bound = type(cls.__name__ + "ForTest", (cls,), {"abstract": False, "target": target, "host": None})
    user = bound(Environment(user_classes=[bound]))
    user.on_start()
    return user


def outcomes(users: list[HarnessUser]) -> list[Outcome]:
    """One call per user, all in flight together."""
    calls = [gevent.spawn(u.send) for u in users]
    gevent.joinall(calls, raise_error=True)
    return [c.value for c in calls]


@pytest.fixture()
def triton(tmp_path: Path) -> Iterator[TritonStack]:
    stack = TritonStack(TritonSpec(kind="triton", model="identity", instances=1), tmp_path / "stack")
    stack.start()
    try:
        stack.wait_ready(120)
        yield stack
    finally:
        stack.stop(graceful=False)


def test_the_h2_transport_has_grpcs_outcomes(triton: TritonStack) -> None:
    assert triton.process is not None
    pid = triton.process.pid
    users = [started(cls, triton.target(request_timeout=1.0)) for cls in CLASSES]
    old, new = outcomes(users)
    assert old == new and old.error_kind is None and old.length > 0

    os.kill(pid, signal.SIGSTOP)  # frozen: the calls' deadline runs out
    try:
        old, new = outcomes(users)
        assert old == new and old.error_kind == "grpc_DEADLINE_EXCEEDED"
        assert old.detail == "no response within 1s to gRPC ModelInfer identity (load.request_timeout)"

        calls = [gevent.spawn(u.send) for u in users]  # waiting on the frozen server ...
        gevent.sleep(0.3)
        os.kill(pid, signal.SIGKILL)  # ... which is killed under them
    finally:
        os.kill(pid, signal.SIGCONT)
    gevent.joinall(calls, raise_error=True)
    old, new = (c.value for c in calls)
    assert old == new and old.error_kind == "grpc_UNAVAILABLE"
    assert old.detail == ("gRPC ModelInfer identity -> UNAVAILABLE: "
                          "Stream removed (recvmsg:Connection reset by peer (104))")

    old, new = outcomes(users)  # the server is gone: nothing listens at its port
    assert old == new and old.error_kind == "grpc_UNAVAILABLE"
    assert "Failed to connect to remote host: Connection refused" in old.detail


def test_a_refused_connection() -> None:
    target = Target(None, f"127.0.0.1:{free_ports(1)[0]}", "identity", request_timeout=1.0)
    old, new = outcomes([started(cls, target) for cls in CLASSES])
    assert old == new and old.error_kind == "grpc_UNAVAILABLE"
    assert old.detail.startswith("gRPC ModelInfer identity -> UNAVAILABLE: failed to connect to all "
                                 "addresses; last error: UNKNOWN: ipv4:127.0.0.1:")
