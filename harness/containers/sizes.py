"""What is Docker's own about sizes: its smallest memory limit.

Sizes are read once, by `harness.sizes` (so `2g` is refused here as everywhere). The SDK is
handed integer bytes, never a string: it would read a suffix Docker's way (`g` = GiB, `Gi` not
at all).
"""

from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

from harness.sizes import SIZE_JSON_SCHEMA, exact_size, parse_size

MIN_MEMORY = 6 << 20  # the smallest memory limit Docker accepts


def memory_size(value: object) -> int:
    """A container memory limit in bytes: any size `harness.sizes` reads, at least Docker's minimum."""
    size = parse_size(value)
    if size < MIN_MEMORY:
        raise ValueError(f"memory limit {exact_size(size)} is below Docker's minimum of 6Mi")
    return size


def show_size(size: int) -> str:
    """A limit read back from the engine, as a scenario would write it: `2Gi`, `300M`."""
    return exact_size(size)


# A container's memory limit: a size as everywhere, at least Docker's minimum.
DockerMemory = Annotated[int, BeforeValidator(memory_size),
                         WithJsonSchema(SIZE_JSON_SCHEMA, mode="validation")]
