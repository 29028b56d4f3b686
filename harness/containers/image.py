"""The image containers run from, made locally: no registry is reachable here, and none is needed.

The image is an almost empty root file system (directories, and the links merged-/usr hosts
have) imported with `docker import`. Programs come from the host through read-only bind mounts
at the same paths (`/usr`, `/etc`, the Python installation; the run folder writable; see
`harness.containers.mounts`), so any stack's command line works unchanged inside the container
and the image stays a few kilobytes. It is named by the hash of its contents: built once,
reused by every run.
"""

import hashlib
import io
import os
import tarfile
from pathlib import Path
from typing import Any

REPOSITORY = "serving-harness/host-runtime"
IMAGE_LABEL = "serving-harness.image=host-runtime"

# Directories of the root file system; the sticky, world-writable ones as Linux has them.
_DIRS = {"dev": 0o755, "proc": 0o555, "sys": 0o555, "etc": 0o755, "usr": 0o755, "run": 0o755,
         "var": 0o755, "var/tmp": 0o1777, "tmp": 0o1777, "root": 0o700, "home": 0o755,
         # A real directory even on merged-/usr hosts: Docker mounts its init at /sbin/docker-init,
         # which a symlink into the read-only /usr mount would hide.
         "sbin": 0o755}
# Top-level names that merged-/usr hosts make symlinks into /usr: the same symlinks here.
_USR_LINKS = ("bin", "lib", "lib32", "lib64", "libx32")


def rootfs_tar(host_root: Path = Path("/")) -> bytes:
    """The image's root file system as a tar, byte-for-byte the same for the same host layout."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in sorted(_DIRS.items()):
            tar.addfile(_entry(name, tarfile.DIRTYPE, mode))
        for name in _USR_LINKS:
            host = host_root / name
            if host.is_symlink():
                link = _entry(name, tarfile.SYMTYPE, 0o777)
                link.linkname = os.readlink(host)
                tar.addfile(link)
    return buffer.getvalue()


def _entry(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0  # fixed, so the same files give the same tar and the same image tag
    return info


def image_ref(tar: bytes) -> str:
    return f"{REPOSITORY}:{hashlib.sha256(tar).hexdigest()[:16]}"


def ensure_image(client: Any) -> str:
    """The host-runtime image's reference, imported into the engine if it is not there yet."""
    from docker.errors import ImageNotFound

    tar = rootfs_tar()
    ref = image_ref(tar)
    try:
        client.images.get(ref)
    except ImageNotFound:
        repository, tag = ref.split(":")
        client.api.import_image_from_data(tar, repository=repository, tag=tag,
                                          changes=[f"LABEL {IMAGE_LABEL}"])
    return ref
