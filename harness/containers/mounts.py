"""What a container sees of the host: read-only bind mounts at the same paths, the run folder writable.

Mounting at the same paths is what lets a stack's own command line (absolute paths to the
binary, the model repository, the backends) run unchanged inside the container.
"""

import os
import site
import sys
from dataclasses import dataclass
from pathlib import Path

# The host's programs, libraries and their configuration (read-only): /etc holds the linker's
# cache and the alternatives links (/usr/bin/java points through /etc/alternatives) and
# programs' own settings (Java's security files, certificates). On hosts without merged /usr,
# the top-level program folders too. Docker mounts its own hosts and resolv.conf on top.
_SYSTEM = ("/usr", "/etc", "/bin", "/lib", "/lib32", "/lib64", "/libx32")
# Host variables a program may need inside; the rest of the host's environment stays out of
# the container's configuration (which `docker inspect` shows to anyone with the socket).
_PASSED_ENV = ("PATH", "LD_LIBRARY_PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH",
               "PYTHONHOME", "VIRTUAL_ENV", "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_OFFLINE")


@dataclass(frozen=True)
class BindMount:
    path: str  # the same on the host and in the container
    writable: bool = False


def python_paths() -> list[str]:
    """The running interpreter's installation and environment: stacks start Python programs."""
    paths = {sys.prefix, sys.exec_prefix, os.path.realpath(sys.base_prefix),
             os.path.realpath(sys.base_exec_prefix), os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in site.getsitepackages() if os.path.isdir(p))
    user_site = site.getusersitepackages()
    if site.ENABLE_USER_SITE and os.path.isdir(user_site) and user_site in sys.path:
        paths.add(user_site)
    return sorted(paths)


def command_paths(argv: list[str]) -> list[str]:
    """Absolute paths that exist and that the command names, alone or as `--flag=/path`."""
    found = []
    for arg in argv:
        for candidate in (arg, arg.partition("=")[2]):
            if candidate.startswith("/") and os.path.exists(candidate):
                found.append(os.path.normpath(candidate))
    return found


def plan_mounts(argv: list[str], workdir: Path, extra: list[str]) -> list[BindMount]:
    """Every host path the command needs, each once; nested paths are left to their parent.

    Programs (system, Python, `extra`) are read-only. The run folder and other paths the
    command names outside those (a socket folder, a cache the stack prepared) are writable:
    the stack's processes write there as they would without a container.
    """
    wanted = {p: False for p in _SYSTEM if os.path.isdir(p) and not os.path.islink(p)}
    wanted.update((p, False) for p in [*python_paths(), *(os.path.normpath(p) for p in extra)])
    for path in command_paths(argv):
        wanted.setdefault(path, True)
    mounts = [BindMount(str(workdir.resolve()), writable=True)]
    for path in sorted(wanted, key=len):
        if not any(_inside(path, m.path) for m in mounts):
            mounts.append(BindMount(path, writable=wanted[path]))
    return mounts


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def container_env(env: dict[str, str]) -> dict[str, str]:
    """What the stack set or changed, plus the few host variables programs commonly need."""
    host = os.environ
    return {k: v for k, v in env.items() if k in _PASSED_ENV or host.get(k) != v}
