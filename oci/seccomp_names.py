"""Seccomp profiles: shape checks, syscall names checked with libseccomp, a per-arch render cache.

crun only warns about a syscall name its libseccomp does not know and drops that rule,
so a typo quietly removes a rule. iron takes the strict side: an unknown name is an
error that names the file and the entry (``syscalls[3].names[0]``).

A name libseccomp knows can still be missing on an architecture (``socketcall`` has no
x86_64 number; ``open`` has none on aarch64). Such a name is dropped when the profile is
rendered for the host, unless it exists on one of the profile's other ``architectures``
(the 32-bit sub-arches that crun adds to the same filter).

Importing pyseccomp costs ~15 ms (``find_library`` runs ldconfig), which every
``create`` would pay. So the rendered profile is cached in ``$IRON_CACHE_DIR/seccomp``
(default ``/var/cache/iron/seccomp``), keyed by the profile bytes, the libseccomp version
and the host arch. A cache hit needs only ctypes. The cache is an optimisation: an
unwritable directory is skipped and a corrupt entry is rendered again and rewritten.
"""

from __future__ import annotations

import os

from .digest import sha256_hex
from .errors import IronError
from .jsonio import dumps, loads

ACTIONS = frozenset({
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
})
ERRNO_ACTIONS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})   # the only ones crun lets carry an errno
OPS = frozenset({"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                 "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"})
ARCHES = frozenset("SCMP_ARCH_" + a for a in (
    "X86 X86_64 X32 ARM AARCH64 MIPS MIPS64 MIPS64N32 MIPSEL MIPSEL64 MIPSEL64N32 "
    "PPC PPC64 PPC64LE S390 S390X PARISC PARISC64 RISCV64 LOONGARCH64 M68K SH SHEB").split())
_UNAME_ARCH = {
    "x86_64": "SCMP_ARCH_X86_64", "amd64": "SCMP_ARCH_X86_64",
    "aarch64": "SCMP_ARCH_AARCH64", "arm64": "SCMP_ARCH_AARCH64",
    "i386": "SCMP_ARCH_X86", "i686": "SCMP_ARCH_X86", "x86": "SCMP_ARCH_X86",
    "armv7l": "SCMP_ARCH_ARM", "arm": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64",
    "loongarch64": "SCMP_ARCH_LOONGARCH64",
}
_U64 = 2**64 - 1
LD_CACHE = "/etc/ld.so.cache"
_UNKNOWN = -1    # __NR_SCMP_ERROR: libseccomp does not know the name on any arch


def scmp_arch(arch: str) -> str:
    """``x86_64`` (uname -m / GOARCH spelling) or ``SCMP_ARCH_X86_64`` → ``SCMP_ARCH_X86_64``."""
    if arch in ARCHES:
        return arch
    try:
        return _UNAME_ARCH[arch.lower()]
    except KeyError:
        raise IronError("unknown architecture", field="host.arch",
                        expected="one of " + ", ".join(sorted(_UNAME_ARCH)), got=arch) from None


def check_shape(profile: object, file: str | None, prefix: str = "",
                repeated_index_ok: bool = False) -> None:
    """Check ``profile`` is an OCI ``LinuxSeccomp`` object that crun will accept.

    ``repeated_index_ok=False`` (iron's own profiles) also rejects an entry that repeats an
    argument index: crun and runc turn that into OR, which is never what the author meant.
    """
    def fail(field: str, expected: str, got: object) -> IronError:
        return IronError("invalid seccomp profile", file=file,
                         field=(prefix + field).rstrip(".") or None, expected=expected, got=got)

    if not isinstance(profile, dict):
        raise fail("", "a JSON object", type(profile).__name__)
    default = profile.get("defaultAction")
    if not _named(default, ACTIONS) or default == "SCMP_ACT_NOTIFY":
        raise fail("defaultAction", "an SCMP_ACT_* action other than NOTIFY", default)
    _check_errno(profile, "defaultErrnoRet", default, fail, "")
    arches = profile.get("architectures", [])
    if not isinstance(arches, list) or any(not _named(a, ARCHES) for a in arches):
        raise fail("architectures", "a list of SCMP_ARCH_* names", arches)
    flags = profile.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise fail("flags", "a list of SECCOMP_FILTER_FLAG_* names", flags)
    syscalls = profile.get("syscalls", [])
    if not isinstance(syscalls, list):
        raise fail("syscalls", "a list", syscalls)
    for i, entry in enumerate(syscalls):
        at = f"syscalls[{i}]"
        if not isinstance(entry, dict):
            raise fail(at, "an object", entry)
        names = entry.get("names")
        if not isinstance(names, list) or not names \
                or not all(isinstance(n, str) and n for n in names):
            raise fail(f"{at}.names", "a non-empty list of syscall names", names)
        if not _named(entry.get("action"), ACTIONS):
            raise fail(f"{at}.action", "an SCMP_ACT_* action", entry.get("action"))
        _check_errno(entry, "errnoRet", entry["action"], fail, at + ".")
        _check_args(entry.get("args", []), f"{at}.args", fail, repeated_index_ok)


def _named(value: object, names) -> bool:
    """``value in names`` for any JSON value (a list or an object is not hashable)."""
    return isinstance(value, str) and value in names


def _check_errno(obj: dict, key: str, action: str, fail, at: str) -> None:
    if key not in obj:
        return
    value = obj[key]
    if action not in ERRNO_ACTIONS:
        raise fail(at + key, f"no {key} with {action} (crun refuses it)", value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 4096:
        raise fail(at + key, "an errno number", value)


def _check_args(args: object, at: str, fail, repeated_index_ok: bool) -> None:
    if not isinstance(args, list):
        raise fail(at, "a list", args)
    seen: set[int] = set()
    for j, arg in enumerate(args):
        here = f"{at}[{j}]"
        if not isinstance(arg, dict):
            raise fail(here, "an object", arg)
        index = arg.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 5:
            raise fail(f"{here}.index", "an argument index 0-5", index)
        for key in ("value", "valueTwo"):
            v = arg.get(key, 0)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= _U64:
                raise fail(f"{here}.{key}", "an unsigned 64-bit integer", v)
        if not _named(arg.get("op"), OPS):
            raise fail(f"{here}.op", "an SCMP_CMP_* operator", arg.get("op"))
        if index in seen and not repeated_index_ok:
            raise fail(f"{here}.index", "each index at most once per entry "
                       "(crun ORs repeated indices; split the entry)", index)
        seen.add(index)


def _pyseccomp_arch(pyseccomp, scmp: str):
    try:
        return getattr(pyseccomp.Arch, scmp.removeprefix("SCMP_ARCH_"))
    except AttributeError:
        raise IronError("pyseccomp cannot check syscall names for this architecture",
                        field="architectures", got=scmp) from None


def check_names(profile: dict, file: str, arch: str) -> None:
    """Raise IronError for the first syscall name libseccomp does not know at all."""
    import pyseccomp   # slow import: only on a cache miss

    token = _pyseccomp_arch(pyseccomp, scmp_arch(arch))
    for i, entry in enumerate(profile.get("syscalls", [])):
        for j, name in enumerate(entry["names"]):
            if pyseccomp.resolve_syscall(token, name) == _UNKNOWN:
                raise IronError("unknown syscall", file=file, field=f"syscalls[{i}].names[{j}]",
                                expected=f"a name libseccomp {libseccomp_version()} knows",
                                got=name, hint="crun would silently drop its rule")


def render(profile: dict, file: str, arch: str) -> dict:
    """Validate ``profile`` and keep only the names that exist on one of its target arches."""
    import pyseccomp

    check_shape(profile, file)
    native = scmp_arch(arch)
    targets = profile.get("architectures") or [native]
    if native not in targets:
        raise IronError("seccomp profile does not cover the host architecture", file=file,
                        field="architectures", expected=f"a list including {native}", got=targets)
    check_names(profile, file, arch)
    tokens = [_pyseccomp_arch(pyseccomp, a) for a in targets]
    out = {k: v for k, v in profile.items() if k != "syscalls"}
    out["syscalls"] = []
    for entry in profile.get("syscalls", []):
        names = [n for n in entry["names"]
                 if any(pyseccomp.resolve_syscall(t, n) >= 0 for t in tokens)]
        if names:
            out["syscalls"].append({**entry, "names": names})
    return out


def libseccomp_version() -> str:
    """The version of the libseccomp that crun loads (same soname).

    Asking needs ctypes (~6 ms of import on a small VM), so the answer is remembered in the
    cache, keyed by /etc/ld.so.cache: installing or upgrading a library rewrites it."""
    try:
        st = os.stat(LD_CACHE)
        key = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
    except OSError:
        return _ask_libseccomp_version()
    entry = os.path.join(cache_dir(), "libseccomp-version")
    version = read_cache(entry, key, check=lambda value: type(value) is str and bool(value))
    if version is None:
        version = _ask_libseccomp_version()
        write_cache(entry, key, version)
    return version


def _ask_libseccomp_version() -> str:
    import ctypes

    class _Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        raise IronError("libseccomp is not installed", expected="libseccomp.so.2",
                        hint="install libseccomp2 (Debian/Ubuntu) or libseccomp (Fedora)") from None
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def cache_dir() -> str:
    return os.path.join(os.environ.get("IRON_CACHE_DIR") or "/var/cache/iron", "seccomp")


def load_seccomp_profile(path, arch: str) -> dict:
    """The profile at ``path``, validated and rendered for ``arch``; cached across calls."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise IronError(f"cannot read seccomp profile: {e.strerror}", file=str(path)) from e
    key = sha256_hex(b"\0".join([data, libseccomp_version().encode(), scmp_arch(arch).encode()]))
    entry = os.path.join(cache_dir(), f"{key}.json")
    cached = read_cache(entry, key)
    if cached is not None:
        return cached
    try:
        profile = loads(data)
    except ValueError as e:
        raise IronError(f"invalid JSON: {e}", file=str(path)) from e
    rendered = render(profile, str(path), arch)
    write_cache(entry, key, rendered)
    return rendered


def read_cache(entry: str, key: str, check=None):
    """The value ``entry`` holds if it was stored under ``key`` and passes ``check``
    (default: the seccomp profile shape check), else None."""
    try:
        with open(entry, "rb") as f:
            doc = loads(f.read())
        if doc.get("key") != key:
            return None
        if check is None:
            check_shape(doc["value"], str(entry))
        elif not check(doc["value"]):
            return None
        return doc["value"]
    except (OSError, ValueError, AttributeError, KeyError, TypeError, IronError):
        return None   # missing or corrupt: render again and overwrite


def write_cache(entry: str, key: str, value) -> None:
    tmp = None
    try:
        os.makedirs(os.path.dirname(entry), exist_ok=True)
        tmp = f"{entry}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(dumps({"key": key, "value": value}))
        os.replace(tmp, entry)
        tmp = None
    except OSError:
        pass          # a read-only or missing cache costs time, never correctness
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
