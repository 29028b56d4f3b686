"""Finding the real `tritonserver` that the `nvidia-pytriton` wheel ships, and preparing it.

Facts this relies on (seen on these machines, see shared/STACKS.md): the Python backend needs
the stub for the running Python version inside the backend directory, an absolute
`--backend-directory`, the wheel's libraries on LD_LIBRARY_PATH, and the interpreter's `bin/`
first on PATH so that the stub's embedded Python finds the right `sys.prefix`.
"""

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from harness.errors import StackFailed

INSTALL_HINT = "install it with: pip install nvidia-pytriton==0.7.0"
STUB = "triton_python_backend_stub"


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    backends: Path  # the wheel's read-only backends folder
    stub: Path  # the Python backend stub for this interpreter's version
    libs: Path
    version: str

    @classmethod
    def find(cls) -> "TritonInstall":
        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise StackFailed(f"Triton: the nvidia-pytriton wheel is not installed; {INSTALL_HINT}")
        package = Path(next(iter(spec.submodule_search_locations)))
        root = package / "tritonserver"
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        install = cls(
            binary=root / "bin" / "tritonserver",
            backends=root / "backends",
            stub=root / "python_backend_stubs" / py / STUB,
            libs=package.parent / "nvidia_pytriton.libs",
            version=_wheel_version(),
        )
        for path in (install.binary, install.backends, install.stub):
            if not path.exists():
                raise StackFailed(f"Triton: {path} is missing from the wheel; {INSTALL_HINT}")
        return install

    def backend_dir(self, cache_root: Path) -> Path:
        """A writable copy of the backends with the stub in place, made once and reused."""
        py = f"{sys.version_info.major}.{sys.version_info.minor}"
        target = cache_root / f"triton-backends-{self.version}-py{py}"
        if (target / "python" / STUB).exists():
            return target.resolve()
        staging = cache_root / f".staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(self.backends, staging, ignore=shutil.ignore_patterns("__pycache__"))
        stub = staging / "python" / STUB
        shutil.copy2(self.stub, stub)
        stub.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:  # another run made it first
            shutil.rmtree(staging, ignore_errors=True)
        return target.resolve()

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [str(self.libs), env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = ":".join(p for p in libs if p)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = ":".join(p for p in [bin_dir, env.get("PATH", "")] if p)
        return env


def _wheel_version() -> str:
    try:
        return version("nvidia-pytriton")
    except PackageNotFoundError:
        return "unknown"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "serving-harness"
    path.mkdir(parents=True, exist_ok=True)
    return path
