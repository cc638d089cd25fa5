"""The nftables ruleset for a container's network namespace, rendered from a profile's network section.

Pure: ``render(policy)`` returns one ``nft -f -`` script and touches nothing. The script
replaces iron's table atomically (``table inet iron {}`` declares it if missing,
``delete table`` drops it, the full definition follows, all in one transaction), so
loading it twice leaves exactly one table.

The network section::

    {"policy": "none" | "allowlist",
     "allow":   ["198.51.100.0/24", "203.0.113.7:443", "203.0.113.9:53/udp", "[2001:db8::1]:443", "2001:db8::/64"],
     "dns":     ["203.0.113.53"],          # resolvers: udp+tcp 53 only to these
     "inbound": [8080],                    # TCP ports the container may accept connections on
     "hostNetwork": "refuse" | "isolate"}  # read by iron.oci.network, not here

An entry with a port is TCP unless it ends in ``/udp``; an entry without a port allows
every protocol (ICMP included) to that network. Link-local networks and the cloud
metadata address are dropped before the allow rules unless an entry names them.
"""

from __future__ import annotations

from iron.hooks import inet
from iron.hooks.inet import Network
from iron.oci.errors import IronError

POLICIES = ("none", "allowlist")
KEYS = ("policy", "allow", "dns", "inbound", "hostNetwork")
ENTRY_FORMS = ("a CIDR or address, optionally with :PORT or :PORT/udp, "
               "e.g. 10.0.0.0/8, 203.0.113.7:443, 203.0.113.9:53/udp, [2001:db8::1]:443")

# Dropped ahead of every allow rule unless an entry lies inside them (the metadata
# address counts as listed only when an entry is that very address).
METADATA = inet.ip_network("169.254.169.254/32")
SPECIAL = (
    (METADATA, "cloud metadata address"),
    (inet.ip_network("169.254.0.0/16"), "IPv4 link-local"),
    (inet.ip_network("fe80::/10"), "IPv6 link-local"),
)

_TABLE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class _Record:
    """A small immutable record. Not a dataclass or NamedTuple: this module runs in the hook on
    every container start, and those would cost it 10-20 ms of imports (typing, inspect, ast)."""

    __slots__ = ()

    def __init__(self, *values):
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        return type(other) is type(self) and other._values() == self._values()

    def __hash__(self):
        return hash(self._values())

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


class Allow(_Record):
    """One allowlist destination. ``port is None``: every protocol and port (ICMP too)."""

    __slots__ = ("network", "port", "proto", "field")   # proto: "tcp" | "udp" with a port, else None

    @property
    def family(self) -> str:
        return "ip" if self.network.version == 4 else "ip6"


class NetworkPolicy(_Record):
    """A validated network section: policy, allow (Allow, ...), dns (host Networks), inbound (ports)."""

    __slots__ = ("policy", "allow", "dns", "inbound")

    @property
    def needs_neighbour_discovery(self) -> bool:
        """IPv6 reaches nothing on-link without NS/NA: needed for v6 destinations and for inbound."""
        return (bool(self.inbound) or any(a.network.version == 6 for a in self.allow)
                or any(r.version == 6 for r in self.dns))


def parse_allow(entry: object, field: str) -> Allow:
    """Parse one allowlist entry; ``field`` (e.g. ``network.allow[2]``) names it in errors."""
    if not isinstance(entry, str) or not entry.strip():
        raise IronError("invalid allowlist entry", field=field, expected=ENTRY_FORMS, got=entry)
    text = entry.strip()
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise IronError("invalid allowlist entry", field=field, expected=ENTRY_FORMS, got=entry)
        port_spec = rest[1:] if rest else None
    elif text.count(":") >= 2:           # a bare IPv6 address or network: no port without brackets
        host, port_spec = text, None
    else:
        host, colon, port_spec = text.partition(":")
        port_spec = port_spec if colon else None
    try:
        if "%" in host:
            raise ValueError("zone ids such as %eth0 are not allowed")
        network = inet.ip_network(host)
    except ValueError as err:
        raise IronError(f"invalid network address ({err})", field=field, expected=ENTRY_FORMS,
                        got=entry) from err
    if port_spec is None:
        return Allow(network, None, None, field)
    port_text, slash, proto = port_spec.partition("/")
    proto = proto.lower() if slash else "tcp"
    if proto not in ("tcp", "udp"):
        raise IronError("invalid protocol in allowlist entry", field=field,
                        expected="tcp or udp after the port, e.g. :53/udp", got=entry)
    return Allow(network, _port(port_text, field, entry), proto, field)


