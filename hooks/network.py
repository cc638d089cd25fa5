"""`iron hook network`: the OCI createRuntime hook that filters a container's network namespace.

crun runs it after the container's namespaces exist and before the user process
starts, with the container state JSON on stdin. The hook:

1. renders the ruleset from ``--policy JSON`` (a bad policy fails before anything is touched);
2. opens ``/proc/PID/ns/net`` and refuses the host's namespace (iron never adds rules there);
3. enters that namespace with setns(2), in this short-lived process;
4. brings ``lo`` up (two ioctls; the engine's links and routes are never touched);
5. loads the ruleset with libnftables (the library behind ``nft -f``), in this process.

Any failure prints one line starting ``iron hook network: `` and exits non-zero, so crun
fails the container's creation. It runs on every create, so it imports only os and,
when it needs them, ipaddress, ctypes and fcntl: no json package (it pulls in re and
enum, ~40 ms on a busy host; the C scanner behind it is used directly), no socket, no
subprocess, no pyroute2 (~0.3 s). libnftables in-process saves starting ``nft`` and
lets a forked child, not the hook, wait out the kernel's release of the nftables socket
(``_release_after_exit``); ``leave`` skips the interpreter's teardown.
"""

from __future__ import annotations

import os
import sys

from iron.oci.jsonio import loads

PREFIX = "iron hook network: "
USAGE = "usage: iron hook network --policy JSON  (OCI state JSON on stdin)"
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
AF_INET, SOCK_DGRAM, SOCK_CLOEXEC = 2, 2, 0o2000000
LIBNFTABLES = "libnftables.so.1"


class HookError(Exception):
    """A failure worth one line on stderr."""


def main(argv: list[str]) -> int:
    try:
        opts = _parse_args(argv)
    except HookError as err:
        print(f"{PREFIX}{err}; {USAGE}", file=sys.stderr)
        return 2
    try:
        run(opts["policy"], sys.stdin.buffer.read())
    except HookError as err:
        print(f"{PREFIX}{err}", file=sys.stderr)
        return 1
    return 0


def run(policy_json: str, state_bytes: bytes) -> None:
    """Everything after argv parsing; raises HookError with a one-line message."""
    from iron.hooks.nft_ruleset import render
    from iron.oci.errors import IronError

    try:
        script = render(loads(policy_json))
    except ValueError as err:
        raise HookError(f"--policy is not valid JSON ({err})") from err
    except IronError as err:
        raise HookError(f"--policy: {err}") from err
    pid = container_pid(state_bytes)
    fd = open_netns(pid)
    try:
        enter_netns(fd)
    finally:
        os.close(fd)
    loopback_up()
    load_ruleset(script)


def container_pid(state_bytes: bytes) -> int:
    try:
        state = loads(state_bytes.decode())
    except ValueError as err:                     # also UnicodeDecodeError
        raise HookError(f"stdin is not the OCI state JSON ({err})") from err
    pid = state.get("pid") if isinstance(state, dict) else None
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise HookError(f"the OCI state on stdin has no container pid (got `{pid!r}`)")
    return pid


def open_netns(pid: int) -> int:
    """An fd for the container's netns; refuses the host's.

    The host's namespace is pid 1's and this process's own (crun runs hooks in the
    runtime's namespace). Where pid 1's cannot be read (a protected init, a sandbox),
    this process's own still is.
    """
    path = f"/proc/{pid}/ns/net"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise HookError(f"cannot open {path}: {err.strerror} (has the container process exited?)") from err
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) in host_netns_ids():
        os.close(fd)
        raise HookError(f"container pid {pid} is in the host network namespace (net:[{st.st_ino}]); "
                        "iron never adds rules to the host namespace")
    return fd


def host_netns_ids() -> set[tuple[int, int]]:
    ids = set()
    for path in ("/proc/self/ns/net", "/proc/1/ns/net"):
        try:
            st = os.stat(path)
        except OSError as err:
            if path == "/proc/self/ns/net":
                raise HookError(f"cannot stat {path}: {err.strerror}") from err
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids


