"""Triton's gRPC protocol, cooperative with gevent; the request is serialized once per user.

tritonclient's `infer` rebuilds the ModelInferRequest from its InferInput objects and parses the
whole response on every call (a third of the user's CPU per request in bench/loadgen.py's
profile). Here the request's bytes are made once in `on_start`, and the answer's size is the
length of its message bytes, which is what `ByteSize()` of the parsed response gave.

Two transports, the same calls, error kinds and messages (tests/integration/test_grpc_h2_real.py
compares them case by case against a real Triton):

- `triton_grpc` (TritonGrpcUser): the user's own HTTP/2 connection (harness.load.h2_unary);
- `triton_grpc_channel` (TritonGrpcChannelUser): grpc's channel with tritonclient's options,
  `ModelInfer` called without serializers, failures read from the `grpc.RpcError` exactly as
  tritonclient's InferenceServerException carried them (status name, details).
"""

import grpc
import grpc.experimental.gevent as grpc_gevent
import numpy as np
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions, service_pb2

from harness.load.failures import grpc_detail, timeout_detail
from harness.load.h2_unary import GrpcError, H2UnaryChannel, framed
from locustfiles.base import HarnessUser, Outcome

grpc_gevent.init_gevent()  # the channel user: grpc's own threads would otherwise block the gevent loop

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
USER_AGENT = f"grpc-python/{grpc.__version__} (harness h2)"  # grpc's, marked: logs tell the transports apart


def channel_options() -> list[tuple[str, int]]:
    """The channel arguments tritonclient's InferenceServerClient sets by default."""
    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", int(keepalive.keepalive_permit_without_calls)),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
    ]


def infer_request(model: str, input_name: str, shape: tuple[int, ...]) -> bytes:
    """A ModelInferRequest for FP32 0, 1, 2, ... in `shape`, as tritonclient sends it (raw contents)."""
    data = np.arange(int(np.prod(shape)), dtype=np.float32)
    request = service_pb2.ModelInferRequest(model_name=model, model_version="")
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = input_name, "FP32"
    tensor.shape.extend(shape)
    request.raw_input_contents.append(data.tobytes())
    return request.SerializeToString()


class TritonGrpcChannelUser(HarnessUser):
    """`triton_grpc_channel`: the calls through grpc's own channel (grpc.experimental.gevent).

    About 2.5 times the client CPU per call of `triton_grpc` (bench/loadgen.py): each call is
    handed to grpc's C-core through a threadpool and woken up again. Kept for what grpc's channel
    does that the harness's own connection does not (compression, TLS, name resolution), and
    as the reference the other's error kinds were matched against.
    """

    abstract = True  # made concrete by the load driver, which sets `target`
    protocol = "triton_grpc"

    def on_start(self) -> None:
        if not self.target.grpc_url:
            raise RuntimeError("triton_grpc_channel needs a stack with a gRPC endpoint")
        self.channel = grpc.insecure_channel(self.target.grpc_url, options=channel_options())
        self.model_infer = self.channel.unary_unary(MODEL_INFER)  # bytes in, bytes out
        self.request = infer_request(self.target.model, self.target.input_name, tuple(self.target.shape))
        self.call_name = f"gRPC ModelInfer {self.target.model}"  # for failure messages, made once

    def on_stop(self) -> None:
        self.channel.close()

    def send(self) -> Outcome:
        try:
            response: bytes = self.model_infer(self.request, timeout=self.target.request_timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            status = str(code or "error").removeprefix("StatusCode.")
            if status == "DEADLINE_EXCEEDED":  # the client's deadline: the request timeout ran out
                detail = timeout_detail(self.target.request_timeout, self.call_name)
            else:
                message = exc.details() if isinstance(exc, grpc.Call) else ""
                detail = grpc_detail(self.call_name, status, str(message or ""))
            return Outcome(f"grpc_{status}", 0, detail)
        return Outcome(None, len(response))


class TritonGrpcUser(HarnessUser):
    """`triton_grpc`: the same calls and error kinds as grpc's channel, over the user's own HTTP/2
    connection (harness.load.h2_unary), written and read in the user's own greenlet.
    """

    abstract = True  # made concrete by the load driver, which sets `target`
    protocol = "triton_grpc"

    def on_start(self) -> None:
        if not self.target.grpc_url:
            raise RuntimeError("triton_grpc needs a stack with a gRPC endpoint")
        host, _, port = self.target.grpc_url.rpartition(":")
        self.h2 = H2UnaryChannel(host.strip("[]"), int(port), MODEL_INFER,
                                 timeout=self.target.request_timeout, user_agent=USER_AGENT)
        message = infer_request(self.target.model, self.target.input_name, tuple(self.target.shape))
        self.payload = framed(message)  # the whole DATA payload, made once
        self.call_name = f"gRPC ModelInfer {self.target.model}"

    def on_stop(self) -> None:
        self.h2.close()

    def send(self) -> Outcome:
        try:
            response = self.h2.call(self.payload)
        except GrpcError as exc:
            if exc.status == "DEADLINE_EXCEEDED":
                detail = timeout_detail(self.target.request_timeout, self.call_name)
            else:
                detail = grpc_detail(self.call_name, exc.status, exc.message)
            return Outcome(f"grpc_{exc.status}", 0, detail)
        return Outcome(None, len(response))
