"""`iron hook network`: the OCI createRuntime hook that filters a container's network namespace.

crun runs it after the container's namespaces exist and before the user process
starts, with the container state JSON on stdin. The hook:

1. renders the ruleset from ``--policy JSON`` (a bad policy fails before anything is touched);
2. opens ``/proc/PID/ns/net`` and refuses the host's namespace (iron never adds rules there);
3. enters that namespace with setns(2), in this short-lived process;
4. brings ``lo`` up (two ioctls; the engine's links and routes are never touched);
5. loads the ruleset with ``nft -f -``, which inherits the namespace.

Any failure prints one line starting ``iron hook network: `` and exits non-zero, so crun
fails the container's creation. It runs on every create, so it imports only os,
ipaddress and what it uses at the moment it uses it (ctypes, fcntl, struct, select):
no json package (it pulls in re and enum, ~40 ms on a busy host; the C scanner behind it
is used directly), no socket, no subprocess, no pyroute2 (~0.3 s).
"""

from __future__ import annotations

import os
import sys

PREFIX = "iron hook network: "
USAGE = "usage: iron hook network --policy JSON [--nft PATH]  (OCI state JSON on stdin)"
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
AF_INET, SOCK_DGRAM, SOCK_CLOEXEC = 2, 2, 0o2000000
NFT_TIMEOUT = 8                                  # below the hook's own 10 s timeout
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HookError(Exception):
    """A failure worth one line on stderr."""


def main(argv: list[str]) -> int:
    try:
        opts = _parse_args(argv)
    except HookError as err:
        print(f"{PREFIX}{err}; {USAGE}", file=sys.stderr)
        return 2
    try:
        run(opts["policy"], opts.get("nft", "nft"), sys.stdin.buffer.read())
    except HookError as err:
        print(f"{PREFIX}{err}", file=sys.stderr)
        return 1
    return 0


def run(policy_json: str, nft: str, state_bytes: bytes) -> None:
    """Everything after argv parsing; raises HookError with a one-line message."""
    from iron.hooks.nft_ruleset import render
    from iron.oci.errors import IronError

    try:
        script = render(loads(policy_json))
    except ValueError as err:
        raise HookError(f"--policy is not valid JSON ({err})") from err
    except IronError as err:
        raise HookError(f"--policy: {err}") from err
    nft_path = find_nft(nft)
    pid = container_pid(state_bytes)
    fd = open_netns(pid)
    try:
        enter_netns(fd)
    finally:
        os.close(fd)
    loopback_up()
    load_ruleset(nft_path, script)


class _JsonContext:
    """The settings the C scanner reads, as json.JSONDecoder's defaults give them."""
    strict = True
    object_hook = object_pairs_hook = None
    parse_float = parse_constant = float
    parse_int = int
    memo: dict = {}


def loads(text: str):
    """json.loads without importing the json package on success.

    Anything the fast path does not accept goes to json.loads itself, so errors (a
    ValueError) read exactly as json's.
    """
    from _json import make_scanner

    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = make_scanner(_JsonContext)(text, start)
        if not text[end:].strip(" \t\n\r"):
            return value
    except Exception:                             # noqa: BLE001 - json.loads below says what
        pass
    import json

    return json.loads(text)


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


def find_nft(nft: str) -> str:
    """``nft`` as given if it has a `/`, else the first executable on PATH (hooks often get no PATH)."""
    if "/" in nft:
        if not os.access(nft, os.X_OK):
            raise HookError(f"nft not executable at {nft}; install nftables (apt-get install nftables)")
        return nft
    dirs = os.environ.get("PATH") or DEFAULT_PATH
    for d in dirs.split(":"):
        candidate = os.path.join(d or ".", nft)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise HookError(f"{nft} not found on PATH ({dirs}); install nftables (apt-get install nftables)")


def load_ruleset(nft: str, script: str) -> None:
    """``nft -f -`` in this (the container's) netns, with ``script`` on stdin.

    Spawned with posix_spawn, stdin and output in memfds (no pipe to keep draining),
    waited on through a pidfd with a deadline: the subprocess module would add its
    import time to every container start.
    """
    script_fd = os.memfd_create("iron-nft-script")
    out_fd = os.memfd_create("iron-nft-output")
    try:
        data = script.encode()
        while data:
            data = data[os.write(script_fd, data):]
        os.lseek(script_fd, 0, os.SEEK_SET)
        try:
            pid = os.posix_spawn(nft, [nft, "-f", "-"], os.environ, file_actions=[
                (os.POSIX_SPAWN_DUP2, script_fd, 0), (os.POSIX_SPAWN_DUP2, out_fd, 1),
                (os.POSIX_SPAWN_DUP2, out_fd, 2)])
        except OSError as err:
            raise HookError(f"cannot run {nft}: {err.strerror}") from err
        if not _exited_within(pid, NFT_TIMEOUT):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise HookError(f"{nft} -f - did not finish within {NFT_TIMEOUT} s")
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if code != 0:
            os.lseek(out_fd, 0, os.SEEK_SET)
            text = os.read(out_fd, 1 << 16).decode(errors="replace")
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            raise HookError(f"{nft} -f - failed (exit {code}): {lines[0] if lines else 'no message'}")
    finally:
        os.close(script_fd)
        os.close(out_fd)


def _exited_within(pid: int, seconds: float) -> bool:
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:                     # kernel < 5.3: poll the child instead
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            time.sleep(0.001)
        return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(int(seconds * 1000)))
    finally:
        os.close(pidfd)


def _parse_args(argv: list[str]) -> dict:
    opts: dict = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name not in ("--policy", "--nft"):
            raise HookError(f"unknown argument `{arg}`")
        if not eq:
            if not args:
                raise HookError(f"{name} needs a value")
            value = args.pop(0)
        opts[name[2:]] = value
    if "policy" not in opts:
        raise HookError("--policy is required")
    return opts


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
