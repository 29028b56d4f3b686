"""Which packages a stack kind's server comes from, and the versions asked for.

A stack kind declares its server's package(s) on its settings class, next to its roles:
`SERVER_PACKAGES: ClassVar[tuple[str, ...]] = ("torchserve", "torch-model-archiver")`. The
matrix reads that and nothing else: it names no stack, and a kind that declares nothing
(an external endpoint: the harness does not install its server) cannot be put in a matrix.
"""

from collections.abc import Sequence

from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from harness.errors import UsageError
from harness.specbase import StackSpecBase

ATTRIBUTE = "SERVER_PACKAGES"


def server_packages(spec: type[StackSpecBase] | StackSpecBase, kind: str) -> tuple[str, ...]:
    declared = spec.SERVER_PACKAGES
    if not declared:
        raise UsageError(f"stack kind {kind!r} declares no server package ({ATTRIBUTE} on its settings "
                         "class): the harness does not install its server, so there is no version to vary")
    if isinstance(declared, str) or not all(isinstance(p, str) and p for p in declared):
        raise UsageError(f"stack kind {kind!r}: {ATTRIBUTE} must be a tuple of package names, "
                         f"got {declared!r}")
    return tuple(declared)


def parse_versions(given: Sequence[str]) -> list[str]:
    """`--versions 0.10.0 0.11.0` or `--versions 0.10.0,0.11.0`: each a version pip can pin, none twice."""
    versions = [part.strip() for text in given for part in text.split(",")]
    if not given or not any(versions):
        raise UsageError("--versions: give at least one version (e.g. --versions 0.11.0 0.12.0)")
    seen: dict[str, str] = {}
    for text in versions:
        if not text:
            raise UsageError(f"--versions {' '.join(given)}: an empty entry (a stray comma?)")
        try:
            Version(text)
        except InvalidVersion:
            raise UsageError(f"--versions: {text!r} is not a version (e.g. 0.11.0)") from None
        key = canonicalize_version(text)
        if key in seen:
            raise UsageError(f"--versions: {text!r} is given twice (as {seen[key]!r} already)")
        seen[key] = text
    return versions
