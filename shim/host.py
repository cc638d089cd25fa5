"""What this host can enforce: facts for the layers, and the preflight that fails closed."""

from __future__ import annotations

import os

from iron.oci.context import HostFacts
from iron.shim import config as config_mod

LANDLOCK_CREATE_RULESET = 444           # same number on x86_64 and aarch64
LANDLOCK_CREATE_RULESET_VERSION = 1
LIBNFTABLES = "libnftables.so.1"      # the soname iron-nethook opens


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is missing or disabled.

    Remembered per boot in /run/iron: it cannot change without a reboot, and ctypes costs
    ~5 ms of every maximum create."""
    cache = os.path.join(config_mod.CACHE_DIR, "landlock-abi")
    boot = _read("/proc/sys/kernel/random/boot_id").strip()
    cached = _read(cache).split()
    if boot and len(cached) == 2 and cached[0] == boot and cached[1].isdigit():
        return int(cached[1])
    abi = _probe_landlock_abi()
    if boot:
        config_mod.write_cache(cache, f"{boot} {abi}\n")
    return abi


def _probe_landlock_abi() -> int:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(ctypes.c_long(LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                       ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(abi), 0)


def seccomp_available() -> bool:
    return os.path.exists("/proc/sys/kernel/seccomp/actions_avail")


def probe(cfg, layers: list[str] | None = None) -> HostFacts:
    """Facts for ``layers`` (all when None); Landlock is asked only when a layer uses it."""
    helper = cfg.landlock_helper if os.access(cfg.landlock_helper, os.X_OK) else None
    hook = cfg.network_hook if os.access(cfg.network_hook, os.X_OK) else None
    network = layers is None or "network" in layers
    landlock = layers is None or "filesystem" in layers or "network" in layers
    return HostFacts(kernel=os.uname().release, arch=os.uname().machine, seccomp=seccomp_available(),
                     landlock_abi=landlock_abi() if landlock else 0,
                     network_hook=hook, libnftables=libnftables_installed() if network else True,
                     landlock_helper=helper, namespaces=own_namespaces())


def libnftables_installed() -> bool:
    """Whether the dynamic loader can find the library the network hook opens: it is in
    ld.so.cache (ldconfig ran) or in a default directory. No dlopen: ctypes costs ~6 ms."""
    try:
        with open("/etc/ld.so.cache", "rb") as f:
            if LIBNFTABLES.encode() in f.read():
                return True
    except OSError:
        pass
    multiarch = f"{os.uname().machine}-linux-gnu"
    return any(os.path.exists(os.path.join(d, LIBNFTABLES))
               for d in (f"/lib/{multiarch}", f"/usr/lib/{multiarch}", "/lib64", "/usr/lib64", "/lib", "/usr/lib"))


def own_namespaces() -> dict[str, str]:
    """iron's own namespaces (the engine's, normally the host's), to spot a request to join them."""
    out = {}
    for kind, name in (("pid", "pid"), ("ipc", "ipc"), ("network", "net"), ("mount", "mnt"),
                       ("uts", "uts"), ("cgroup", "cgroup"), ("user", "user")):
        try:
            st = os.stat(f"/proc/self/ns/{name}")
        except OSError:
            continue
        out[kind] = f"{st.st_dev}:{st.st_ino}"
    return out


def cgroup_layout() -> tuple[str, list[str]]:
    """("v1" | "v2" | "hybrid", controllers enabled in the unified hierarchy)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "v2", _read("/sys/fs/cgroup/cgroup.controllers").split()
    if os.path.exists("/sys/fs/cgroup/unified/cgroup.controllers"):
        return "hybrid", _read("/sys/fs/cgroup/unified/cgroup.controllers").split()
    return "v1", []


def crun_version(runtime: str) -> str:
    import re
    import subprocess
    try:
        out = subprocess.run([runtime, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"version\s+(\S+)", out)
    return match.group(1) if match else ""


def cgroup_blocker() -> str | None:
    """crun 1.8 refuses a hybrid host while the unified hierarchy holds a controller."""
    layout, controllers = cgroup_layout()
    if layout == "hybrid" and controllers:
        names = " ".join(controllers)
        return (f"cgroup hybrid mode with controllers in the unified hierarchy ({names}); crun refuses it. "
                f"Fix: mount them as v1 hierarchies (install.sh --fix-cgroups)")
    return None


def blockers(layers: list[str], facts: HostFacts, runtime: str, min_abi: int = 1) -> list[str]:
    """Why each of ``layers`` cannot be enforced here; empty when all can."""
    out = []
    if not runtime or not os.access(runtime, os.X_OK):
        out.append("process: crun not found (apt-get install crun)")
    quirk = cgroup_blocker()
    if quirk:
        out.append(f"process: {quirk}")
    if "syscall" in layers and not facts.seccomp:
        out.append("syscall: the kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER)")
    if "filesystem" in layers:
        if facts.landlock_abi == 0:
            out.append("filesystem: Landlock is not available (kernel ≥ 5.13 with lsm=landlock needed)")
        elif facts.landlock_abi < min_abi:
            out.append(f"filesystem: Landlock ABI {facts.landlock_abi} < required {min_abi}")
        if not facts.landlock_helper:
            out.append("filesystem: the Landlock helper is missing (run install.sh)")
    if "network" in layers and not facts.network_hook:
        out.append("network: the network hook is missing (run install.sh)")
    if "network" in layers and not facts.libnftables:
        out.append(f"network: {LIBNFTABLES} is missing (apt-get install nftables)")
    return out


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
