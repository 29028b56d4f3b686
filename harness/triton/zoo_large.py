"""`large_init`: a Triton Python model whose start is slow and memory-hungry, like an ASR
service that parses a language model of many GB before it can serve.

At initialisation each instance reads a file of `model_file.size` bytes into its own memory,
spread over `model_file.load_s` seconds, and keeps it (the resident "language model"). A first
start may hold more at its peak (`first_start_copies`: raw plus converted data), as a service
does that converts its model into a cache on the first start after a deploy; it then writes a
marker, and later starts in the same stack folder hold one copy only. The file is sparse: it
costs no disk, and reading it costs memory, not I/O. Requests are answered as by `identity`.
"""

from pydantic import Field

from harness.sizes import Size
from harness.specbase import Duration, Strict


class ModelFile(Strict):
    """What `large_init` loads at initialisation."""

    size: Size = Field(gt=0)
    load_s: Duration = 0.0
    first_start_copies: int = Field(1, ge=1, le=4)


def model_parameters(spec: ModelFile | None) -> tuple[tuple[str, str], ...]:
    """Config parameters the model reads (none for other models)."""
    if spec is None:
        return ()
    return (
        ("file_size", str(spec.size)),
        ("load_s", str(spec.load_s)),
        ("first_start_copies", str(spec.first_start_copies)),
    )


LARGE_INIT_SOURCE = '''\
import json
import os
import time

import triton_python_backend_utils as pb_utils

CHUNK = 16 << 20


def _param(config, name, default):
    entry = config["parameters"].get(name)
    return entry["string_value"] if entry else default


def _ensure_file(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path) or os.path.getsize(path) != size:
        with open(path, "wb") as handle:
            handle.truncate(size)  # sparse: no disk used; reads return zeros


def _read_slowly(path, size, seconds):
    """The file in 16 MiB chunks of private memory, spread over `seconds`."""
    chunks = []
    started = time.monotonic()
    with open(path, "rb", buffering=0) as handle:
        done = 0
        while done < size:
            chunk = bytearray(min(CHUNK, size - done))
            handle.readinto(chunk)
            chunks.append(chunk)
            done += len(chunk)
            lag = seconds * done / size - (time.monotonic() - started)
            if lag > 0:
                time.sleep(lag)
    return chunks


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.delay_s = float(_param(config, "delay_ms", "0")) / 1000.0
        size = int(_param(config, "file_size", "0"))
        seconds = float(_param(config, "load_s", "0"))
        copies = int(_param(config, "first_start_copies", "1"))
        path = os.path.join(args["model_repository"], "data", "lm.bin")
        marker = path + ".converted"
        _ensure_file(path, size)
        first = not os.path.exists(marker)
        self.model = _read_slowly(path, size, seconds)
        if first and copies > 1:
            converted = [[bytearray(chunk) for chunk in self.model] for _ in range(copies - 1)]
            with open(marker, "w") as handle:
                handle.write("converted\\n")
            del converted
        elif first:
            with open(marker, "w") as handle:
                handle.write("converted\\n")

    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            if self.delay_s:
                time.sleep(self.delay_s)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", data)]))
        return responses
'''
