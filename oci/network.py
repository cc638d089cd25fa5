"""Layer 4, network: a private netns, an nftables createRuntime hook, and Landlock TCP ports.

``apply(spec, section, ctx)`` guarantees the container its own network namespace
(host networking is refused, or replaced by a new empty namespace when the policy says
``isolate``), adds one createRuntime hook, ``iron-nethook --ruleset SCRIPT``
(hooks/nethook/), that loads the section's nftables ruleset into that namespace, and,
where the kernel has Landlock ABI >= 4, restricts TCP connect/bind ports in the Landlock
helper's policy as a second barrier.

An engine-supplied namespace (``{"type": "network", "path": ...}``) is kept and filtered.
The ruleset is rendered here (iron.hooks.nft_ruleset), so an invalid entry fails before
config.json is written and the hook itself only puts the script in place.
"""

from __future__ import annotations

import os

from iron.hooks import nft_ruleset

from . import landlock_policy as ll
from .context import Context
from .decision import Decision
from .errors import IronError, Refused
from .jsonio import copy_tree

LAYER = "network"
ANNOTATION = "io.iron.network.allow"
HOOK_NAME = "iron-nethook"
HOOK_TIMEOUT = 10
HOST_NETNS = ("/proc/1/ns/net", "/proc/self/ns/net")
LANDLOCK_NET_ABI = 4
HOST_NETWORK = ("refuse", "isolate")


