"""Triton's gRPC protocol through tritonclient, made cooperative with gevent."""

import grpc.experimental.gevent as grpc_gevent
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from harness.load.failures import grpc_detail, timeout_detail
from locustfiles.base import HarnessUser, Outcome

grpc_gevent.init_gevent()  # grpc's own threads would otherwise block the gevent loop


class TritonGrpcUser(HarnessUser):
    abstract = True  # made concrete by the load driver, which sets `target`
    protocol = "triton_grpc"

    def on_start(self) -> None:
        if not self.target.grpc_url:
            raise RuntimeError("triton_grpc needs a stack with a gRPC endpoint")
        self.client = grpcclient.InferenceServerClient(self.target.grpc_url)
        data = np.arange(int(np.prod(self.target.shape)), dtype=np.float32)
        tensor = grpcclient.InferInput(self.target.input_name, list(self.target.shape), "FP32")
        tensor.set_data_from_numpy(data.reshape(self.target.shape))
        self.inputs = [tensor]
        self.call_name = f"gRPC ModelInfer {self.target.model}"  # for failure messages, made once

    def on_stop(self) -> None:
        self.client.close()

    def send(self) -> Outcome:
        try:
            result = self.client.infer(
                self.target.model, self.inputs, client_timeout=self.target.request_timeout
            )
        except InferenceServerException as exc:
            status = str(exc.status() or "error").removeprefix("StatusCode.")
            if status == "DEADLINE_EXCEEDED":  # the client's deadline: the request timeout ran out
                detail = timeout_detail(self.target.request_timeout, self.call_name)
            else:
                detail = grpc_detail(self.call_name, status, str(exc.message() or ""))
            return Outcome(f"grpc_{status}", 0, detail)
        response = result.get_response()
        return Outcome(None, response.ByteSize())
