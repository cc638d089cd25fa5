"""The filter crun loads for iron stays on the kernel's seccomp fast path.

Since Linux 5.11 the kernel works out, per syscall number, whether a filter allows the call
whatever its arguments, and then skips running the filter for it (the seccomp action
cache). A syscall that lands in a rule reading its arguments pays for the whole BPF
program on every call instead: +55 % on a getppid loop here, against +30 % for the fast
path itself. So every syscall iron's profiles allow outright must stay cacheable, and the
container must carry exactly one filter (the cache of the newest filter is the one used).

The program is read back from a running container with PTRACE_SECCOMP_GET_FILTER and the
cache analysis redone here: seccomp_is_const_allow() in kernel/seccomp.c, for x86_64.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import struct

import pytest

from tests.conftest import iron_bin, load_config, require

pytestmark = pytest.mark.integration

AUDIT_ARCH_X86_64 = 0xC000003E
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH, PTRACE_SECCOMP_GET_FILTER = 0x4206, 0x4207, 17, 0x420C
__WALL = 0x40000000
SECCOMP_RET_ALLOW = 0x7FFF0000
# cBPF opcodes the kernel's analysis understands; anything else makes a syscall uncacheable.
LD_ABS_W, RET_K, JA, AND_K = 0x20, 0x06, 0x05, 0x54
JUMPS = {0x15: lambda a, k: a == k, 0x35: lambda a, k: a >= k, 0x25: lambda a, k: a > k,
         0x45: lambda a, k: bool(a & k)}
OFFSET_NR, OFFSET_ARCH = 0, 4


def read_filter(pid: int, index: int) -> list[tuple[int, int, int, int]] | None:
    """The cBPF program of the task's ``index``-th newest filter; None past the last one."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    assert libc.ptrace(PTRACE_SEIZE, pid, None, None) == 0, os.strerror(ctypes.get_errno())
    try:
        libc.ptrace(PTRACE_INTERRUPT, pid, None, None)
        os.waitpid(pid, __WALL)
        count = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, None)
        if count < 0:
            return None
        buf = ctypes.create_string_buffer(8 * count)
        libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, buf)
        return [struct.unpack_from("HBBI", buf.raw, 8 * i) for i in range(count)]
    finally:
        libc.ptrace(PTRACE_DETACH, pid, None, None)


def const_allow(prog: list[tuple[int, int, int, int]], nr: int) -> bool:
    """Whether the kernel would cache ``nr`` as allowed for x86_64 (reads only nr and arch)."""
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == LD_ABS_W and k in (OFFSET_NR, OFFSET_ARCH):
            acc, pc = nr if k == OFFSET_NR else AUDIT_ARCH_X86_64, pc + 1
        elif code == RET_K:
            return k == SECCOMP_RET_ALLOW
        elif code == JA:
            pc += 1 + k
        elif code in JUMPS:
            pc += 1 + (jt if JUMPS[code](acc, k) else jf)
        elif code == AND_K:
            acc, pc = acc & k, pc + 1
        else:
            return False        # an argument load or another opcode: not cacheable


def allowed_outright(seccomp: dict) -> set[int]:
    """x86_64 numbers of the syscalls an entry without args allows."""
    import pyseccomp
    names = {n for e in seccomp["syscalls"] if e["action"] == "SCMP_ACT_ALLOW" and not e.get("args")
             for n in e["names"]}
    numbers = {pyseccomp.resolve_syscall(pyseccomp.Arch.X86_64, n) for n in names}
    return {nr for nr in numbers if nr >= 0}


@pytest.mark.parametrize("mode", ["standard", "maximum"])
def test_every_unconditional_allow_is_cached(runtime, mode):
    require(platform.machine() == "x86_64", "the analysis is written for x86_64")
    bundle = runtime.bundle(["sleep", "300"])
    cid = runtime.new_id()
    out = runtime.run(iron_bin(mode), "run", "-d", "--bundle", str(bundle), cid)
    assert out.returncode == 0, out.stderr
    pid = json.loads(runtime.run("crun", "state", cid).stdout)["pid"]

    prog = read_filter(pid, 0)
    assert prog is not None and read_filter(pid, 1) is None, "expected exactly one seccomp filter"
    wanted = allowed_outright(load_config(bundle)["linux"]["seccomp"])
    slow = sorted(nr for nr in wanted if not const_allow(prog, nr))
    assert len(wanted) > 250 and not slow, f"syscalls off the seccomp cache: {slow}"
