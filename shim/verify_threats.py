"""The threats `iron verify` runs, grouped by the five categories, and how a probe's output is judged.

Each threat names the layers that should each block it on their own; a mode claims a threat
when it has one of those layers. Verdicts come only from what the probe in the container reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

LAYERS = ("process", "syscall", "filesystem", "network")
CATEGORIES = (("resources", "resource exhaustion"), ("syscalls", "malicious syscalls"),
              ("files", "unauthorized file access"), ("network", "external network"),
              ("escape", "container escape"), ("benign", "benign workload (must work)"))
USR_FILE = "/usr/share/iron-verify/data"
# A volume on one filesystem: the workdir (writable) and a sibling no list names.
VOLUME = "/srv/volume"
VOLUME_WORK, VOLUME_LOCKED = f"{VOLUME}/work", f"{VOLUME}/locked"
# What each category's threats need from a mode before it claims to block them.
CATEGORY_LAYER = {"resources": "process", "syscalls": "syscall", "files": "filesystem", "network": "network"}


@dataclass(frozen=True)
class Targets:
    """What the probes aim at: the mode's limits and the test host in the verify netns."""
    pids: int
    memory_mib: int
    peer_v4: str
    peer_v6: str
    resolver: str
    host_pid: int


@dataclass(frozen=True)
class Outcome:
    verdict: str        # blocked | allowed | error
    evidence: str


@dataclass(frozen=True)
class Threat:
    key: str
    label: str
    category: str
    layers: tuple[str, ...]
    argv: Callable[[Targets], list[str]]
    via_exec: bool = False          # run with `iron exec` in a running container
    volume: bool = False            # cwd in a bind-mounted volume with a sibling dir outside every list
    judge: Callable[[int, str], Outcome] | None = None

    def outcome(self, exit_code: int, stdout: str) -> Outcome:
        return (self.judge or judge_probe)(exit_code, stdout)


def probe(*args: str) -> Callable[[Targets], list[str]]:
    return lambda t: ["iron-probe", *args]


