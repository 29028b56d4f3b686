"""One cached environment per server version: made once, complete or not at all, shared safely.

An environment is a venv (no pip of its own) whose site-packages holds only the server
package(s) at one version, and a `.pth` file that adds the harness's own site-packages after it
(`site.addsitedir`, so the `.pth` files there, the harness's editable install among them, are read
too). Its interpreter therefore finds the harness and every other dependency where they are, and
the server package in its own folder first: nothing is installed globally, nothing is copied.

Installing: the harness's pip (`pip --python VENV/bin/python`) puts the pinned packages in with
`--no-deps --ignore-installed` (the harness's own copy of the same package would otherwise
"satisfy" the pin and nothing would land in the venv). Then the version's requirements are
checked in the layered environment: those it does not meet, and that the harness's own install
of that package meets (a gap the harness lives with, such as ai-dynamo's `aisimulate`, is not
this version's), are installed into the venv with pip's resolver, the harness's packages
counting as installed.

The cache: `<root>/<python>-<hash of the harness's site-packages>/<package>-<version>/`; the root
is `--env-dir`, else `$XDG_CACHE_HOME/serving-harness/matrix` (else `~/.cache/...`). The hash
keeps two harness installs from sharing an environment whose `.pth` points at the other's. An
environment is built in a temporary folder beside its place and renamed into place when it is
complete, under an exclusive lock on `<name>.lock` (fcntl): a second matrix waits and then
finds it made; a failed or killed install leaves no folder under the final name, and its
temporary folder is removed by the next install of that version.
"""

import fcntl
import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
import time
import venv
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError

MARKER = "matrix-env.json"  # written last, before the rename: what the environment holds
LAYER_PTH = "zz-serving-harness-base.pth"  # `zz`: read after anything pip puts in the venv
PIP_TIMEOUT_S = 1800  # a large wheel (pytriton's are hundreds of MB) on a slow index


class MatrixError(UsageError):
    """A version that cannot be had: pip cannot find or install it, or it does not win on sys.path."""


