"""Layer 3, filesystem: run the entrypoint under the Landlock helper; read-only root; sized tmpfs.

``apply`` rewrites a container's config.json, ``apply_exec`` the process of an ``exec``.
Both are pure (the input is deep-copied), idempotent and never loosen:

- ``process.args`` becomes ``[HELPER_PATH, POLICY, "--", *args]``. Any iron prefix already
  there (iron's own from an earlier pass, or one smuggled in by the engine) is stripped and
  replaced with a policy built from the profile; prefixes are never nested or trusted.
- The helper is bind-mounted read-only as the last mount, so it lands inside the fresh
  ``/dev`` tmpfs and no other mount can shadow it.
- ``root.readonly`` becomes true: Landlock does not cover chmod, chown, xattrs or utime.
- ``/tmp`` and ``/dev/shm`` get a size-capped tmpfs; an engine's tmpfs there is kept with
  the lower size, an engine's bind mount is kept (Landlock still confines it).

The section is validated completely before anything is built from it. A host that cannot
enforce the section (no helper, Landlock ABI too old) is an error: nothing runs weaker.
"""

from __future__ import annotations

import posixpath

from .context import Context, Record
from .decision import Decision
from .errors import IronError, Refused
from .jsonio import copy_tree
from .units import parse_size
from .landlock_policy import HELPER_PATH, LandlockPolicy, check_path, helper_mount, wrap

LAYER = "filesystem"
WRITE_ANNOTATION = "io.iron.fs.write"
_VARIABLES = ("$CWD", "$HOME")
_LISTS = ("read", "write", "execute", "devices")
_TMPFS_OPTIONS = ("nosuid", "nodev", "mode=1777")
_LOOSER_OPTIONS = {"suid": "nosuid", "dev": "nodev"}

# The kernel that first shipped each Landlock ABI, for the hint in the refusal.
_ABI_KERNEL = {1: "5.13", 2: "5.19", 3: "6.2", 4: "6.7", 5: "6.10", 6: "6.12", 7: "6.15"}

_SUFFIX_SHIFT = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"), 16: frozenset("0123456789abcdefABCDEF")}
_PAGE = 4096     # tmpfs nr_blocks unit; the smallest page size, so an estimate never grows


class _Section(Record):
    """A validated ``filesystem`` profile section: ``min_abi`` None when it has no ``landlock``
    part; ``write`` may hold "$CWD" and "$HOME"; ``tmpfs`` holds (destination, bytes)."""

    __slots__ = ("min_abi", "read", "write", "execute", "devices", "tmpfs")

    def __init__(self, min_abi, read, write, execute, devices, tmpfs):
        super().__init__(min_abi=min_abi, read=read, write=write, execute=execute, devices=devices,
                         tmpfs=tmpfs)


# ---------------------------------------------------------------------------- entry points

def apply(spec: dict, section: dict | None, ctx: Context) -> tuple[dict, list[Decision]]:
    """Harden a container's config.json for ``section``; returns the new spec and its decisions."""
    if section is None:
        return spec, []
    sec = _check_section(section)
    spec = copy_tree(spec)
    decisions: list[Decision] = []
    if sec.min_abi is not None:
        _require_host(sec, ctx)
        process = _require_dict(spec, "process")
        policy, notes = _build_policy(sec, process, _annotations(spec, ctx), ctx)
        decisions += notes
        decisions += _wrap_args(process, policy)
        decisions += _readonly_root(spec)
    decisions += _tmpfs_mounts(spec, sec)
    if sec.min_abi is not None:
        decisions += _helper_mount(spec, ctx.host.landlock_helper)
    return spec, decisions


def apply_exec(process: dict, section: dict | None, ctx: Context,
               container_spec: dict) -> tuple[dict, list[Decision]]:
    """Wrap an ``exec`` process with the container's own Landlock policy."""
    if section is None:
        return process, []
    sec = _check_section(section)
    if sec.min_abi is None:
        return process, []
    _require_host(sec, ctx)
    process = copy_tree(process)
    if not isinstance(process, dict):
        raise IronError("the exec process must be an object", field="process",
                        expected="an object", got=process)
    policy, notes = _container_policy(container_spec, sec, process, ctx)
    return process, notes + _wrap_args(process, policy)


