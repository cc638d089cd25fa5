"""The verify rootfs: busybox-static plus the installed probe, cached by content."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from iron.oci.errors import IronError
from iron.shim import bundlekit
from iron.shim.verify_threats import USR_FILE, VOLUME

PROBE = "/usr/local/lib/iron/iron-probe"


def cached_rootfs(probe: str = PROBE) -> str:
    if not os.access(probe, os.X_OK):
        raise IronError("the threat probe program is not installed", file=probe,
                        hint="run install.sh (it builds tests/probes)")
    busybox = bundlekit.find_busybox()
    digest = hashlib.sha256()
    for path in (busybox, probe):
        with open(path, "rb") as f:
            digest.update(f.read())
    digest.update(f"{USR_FILE} {VOLUME}".encode())
    cache = os.environ.get("IRON_CACHE_DIR", "/var/cache/iron")
    target = os.path.join(cache, f"verify-rootfs-{digest.hexdigest()[:16]}")
    if os.path.isdir(target):
        return target
    os.makedirs(cache, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".verify-rootfs-", dir=cache)
    try:
        bundlekit.build_rootfs(staging, {probe: "/usr/bin/iron-probe"})
        usr_file = os.path.join(staging, USR_FILE.lstrip("/"))
        os.makedirs(os.path.dirname(usr_file), exist_ok=True)
        with open(usr_file, "w") as f:
            f.write("a file under /usr that no container may change\n")
        os.makedirs(os.path.join(staging, VOLUME.lstrip("/")))
        os.chmod(staging, 0o755)
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not os.path.isdir(target):       # another verify won the race: fine
            raise
    return target