@dataclass(frozen=True)
class VersionEnv:
    path: Path
    packages: tuple[str, ...]
    version: str
    install_s: float | None  # None: it was in the cache already
    size_bytes: int
    extra: tuple[str, ...] = ()  # requirements of this version installed beside it

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def cache_root(env_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env_dir is not None:
        return env_dir.expanduser().resolve()
    base = env.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "serving-harness" / "matrix"


def base_sites() -> list[str]:
    """The harness's site-packages folders, in the order its interpreter reads them."""
    return [p for p in site.getsitepackages() if Path(p).is_dir()]


def base_tag(sites: Sequence[str] | None = None) -> str:
    sites = base_sites() if sites is None else sites
    digest = hashlib.sha256("\n".join(sites).encode()).hexdigest()[:10]
    return f"py{sys.version_info.major}{sys.version_info.minor}-{digest}"


def env_name(packages: Sequence[str], version: str) -> str:
    return f"{packages[0]}-{version}"


def env_path(root: Path, packages: Sequence[str], version: str) -> Path:
    return root / base_tag() / env_name(packages, version)


def pins(packages: Sequence[str], version: str) -> list[str]:
    """Every declared package at the one version: they are released together."""
    return [f"{name}=={version}" for name in packages]


def site_packages(env: Path) -> Path:
    return env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def layer_lines(sites: Sequence[str]) -> str:
    # One `import` line: a .pth runs lines that start with `import`, and addsitedir (unlike a plain
    # path line) also reads the .pth files of the folder it adds.
    return "import site; " + "; ".join(f"site.addsitedir({s!r})" for s in sites) + "\n"


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if we are killed
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_env(root: Path, packages: Sequence[str], version: str, *, log: Any = None) -> VersionEnv:
    """The environment of `version`, from the cache or installed now (MatrixError: it cannot be)."""
    packages = tuple(packages)
    final = env_path(root, packages, version)
    with locked(final.with_name(final.name + ".lock")):
        if (final / MARKER).is_file():
            return _cached(final, packages, version)
        if final.exists():  # not ours (no marker): never made by a matrix; refuse to guess
            raise MatrixError(f"{final}: exists but is not a matrix environment (no {MARKER}); remove it")
        for stale in final.parent.glob(f".{final.name}.tmp-*"):  # a killed install's: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        started = time.monotonic()
        try:
            extra = _install(tmp, packages, version, log)
            size = folder_size(tmp)
            seconds = round(time.monotonic() - started, 1)
            (tmp / MARKER).write_text(json.dumps({
                "packages": list(packages), "version": version, "extra": list(extra),
                "install_s": seconds, "size_bytes": size, "base": base_sites(),
                "python": sys.version.split()[0], "created": time.time(),
            }, indent=2) + "\n", encoding="utf-8")
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return VersionEnv(final, packages, version, seconds, size, tuple(extra))


def _cached(path: Path, packages: tuple[str, ...], version: str) -> VersionEnv:
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = {}
    return VersionEnv(path, packages, version, None, int(marker.get("size_bytes") or folder_size(path)),
                      tuple(marker.get("extra") or ()))


def _install(tmp: Path, packages: tuple[str, ...], version: str, log: Any) -> tuple[str, ...]:
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(tmp)
    (site_packages(tmp) / LAYER_PTH).write_text(layer_lines(base_sites()), encoding="utf-8")
    python = tmp / "bin" / "python"
    _say(log, f"matrix: installing {' '.join(pins(packages, version))} into {tmp.parent}/")
    pip(python, ["--no-deps", "--ignore-installed", *pins(packages, version)], f"{packages[0]} {version}")
    extra = missing_requirements(probe(python, packages), probe(Path(sys.executable), packages))
    if extra:
        _say(log, f"matrix: {packages[0]} {version} also needs {', '.join(extra)}: installing it beside")
        pip(python, list(extra), f"{packages[0]} {version}'s requirements")
    check_wins(probe(python, packages), packages, version, tmp)
    return tuple(extra)


def pip(python: Path, args: list[str], what: str) -> None:
    argv = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
            "--disable-pip-version-check", "--no-input", "--no-warn-conflicts", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise MatrixError(f"{what}: pip did not finish in {PIP_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise MatrixError(f"{what}: pip could not install it: {pip_error(done.stderr)}")


def pip_error(stderr: str) -> str:
    """pip's last `ERROR:` line (`No matching distribution found for torchserve==9.9`), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    return errors[-1] if errors else (lines[-1] if lines else "no message")


def probe(python: Path, packages: Sequence[str]) -> dict[str, Any]:
    """harness.matrix.probe run by `python`: what that interpreter finds of each package."""
    argv = [str(python), "-m", "harness.matrix.probe", *packages]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise MatrixError(f"{python}: cannot import the harness through the layered environment: {last}")
    found: dict[str, Any] = json.loads(done.stdout)["packages"]
    return found


def missing_requirements(layered: Mapping[str, Any], base: Mapping[str, Any]) -> list[str]:
    """What the installed version requires and lacks, less what the harness's own version lacks too."""
    lives_without = {_req_name(r) for info in base.values() if info for r in info.get("unmet") or ()}
    out: list[str] = []
    for info in layered.values():
        for req in (info or {}).get("unmet") or ():
            if _req_name(req) not in lives_without and req not in out:
                out.append(req)
    return out


def check_wins(found: Mapping[str, Any], packages: Sequence[str], version: str, env: Path) -> None:
    """Each package must resolve to this version, from this environment's own folder."""
    own = site_packages(env).resolve()
    for name in packages:
        info = found.get(name)
        if not info:
            raise MatrixError(f"{name} {version}: installed, but its interpreter does not find it")
        where = Path(info["location"]).resolve()
        if info["version"] != version or where != own:
            raise MatrixError(f"{name} {version}: its interpreter finds {name} {info['version']} in {where}, "
                              f"not {version} in {own}")


def folder_size(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):  # symlinks (bin/python) are not followed
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _req_name(text: str) -> str:
    name = text.split(";", 1)[0]
    for sep in "<>=!~[ (":
        name = name.split(sep, 1)[0]
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _say(log: Any, text: str) -> None:
    print(text, file=log if log is not None else sys.stderr, flush=True)
