"""iron.hooks.inet accepts and prints exactly what the ipaddress module does (for text without a zone)."""

from __future__ import annotations

import ipaddress
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from iron.hooks import inet

MAPPED_PRINTS_V4 = sys.version_info >= (3, 13)     # 3.13 prints ::ffff:1.2.3.4 for IPv4-mapped addresses


def stdlib(text: str, kind: str):
    try:
        if kind == "network":
            net = ipaddress.ip_network(text, strict=True)
            return net.version, int(net.network_address), net.prefixlen, str(net)
        addr = ipaddress.ip_address(text)
        return addr.version, int(addr), addr.max_prefixlen, f"{addr}/{addr.max_prefixlen}"
    except ValueError:
        return None


def ours(text: str, kind: str):
    try:
        net = inet.ip_network(text) if kind == "network" else inet.ip_address(text)
    except ValueError:
        return None
    return net.version, net.value, net.prefixlen, str(net)


def assert_same(text: str, kind: str) -> None:
    want, got = stdlib(text, kind), ours(text, kind)
    if want and got and MAPPED_PRINTS_V4 and want[0] == 6 and want[1] >> 32 == 0xFFFF:
        want, got = want[:3], got[:3]
    assert got == want, (text, kind)


EDGES = [
    "", ".", ":", "::", ":::", "::1", "1::", "1:::2", "1::2::3", ":1::2", "1::2:", "::2:",
    "0.0.0.0", "255.255.255.255", "256.0.0.0", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1..2.3", "1.2.3.4 ",
    "٣.1.1.1", "1.2.3.0x1", "+1.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8", "1:2:3:4::5:6:7:8", "::ffff:1.2.3.4", "::1.2.3.4", "1.2.3.4::", "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.04", "12345::", "g::", "FFFF::", "0:0:0:0:0:0:0:0", "1:0:0:1:0:0:0:1",
    "1:0:0:0:1:0:0:0", "0:1:0:1:0:1:0:1", "1/8", "10.0.0.0/8", "10.0.0.0/08", "10.0.0.0/33", "10.0.0.0/",
    "10.0.0.0/8/8", "10.0.0.1/8", "10.0.0.0/255.0.0.0", "10.0.0.0/0.255.255.255", "10.0.0.0/255.0.255.0",
    "0.0.0.0/0.0.0.0", "10.0.0.1/255.255.255.255", "10.0.0.0/-8", "10.0.0.0/+8", "10.0.0.0/ 8",
    "2001:db8::/32", "2001:db8::/129", "2001:db8::1/64", "2001:db8::/ffff::", "::/0", "fe80::/10",
    "169.254.169.254/32", "1.2.3.4/٣", "2001:db8::/0128",
]


@pytest.mark.parametrize("text", EDGES)
@pytest.mark.parametrize("kind", ["network", "address"])
def test_edge_cases(text, kind):
    assert_same(text, kind)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEFg:./+-٣ ", max_size=45), st.sampled_from(["network", "address"]))
def test_any_text(text, kind):
    assert_same(text, kind)


def spellings(version: int, value: int) -> st.SearchStrategy[str]:
    """Ways to write an address: as ipaddress prints it, exploded, and (v6) with an IPv4 tail."""
    addr = ipaddress.IPv6Address(value) if version == 6 else ipaddress.IPv4Address(value)
    forms = [str(addr), addr.exploded]
    if version == 6:
        forms.append(":".join(addr.exploded.split(":")[:6]) + ":" + str(ipaddress.IPv4Address(value & 0xFFFFFFFF)))
    return st.sampled_from(forms)


@st.composite
def written_networks(draw) -> str:
    version = draw(st.sampled_from([4, 6]))
    bits = inet.BITS[version]
    value = draw(st.integers(0, (1 << bits) - 1))
    prefixlen = draw(st.integers(0, bits))
    if draw(st.booleans()):                                  # mostly without host bits
        value &= ((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1)
    text = draw(spellings(version, value))
    suffix = draw(st.sampled_from(["", "len", "mask", "hostmask", "junk"]))
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1)
    text += {"": "", "len": f"/{prefixlen}", "mask": f"/{ipaddress.IPv4Address(mask & 0xFFFFFFFF)}",
             "hostmask": f"/{ipaddress.IPv4Address(~mask & 0xFFFFFFFF)}",
             "junk": f"/{draw(st.text(alphabet='0123456789.:f', max_size=16))}"}[suffix]
    if draw(st.booleans()):                                  # then break it a little, maybe
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from(["", ":", ".", "0", "::", "/"])) + text[i + 1:]
    return text


@settings(max_examples=3000, deadline=None)
@given(written_networks(), st.sampled_from(["network", "address"]))
@example("2001:db8:0:0:1:0:0:1/128", "network")
def test_written_networks(text, kind):
    assert_same(text, kind)


@pytest.mark.parametrize("inner, outer, expected", [
    ("169.254.169.254/32", "169.254.0.0/16", True),
    ("169.254.0.0/16", "169.254.169.254/32", False),
    ("10.0.0.0/8", "10.0.0.0/8", True),
    ("10.0.0.0/8", "0.0.0.0/0", True),
    ("12.0.0.0/8", "10.0.0.0/7", False),
    ("11.0.0.0/8", "10.0.0.0/7", True),
    ("fe80::1/128", "fe80::/10", True),
    ("fec0::/10", "fe80::/10", False),
    ("::/0", "0.0.0.0/0", False),
])
def test_subnet_of(inner, outer, expected):
    assert inet.ip_network(inner).subnet_of(inet.ip_network(outer)) is expected
    if ipaddress.ip_network(inner).version == ipaddress.ip_network(outer).version:
        assert ipaddress.ip_network(inner).subnet_of(ipaddress.ip_network(outer)) is expected


def test_networks_are_values():
    a, b = inet.ip_network("10.0.0.0/8"), inet.ip_network("10.0.0.0/255.0.0.0")
    assert a == b and hash(a) == hash(b) and a != inet.ip_network("10.0.0.0/9") and a != "10.0.0.0/8"
    assert repr(a) == "Network('10.0.0.0/8')" and a.address == "10.0.0.0" and a.max_prefixlen == 32
    with pytest.raises(AttributeError):
        a.prefixlen = 9