def is_host_netns(path: str) -> bool:
    """Whether ``path`` is the host's network namespace: pid 1's or this process's own.

    The one host probe in this module; tests monkeypatch it. pid 1's namespace may be
    unreadable (a protected init); iron's own, the engine's, still counts. A path that
    cannot be read is not the host's (crun fails on it anyway).
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    for host in HOST_NETNS:
        try:
            hst = os.stat(host)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (hst.st_dev, hst.st_ino):
            return True
    return False


def apply(spec: dict, section: dict | None, ctx: Context) -> tuple[dict, list[Decision]]:
    if section is None:
        return spec, []
    annotations = spec.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise IronError("annotations must be an object", field="annotations", got=annotations)
    net, hook_policy, reason = _effective(section, annotations, ctx)
    host_network = section.get("hostNetwork", ctx.policy.host_network)
    if host_network not in HOST_NETWORK:
        raise IronError("unknown hostNetwork setting", field="network.hostNetwork",
                        expected="refuse or isolate", got=host_network)
    out = copy_tree(spec)
    decisions = _private_netns(out, host_network, ctx)
    decisions += _hook(out, nft_ruleset.render(hook_policy), reason, ctx)
    decisions += _landlock(out, net, ctx, mount=True)
    return out, decisions


def apply_exec(process: dict, section: dict | None, ctx: Context) -> tuple[dict, list[Decision]]:
    """The Landlock TCP barrier for an ``exec`` process (its netns and rules are the container's)."""
    if section is None:
        return process, []
    net, _, _ = _effective(section, {}, ctx)
    holder = {"process": copy_tree(process)}
    decisions = _landlock(holder, net, ctx, mount=False)
    return holder["process"], decisions


# --- the policy: profile section + the allow annotation, when the operator permits it ---

def _effective(section: dict, spec_annotations: dict, ctx: Context):
    """Validate the section, merge the annotation; return (parsed policy, policy dict, reason)."""
    net = nft_ruleset.parse_policy(section)
    hook_policy = {"policy": net.policy, "allow": list(section.get("allow") or []),
                   "dns": list(section.get("dns") or []), "inbound": list(section.get("inbound") or [])}
    reason = f"network policy {net.policy}"
    annotations = {**spec_annotations, **(ctx.annotations or {})}
    value = annotations.get(ANNOTATION)
    extra = _annotation_entries(value) if value is not None else []
    if extra:
        field = f"annotations.{ANNOTATION}"
        if not ctx.policy.allow_network_annotation:
            raise Refused(f"annotation {ANNOTATION} may not widen the network allowlist in mode {ctx.mode}",
                          field=field, got=value,
                          hint="remove the annotation, or set allow_network_annotation = true "
                               "in /etc/iron/config.toml")
        for i, entry in enumerate(extra):
            nft_ruleset.parse_allow(entry, f"{field}[{i}]")
        added = [e for e in extra if e not in hook_policy["allow"]]
        hook_policy["allow"] += added
        hook_policy["policy"] = "allowlist"
        net = nft_ruleset.parse_policy(hook_policy)
        reason += f", widened by annotation {ANNOTATION} ({', '.join(added) or 'nothing new'}; " \
                  "permitted by allow_network_annotation)"
    return net, hook_policy, reason


def _annotation_entries(value: object) -> list[str]:
    if not isinstance(value, str):
        raise IronError("annotation must be a string", field=f"annotations.{ANNOTATION}",
                        expected="comma-separated allowlist entries", got=value)
    return [e.strip() for e in value.split(",") if e.strip()]


# --- the namespace ---

def _private_netns(spec: dict, host_network: str, ctx: Context) -> list[Decision]:
    namespaces = spec.setdefault("linux", {}).setdefault("namespaces", [])
    index = next((i for i, ns in enumerate(namespaces)
                  if isinstance(ns, dict) and ns.get("type") == "network"), None)
    if index is None:
        why = "linux.namespaces has no network namespace"
    elif namespaces[index].get("path") and is_host_netns(namespaces[index]["path"]):
        why = f"linux.namespaces network path {namespaces[index]['path']} is the host's network namespace"
    else:
        return []            # a new namespace, or the engine's own: kept, and filtered by the hook
    if host_network == "refuse":
        raise Refused(f"host networking refused in mode {ctx.mode} ({why})",
                      hint="run without --network host / --net-host / hostNetwork: true")
    before = None if index is None else namespaces[index]
    fresh = {"type": "network"}
    if index is None:
        namespaces.append(fresh)
    else:
        namespaces[index] = fresh
    field = "linux.namespaces" if index is None else f"linux.namespaces[{index}]"
    return [Decision(LAYER, field, before, fresh,
                     f"host networking replaced by a new, empty network namespace ({why}; hostNetwork: isolate)")]


# --- the createRuntime hook ---

def is_iron_network_hook(hook: object) -> bool:
    """iron's hook, or the `iron hook network` one earlier versions wrote (replaced on upgrade)."""
    if not isinstance(hook, dict):
        return False
    args = list(hook.get("args") or [])
    return (os.path.basename(str(hook.get("path") or "")) == HOOK_NAME or args[:1] == [HOOK_NAME]
            or args[1:3] == ["hook", "network"])


def _hook(spec: dict, script: str, reason: str, ctx: Context) -> list[Decision]:
    if not ctx.host.network_hook:
        raise IronError("no network hook path", field="host.network_hook",
                        hint="preflight must set HostFacts.network_hook (install iron's hook)")
    hook = {"path": ctx.host.network_hook, "args": [HOOK_NAME, "--ruleset", script], "timeout": HOOK_TIMEOUT}
    hooks = spec.setdefault("hooks", {})
    existing = list(hooks.get("createRuntime") or [])
    ours = [h for h in existing if is_iron_network_hook(h)]
    if ours == [hook]:
        return []
    first = next((i for i, h in enumerate(existing) if is_iron_network_hook(h)), len(existing))
    kept = [h for h in existing if not is_iron_network_hook(h)]
    hooks["createRuntime"] = kept[:first] + [hook] + kept[first:]
    return [Decision(LAYER, "hooks.createRuntime", ours[0] if len(ours) == 1 else (ours or None), hook,
                     f"load the nftables ruleset into the container's network namespace ({reason})")]


# --- Landlock: TCP ports as a second barrier ---

def tcp_ports(net: nft_ruleset.NetworkPolicy) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """(connect, bind) for Landlock; ``None`` leaves that access unrestricted.

    Landlock ports are not per address: an allowlisted port opens it to every address
    (nftables still limits the addresses), loopback included.
    """
    if net.policy == "none":
        return (), ()
    bind = tuple(sorted(set(net.inbound)))
    if any(a.port is None for a in net.allow):
        return None, bind           # some destination is allowed on every port
    connect = {a.port for a in net.allow if a.proto == "tcp"}
    if net.dns:
        connect.add(53)              # DNS over TCP to the resolvers
    return tuple(sorted(connect)), bind


def _landlock(spec: dict, net: nft_ruleset.NetworkPolicy, ctx: Context, *, mount: bool) -> list[Decision]:
    if ctx.host.landlock_abi < LANDLOCK_NET_ABI:
        return []
    connect, bind = tcp_ports(net)
    if connect is None and bind is None:
        return []
    process = spec.get("process")
    if not isinstance(process, dict) or not process.get("args"):
        return []
    if not ctx.host.landlock_helper:
        raise IronError("Landlock ABI >= 4 but no Landlock helper path", field="host.landlock_helper",
                        hint="preflight must set HostFacts.landlock_helper (install iron's helper)")
    args = list(process["args"])
    existing, inner = ll.unwrap(args)
    if existing is None:
        policy = ll.LandlockPolicy(min_abi=LANDLOCK_NET_ABI, tcp_connect=connect, tcp_bind=bind)
    else:                            # keep the filesystem layer's fields; ports only ever narrow
        policy = existing.with_tcp(_narrow(existing.tcp_connect, connect),
                                   _narrow(existing.tcp_bind, bind)).replace(
                                       min_abi=max(existing.min_abi, LANDLOCK_NET_ABI))
    wrapped = ll.wrap(inner, policy)
    decisions = []
    if wrapped != args:
        process["args"] = wrapped
        decisions.append(Decision(LAYER, "process.args", args, wrapped,
                                  f"Landlock TCP ports (connect {_ports(policy.tcp_connect)}, "
                                  f"bind {_ports(policy.tcp_bind)}) as a second barrier behind nftables"))
    if mount:
        decisions += _helper_mount(spec, ctx.host.landlock_helper)
    return decisions


def _helper_mount(spec: dict, helper: str) -> list[Decision]:
    """Exactly one mount at the helper's path, and it is iron's (anything else there is replaced)."""
    want = ll.helper_mount(helper)
    mounts = list(spec.get("mounts") or [])
    at_dest = [m for m in mounts if isinstance(m, dict) and m.get("destination") == ll.HELPER_PATH]
    if at_dest == [want]:
        return []
    kept, placed = [], False
    for m in mounts:
        if isinstance(m, dict) and m.get("destination") == ll.HELPER_PATH:
            if m == want and not placed:
                kept.append(m)
                placed = True
            continue
        kept.append(m)
    if not placed:
        kept.append(want)
    spec["mounts"] = kept
    return [Decision(LAYER, "mounts", at_dest or None, want, "bind-mount the Landlock helper")]


def _narrow(old: tuple[int, ...] | None, new: tuple[int, ...] | None) -> tuple[int, ...] | None:
    if old is None:
        return new
    if new is None:
        return old
    return tuple(sorted(set(old) & set(new)))


def _ports(ports: tuple[int, ...] | None) -> str:
    if ports is None:
        return "any"
    return ",".join(map(str, ports)) or "none"
