"""Layer 1, process: namespaces, cgroup limits, capabilities, rlimits, no_new_privs, /proc and /sys.

``apply`` rewrites a container's config.json, ``apply_exec`` the process of an ``exec``.
Both are pure (the input is deep-copied, the host is only read through ``ctx.host``) and
never loosen: the lower limit wins, capability sets are intersected, paths are only ever
added to the masked and read-only lists.

Privileged requests (``--privileged``, ``--device``, ``--pid host``, …) are clamped where
clamping is safe: capabilities, writable /sys and cgroupfs, masked paths, device access.
With ``hostAccess: refuse`` (standard, maximum) what cannot be clamped is refused: joining
the host's pid or ipc namespace, bind-mounting the host's control files (runtime sockets,
/proc, /sys, /dev, /), and an ``exec`` that asks for CAP_SYS_ADMIN.
"""

from __future__ import annotations

import os
import posixpath

from .context import Context
from .decision import Decision
from .errors import IronError, Refused
from .jsonio import copy_tree
from .units import parse_size

LAYER = "process"
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
# Namespaces a container always gets its own of: joining the host's is harmless to refuse
# silently, so a missing entry is added. pid and ipc are refused or kept, as the profile says.
ALWAYS_PRIVATE = ("uts", "mount", "cgroup")
HOST_JOIN = {"pid": "--pid host", "ipc": "--ipc host"}
MASKED = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
          "/sys/firmware", "/sys/devices/virtual/powercap", "/sys/kernel/debug")
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# Device nodes every container gets (runtime-spec "default devices"), as (type, major, minor);
# minor None: any minor (pseudo-terminals).
SAFE_DEVICES = {("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0),
                ("c", 5, 1), ("c", 5, 2), ("c", 136, None)}
# Host files that hand the host to whoever holds them: the engines' sockets and state roots,
# the host's proc, sys, dev and root. A bind of these (or of anything beneath /proc, /sys) is
# refused. Engines bind per-container files from beneath their state roots (resolv.conf,
# hosts, shm), so only the roots themselves are on the list, not what lies under them.
HOST_CONTROL = ("/", "/proc", "/sys", "/dev", "/boot", "/run", "/var/run",
                "/var/run/docker.sock", "/run/docker.sock", "/run/containerd",
                "/run/containerd/containerd.sock", "/var/run/containerd", "/run/podman",
                "/run/podman/podman.sock", "/var/run/podman", "/run/crio", "/run/crio/crio.sock",
                "/var/run/crio", "/var/lib/docker", "/var/lib/containerd", "/var/lib/containers",
                "/etc/iron", "/run/iron")
HOST_CONTROL_TREES = ("/proc", "/sys", "/etc/iron", "/run/iron")
_CPU_PERIOD = 100_000


def apply(spec: dict, section: dict | None, ctx: Context) -> tuple[dict, list[Decision]]:
    """Harden a container's config.json for ``section``; returns the new spec and its decisions."""
    if section is None:
        return spec, []
    sec = _check_section(section)
    spec = copy_tree(spec)
    _require_dict(spec, "linux")
    refuse = sec.get("hostAccess", "allow") == "refuse"
    decisions: list[Decision] = []
    decisions += _namespaces(spec, refuse, ctx)
    if refuse:
        _refuse_host_mounts(spec)
    decisions += _resources(spec, sec)
    decisions += _devices(spec, refuse)
    process = spec.get("process")
    if process is not None:
        if not isinstance(process, dict):
            raise IronError("must be an object", field="process", expected="an object", got=process)
        decisions += _process(process, sec, "process")
    decisions += _root(spec, sec)
    decisions += _path_list(spec, "maskedPaths", MASKED, "hidden from the container")
    decisions += _path_list(spec, "readonlyPaths", READONLY, "read-only in the container")
    decisions += _readonly_kernel_mounts(spec)
    return spec, decisions


def apply_exec(process: dict, section: dict | None, ctx: Context) -> tuple[dict, list[Decision]]:
    """Clamp an ``exec`` process as the container's own: capabilities, no_new_privs, rlimits."""
    if section is None:
        return process, []
    sec = _check_section(section)
    if not isinstance(process, dict):
        raise IronError("the exec process must be an object", field="process",
                        expected="an object", got=process)
    process = copy_tree(process)
    if sec.get("hostAccess") == "refuse" and "CAP_SYS_ADMIN" in _requested_caps(process):
        raise Refused(f"a privileged exec (CAP_SYS_ADMIN) is refused in mode `{ctx.mode}`",
                      field="process.capabilities", hint="drop --privileged from the exec")
    return process, _process(process, sec, "process")


# ---------------------------------------------------------------------------- the section

def _check_section(section: object) -> dict:
    """The profile was schema-checked on load; these checks keep a modifier safe on its own."""
    if not isinstance(section, dict):
        raise IronError("profile section must be an object", field="process",
                        expected="an object", got=section)
    caps = section.get("capabilities")
    if caps is not None and (not isinstance(caps, list) or not all(isinstance(c, str) for c in caps)):
        raise IronError("must be a list of capability names", field="process.capabilities",
                        expected="a list such as [\"CAP_CHOWN\"]", got=caps)
    limits = section.get("limits") or {}
    if not isinstance(limits, dict):
        raise IronError("must be an object", field="process.limits", expected="an object", got=limits)
    return section


# ---------------------------------------------------------------------------- namespaces

def _namespaces(spec: dict, refuse: bool, ctx: Context) -> list[Decision]:
    linux = spec.setdefault("linux", {})
    spaces = linux.setdefault("namespaces", [])
    if not isinstance(spaces, list) or not all(isinstance(n, dict) for n in spaces):
        raise IronError("must be a list of objects", field="linux.namespaces",
                        expected="a list such as [{\"type\": \"pid\"}]", got=spaces)
    for i, n in enumerate(spaces):
        if not isinstance(n.get("type"), str):
            raise IronError("namespace type must be a string", field=f"linux.namespaces[{i}].type",
                            expected="a namespace type such as \"pid\"", got=n.get("type"))
    by_type = {n.get("type"): n for n in spaces}
    decisions = []
    for kind, flag in HOST_JOIN.items():
        entry = by_type.get(kind)
        host = entry is None or _is_host_namespace(kind, entry.get("path"), ctx)
        if host and refuse:
            raise Refused(f"joining the host's {kind} namespace is refused in mode `{ctx.mode}`",
                          field="linux.namespaces", hint=f"drop `{flag}`, or use mode minimal")
    for kind in ALWAYS_PRIVATE:
        if kind not in by_type:
            spaces.append({"type": kind})
            decisions.append(_decision("linux.namespaces", None, {"type": kind},
                                      f"a private {kind} namespace"))
    return decisions


def _is_host_namespace(kind: str, path: object, ctx: Context) -> bool:
    """Does ``path`` name the namespace iron itself runs in (the engine's: the host's)?"""
    if not isinstance(path, str) or not path:
        return False
    own = ctx.host.namespaces.get(kind)
    if own is None:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False          # crun reports a path it cannot open
    return f"{st.st_dev}:{st.st_ino}" == own


# ---------------------------------------------------------------------------- cgroups

def _resources(spec: dict, sec: dict) -> list[Decision]:
    limits = sec.get("limits") or {}
    linux = spec["linux"]
    resources = _require_dict(linux, "resources", field="linux.resources")
    decisions = []
    if "memory" in limits:
        decisions += _memory(resources, parse_size(limits["memory"], "process.limits.memory"))
    if "cpus" in limits:
        decisions += _cpu(resources, limits["cpus"])
    if "pids" in limits:
        pids = _require_dict(resources, "pids", field="linux.resources.pids")
        decisions += _lower(pids, "limit", limits["pids"], "linux.resources.pids.limit",
                            "the profile's process limit")
    return decisions


def _memory(resources: dict, cap: int) -> list[Decision]:
    memory = _require_dict(resources, "memory", field="linux.resources.memory")
    decisions = _lower(memory, "limit", cap, "linux.resources.memory.limit",
                       "the profile's memory limit")
    limit = memory["limit"]
    if memory.get("swap") != limit:
        _int_field(memory, "swap", "linux.resources.memory.swap")
        before = memory.get("swap")
        memory["swap"] = limit   # memory+swap equal to memory: no swap
        decisions.append(_decision("linux.resources.memory.swap", before, limit,
                                  "no swap: memory+swap equals the memory limit"))
    if memory.get("disableOOMKiller"):
        memory["disableOOMKiller"] = False
        decisions.append(_decision("linux.resources.memory.disableOOMKiller", True, False,
                                  "a container over its limit is killed, not left hanging"))
    return decisions


def _cpu(resources: dict, cpus: float) -> list[Decision]:
    cpu = _require_dict(resources, "cpu", field="linux.resources.cpu")
    period = _int_field(cpu, "period", "linux.resources.cpu.period") or _CPU_PERIOD
    quota = _int_field(cpu, "quota", "linux.resources.cpu.quota")
    want = max(1000, int(cpus * period))
    if quota is not None and 0 < quota <= want:
        return []
    before = copy_tree(cpu)
    cpu["quota"] = want
    cpu["period"] = period
    return [_decision("linux.resources.cpu", before, dict(cpu), f"at most {cpus} CPUs")]


def _lower(obj: dict, key: str, cap: int, field: str, why: str) -> list[Decision]:
    """Set ``obj[key]`` to ``cap`` unless the engine already asked for a lower, positive value."""
    current = _int_field(obj, key, field)
    if current is not None and 0 < current <= cap:
        return []
    obj[key] = cap
    return [_decision(field, current, cap, why)]


def _devices(spec: dict, refuse: bool) -> list[Decision]:
    """With hostAccess refuse: only the default device nodes, and cgroup access to no others."""
    if not refuse:
        return []
    linux = spec["linux"]
    decisions = []
    nodes = linux.get("devices")
    if nodes is not None:
        if not isinstance(nodes, list) or not all(isinstance(d, dict) for d in nodes):
            raise IronError("must be a list of objects", field="linux.devices",
                            expected="a list of device objects", got=nodes)
        kept = [d for d in nodes if _safe_device(d.get("type"), d.get("major"), d.get("minor"))]
        if len(kept) != len(nodes):
            decisions.append(_decision("linux.devices", nodes, kept,
                                      "host devices beyond the defaults are not passed in"))
            linux["devices"] = kept
    resources = linux["resources"]
    rules = resources.get("devices")
    if rules is None:
        rules = []
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise IronError("must be a list of objects", field="linux.resources.devices",
                        expected="a list of device cgroup rules", got=rules)
    deny_all = {"allow": False, "access": "rwm"}
    kept = [deny_all] + [r for r in rules if r != deny_all and (
        r.get("allow") is not True or _safe_device(r.get("type", "a"), r.get("major"), r.get("minor")))]
    if kept != rules:
        decisions.append(_decision("linux.resources.devices", rules, kept,
                                  "device access: none but the default devices"))
        resources["devices"] = kept
    return decisions


def _safe_device(kind, major, minor) -> bool:
    if kind not in ("c", "u") or not all(v is None or isinstance(v, int) for v in (major, minor)):
        return False
    return ("c", major, minor) in SAFE_DEVICES or ("c", major, None) in SAFE_DEVICES


# ---------------------------------------------------------------------------- the process

def _process(process: dict, sec: dict, prefix: str) -> list[Decision]:
    decisions = []
    allowed = sec.get("capabilities")
    if allowed is not None:
        decisions += _capabilities(process, set(allowed), prefix)
    if sec.get("noNewPrivileges") and process.get("noNewPrivileges") is not True:
        decisions.append(_decision(f"{prefix}.noNewPrivileges", process.get("noNewPrivileges"),
                                  True, "setuid binaries cannot gain privileges"))
        process["noNewPrivileges"] = True
    decisions += _rlimits(process, sec, prefix)
    if "oomScoreAdj" in sec:
        current = _int_field(process, "oomScoreAdj", f"{prefix}.oomScoreAdj")
        if current is None or current < sec["oomScoreAdj"]:
            process["oomScoreAdj"] = sec["oomScoreAdj"]
            decisions.append(_decision(f"{prefix}.oomScoreAdj", current, sec["oomScoreAdj"],
                                      "under host memory pressure the agent goes first"))
    return decisions


def _capabilities(process: dict, allowed: set[str], prefix: str) -> list[Decision]:
    caps = process.get("capabilities")
    if caps is None:
        return []
    field = f"{prefix}.capabilities"
    if not isinstance(caps, dict):
        raise IronError("must be an object", field=field,
                        expected="an object of capability sets", got=caps)
    decisions = []
    for name in CAP_SETS:
        current = caps.get(name)
        if current is None:
            continue
        if not isinstance(current, list) or not all(isinstance(c, str) for c in current):
            raise IronError("must be a list of capability names", field=f"{field}.{name}",
                            expected="a list of strings", got=current)
        kept = [c for c in current if c in allowed]
        if kept != current:
            caps[name] = kept
            decisions.append(_decision(f"{field}.{name}", current, kept,
                                      "capabilities outside the profile's list are dropped"))
    return decisions


def _requested_caps(process: dict) -> set[str]:
    caps = process.get("capabilities")
    if not isinstance(caps, dict):
        return set()
    return {c for name in CAP_SETS for c in (caps.get(name) or []) if isinstance(c, str)}


def _rlimits(process: dict, sec: dict, prefix: str) -> list[Decision]:
    field = f"{prefix}.rlimits"
    rlimits = process.get("rlimits")
    if rlimits is None:
        rlimits = []
    if not isinstance(rlimits, list) or not all(isinstance(r, dict) for r in rlimits):
        raise IronError("must be a list of objects", field=field,
                        expected="a list such as [{\"type\": \"RLIMIT_NOFILE\", ...}]", got=rlimits)
    before = copy_tree(rlimits)
    caps = {"RLIMIT_CORE": 0}       # no core dumps: they write memory to the host's disk
    nofile = (sec.get("limits") or {}).get("nofile")
    if nofile is not None:
        caps["RLIMIT_NOFILE"] = nofile
    for kind, cap in caps.items():
        entries = [r for r in rlimits if r.get("type") == kind]
        if not entries:
            rlimits.append({"type": kind, "hard": cap, "soft": cap})
        for entry in entries:
            hard = _int_field(entry, "hard", f"{field}[{kind}].hard")
            soft = _int_field(entry, "soft", f"{field}[{kind}].soft")
            hard = cap if hard is None else min(hard, cap)
            entry["hard"], entry["soft"] = hard, hard if soft is None else min(soft, hard)
    if rlimits == before and process.get("rlimits") is not None:
        return []
    process["rlimits"] = rlimits
    return [_decision(field, before, copy_tree(rlimits),
                      "no core dumps; open files capped by the profile")]


# ---------------------------------------------------------------------------- filesystem view

def _root(spec: dict, sec: dict) -> list[Decision]:
    if not sec.get("readonlyRootfs"):
        return []
    root = spec.get("root")
    if not isinstance(root, dict):
        raise IronError("a read-only root needs a root", field="root",
                        expected="an object with path", got=root)
    if root.get("readonly") is True:
        return []
    before = root.get("readonly")
    root["readonly"] = True
    return [_decision("root.readonly", before, True, "the profile asks for a read-only root")]


def _path_list(spec: dict, key: str, defaults: tuple[str, ...], why: str) -> list[Decision]:
    linux = spec["linux"]
    current = linux.get(key)
    if current is None:
        current = []
    if not isinstance(current, list) or not all(isinstance(p, str) for p in current):
        raise IronError("must be a list of paths", field=f"linux.{key}",
                        expected="a list of strings", got=current)
    missing = [p for p in defaults if p not in current]
    if not missing:
        return []
    linux[key] = current + missing
    return [_decision(f"linux.{key}", current, linux[key], f"kernel interfaces {why}")]


def _readonly_kernel_mounts(spec: dict) -> list[Decision]:
    """/sys and the cgroup filesystem are mounted read-only, whatever the engine asked."""
    mounts = spec.get("mounts") or []
    if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
        raise IronError("must be a list of objects", field="mounts", expected="a list", got=mounts)
    decisions = []
    for i, mount in enumerate(mounts):
        if mount.get("type") not in ("sysfs", "cgroup", "cgroup2"):
            continue
        options = mount.get("options") or []
        if not isinstance(options, list):
            raise IronError("must be a list of strings", field=f"mounts[{i}].options", got=options)
        if "ro" in options and "rw" not in options:
            continue
        kept = [o for o in options if o != "rw"] + ["ro"]
        decisions.append(_decision(f"mounts[{i}].options", options, kept,
                                  f"{mount.get('destination')} is read-only"))
        mount["options"] = kept
    return decisions


def _refuse_host_mounts(spec: dict) -> None:
    mounts = spec.get("mounts") or []
    if not isinstance(mounts, list):
        raise IronError("must be a list of objects", field="mounts", expected="a list", got=mounts)
    for i, mount in enumerate(mounts):
        if not isinstance(mount, dict):
            continue
        options = mount.get("options") or []
        if not isinstance(options, list):
            raise IronError("must be a list of strings", field=f"mounts[{i}].options", got=options)
        bind = mount.get("type") in (None, "bind", "rbind") or "bind" in options or "rbind" in options
        source = mount.get("source")
        if not bind or not isinstance(source, str) or not source.startswith("/"):
            continue
        path = posixpath.normpath(source)
        if path in HOST_CONTROL or any(path.startswith(t + "/") for t in HOST_CONTROL_TREES):
            raise Refused(f"bind-mounting the host's {path} gives the container the host",
                          field=f"mounts[{i}].source",
                          hint="remove the volume, or use mode minimal")


# ---------------------------------------------------------------------------- helpers

def _require_dict(obj: dict, key: str, *, field: str | None = None) -> dict:
    value = obj.get(key)
    if value is None:
        value = obj[key] = {}
    if not isinstance(value, dict):
        raise IronError("must be an object", field=field or key, expected="an object", got=value)
    return value


def _int_field(obj: dict, key: str, field: str) -> int | None:
    value = obj.get(key)
    if value is not None and type(value) is not int:
        raise IronError("must be an integer", field=field, expected="an integer", got=value)
    return value


def _decision(field: str, before, after, reason: str) -> Decision:
    return Decision(LAYER, field, copy_tree(before), copy_tree(after), reason)
