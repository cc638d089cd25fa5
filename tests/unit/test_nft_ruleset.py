"""iron.hooks.nft_ruleset: allowlist parsing, section validation, and the rendered nft script."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from iron.hooks.nft_ruleset import parse_allow, parse_policy, render
from iron.oci.errors import IronError
from tests.conftest import require


# --- parse_allow ---

@pytest.mark.parametrize("entry, network, port, proto", [
    ("10.0.0.0/8", "10.0.0.0/8", None, None),
    ("203.0.113.7", "203.0.113.7/32", None, None),
    ("203.0.113.7:443", "203.0.113.7/32", 443, "tcp"),
    ("203.0.113.0/24:443", "203.0.113.0/24", 443, "tcp"),
    ("203.0.113.9:53/udp", "203.0.113.9/32", 53, "udp"),
    ("203.0.113.9:53/UDP", "203.0.113.9/32", 53, "udp"),
    ("203.0.113.9:22/tcp", "203.0.113.9/32", 22, "tcp"),
    ("[2001:db8::1]:443", "2001:db8::1/128", 443, "tcp"),
    ("[2001:db8::/64]:53/udp", "2001:db8::/64", 53, "udp"),
    ("[2001:db8::1]", "2001:db8::1/128", None, None),
    ("2001:db8::/32", "2001:db8::/32", None, None),
    ("2001:db8::1", "2001:db8::1/128", None, None),
    ("  198.18.0.2:7 ", "198.18.0.2/32", 7, "tcp"),
    ("0.0.0.0/0:1", "0.0.0.0/0", 1, "tcp"),
    ("198.18.0.2:65535", "198.18.0.2/32", 65535, "tcp"),
])
def test_parse_allow_valid(entry, network, port, proto):
    allow = parse_allow(entry, "network.allow[0]")
    assert (str(allow.network), allow.port, allow.proto) == (network, port, proto)
    assert allow.field == "network.allow[0]"


@pytest.mark.parametrize("entry, why", [
    ("", "empty"),
    (42, "not a string"),
    (None, "not a string"),
    ("example.com:443", "hostname"),
    ("10.0.0.1/8", "host bits set"),
    ("10.0.0.256", "bad octet"),
    ("10.0.0.0/33", "bad prefix"),
    ("10.0.0.1:0", "port 0"),
    ("10.0.0.1:65536", "port too big"),
    ("10.0.0.1:-1", "negative port"),
    ("10.0.0.1:", "missing port"),
    ("10.0.0.1:http", "named port"),
    ("10.0.0.1:53/icmp", "bad proto"),
    ("10.0.0.1:53/", "empty proto"),
    ("10.0.0.1:1:2", "two ports"),
    ("[2001:db8::1", "unclosed bracket"),
    ("[2001:db8::1]443", "no colon after bracket"),
    ("[2001:db8::1]:", "empty port"),
    ("fe80::1%eth0", "zone id"),
    ("10.0.0.1:٣", "non-ascii digit"),
])
def test_parse_allow_invalid_names_the_field(entry, why):
    with pytest.raises(IronError) as info:
        parse_allow(entry, "network.allow[2]")
    assert str(info.value).startswith("network.allow[2]: "), why
    assert "\n" not in str(info.value)


# --- parse_policy ---

@pytest.mark.parametrize("section, field", [
    ({"policy": "open"}, "network.policy"),
    ({"policy": "allowlist", "allow": "10.0.0.0/8"}, "network.allow"),
    ({"policy": "allowlist", "allow": ["10.0.0.0/8", "nope"]}, "network.allow[1]"),
    ({"policy": "allowlist", "dns": ["10.0.0.0/8"]}, "network.dns[0]"),
    ({"policy": "allowlist", "dns": [53]}, "network.dns[0]"),
    ({"policy": "allowlist", "inbound": [0]}, "network.inbound[0]"),
    ({"policy": "allowlist", "inbound": [8080, True]}, "network.inbound[1]"),
    ({"policy": "allowlist", "inbound": [70000]}, "network.inbound[0]"),
    ({"policy": "none", "allow": ["10.0.0.1:80"]}, "network.allow"),
    ({"policy": "none", "dns": ["10.0.0.53"]}, "network.dns"),
    ({"policy": "none", "inbound": [80]}, "network.inbound"),
    ({"policy": "none", "alow": []}, "network.alow"),
])
def test_parse_policy_invalid(section, field):
    with pytest.raises(IronError) as info:
        parse_policy(section)
    assert str(info.value).startswith(f"{field}: ")


def test_parse_policy_defaults_to_none_and_accepts_the_profile_keys():
    assert parse_policy({}).policy == "none"
    net = parse_policy({"policy": "none", "allow": [], "dns": [], "inbound": [], "hostNetwork": "refuse"})
    assert (net.policy, net.allow, net.dns, net.inbound) == ("none", (), (), ())


# --- render ---

PREAMBLE = ["table inet iron {}", "delete table inet iron", "table inet iron {"]


def chain(script: str, name: str) -> list[str]:
    lines = [ln.strip() for ln in script.splitlines()]
    start = lines.index(f"chain {name} {{")
    end = lines.index("}", start)
    return lines[start + 1:end]


def accepts(rules: list[str]) -> list[str]:
    return [r for r in rules if " accept" in f" {r}"]


def test_render_replaces_the_table_atomically_in_one_script():
    script = render({"policy": "none"})
    assert script.splitlines()[:3] == PREAMBLE
    assert script.count("table inet iron {") == 2     # the declaration and the definition
    assert script.endswith("}\n")


def test_render_custom_table_name():
    script = render({"policy": "none"}, table="iron_test")
    assert script.splitlines()[:2] == ["table inet iron_test {}", "delete table inet iron_test"]


@pytest.mark.parametrize("table", ["", "1abc", "a b", "iron;flush ruleset", "x" * 40, None])
def test_render_rejects_bad_table_names(table):
    with pytest.raises(IronError):
        render({"policy": "none"}, table=table)


def test_render_none_drops_all_but_loopback():
    script = render({"policy": "none", "allow": [], "dns": [], "inbound": []})
    out, inp, fwd = chain(script, "output"), chain(script, "input"), chain(script, "forward")
    for rules, hook in ((out, "output"), (inp, "input"), (fwd, "forward")):
        assert rules[0] == f"type filter hook {hook} priority filter; policy drop;"
    assert accepts(out) == ['oif "lo" accept']
    assert accepts(inp) == ['iif "lo" accept', "ct state established,related accept"]
    assert fwd == ["type filter hook forward priority filter; policy drop;"]


def test_render_allowlist_rules_and_their_order():
    script = render({"policy": "allowlist",
                     "allow": ["198.18.0.2:7", "198.18.0.9:53/udp", "198.19.0.0/16", "[fd00:1e0::2]:443"],
                     "dns": ["198.18.0.3", "fd00:1e0::3"], "inbound": [8080, 22, 8080]})
    out = chain(script, "output")
    assert out[1:4] == ['oif "lo" accept', "ct state invalid drop", "ct state established,related accept"]
    position = {rule: i for i, rule in enumerate(out)}
    metadata = next(r for r in out if "169.254.169.254" in r)
    link4 = next(r for r in out if "169.254.0.0/16" in r)
    link6 = next(r for r in out if "fe80::/10" in r)
    first_allow = min(i for r, i in position.items() if "network.allow" in r or "network.dns" in r)
    assert max(position[metadata], position[link4], position[link6]) < first_allow
    assert all(r.endswith(f'drop comment "{c}"') for r, c in ((metadata, "cloud metadata address"),
                                                               (link4, "IPv4 link-local"),
                                                               (link6, "IPv6 link-local")))
    assert 'ip daddr 198.18.0.2 tcp dport 7 accept comment "network.allow[0]"' in out
    assert 'ip daddr 198.18.0.9 udp dport 53 accept comment "network.allow[1]"' in out
    assert 'ip6 daddr fd00:1e0::2 tcp dport 443 accept comment "network.allow[3]"' in out
    assert ('ip daddr { 198.18.0.3 } meta l4proto { tcp, udp } th dport 53 accept comment "network.dns"'
            in out)
    assert ('ip6 daddr { fd00:1e0::3 } meta l4proto { tcp, udp } th dport 53 accept comment "network.dns"'
            in out)
    # DNS to anyone else is dropped before any port-less (every protocol) entry applies.
    dns_drop = position['meta l4proto { tcp, udp } th dport 53 drop comment "DNS only to network.dns"']
    assert position['ip daddr 198.18.0.9 udp dport 53 accept comment "network.allow[1]"'] < dns_drop
    assert dns_drop < position['ip daddr 198.19.0.0/16 accept comment "network.allow[2]"']
    # IPv6 destinations need neighbour discovery; on-link only.
    nd = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept"
    assert nd in out and nd in chain(script, "input")
    inp = chain(script, "input")
    assert 'tcp dport { 22, 8080 } ct state new accept comment "network.inbound"' in inp
    assert accepts(inp)[:2] == ['iif "lo" accept', "ct state established,related accept"]


def test_render_allowlist_without_ipv6_has_no_neighbour_discovery():
    script = render({"policy": "allowlist", "allow": ["198.18.0.2:7"]})
    assert "icmpv6" not in script
    assert not any("dport {" in r for r in chain(script, "input"))


def test_inbound_ports_need_neighbour_discovery():
    script = render({"policy": "allowlist", "inbound": [8080]})
    nd = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept"
    assert nd in chain(script, "input") and nd in chain(script, "output")
    assert "router" not in script


def test_icmp_only_to_portless_entries():
    out = chain(render({"policy": "allowlist", "allow": ["198.18.0.2:7", "198.18.0.4"]}), "output")
    protocol_free = [r for r in accepts(out) if "dport" not in r and "ct state" not in r and '"lo"' not in r]
    assert protocol_free == ['ip daddr 198.18.0.4 accept comment "network.allow[1]"']


@pytest.mark.parametrize("allow, dropped, kept_open", [
    # Nothing listed: all three dropped.
    (["0.0.0.0/0:443"], {"169.254.169.254", "169.254.0.0/16", "fe80::/10"}, set()),
    # The metadata address, listed: its drop goes, the link-local drop excepts it.
    (["169.254.169.254:80"], {"169.254.0.0/16", "fe80::/10"}, {"169.254.169.254"}),
    # All of IPv4 link-local listed: the metadata address still needs its own entry.
    (["169.254.0.0/16"], {"169.254.169.254", "fe80::/10"}, set()),
    # One link-local host listed.
    (["169.254.10.1:80", "[fe80::1]:22"], {"169.254.169.254", "169.254.0.0/16", "fe80::/10"},
     {"169.254.10.1", "fe80::1"}),
    (["fe80::/10"], {"169.254.169.254", "169.254.0.0/16"}, set()),
])
def test_link_local_and_metadata_dropped_unless_listed(allow, dropped, kept_open):
    out = chain(render({"policy": "allowlist", "allow": allow}), "output")
    drops = [r for r in out if r.endswith('"cloud metadata address"') or "link-local" in r]
    found = {r.split()[2] for r in drops}
    assert found == dropped
    for addr in kept_open:
        assert any(f"daddr != {{ {addr} }}" in r for r in drops), (addr, drops)


def test_render_is_deterministic():
    policy = {"policy": "allowlist", "allow": ["10.0.0.0/8", "[2001:db8::1]:443"], "dns": ["10.0.0.53"]}
    assert render(policy) == render(dict(policy))


def test_render_validates_first():
    with pytest.raises(IronError, match=r"network\.allow\[0\]"):
        render({"policy": "allowlist", "allow": ["10.0.0.1:99999"]})


# --- the scripts load (checked by nft itself in a throwaway network namespace) ---

SAMPLES = [
    {"policy": "none"},
    {"policy": "allowlist"},
    {"policy": "allowlist", "allow": ["198.18.0.2:7", "198.18.0.9:53/udp", "198.19.0.0/16",
                                       "[fd00:1e0::2]:443", "fd00::/64", "169.254.169.254:80",
                                       "169.254.7.0/24"],
     "dns": ["198.18.0.3", "fd00:1e0::3"], "inbound": [22, 8080]},
]


@pytest.mark.parametrize("policy", SAMPLES, ids=["none", "empty-allowlist", "full-allowlist"])
def test_nft_accepts_the_script(policy):
    nft, unshare = shutil.which("nft"), shutil.which("unshare")
    require(os.geteuid() == 0 and nft is not None and unshare is not None,
            "needs root, nft and unshare (checks the script in a new network namespace)")
    done = subprocess.run([unshare, "--net", nft, "-c", "-f", "-"], input=render(policy),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