def _libc():
    """libc through ctypes: Python 3.11's os module has no setns."""
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def enter_netns(fd: int) -> None:
    ctypes, libc = _libc()
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise HookError(f"setns(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}")


def loopback_up() -> None:
    """Set IFF_UP on ``lo`` in the current netns, if it is down. Nothing else is changed.

    The socket comes from libc through ctypes (already loaded for setns): the ``socket``
    module would add its import time to every container start.
    """
    import fcntl
    import struct

    ctypes, libc = _libc()
    sock = libc.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)
    if sock < 0:
        raise HookError(f"cannot bring lo up: socket(): {os.strerror(ctypes.get_errno())}")
    try:
        ifreq = fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0))
        flags = struct.unpack_from("16sH", ifreq)[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    except OSError as err:
        raise HookError(f"cannot bring lo up in the container's network namespace: {err.strerror}") from err
    finally:
        os.close(sock)


def load_ruleset(script: str) -> None:
    """Load ``script`` into the current netns with libnftables, as ``nft -f`` would.

    Called only after setns: nft_ctx_new opens libnftables' netlink socket, and a netlink
    socket stays in the namespace it was opened in.
    """
    nft = _libnftables()
    ctx = nft.nft_ctx_new(0)                                # NFT_CTX_DEFAULT
    if not ctx:
        raise HookError(f"{LIBNFTABLES}: nft_ctx_new failed")
    try:
        nft.nft_ctx_buffer_output(ctx)                     # nothing reaches crun's stdio
        nft.nft_ctx_buffer_error(ctx)
        if nft.nft_run_cmd_from_buffer(ctx, script.encode()) != 0:
            text = (nft.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            raise HookError(f"{LIBNFTABLES} refused the ruleset: {lines[0] if lines else 'no message'}")
        _release_after_exit()
    finally:
        nft.nft_ctx_free(ctx)


def _libnftables():
    import ctypes

    try:
        lib = ctypes.CDLL(LIBNFTABLES)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        for name in ("nft_ctx_free", "nft_ctx_buffer_output", "nft_ctx_buffer_error", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    except (OSError, AttributeError) as err:
        raise HookError(f"cannot use {LIBNFTABLES} ({err}); install nftables (apt-get install nftables)") from err
    return lib


def _release_after_exit() -> None:
    """Hand the last reference to libnftables' socket to a child that closes it after this process exits.

    Closing an nftables netlink socket after a commit waits for the kernel to finish
    freeing the transaction, an RCU grace period (5-30 ms on a small VM), and crun waits
    for the hook to exit. The rules are in force once the commit is acknowledged, so that
    wait need not be the container's: a forked child, holding copies of every descriptor
    with its stdio on /dev/null, waits for this process to exit (EOF on a pipe only this
    process can write) and only then drops the socket. If fork fails, this process
    closes the socket itself and only time is lost.
    """
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return
    if pid == 0:
        _hold_until_parent_exits(read_end, write_end)
    os.close(read_end)                                     # write_end stays open until exit


def _hold_until_parent_exits(read_end: int, write_end: int) -> None:
    try:
        os.close(write_end)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.read(read_end, 1)
    finally:
        os._exit(0)


def _parse_args(argv: list[str]) -> dict:
    opts: dict = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name not in ("--policy", "--nft"):    # --nft PATH: accepted as iron writes it, not needed
            raise HookError(f"unknown argument `{arg}`")
        if not eq:
            if not args:
                raise HookError(f"{name} needs a value")
            value = args.pop(0)
        opts[name[2:]] = value
    if "policy" not in opts:
        raise HookError("--policy is required")
    return opts


def leave(code: int) -> None:
    """End the process without the interpreter's teardown, which has nothing to do here.

    After the fork in ``_release_after_exit`` that teardown would also copy most of the
    heap, page by page, from the pages shared with the child (~10 ms on a small VM).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main(sys.argv[1:]))
