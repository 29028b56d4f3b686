"""Scenario settings of the `vllm` stack kind: vLLM's OpenAI-compatible server, on CPU or GPU.

By default it serves a tiny Llama the harness builds itself (harness.vllm.model): nothing is
downloaded, the same bytes every time. `model_path` serves a local model folder instead.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from harness.roles import Loss, Role
from harness.sizes import Size
from harness.specbase import Duration, StackSpecBase

if TYPE_CHECKING:
    from harness.stacks.base import Stack

# Arguments the stack sets itself: where it listens and what it serves must not be overridden.
OWNED_ARGS = ("--host", "--port", "--model", "--served-model-name", "--uds")


class VllmSpec(StackSpecBase):
    """vLLM's API server, its engine core and the engine's worker, as processes the harness owns."""

    # Read from the running server (see harness/vllm/stack.py): the API server the harness
    # starts, the `VLLM::EngineCore` it spawns, and the `VLLM::Worker` the engine core spawns
    # (it holds the model and the KV cache). With one engine and one worker, losing any of them
    # loses the stack: after SIGKILL of the engine core the API server exits by itself, with
    # exit code 0, and a frozen engine core leaves /health at 200 while every request stalls.
    ROLES: ClassVar[tuple[Role, ...]] = (
        Role("api_server", Loss.ENTRY, "the OpenAI-compatible HTTP server the harness starts"),
        Role("engine_core", Loss.ENTRY, "VLLM::EngineCore: schedules requests, runs the engine loop"),
        Role("worker", Loss.ENTRY, "VLLM::Worker: holds the weights and the KV cache, runs the model"),
    )

    kind: Literal["vllm"]
    model_path: str | None = Field(None, min_length=1, max_length=4096)  # default: the tiny Llama
    served_model_name: str = Field("tiny-llama", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
    max_model_len: int = Field(1024, ge=16, le=1_048_576)
    # KV-cache memory (--kv-cache-memory-bytes). The tiny Llama needs 1 KiB per token, and vLLM
    # refuses to start unless one `max_model_len` sequence fits. Small values make requests wait
    # and be preempted under load: the KV-pressure fault of the issue is this setting.
    kv_cache: Size = Field(64 * 2**20, ge=2**16, le=2**40)
    max_num_seqs: int | None = Field(None, ge=1, le=4096)
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    # Skip torch.compile and graph capture: ready in about 28 s instead of 43-75 s on 2 CPUs.
    enforce_eager: bool = True
    # CPUs the CPU engine's OpenMP threads bind to (VLLM_CPU_OMP_THREADS_BIND); None: all.
    cpu_threads_bind: str | None = Field(None, pattern=r"^(auto|nobind|[0-9,|-]{1,200})$")
    extra_args: list[str] = Field(default_factory=list, max_length=100)
    python: str | None = Field(None, min_length=1, max_length=4096)  # default: the harness's own
    startup_timeout: Duration = 300.0  # a cold compile cache on 2 CPUs: 75 s seen; slow CI hosts more
    stop_timeout: Duration = 20.0

    @field_validator("model_path")
    @classmethod
    def _model_folder(cls, value: str | None) -> str | None:
        if value is not None and not (Path(value) / "config.json").is_file():
            raise ValueError(f"{value!r} is not a model folder (no config.json in it)")
        return value

    @field_validator("extra_args")
    @classmethod
    def _not_owned(cls, value: list[str]) -> list[str]:
        for arg in value:
            if arg.split("=", 1)[0] in OWNED_ARGS:
                raise ValueError(f"{arg!r} is set by the harness (it owns {', '.join(OWNED_ARGS)})")
            if "\n" in arg or "\x00" in arg or len(arg) > 4096:
                raise ValueError("an argument holds a line break, a NUL or more than 4096 characters")
        return value

    def build(self, workdir: Path, **stack_args: Any) -> "Stack":
        from harness.vllm.stack import VllmStack

        return VllmStack(self, workdir)