def last_json(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def judge_probe(exit_code: int, stdout: str) -> Outcome:
    """iron-probe's own verdict; a kill by the OOM killer or seccomp counts as blocked."""
    if exit_code == 137:
        return Outcome("blocked", "OOM kill (SIGKILL)")
    if exit_code == 159:
        return Outcome("blocked", "SIGSYS")
    doc = last_json(stdout)
    if doc is None:
        return Outcome("error", f"no probe output (exit {exit_code})")
    outcome = doc.get("outcome")
    evidence = doc.get("errno") or doc.get("detail") or ""
    if outcome == "blocked":
        return Outcome("blocked", evidence)
    if outcome == "allowed":
        return Outcome("allowed", doc.get("detail", ""))
    return Outcome("error", f"{doc.get('errno') or ''} {doc.get('detail', '')}".strip())


def judge_forkbomb(exit_code: int, stdout: str) -> Outcome:
    got = judge_probe(exit_code, stdout)
    if got.verdict == "blocked" and got.evidence == "EAGAIN":
        doc = last_json(stdout) or {}
        return Outcome("blocked", f"pids.max hit, {doc.get('detail', 'EAGAIN')}")
    return got


def judge_cpu(exit_code: int, stdout: str) -> Outcome:
    """The spinner's CPU use against the quota the container's cgroup shows (±15%)."""
    doc = last_json(stdout)
    lines = stdout.split()
    if doc is None or doc.get("outcome") != "allowed" or len(lines) < 2:
        return Outcome("error", f"cpu probe failed (exit {exit_code})")
    facts = dict(kv.split("=", 1) for kv in doc["detail"].split() if "=" in kv)
    used = float(facts["cpu_seconds"]) / float(facts["wall_seconds"])
    quota = _quota_cpus(lines[-2:])
    if quota is None:
        return Outcome("allowed", f"no cpu quota, used {used:.2f} CPUs")
    if used <= quota * 1.15:
        return Outcome("blocked", f"cpu quota {quota:.2f} CPUs, used {used:.2f}")
    return Outcome("allowed", f"used {used:.2f} CPUs over the quota {quota:.2f}")


def _quota_cpus(words: list[str]) -> float | None:
    """cgroup v1 `quota period`, or v2 cpu.max `max|quota period`."""
    quota, period = words
    if quota in ("max", "-1", "none"):
        return None
    return int(quota) / int(period)


CPU_SCRIPT = ("iron-probe cpuhog 1 3; "
              "if [ -r /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/cpu.max; "
              "else for d in /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup/cpu; do "
              "[ -r $d/cpu.cfs_quota_us ] && { echo $(cat $d/cpu.cfs_quota_us) $(cat $d/cpu.cfs_period_us); break; }; "
              "done || echo none 1; fi")
BENIGN_SCRIPT = "echo hello | tr a-z A-Z | grep -q HELLO && cd /tmp && iron-probe benign"


def _t(key, label, category, layers, argv, **kw) -> Threat:
    return Threat(key, label, category, tuple(layers), argv, **kw)


THREATS: tuple[Threat, ...] = (
    _t("forkbomb", "fork bomb", "resources", ["process"],
       lambda t: ["iron-probe", "forkbomb", str(t.pids + 64)], judge=judge_forkbomb),
    _t("memhog", "memory hog", "resources", ["process"],
       lambda t: ["iron-probe", "memhog", str(t.memory_mib + 256)]),
    _t("cpuhog", "CPU hog (3 threads)", "resources", ["process"],
       lambda t: ["sh", "-c", CPU_SCRIPT], judge=judge_cpu),
    *(_t(name, label, "syscalls", ["syscall"], probe(name)) for name, label in (
        ("ptrace", "ptrace"), ("reboot", "reboot"), ("kexec_load", "kexec_load"),
        ("init_module", "init_module"), ("keyctl", "keyctl"), ("bpf", "bpf"),
        ("perf_event_open", "perf_event_open"), ("io_uring", "io_uring_setup"),
        ("userfaultfd", "userfaultfd"), ("open_by_handle_at", "open_by_handle_at"),
        ("process_vm_readv", "process_vm_readv"))),
    # The socket filter allows AF_INET, so a raw IPv4 socket is the capability set's job (no CAP_NET_RAW).
    _t("raw_socket", "raw socket", "syscalls", ["process"], probe("raw_socket")),
    _t("packet_socket", "packet socket", "syscalls", ["syscall", "process"], probe("packet_socket")),
    _t("write_usr", "write /usr", "files", ["filesystem"], probe("write_file", USR_FILE)),
    _t("write_etc", "write /etc", "files", ["filesystem"], probe("write_file", "/etc/passwd")),
    _t("create_root", "create a file in /", "files", ["filesystem"], probe("create_in", "/")),
    _t("read_secret", "read outside the read list", "files", ["filesystem"], probe("read_file", "/root/secret")),
    _t("truncate", "truncate a read-only file", "files", ["filesystem"], probe("truncate_file", "/etc/hostname")),
    _t("rename", "rename into a protected dir (REFER)", "files", ["filesystem"],
       probe("rename", VOLUME_WORK, VOLUME_LOCKED), volume=True),
    _t("link", "hard link into a protected dir", "files", ["filesystem"],
       probe("link", VOLUME_WORK, VOLUME_LOCKED), volume=True),
    _t("symlink", "/tmp symlink to /etc/passwd", "files", ["filesystem"],
       probe("symlink_write", "/tmp", "/etc/passwd")),
    _t("exec_tmp", "execute a copy from /tmp", "files", ["filesystem"], probe("exec_copy", "/tmp")),
    _t("exec_write_etc", "exec'd: write /etc", "files", ["filesystem"],
       probe("write_file", "/etc/passwd"), via_exec=True),
    _t("exec_read_secret", "exec'd: read outside the list", "files", ["filesystem"],
       probe("read_file", "/root/secret"), via_exec=True),
    _t("tcp4", "TCP egress IPv4", "network", ["network"], lambda t: ["iron-probe", "tcp_connect", t.peer_v4, "80", "1000"]),
    _t("tcp6", "TCP egress IPv6", "network", ["network"], lambda t: ["iron-probe", "tcp_connect", t.peer_v6, "80", "1000"]),
    _t("udp4", "UDP egress IPv4", "network", ["network"], lambda t: ["iron-probe", "udp_send", t.peer_v4, "7"]),
    _t("udp6", "UDP egress IPv6", "network", ["network"], lambda t: ["iron-probe", "udp_send", t.peer_v6, "7"]),
    _t("dns", "DNS to an unlisted resolver", "network", ["network"], lambda t: ["iron-probe", "dns", t.resolver]),
    _t("metadata", "metadata 169.254.169.254", "network", ["network"],
       probe("tcp_connect", "169.254.169.254", "80", "1000")),
    _t("exec_tcp4", "exec'd: TCP egress IPv4", "network", ["network"],
       lambda t: ["iron-probe", "tcp_connect", t.peer_v4, "80", "1000"], via_exec=True),
    _t("mount", "mount", "escape", ["syscall", "process"], probe("mount")),
    _t("umount", "umount", "escape", ["syscall", "process"], probe("umount")),
    _t("setns", "setns", "escape", ["syscall", "process"], probe("setns")),
    _t("unshare_user", "unshare(user)", "escape", ["syscall"], probe("unshare_user")),
    _t("unshare_net", "unshare(net)", "escape", ["syscall", "process"], probe("unshare_net")),
    _t("pivot_root", "pivot_root", "escape", ["syscall", "process"], probe("pivot_root")),
    _t("proc_root", "write via /proc/self/root", "escape", ["filesystem"],
       probe("write_file", "/proc/self/root/etc/passwd")),
    _t("signal", "signal a host process", "escape", ["process"],
       lambda t: ["iron-probe", "signal", str(t.host_pid)]),
)
BENIGN = Threat("benign", "shell pipeline, files, threads", "benign", (), lambda t: ["sh", "-c", BENIGN_SCRIPT])


def claimed(threat: Threat, layers: list[str], alone: bool = False) -> bool:
    """A mode claims its categories' threats (escapes: any layer that blocks them); a single-layer
    column (alone) claims the threats that layer blocks by itself."""
    if alone or threat.category not in CATEGORY_LAYER:
        return any(layer in layers for layer in threat.layers)
    return CATEGORY_LAYER[threat.category] in layers


def blocker(threat: Threat, layers: list[str]) -> str:
    """The layer a block is credited to: the threat's first layer the column has, else its first layer."""
    return next((layer for layer in threat.layers if layer in layers), next(iter(layers), "host"))
