"""What an environment's interpreter sees of some distributions: run as `python -m harness.matrix.probe
NAME...` with the interpreter in question, it prints one JSON object on stdout.

Per name: the version found, the folder it was found in (which entry of sys.path won), and its
requirements that this environment does not meet (markers evaluated, extras left out). Light on
purpose: it runs once per environment before any run, and must import nothing of the harness's.
"""

import json
import sys
from importlib import metadata
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement


def unmet(dist: metadata.Distribution) -> list[str]:
    """The distribution's requirements that no distribution on this sys.path satisfies."""
    out = []
    for text in dist.requires or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra's, or another platform's
        try:
            found = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            out.append(str(req))
            continue
        if req.specifier and not req.specifier.contains(found, prereleases=True):
            out.append(str(req))
    return out


def probe(names: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            found[name] = None
            continue
        location = dist.locate_file("")
        found[name] = {"version": dist.version, "location": str(location), "unmet": unmet(dist)}
    return {"executable": sys.executable, "packages": found}


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1:])))