# ---------------------------------------------------------------------------- the section

def _check_section(section: object) -> _Section:
    if not isinstance(section, dict):
        raise IronError("profile section must be an object", field="filesystem",
                        expected="an object", got=section)
    unknown = sorted(set(section) - {"landlock", "tmpfs"})
    if unknown:
        raise IronError("unknown key", field=f"filesystem.{unknown[0]}",
                        expected="landlock or tmpfs")
    lists: dict[str, tuple[str, ...]] = {key: () for key in _LISTS}
    min_abi = None
    landlock = section.get("landlock")
    if landlock is not None:
        if not isinstance(landlock, dict):
            raise IronError("must be an object", field="filesystem.landlock",
                            expected="an object", got=landlock)
        unknown = sorted(set(landlock) - {"minAbi", *_LISTS})
        if unknown:
            raise IronError("unknown key", field=f"filesystem.landlock.{unknown[0]}",
                            expected="minAbi, read, write, execute or devices")
        min_abi = landlock.get("minAbi", 1)
        if type(min_abi) is not int or min_abi < 1:
            raise IronError("bad Landlock ABI", field="filesystem.landlock.minAbi",
                            expected="an integer ≥ 1", got=min_abi)
        for key in _LISTS:
            lists[key] = _check_paths(landlock.get(key, []), f"filesystem.landlock.{key}",
                                      variables=key == "write")
    tmpfs = section.get("tmpfs", {})
    if not isinstance(tmpfs, dict):
        raise IronError("must be an object", field="filesystem.tmpfs",
                        expected="an object mapping a path to a size", got=tmpfs)
    sizes = []
    for dest, size in tmpfs.items():
        field = f"filesystem.tmpfs[{dest!r}]"
        check_path(dest, field)
        if dest.startswith("!") or dest == "/":
            raise IronError("not a tmpfs mount point", field=field,
                            expected="an absolute path other than /", got=dest)
        sizes.append((_strip(dest), parse_size(size, field)))
    return _Section(min_abi, lists["read"], lists["write"], lists["execute"],
                    lists["devices"], tuple(sizes))


def _check_paths(paths: object, field: str, *, variables: bool) -> tuple[str, ...]:
    if not isinstance(paths, list):
        raise IronError("must be a list of paths", field=field, expected="a list", got=paths)
    for i, path in enumerate(paths):
        if not isinstance(path, str):
            raise IronError("must be a path", field=f"{field}[{i}]", expected="a string", got=path)
        if variables and path in _VARIABLES:
            continue
        if path.startswith("$"):
            raise IronError("unknown variable", field=f"{field}[{i}]",
                            expected=" or ".join(_VARIABLES) if variables else "an absolute path",
                            got=path)
        check_path(path, f"{field}[{i}]")
    return tuple(paths)


# ---------------------------------------------------------------------------- the host

def _require_host(sec: _Section, ctx: Context) -> None:
    """Fail closed: preflight checked this too; a modifier must not run weaker than asked."""
    if ctx.host.landlock_helper is None:
        raise IronError("Landlock helper iron-landlock not found on this host; "
                        f"{ctx.mode} mode cannot be enforced",
                        hint="run install.sh to build and install it")
    abi = ctx.host.landlock_abi
    if abi < sec.min_abi:
        if abi <= 0:
            hint = "enable the Landlock LSM (boot with lsm=…,landlock)"
        else:
            kernel = _ABI_KERNEL.get(sec.min_abi)
            hint = f"ABI {sec.min_abi} needs Linux ≥ {kernel}" if kernel else None
        raise IronError(f"Landlock ABI {abi} < required {sec.min_abi}; "
                        f"{ctx.mode} mode cannot be enforced on this host", hint=hint)


# ---------------------------------------------------------------------------- the policy

