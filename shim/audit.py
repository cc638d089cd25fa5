"""The audit log: one JSON line per create/exec decision, refusals included."""

from __future__ import annotations

import os
import sys
import time


def record(cfg, mode: str | None, entry: dict) -> None:
    """Append ``entry``. If that fails: fail closed for maximum (or when configured), else warn."""
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
    from iron.oci.jsonio import dumps
    line = (dumps(entry, default=str, compact=True) + "\n").encode()
    path = cfg.audit_log
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, line)   # one write(2) of a line: O_APPEND keeps concurrent lines whole
        finally:
            os.close(fd)
    except OSError as err:
        strict = cfg.audit_on_failure == "fail" or (cfg.audit_on_failure == "auto" and mode == "maximum")
        if strict:
            from iron.oci.errors import IronError
            raise IronError(f"cannot write the audit log: {err.strerror}", file=path,
                            hint="maximum mode fails closed without an audit trail "
                                 "(audit_on_failure in config.toml)") from err
        sys.stderr.write(f"iron: warning: cannot write the audit log `{path}`: {err.strerror}\n")
