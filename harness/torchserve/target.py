"""What the TorchServe user class sends to: the model, and whether its answers must echo."""

from dataclasses import dataclass

from harness.load.target import Target


@dataclass(frozen=True)
class TorchServeTarget(Target):
    echo: bool = False  # the built-in echo/delay handlers answer with the request's body