def _build_policy(sec: _Section, process: dict, annotations: dict,
                  ctx: Context) -> tuple[LandlockPolicy, list[Decision]]:
    protected = _protected(sec)
    notes: list[Decision] = []
    write: list[str] = []
    for path in sec.write:
        if path == "$CWD":
            value, field = _cwd(process), "process.cwd"
        elif path == "$HOME":
            value, field = _home(process)
        else:
            write.append(path)
            continue
        reason = _unsafe_variable(value, protected)
        if reason:
            notes.append(_decision(field, value, value,
                                  f"{path} is not made writable: {reason}"))
        else:
            write.append(value)
    extra = _annotation_paths(annotations, ctx)
    for path in extra:
        reason = _unsafe_variable(path, protected)
        if reason:
            raise Refused(f"annotation `{WRITE_ANNOTATION}` asks for {path} to be writable; "
                          f"{reason}", field=f"annotations.{WRITE_ANNOTATION}")
    write = _unique(write + extra)
    read = _unique([*sec.read, *write, *sec.execute])
    if not (read or sec.devices):
        # The helper reads a policy without paths as the network layer's alone and then
        # leaves files unrestricted: an empty filesystem policy must never reach it.
        raise IronError("the Landlock policy has no paths left; it would not restrict files",
                        field="filesystem.landlock",
                        expected="at least one path in read, write, execute or devices")
    policy = LandlockPolicy(min_abi=sec.min_abi, read=read, write=write,
                            execute=_unique(sec.execute), devices=_unique(sec.devices),
                            scope=True)
    return policy, notes


def _protected(sec: _Section) -> tuple[str, ...]:
    """Paths the policy keeps read-only: what is readable, executable or a device, not written."""
    written = [p.lstrip("!") for p in sec.write if p not in _VARIABLES]
    out = [HELPER_PATH]
    for path in (*sec.read, *sec.execute, *sec.devices):
        bare = _strip(path.lstrip("!"))
        if not any(_within(bare, w) for w in written):
            out.append(bare)
    return tuple(out)


def _unsafe_variable(path: str | None, protected: tuple[str, ...]) -> str | None:
    """Why ``path`` may not be made writable, or None. A writable dir never opens a system dir."""
    if path is None:
        return "it is not set"
    if path == "/":
        return "it is /"
    for p in protected:
        if path == p or (p != "/" and _within(path, p)):
            return f"it lies within {p}, which the policy keeps read-only"
        if _within(p, path):
            return f"it contains {p}, which the policy keeps read-only"
    return None


def _cwd(process: dict) -> str:
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str):
        raise IronError("must be a path", field="process.cwd", expected="a string", got=cwd)
    cwd = _strip(cwd)
    check_path(cwd, "process.cwd")
    return cwd


def _home(process: dict) -> tuple[str | None, str]:
    env = process.get("env") or []
    if not isinstance(env, list):
        raise IronError("must be a list", field="process.env", expected="a list of strings",
                        got=env)
    for i, item in enumerate(env):
        if isinstance(item, str) and item.startswith("HOME="):
            field = f"process.env[{i}]"
            home = _strip(item[len("HOME="):])
            if not home:
                return None, field
            check_path(home, field)
            return home, field
    return None, "process.env"


def _annotations(spec: dict, ctx: Context) -> dict:
    merged = dict(spec.get("annotations") or {})
    merged.update(ctx.annotations or {})
    return merged


def _annotation_paths(annotations: dict, ctx: Context) -> list[str]:
    raw = annotations.get(WRITE_ANNOTATION)
    if raw is None:
        return []
    field = f"annotations.{WRITE_ANNOTATION}"
    if not isinstance(raw, str):
        raise IronError("must be a string", field=field,
                        expected="comma-separated absolute paths", got=raw)
    paths = [p.strip() for p in raw.split(",") if p.strip()]
    if not paths:
        return []
    if not ctx.policy.allow_fs_write_annotation:
        raise Refused(f"annotation `{WRITE_ANNOTATION}` would widen the Landlock write set",
                      field=field, hint="set `allow_fs_write_annotation = true` in "
                      "/etc/iron/config.toml to let annotations add writable paths")
    for i, path in enumerate(paths):
        if path.startswith("!"):
            raise IronError("must be a plain path", field=f"{field}[{i}]",
                            expected="an absolute path", got=path)
        check_path(path, f"{field}[{i}]")
    return [_strip(p) for p in paths]


