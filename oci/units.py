"""Sizes as profiles write them: a byte count, or a number with a unit such as `2GiB` or `512M`.

Units are binary (K = KiB = 1024), as Docker's and podman's `--memory` read them.
"""

from __future__ import annotations

import re

from .errors import IronError

_SHIFT = {"": 0, "B": 0, "K": 10, "M": 20, "G": 30, "T": 40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([KMGTkmgt])(?:i?B)?|B)?\s*$")


def parse_size(value: object, field: str) -> int:
    """Bytes for ``value``; an IronError naming ``field`` when it is not a positive size."""
    if type(value) is int:
        size = value
    else:
        m = _SIZE.match(value) if isinstance(value, str) else None
        if not m:
            raise IronError("bad size", field=field,
                            expected="bytes or a size such as `2GiB` or `512M`", got=value)
        size = int(float(m.group(1)) * (1 << _SHIFT[(m.group(2) or "").upper()]))
    if size <= 0:
        raise IronError("bad size", field=field, expected="a positive size", got=value)
    return size
