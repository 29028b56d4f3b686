"""Stack kinds by name, from the `harness.stacks` entry-point group (built-in ones too)."""

from importlib import import_module
from importlib.metadata import entry_points

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
    found = dict(_BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def stack_spec_classes() -> list[type[StackSpecBase]]:
    """Every registered settings model (imported: spec modules must stay light)."""
    classes = []
    for target in known_stacks().values():
        module_name, _, attr = target.partition(":")
        cls = getattr(import_module(module_name), attr)
        if not (isinstance(cls, type) and issubclass(cls, StackSpecBase)):
            raise TypeError(f"{target} is not a StackSpecBase")
        classes.append(cls)
    return classes
