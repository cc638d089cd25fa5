"""Sizes as profiles write them: a byte count, or a number with a unit such as `2GiB` or `512M`.

Units are binary (K = KiB = 1024), as Docker's and podman's `--memory` read them.
"""

from __future__ import annotations

from .errors import IronError

_SHIFT = {"": 0, "B": 0, "K": 10, "M": 20, "G": 30, "T": 40}
_UNITS = "KMGTkmgt"


def _parse_text(text: str) -> int | None:
    """``2GiB`` → 2 << 30; None when it is not a size (no regex: `re` costs ms per create)."""
    text = text.strip()
    digits = len(text) - len(text.lstrip("0123456789."))
    number, suffix = text[:digits], text[digits:].lstrip()
    whole, _, fraction = number.partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()) or number.endswith("."):
        return None
    unit = suffix[:1]
    if suffix not in ("", "B") and (unit not in _UNITS or suffix[1:] not in ("", "B", "iB")):
        return None
    return int(float(number) * (1 << _SHIFT[unit.upper() if unit in _UNITS else ""]))


def parse_size(value: object, field: str) -> int:
    """Bytes for ``value``; an IronError naming ``field`` when it is not a positive size."""
    if type(value) is int:
        size = value
    else:
        size = _parse_text(value) if isinstance(value, str) else None
        if size is None:
            raise IronError("bad size", field=field,
                            expected="bytes or a size such as `2GiB` or `512M`", got=value)
    if size <= 0:
        raise IronError("bad size", field=field, expected="a positive size", got=value)
    return size
