"""What user classes send requests to; built from the stack, handed to every user class."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    http_url: str | None
    grpc_url: str | None
    model: str
    input_name: str = "INPUT0"
    output_name: str = "OUTPUT0"
    datatype: str = "FP32"
    shape: tuple[int, ...] = (1, 4)
    request_timeout: float = 10.0
