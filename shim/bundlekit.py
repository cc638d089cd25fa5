"""A built-in default bundle: a busybox-static rootfs, no image registry needed.

Used by install.sh's demonstration, `iron verify`, the tests and the benchmarks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.access(path, os.X_OK):
            out = subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout \
                if shutil.which("file") else "statically linked"
            if "dynamically" not in out:
                return path
    from iron.oci.errors import IronError
    raise IronError("a static busybox is needed for the default bundle",
                    hint="apt-get install busybox-static")


def build_rootfs(rootfs: str, extra_files: dict[str, str] | None = None) -> None:
    """busybox and its applet links, /etc/passwd, the usual empty dirs; extras copied in."""
    for folder in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "var/tmp",
                   "root", "home/agent", "run", "mnt", "opt", "srv"):
        os.makedirs(os.path.join(rootfs, folder), exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    os.chmod(os.path.join(rootfs, "var/tmp"), 0o1777)
    busybox = os.path.join(rootfs, "bin/busybox")
    shutil.copy2(find_busybox(), busybox)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    _write(rootfs, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\n"
                                 "nobody:x:65534:65534:nobody:/:/bin/false\n")
    _write(rootfs, "etc/group", "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n")
    _write(rootfs, "etc/hostname", "iron\n")
    _write(rootfs, "root/secret", "not for agents\n")
    for src, dst in (extra_files or {}).items():
        target = os.path.join(rootfs, dst.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(src, target)


def default_spec(args: list[str], terminal: bool = False) -> dict:
    """A runc-style default config.json, as `runc spec` would write it, with our args."""
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": terminal, "user": {"uid": 0, "gid": 0}, "args": list(args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "iron",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def make_bundle(path: str, rootfs: str, args: list[str], terminal: bool = False,
                edit=None) -> str:
    """A bundle dir whose rootfs is a symlink-free bind of a shared rootfs (copy-free)."""
    os.makedirs(path, exist_ok=True)
    spec = default_spec(args, terminal)
    spec["root"]["path"] = os.path.abspath(rootfs)
    if edit:
        edit(spec)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(spec, f, indent=2)
    return path


def _write(rootfs: str, rel: str, text: str) -> None:
    with open(os.path.join(rootfs, rel), "w") as f:
        f.write(text)
