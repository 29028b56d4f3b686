"""Stack kinds by name, from the `harness.stacks` entry-point group (built-in ones too)."""


from harness.plugins import load, registered
from harness.specbase import StackSpecBase

GROUP = "harness.stacks"
_BUILTIN = {
    "triton": "harness.triton.spec:TritonSpec",
    "external": "harness.stacks.external_spec:ExternalSpec",
    "container": "harness.containers.spec:ContainerSpec",
    "container_external": "harness.containers.external_spec:ContainerExternalSpec",
    "torchserve": "harness.torchserve.spec:TorchServeSpec",
    "dynamo": "harness.dynamo.spec:DynamoSpec",
    "vllm": "harness.vllm.spec:VllmSpec",
}


def known_stacks() -> dict[str, str]:
    return registered(GROUP, _BUILTIN)


def stack_spec_classes() -> list[type[StackSpecBase]]:
    """Every registered settings model (imported: spec modules must stay light)."""
    return [load(target, StackSpecBase) for target in known_stacks().values()]