def parse_policy(section: dict, prefix: str = "network") -> NetworkPolicy:
    """Validate a whole network section before anything is built from it."""
    if not isinstance(section, dict):
        raise IronError("the network section must be an object", field=prefix, got=section)
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise IronError("unknown key in the network section", field=f"{prefix}.{unknown[0]}",
                        expected=", ".join(KEYS))
    policy = section.get("policy", "none")
    if policy not in POLICIES:
        raise IronError("unknown network policy", field=f"{prefix}.policy",
                        expected="none or allowlist", got=policy)
    allow = tuple(parse_allow(e, f"{prefix}.allow[{i}]")
                  for i, e in enumerate(_list(section, "allow", prefix)))
    dns = tuple(_resolver(r, f"{prefix}.dns[{i}]") for i, r in enumerate(_list(section, "dns", prefix)))
    inbound = tuple(_port(p, f"{prefix}.inbound[{i}]", p)
                    for i, p in enumerate(_list(section, "inbound", prefix)))
    if policy == "none":
        for key, values in (("allow", allow), ("dns", dns), ("inbound", inbound)):
            if values:
                raise IronError(f"`{key}` entries need policy `allowlist`", field=f"{prefix}.{key}",
                                expected="an empty list with policy none", got=section[key])
    return NetworkPolicy(policy, allow, dns, inbound)


def render(policy: dict, table: str = "iron") -> str:
    """One nft script that atomically replaces ``table inet <table>`` with ``policy``'s rules."""
    if not (isinstance(table, str) and 0 < len(table) <= 32 and table[0].isascii() and table[0].isalpha()
            and set(table) <= _TABLE_CHARS):
        raise IronError("invalid nftables table name", field="table",
                        expected="letters, digits, `_` or `-`, starting with a letter", got=table)
    net = parse_policy(policy)
    if net.policy == "none":
        input_rules = ['iif "lo" accept', "ct state established,related accept"]
        output_rules = ['oif "lo" accept']
    else:
        input_rules, output_rules = _allowlist_rules(net)
    return "\n".join([
        f"table inet {table} {{}}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        f'\tcomment "iron network policy {net.policy}"',
        *_chain("input", input_rules),
        *_chain("forward", []),
        *_chain("output", output_rules),
        "}",
        "",
    ])


def _allowlist_rules(net: NetworkPolicy) -> tuple[list[str], list[str]]:
    # Neighbour discovery: on-link only (hop limit 255), no payload; IPv6 needs it to reach anything.
    # Router advertisements are not accepted: the engine's addresses and routes stay as they are.
    nd_out = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept"
    inbound = [] if not net.inbound else [
        f"tcp dport {_set(str(p) for p in sorted(set(net.inbound)))} ct state new accept "
        f'comment "network.inbound"']
    input_rules = ['iif "lo" accept', "ct state invalid drop", "ct state established,related accept",
                   *([nd_out] if net.needs_neighbour_discovery else []), *inbound]

    output_rules = ['oif "lo" accept', "ct state invalid drop", "ct state established,related accept"]
    if net.needs_neighbour_discovery:
        output_rules.append(nd_out)
    output_rules += _special_drops(net.allow)
    for family, version in (("ip", 4), ("ip6", 6)):
        resolvers = [r.address for r in net.dns if r.version == version]
        if resolvers:
            output_rules.append(f"{family} daddr {_set(resolvers)} meta l4proto {{ tcp, udp }} "
                                f'th dport 53 accept comment "network.dns"')
    for a in net.allow:
        if a.port is not None:
            output_rules.append(f"{a.family} daddr {_addr(a.network)} {a.proto} dport {a.port} accept "
                                f'comment "{a.field}"')
    output_rules.append('meta l4proto { tcp, udp } th dport 53 drop comment "DNS only to network.dns"')
    for a in net.allow:
        if a.port is None:
            output_rules.append(f'{a.family} daddr {_addr(a.network)} accept comment "{a.field}"')
    return input_rules, output_rules


def _special_drops(allow: tuple[Allow, ...]) -> list[str]:
    rules = []
    for special, what in SPECIAL:
        listed = [a.network for a in allow
                  if a.network.version == special.version and a.network.subnet_of(special)]
        if special in listed:
            continue
        family = "ip" if special.version == 4 else "ip6"
        except_listed = f" {family} daddr != {_set(_addr(n) for n in listed)}" if listed else ""
        rules.append(f"{family} daddr {_addr(special)}{except_listed} drop comment \"{what}\"")
    return rules


def _chain(name: str, rules: list[str]) -> list[str]:
    return [f"\tchain {name} {{",
            f"\t\ttype filter hook {name} priority filter; policy drop;",
            *(f"\t\t{r}" for r in rules),
            "\t}"]


def _addr(network: Network) -> str:
    return network.address if network.prefixlen == network.max_prefixlen else str(network)


def _set(items) -> str:
    return "{ " + ", ".join(items) + " }"


def _list(section: dict, key: str, prefix: str) -> list:
    value = section.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise IronError(f"`{key}` must be a list", field=f"{prefix}.{key}", got=value)
    return value


def _port(value: object, field: str, entry: object) -> int:
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise IronError("invalid port", field=field, expected="a port from 1 to 65535", got=entry)
    return value


def _resolver(value: object, field: str) -> Network:
    try:
        if not isinstance(value, str) or "%" in value:
            raise ValueError("not a plain address")
        return inet.ip_address(value.strip())
    except ValueError as err:
        raise IronError("invalid DNS resolver", field=field,
                        expected="an IPv4 or IPv6 address, e.g. 203.0.113.53", got=value) from err