def _container_policy(container_spec: dict, sec: _Section, process: dict,
                      ctx: Context) -> tuple[LandlockPolicy, list[Decision]]:
    """The policy iron wrote into the container at create; built afresh if there is none."""
    args = ((container_spec or {}).get("process") or {}).get("args") or []
    if isinstance(args, list) and len(args) >= 3 and args[0] == HELPER_PATH and args[2] == "--":
        try:
            return LandlockPolicy.from_arg(args[1]), []
        except (IronError, ValueError, TypeError) as err:
            raise IronError("the container's Landlock policy cannot be read",
                            field="process.args[1]", got=args[1]) from err
    annotations = _annotations(container_spec or {}, ctx)
    return _build_policy(sec, process, annotations, ctx)


# ---------------------------------------------------------------------------- the spec

def _wrap_args(process: dict, policy: LandlockPolicy) -> list[Decision]:
    args = process.get("args")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise IronError("must be a list of strings", field="process.args",
                        expected="a non-empty list of strings", got=args)
    inner = _strip_prefixes(args)
    if not inner:
        raise IronError("nothing to run under the Landlock helper", field="process.args",
                        expected="a non-empty list of strings", got=args)
    wrapped = wrap(inner, policy)
    if wrapped == args:
        return []
    process["args"] = wrapped
    reason = "run under the Landlock helper"
    if len(inner) != len(args):
        reason += "; the existing helper prefix is replaced, never trusted"
    return [_decision("process.args", args, wrapped, reason)]


def _strip_prefixes(args: list[str]) -> list[str]:
    """Drop every leading helper prefix, without parsing it: a smuggled one is not trusted."""
    while len(args) >= 3 and args[0] == HELPER_PATH and args[2] == "--":
        args = args[3:]
    return list(args)


def _readonly_root(spec: dict) -> list[Decision]:
    root = spec.get("root")
    if not isinstance(root, dict):
        raise IronError("Landlock needs a read-only root, but the spec has no root",
                        field="root", expected="an object with path", got=root)
    if root.get("readonly") is True:
        return []
    before = root.get("readonly")
    root["readonly"] = True
    return [_decision("root.readonly", before, True,
                     "Landlock does not cover chmod, chown, xattrs or utime")]


def _mounts(spec: dict) -> list:
    mounts = spec.setdefault("mounts", [])
    if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
        raise IronError("must be a list of objects", field="mounts", expected="a list",
                        got=mounts)
    return mounts


def _tmpfs_mounts(spec: dict, sec: _Section) -> list[Decision]:
    decisions: list[Decision] = []
    if not sec.tmpfs:
        return decisions
    mounts = _mounts(spec)
    for dest, cap in sec.tmpfs:
        field = f"mounts[destination={dest}]"
        existing = [m for m in mounts if _destination(m) == dest]
        for mount in existing:
            if mount.get("type") == "tmpfs":
                decisions += _cap_tmpfs(mount, cap, field)
            else:
                decisions.append(_decision(
                    field, mount, mount,
                    f"the engine's {mount.get('type') or 'bind'} mount is kept; "
                    "Landlock still confines it"))
        if existing:
            continue
        new = {"destination": dest, "type": "tmpfs", "source": "tmpfs",
               "options": [*_TMPFS_OPTIONS, f"size={_render_size(cap)}"]}
        mounts.insert(_insert_at(mounts, dest), new)
        decisions.append(_decision(field, None, new,
                                  "a private, size-capped tmpfs for scratch space"))
    return decisions


def _cap_tmpfs(mount: dict, cap: int, field: str) -> list[Decision]:
    before = mount.get("options")
    options = list(before or [])
    if not all(isinstance(o, str) for o in options):
        raise IronError("must be a list of strings", field=f"{field}.options", got=before)
    current, last = None, None    # the kernel applies the last size= or nr_blocks=
    kept = []
    for opt in options:
        key, _, value = opt.partition("=")
        if key in ("size", "nr_blocks"):
            current, last = _mount_size(value, key, f"{field}.options"), opt
        elif opt not in _LOOSER_OPTIONS:
            kept.append(opt)
    size = cap if current is None or current == 0 else min(current, cap)
    kept += [o for o in _TMPFS_OPTIONS[:2] if o not in kept]
    same = size == current and last.startswith("size=")
    kept.append(last if same else f"size={_render_size(size)}")
    if kept == options:
        return []
    mount["options"] = kept
    return [_decision(f"{field}.options", before, kept,
                     "the engine's tmpfs is kept, capped at the lower size, nosuid and nodev")]


