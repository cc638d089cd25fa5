"""IPv4 and IPv6 networks for the network hook, parsed without the ipaddress module.

The hook renders its ruleset on every container start, and importing ipaddress (with
the functools and collections it pulls in) was a fifth of the hook's time. This module
accepts what ``ipaddress.ip_network(text, strict=True)`` and ``ipaddress.ip_address(text)``
accept for text without a ``%`` zone (callers refuse zones first) and ``str()`` prints
networks as ipaddress does on Python 3.11; tests/unit/test_inet.py holds it to that.

The grammar, from ipaddress: IPv4 is four decimal octets (ASCII digits, at most three,
no leading zero, at most 255). IPv6 is eight groups of one to four hex digits; one
``::`` may stand for one or more zero groups; the last group may instead be an IPv4
address (two groups). A network is ``ADDRESS[/PREFIX]``: PREFIX is a decimal length,
or for IPv4 also a netmask (``255.0.0.0``) or a hostmask (``0.255.255.255``); with no
PREFIX the network is the one address. The address must have no bits set after the
prefix ("host bits").
"""

from __future__ import annotations

_HEX = frozenset("0123456789abcdefABCDEF")
BITS = {4: 32, 6: 128}


class Network:
    """An IPv4 or IPv6 network; an address is a network with the full prefix length."""

    __slots__ = ("version", "value", "prefixlen")

    def __init__(self, version: int, value: int, prefixlen: int):
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "prefixlen", prefixlen)

    def __setattr__(self, name, value):
        raise AttributeError("Network is immutable")

    @property
    def max_prefixlen(self) -> int:
        return BITS[self.version]

    @property
    def address(self) -> str:
        """The network's first address as text, e.g. ``2001:db8::``."""
        return _v4_text(self.value) if self.version == 4 else _v6_text(self.value)

    def subnet_of(self, other: Network) -> bool:
        """True if every address of this network is in ``other`` (False across versions)."""
        if self.version != other.version or self.prefixlen < other.prefixlen:
            return False
        shift = self.max_prefixlen - other.prefixlen
        return self.value >> shift == other.value >> shift

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"Network('{self}')"

    def __eq__(self, other) -> bool:
        return isinstance(other, Network) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[int, int, int]:
        return self.version, self.value, self.prefixlen


def ip_network(text: str) -> Network:
    """``ADDRESS[/PREFIX]`` as a Network; ValueError says what is wrong."""
    address, slash, prefix = text.partition("/")
    if "/" in prefix:
        raise ValueError(f"only one '/' permitted in {text!r}")
    version, value = _address(address, text)
    prefixlen = _prefixlen(prefix, version, text) if slash else BITS[version]
    if value & ((1 << (BITS[version] - prefixlen)) - 1):
        raise ValueError(f"{text} has host bits set")
    return Network(version, value, prefixlen)


def ip_address(text: str) -> Network:
    """One address (no prefix) as a Network with the full prefix length."""
    if "/" in text:
        raise ValueError(f"unexpected '/' in {text!r}")
    version, value = _address(text, text)
    return Network(version, value, BITS[version])


def _address(text: str, whole: str) -> tuple[int, int]:
    if ":" not in text:
        return 4, _v4_value(text, whole)
    return 6, _v6_value(text, whole)


def _v4_value(text: str, whole: str) -> int:
    octets = text.split(".")
    if len(octets) != 4:
        raise ValueError(f"expected 4 octets in {text!r}")
    value = 0
    for octet in octets:
        if not (octet.isascii() and octet.isdigit()) or len(octet) > 3 or (octet[0] == "0" and octet != "0"):
            raise ValueError(f"invalid octet {octet!r} in {whole!r}")
        if int(octet) > 255:
            raise ValueError(f"octet {octet} (> 255) not permitted in {whole!r}")
        value = value << 8 | int(octet)
    return value


def _v6_value(text: str, whole: str) -> int:
    head, gap, tail = text.partition("::")
    if "::" in tail:
        raise ValueError(f"at most one '::' permitted in {whole!r}")
    # An IPv4 tail may end the text only: in ``tail`` with a ``::``, else in ``head``.
    high = _v6_groups(head, not gap, whole) if head else []
    low = _v6_groups(tail, True, whole) if tail else []
    if len(high) + len(low) > (7 if gap else 8) or (not gap and len(high) != 8):
        raise ValueError(f"expected 8 groups (fewer with '::') in {whole!r}")
    value = 0
    for group in high + [0] * (8 - len(high) - len(low)) + low:
        value = value << 16 | group
    return value


def _v6_groups(text: str, v4_tail: bool, whole: str) -> list[int]:
    """The 16-bit groups of ``text`` (a side of ``::``); an IPv4 address as the last part counts as two."""
    parts = text.split(":")
    groups = []
    if v4_tail and "." in parts[-1]:
        v4 = _v4_value(parts.pop(), whole)
        groups = [v4 >> 16, v4 & 0xFFFF]
    for part in reversed(parts):
        if not part or len(part) > 4 or not _HEX.issuperset(part):
            raise ValueError(f"invalid group {part!r} in {whole!r}")
        groups.insert(0, int(part, 16))
    return groups


def _prefixlen(prefix: str, version: int, whole: str) -> int:
    if prefix.isascii() and prefix.isdigit() and int(prefix) <= BITS[version]:
        return int(prefix)
    if version == 4:
        try:
            mask = _v4_value(prefix, whole)
        except ValueError:
            mask = None
        if mask is not None:
            for candidate in (mask, mask ^ 0xFFFFFFFF):       # a netmask, else a hostmask
                length = _leading_ones(candidate, 32)
                if length is not None:
                    return length
    raise ValueError(f"{prefix!r} is not a valid netmask in {whole!r}")


def _leading_ones(mask: int, bits: int) -> int | None:
    """The number of ones if ``mask`` is ones then zeros (``1*0*``), else None."""
    zeros = (mask & -mask).bit_length() - 1 if mask else bits
    ones = bits - zeros
    return ones if mask >> zeros == (1 << ones) - 1 else None


def _v4_text(value: int) -> str:
    return ".".join(str(value >> shift & 0xFF) for shift in (24, 16, 8, 0))


def _v6_text(value: int) -> str:
    """RFC 5952 form as ipaddress prints it: the first longest run of two or more zero groups is ``::``."""
    groups = [value >> shift & 0xFFFF for shift in range(112, -1, -16)]
    best_start, best_len, start = 0, 0, None
    for i, group in enumerate(groups + [1]):
        if group == 0 and start is None:
            start = i
        elif group != 0 and start is not None:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = None
    text = [f"{g:x}" for g in groups]
    if best_len < 2:
        return ":".join(text)
    return ":".join(text[:best_start]) + "::" + ":".join(text[best_start + best_len:])
