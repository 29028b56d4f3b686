"""Stack kinds by name, from the `harness.stacks` entry-point group (built-in ones too)."""


from harness.plugins import load, registered
from harness.specbase import StackSpecBase

GROUP = "harness.stacks"
_BUILTIN = {
    "triton": "harness.stacks.triton_spec:TritonSpec",
    "external": "harness.stacks.external_spec:ExternalSpec",
    "container": "harness.stacks.container_spec:ContainerSpec",
    "container_external": "harness.stacks.container_external_spec:ContainerExternalSpec",
    "torchserve": "harness.stacks.torchserve_spec:TorchServeSpec",
    "dynamo": "harness.stacks.dynamo_spec:DynamoSpec",
}


def known_stacks() -> dict[str, str]:
    return registered(GROUP, _BUILTIN)


def stack_spec_classes() -> list[type[StackSpecBase]]:
    """Every registered settings model (imported: spec modules must stay light)."""
    return [load(target, StackSpecBase) for target in known_stacks().values()]
