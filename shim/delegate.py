"""The one place iron hands a call to crun: os.execv, so crun owns the process."""

from __future__ import annotations

import os


def missing_error(configured: str):
    from iron.oci.errors import IronError
    if configured:
        return IronError("delegate runtime not found or not executable", file="config.toml",
                         field="runtime", got=configured,
                         hint="install crun (apt-get install crun) or fix `runtime`")
    return IronError("delegate runtime `crun` not found on PATH",
                     hint="install it with `apt-get install crun` or set `runtime` in /etc/iron/config.toml")


def execv(runtime: str, argv: list[str]) -> None:
    """Replace this process with the delegate runtime; argv excludes argv[0]."""
    if not runtime or not os.access(runtime, os.X_OK):
        raise missing_error(runtime)
    os.execv(runtime, [runtime, *argv])
