"""Errors where engines look for them: stderr, and runc's --log file in its --log-format."""

from __future__ import annotations

import os
import sys
import time


def _rfc3339() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


def report_error(message: str, log: str | None, log_format: str) -> None:
    """One line on stderr; the same line appended to the runc log when the engine gave one."""
    line = f"iron: {message}"
    sys.stderr.write(line + "\n")
    if not log:
        return
    if log_format == "json":
        import json
        entry = json.dumps({"level": "error", "msg": line, "time": _rfc3339()}) + "\n"
    else:
        entry = f"{_rfc3339()} error: {line}\n"
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, entry.encode())
        finally:
            os.close(fd)
    except OSError as err:
        sys.stderr.write(f"iron: cannot write runc log `{log}`: {err.strerror}\n")
