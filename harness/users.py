"""Locust user classes by name, found through the `harness.users` entry-point group.

The built-in ones are registered in pyproject.toml the same way a user's package adds its own;
the fallback map below only serves a checkout that was never installed.
"""

from typing import Any

from harness.plugins import load, registered

GROUP = "harness.users"
_BUILTIN = {
    "triton_http": "harness.triton.http_user:TritonHttpUser",
    "triton_grpc": "harness.triton.grpc_user:TritonGrpcUser",
    "triton_grpc_channel": "harness.triton.grpc_user:TritonGrpcChannelUser",
    "torchserve_http": "harness.torchserve.http_user:TorchServeHttpUser",
    "openai": "harness.llm.openai_user:OpenAIUser",
}


def known_users() -> dict[str, str]:
    """Name -> `module:attribute`, without importing any of them."""
    return registered(GROUP, _BUILTIN)


def load_user_class(name: str) -> Any:
    """Import the user class registered as `name` (imports Locust, so gevent patches)."""
    return load(known_users()[name])
