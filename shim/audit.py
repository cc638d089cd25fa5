"""The audit log: one JSON line per create/exec decision, refusals included."""

from __future__ import annotations

import os
import sys
import time

WARNED = -1     # open_log's answer when it could not open the log and only warned


def open_log(cfg, mode: str | None) -> int:
    """The log, opened for appending before iron changes anything, so that a log it cannot
    write refuses a strict create while config.json is still untouched. If that fails: fail
    closed for maximum (or when configured), else warn and return WARNED."""
    path = cfg.audit_log
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as err:
        _failed(cfg, mode, err)
        return WARNED


def record(cfg, mode: str | None, entry: dict, log: int | None = None) -> None:
    """Append ``entry`` to ``log`` (from open_log; None: open it here), then close it."""
    if log is None:
        log = open_log(cfg, mode)
    if log == WARNED:
        return
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **entry}
    from iron.oci.jsonio import dumps
    line = (dumps(entry, default=str, compact=True) + "\n").encode()
    try:
        os.write(log, line)   # one write(2) of a line: O_APPEND keeps concurrent lines whole
    except OSError as err:
        _failed(cfg, mode, err)
    finally:
        os.close(log)


def _failed(cfg, mode: str | None, err: OSError) -> None:
    strict = cfg.audit_on_failure == "fail" or (cfg.audit_on_failure == "auto" and mode == "maximum")
    if strict:
        from iron.oci.errors import IronError
        raise IronError(f"cannot write the audit log: {err.strerror}", file=cfg.audit_log,
                        hint="maximum mode fails closed without an audit trail "
                             "(audit_on_failure in config.toml)") from err
    sys.stderr.write(f"iron: warning: cannot write the audit log `{cfg.audit_log}`: {err.strerror}\n")