def _mount_size(value: str, key: str, field: str) -> int | None:
    """Bytes of a tmpfs size= or nr_blocks= value; 0 is unlimited; None for a % of host RAM."""
    if key == "size" and value.endswith("%"):
        return None
    n = _memparse(value)
    if n is None:
        raise IronError("unreadable tmpfs size", field=field,
                        expected=f"{key}=N[k|m|g|t]", got=f"{key}={value}")
    return n * _PAGE if key == "nr_blocks" else n


def _memparse(text: str) -> int | None:
    """The kernel's memparse(): C integer syntax (decimal, 0x hex, 0 octal) and a k…e suffix.
    None for anything else. (No re: its import is ~10 ms of a create on a small VM.)"""
    if text[:2] in ("0x", "0X"):
        digits, base = text[2:], 16
    else:
        digits, base = text, 8 if text[:1] == "0" else 10
    shift = 0
    if digits[-1:].lower() in _SUFFIX_SHIFT and digits[-1] not in _DIGITS[base]:   # 0x1e is hex
        digits, shift = digits[:-1], _SUFFIX_SHIFT[digits[-1].lower()]
    if not digits or not set(digits) <= _DIGITS[base]:
        return None
    return int(digits, base) << shift


def _render_size(n: int) -> str:
    for suffix, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


def _insert_at(mounts: list, dest: str) -> int:
    """After any mount of a parent (/dev before /dev/shm), before any mount beneath ``dest``."""
    after = max((i + 1 for i, m in enumerate(mounts) if _within(dest, _destination(m))
                 and _destination(m) != dest), default=0)
    children = [i for i, m in enumerate(mounts) if _destination(m) != dest
                and _within(_destination(m), dest)]
    helper = [i for i, m in enumerate(mounts) if _destination(m) == HELPER_PATH]
    return max(after, min(children + helper, default=len(mounts)))


def _helper_mount(spec: dict, host_helper: str) -> list[Decision]:
    mounts = _mounts(spec)
    want = helper_mount(host_helper)
    if mounts and mounts[-1] == want and sum(_destination(m) == HELPER_PATH for m in mounts) == 1:
        return []
    decisions = [_decision(f"mounts[destination={HELPER_PATH}]", m, None,
                          "only iron mounts the Landlock helper")
                 for m in mounts if _destination(m) == HELPER_PATH and m != want]
    mounts[:] = [m for m in mounts if _destination(m) != HELPER_PATH]
    mounts.append(want)
    decisions.append(_decision(f"mounts[destination={HELPER_PATH}]", None, want,
                              "the Landlock helper, last so that nothing shadows it"))
    return decisions


# ---------------------------------------------------------------------------- paths

def _destination(mount: dict) -> str:
    """A mount's destination as crun resolves it (relative ones are relative to the rootfs)."""
    dest = mount.get("destination")
    if not isinstance(dest, str):
        return ""
    return posixpath.normpath("/" + dest.lstrip("/"))


def _strip(path: str) -> str:
    """Drop trailing slashes from an absolute path: `/work/` and `/work` are one rule."""
    return (path.rstrip("/") or "/") if path.startswith("/") else path


def _within(path: str, parent: str) -> bool:
    """``path`` is ``parent`` or lies beneath it (lexically)."""
    return path == parent or parent == "/" or path.startswith(parent.rstrip("/") + "/")


def _unique(paths) -> tuple[str, ...]:
    return tuple(dict.fromkeys(paths))


def _decision(field: str, before, after, reason: str) -> Decision:
    """A decision holding copies, so later edits of the spec cannot rewrite the record."""
    return Decision(LAYER, field, copy_tree(before), copy_tree(after), reason)


def _require_dict(spec: dict, key: str) -> dict:
    value = spec.get(key)
    if not isinstance(value, dict):
        raise IronError("Landlock wraps the container's process, but there is none",
                        field=key, expected="an object", got=value)
    return value


__all__ = ["apply", "apply_exec", "WRITE_ANNOTATION"]
