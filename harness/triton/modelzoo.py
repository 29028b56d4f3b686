"""A small built-in model zoo for Triton's Python backend.

Each entry writes `<repo>/<name>/config.pbtxt` and `<repo>/<name>/1/model.py`. Options come from
the scenario (instances, artificial delay, batch size) and reach the model as config parameters.
"""

from dataclasses import dataclass
from pathlib import Path

from harness.triton.zoo_large import LARGE_INIT_SOURCE


@dataclass(frozen=True)
class ModelOptions:
    instances: int = 2
    delay_ms: float = 0.0
    max_batch_size: int = 8
    parameters: tuple[tuple[str, str], ...] = ()  # more config parameters the model reads


@dataclass(frozen=True)
class ZooModel:
    """A model the harness can serve: its tensors and the source of its Python model."""

    input_name: str
    output_name: str
    datatype: str  # Triton protocol type, e.g. FP32
    dims: tuple[int, ...]
    source: str

    def write(self, repo: Path, name: str, options: ModelOptions) -> Path:
        folder = repo / name
        (folder / "1").mkdir(parents=True, exist_ok=True)
        (folder / "config.pbtxt").write_text(self._config(name, options), encoding="utf-8")
        (folder / "1" / "model.py").write_text(self.source, encoding="utf-8")
        return folder

    def _config(self, name: str, options: ModelOptions) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        return f"""name: "{name}"
backend: "python"
max_batch_size: {options.max_batch_size}
input [{{ name: "{self.input_name}", data_type: TYPE_{self.datatype}, dims: [ {dims} ] }}]
output [{{ name: "{self.output_name}", data_type: TYPE_{self.datatype}, dims: [ {dims} ] }}]
instance_group [{{ count: {options.instances}, kind: KIND_CPU }}]
parameters: {{ key: "delay_ms", value: {{ string_value: "{options.delay_ms}" }} }}
""" + "".join(
            f'parameters: {{ key: "{key}", value: {{ string_value: "{value}" }} }}\n'
            for key, value in options.parameters
        )


# Returns its input unchanged, after an optional sleep that stands in for compute time.
_IDENTITY_SOURCE = '''\
import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        delay_ms = float(config["parameters"]["delay_ms"]["string_value"])
        self.delay_s = delay_ms / 1000.0

    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            if self.delay_s:
                time.sleep(self.delay_s)
            output = pb_utils.Tensor("OUTPUT0", data)
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
'''

ZOO: dict[str, ZooModel] = {
    "identity": ZooModel("INPUT0", "OUTPUT0", "FP32", (4,), _IDENTITY_SOURCE),
    "large_init": ZooModel("INPUT0", "OUTPUT0", "FP32", (4,), LARGE_INIT_SOURCE),  # slow, memory-hungry start
}
