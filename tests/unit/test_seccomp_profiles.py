"""iron's shipped seccomp profiles: what they deny, what they must allow, and their shape."""

from __future__ import annotations

import pyseccomp
import pytest

from iron.oci.seccomp_names import check_shape
from tests.unit.seccomp_testlib import (MAXIMUM, STANDARD, all_names, allows, evaluate, load,
                             render_docker, sample_args, validate_seccomp_against_schema)

std, mx = load(STANDARD), load(MAXIMUM)
docker = render_docker()          # no caps, amd64, kernel 6.18

EXTRA_DENIED = """
io_uring_setup io_uring_enter io_uring_register userfaultfd keyctl add_key request_key bpf
perf_event_open ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd unshare setns mount
umount umount2 fsopen fsmount fspick fsconfig move_mount open_tree mount_setattr pivot_root
kexec_load kexec_file_load init_module finit_module delete_module create_module
open_by_handle_at vmsplice process_madvise iopl ioperm syslog acct swapon swapoff reboot
lookup_dcookie quotactl mbind set_mempolicy move_pages migrate_pages
""".split()
HELPER_NEEDS = ["prctl", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
                "execve", "openat", "close", "fstat", "newfstatat", "exit_group", "write"]
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_ALG, AF_VSOCK = 1, 2, 10, 16, 17, 38, 40
IPPROTO_MPTCP, NETLINK_ROUTE, NETLINK_AUDIT = 262, 0, 9
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x20000, 0x40000000, 17
PROFILES = {"standard": std, "maximum": mx}


def test_standard_denies_everything_docker_denies():
    loosened = [(name, args) for name in sorted(all_names(std, docker))
                for args in sample_args(std, docker, name=name)
                if allows(std, name, args) and not allows(docker, name, args)]
    assert loosened == []
    assert set(std["architectures"]) <= set(docker["architectures"])


@pytest.mark.parametrize("name", EXTRA_DENIED)
@pytest.mark.parametrize("which", ["standard", "maximum"])
def test_extra_denies(which, name):
    profile = PROFILES[which]
    assert not any(allows(profile, name, args) for args in sample_args(profile, name=name))


@pytest.mark.parametrize("which", ["standard", "maximum"])
def test_clone3_gets_enosys_so_libc_falls_back_to_clone(which):
    assert evaluate(PROFILES[which], "clone3") == ("SCMP_ACT_ERRNO", 38)


@pytest.mark.parametrize("which", ["standard", "maximum"])
@pytest.mark.parametrize("flags,allowed", [
    (SIGCHLD, True), (0x3d0f00, True),                      # fork; pthread_create's flags
    (SIGCHLD | CLONE_NEWUSER, False), (CLONE_NEWNS, False), (CLONE_NEWNET | 0x3d0f00, False),
])
def test_clone_without_namespace_flags_only(which, flags, allowed):
    assert allows(PROFILES[which], "clone", (flags,)) is allowed


@pytest.mark.parametrize("which,persona,allowed", [
    ("standard", 0x0, True), ("standard", 0x8, True), ("standard", 0x20000, True),
    ("standard", 0x20008, True), ("standard", 0xffffffff, True),
    ("standard", 0x40000, False),                           # ADDR_NO_RANDOMIZE
    ("maximum", 0x0, True), ("maximum", 0xffffffff, True), ("maximum", 0x8, False),
    ("maximum", 0x40000, False),
])
def test_personality_safe_values_only(which, persona, allowed):
    assert allows(PROFILES[which], "personality", (persona,)) is allowed


@pytest.mark.parametrize("which,family,type_,proto,allowed", [
    ("standard", AF_UNIX, 1, 0, True), ("standard", AF_INET, 1, 0, True),
    ("standard", AF_INET6, 2, 0, True), ("standard", AF_INET, 1, IPPROTO_MPTCP, True),
    ("standard", AF_NETLINK, 3, NETLINK_ROUTE, True), ("standard", AF_NETLINK, 3, NETLINK_AUDIT, False),
    ("standard", AF_PACKET, 3, 0, False), ("standard", AF_ALG, 5, 0, False),
    ("standard", AF_VSOCK, 1, 0, False), ("standard", 15, 3, 0, False),  # AF_KEY
    ("maximum", AF_UNIX, 1, 0, True), ("maximum", AF_INET, 1, 6, True),
    ("maximum", AF_INET6, 2, 17, True), ("maximum", AF_INET, 1, IPPROTO_MPTCP, False),
    ("maximum", AF_INET6, 1, IPPROTO_MPTCP, False), ("maximum", AF_NETLINK, 3, NETLINK_ROUTE, False),
    ("maximum", AF_PACKET, 3, 0, False), ("maximum", AF_VSOCK, 1, 0, False),
])
def test_socket_families(which, family, type_, proto, allowed):
    assert allows(PROFILES[which], "socket", (family, type_, proto)) is allowed


def test_maximum_is_a_strict_subset_of_standard():
    looser = [(name, args) for name in sorted(all_names(mx, std))
              for args in sample_args(mx, std, name=name)
              if allows(mx, name, args) and not allows(std, name, args)]
    assert looser == []
    assert set(mx["architectures"]) <= set(std["architectures"])
    assert {"msgget", "mq_open", "name_to_handle_at", "memfd_secret"} <= all_names(std) - all_names(mx)


def test_architectures():
    assert std["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert mx["architectures"] == ["SCMP_ARCH_X86_64"]      # no socketcall/ipc multiplexers


@pytest.mark.parametrize("which", ["standard", "maximum"])
def test_default_is_eperm(which):
    assert (PROFILES[which]["defaultAction"], PROFILES[which]["defaultErrnoRet"]) == ("SCMP_ACT_ERRNO", 1)


@pytest.mark.parametrize("which", ["standard", "maximum"])
@pytest.mark.parametrize("name", HELPER_NEEDS)
def test_landlock_helper_syscalls_allowed_unconditionally(which, name):
    assert allows(PROFILES[which], name, ())
    assert any(name in e["names"] and not e.get("args") and e["action"] == "SCMP_ACT_ALLOW"
               for e in PROFILES[which]["syscalls"])


@pytest.mark.parametrize("which", ["standard", "maximum"])
def test_plain_oci_shape(which):
    profile = PROFILES[which]
    assert set(profile) <= {"defaultAction", "defaultErrnoRet", "architectures", "flags", "syscalls"}
    for entry in profile["syscalls"]:
        assert set(entry) <= {"names", "action", "errnoRet", "args"}
        indices = [a["index"] for a in entry.get("args", [])]
        assert len(indices) == len(set(indices)), f"repeated arg index in {entry}"
    check_shape(profile, which)                             # strict: rejects repeated indices
    validate_seccomp_against_schema(profile)


@pytest.mark.parametrize("which", ["standard", "maximum"])
def test_every_name_resolves_on_x86_64(which):
    profile = PROFILES[which]
    arches = [getattr(pyseccomp.Arch, a.removeprefix("SCMP_ARCH_")) for a in profile["architectures"]]
    unknown = sorted(n for n in all_names(profile) if pyseccomp.resolve_syscall(pyseccomp.Arch.X86_64, n) == -1)
    nowhere = sorted(n for n in all_names(profile)
                     if all(pyseccomp.resolve_syscall(a, n) < 0 for a in arches))
    assert (unknown, nowhere) == ([], [])


@pytest.mark.parametrize("which", ["standard", "maximum"])
def test_names_sorted_and_unique(which):
    for entry in PROFILES[which]["syscalls"]:
        assert entry["names"] == sorted(set(entry["names"]))
