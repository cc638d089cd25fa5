"""The Landlock helper (hooks/landlock/iron-landlock.c), run on the host.

Landlock needs no privilege once no_new_privs is set, so these tests need neither root
nor a container. Commands inside the sandbox are the static busybox (no libraries to
grant) or Python for the checks that must see an exact errno.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "hooks" / "landlock"
BUSYBOX = "/bin/busybox"
PYTHON = os.path.realpath(sys.executable)

# What a dynamically linked program needs: its libraries, its loader, /etc; and the
# installation of the Python running the tests, which may live outside /usr.
_PY_HOME = os.path.realpath(sys.base_prefix)
SYSTEM_EXEC = ["/usr", "/bin", "/lib", "/lib64"] + ([] if _PY_HOME == "/usr" else [_PY_HOME])
SYSTEM_READ = ["/etc", *SYSTEM_EXEC]


def _host_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint(1))
    return max(abi, 0)


HOST_ABI = _host_abi()
needs_landlock = pytest.mark.skipif(HOST_ABI < 1, reason="Landlock is not available on this host")
needs_net = pytest.mark.skipif(HOST_ABI < 4, reason="Landlock TCP rules need ABI >= 4")


@pytest.fixture(scope="session")
def helpers() -> dict[str, str]:
    require(bool(shutil.which("make") and shutil.which("gcc")), "make and gcc are needed to build the helper")
    subprocess.run(["make", "-s", "-C", str(SRC), "all", "fake-enosys"], check=True)
    return {"real": str(SRC / "build" / "iron-landlock"),
            "noll": str(SRC / "build" / "iron-landlock-noll")}


@pytest.fixture
def helper(helpers) -> str:
    return helpers["real"]


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """ro/ (readable), rw/ (readable and writable), hidden/ (nothing), noexec/ (readable)."""
    dirs = {name: tmp_path / name for name in ("ro", "rw", "hidden", "noexec")}
    for d in dirs.values():
        d.mkdir()
    (dirs["ro"] / "file").write_text("read-only\n")
    (dirs["rw"] / "file").write_text("writable\n")
    (dirs["hidden"] / "secret").write_text("secret\n")
    shutil.copy(BUSYBOX, dirs["noexec"] / "busybox")
    return dirs


def policy(tree: dict[str, Path] | None = None, *extra: str, abi: int = 1) -> str:
    read, write = list(SYSTEM_READ), []
    if tree:
        read += [str(tree["ro"]), str(tree["rw"]), str(tree["noexec"])]
        write.append(str(tree["rw"]))
    fields = [f"abi={abi}", "r=" + ":".join(read), "x=" + ":".join(SYSTEM_EXEC),
              "d=/dev/null"]
    if write:
        fields.append("w=" + ":".join(write))
    return ";".join([*fields, *extra])


def run(helper: str, pol: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([helper, pol, "--", *cmd], capture_output=True, text=True,
                          timeout=30, **kw)


def bb(*args: str) -> list[str]:
    return [BUSYBOX, *args]


# Prints the errno name of the operation, or "OK".
PROBE = """
import errno, os, socket, sys
op, args = sys.argv[1], sys.argv[2:]
try:
    if op == "rename":
        os.rename(args[0], args[1])
    elif op == "truncate":
        os.truncate(args[0], 0)
    elif op == "symlink-write":
        os.symlink(args[1], args[0])
        open(args[0], "w").close()
    elif op == "connect":
        socket.create_connection(("127.0.0.1", int(args[0])), timeout=5).close()
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def probe(helper: str, pol: str, *args: str) -> str:
    res = run(helper, pol, PYTHON, "-I", "-c", PROBE, *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


# ---------------------------------------------------------------------------- transparency

@needs_landlock
def test_exit_status_passes_through(helper):
    res = run(helper, policy(), *bb("sh", "-c", "exit 7"))
    assert res.returncode == 7, res.stderr
    assert res.stderr == ""


@needs_landlock
def test_argv_is_kept_verbatim(helper):
    args = ["a b", "it's", '"quoted"', "", "$HOME", "--", ";r=/:"]
    res = run(helper, policy(), *bb("sh", "-c", 'printf "[%s]\\n" "$@"', "sh", *args))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"[{a}]" for a in args]


@needs_landlock
def test_env_and_cwd_are_untouched(helper, tree):
    env = {"PATH": "/usr/bin:/bin", "IRON_TEST": "a b;c=d", "EMPTY": ""}
    res = run(helper, policy(tree), "env", cwd=tree["rw"], env=env)
    assert res.returncode == 0, res.stderr
    assert dict(line.split("=", 1) for line in res.stdout.splitlines()) == env
    res = run(helper, policy(tree), *bb("pwd"), cwd=tree["rw"])
    assert res.stdout.strip() == str(tree["rw"])


@needs_landlock
def test_pid_is_kept(helper):
    proc = subprocess.Popen([helper, policy(), "--", *bb("sh", "-c", "echo $$")],
                            stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert int(out) == proc.pid


@needs_landlock
def test_command_is_looked_up_in_path(helper):
    res = run(helper, policy(), "sh", "-c", "exit 3", env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 3, res.stderr


@needs_landlock
def test_unknown_command_exits_127(helper):
    res = run(helper, policy(), "iron-no-such-command", env={"PATH": "/usr/bin"})
    assert res.returncode == 127
    assert "iron-no-such-command" in res.stderr and "ENOENT" in res.stderr


# ---------------------------------------------------------------------------- filesystem

@needs_landlock
def test_read_inside_r_works_and_outside_fails(helper, tree):
    res = run(helper, policy(tree), *bb("cat", str(tree["ro"] / "file")))
    assert res.returncode == 0 and res.stdout == "read-only\n", res.stderr
    res = run(helper, policy(tree), *bb("cat", str(tree["hidden"] / "secret")))
    assert res.returncode != 0
    assert "Permission denied" in res.stderr
    assert "secret" not in res.stdout


@needs_landlock
def test_listing_outside_r_fails(helper, tree):
    res = run(helper, policy(tree), *bb("ls", str(tree["hidden"])))
    assert res.returncode != 0 and "Permission denied" in res.stderr


@needs_landlock
def test_write_outside_w_fails_and_inside_works(helper, tree):
    res = run(helper, policy(tree), *bb("sh", "-c", f"echo x > {tree['ro']}/new"))
    assert res.returncode != 0 and "Permission denied" in res.stderr
    assert not (tree["ro"] / "new").exists()
    res = run(helper, policy(tree), *bb("sh", "-c", f"echo x >> {tree['ro']}/file"))
    assert res.returncode != 0
    assert (tree["ro"] / "file").read_text() == "read-only\n"

    script = f"echo new > {tree['rw']}/new && mkdir {tree['rw']}/d && rm {tree['rw']}/file"
    res = run(helper, policy(tree), *bb("sh", "-c", script))
    assert res.returncode == 0, res.stderr
    assert (tree["rw"] / "new").read_text() == "new\n"
    assert (tree["rw"] / "d").is_dir() and not (tree["rw"] / "file").exists()


@needs_landlock
def test_writable_dir_makes_fifos_but_never_device_nodes(helper, tree):
    res = run(helper, policy(tree), *bb("mkfifo", str(tree["rw"] / "fifo")))
    assert res.returncode == 0, res.stderr
    res = run(helper, policy(tree), *bb("mknod", str(tree["rw"] / "null"), "c", "1", "3"))
    assert res.returncode != 0
    assert not (tree["rw"] / "null").exists()


@needs_landlock
def test_rule_on_a_file_grants_only_that_file(helper, tree):
    (tree["ro"] / "other").write_text("other\n")
    pol = policy() + f";r={tree['ro']}/file"
    res = run(helper, pol, *bb("cat", str(tree["ro"] / "file")))
    assert res.returncode == 0 and res.stdout == "read-only\n", res.stderr
    res = run(helper, pol, *bb("cat", str(tree["ro"] / "other")))
    assert res.returncode != 0 and "Permission denied" in res.stderr


@needs_landlock
def test_device_rule_allows_dev_null(helper):
    res = run(helper, policy(), *bb("sh", "-c", "echo x > /dev/null && cat /dev/null"))
    assert res.returncode == 0, res.stderr


@needs_landlock
def test_rename_into_read_only_dir_fails(helper, tree):
    got = probe(helper, policy(tree), "rename", str(tree["rw"] / "file"), str(tree["ro"] / "moved"))
    assert got in ("EXDEV", "EACCES")
    assert (tree["rw"] / "file").exists() and not (tree["ro"] / "moved").exists()


@needs_landlock
def test_rename_inside_writable_dir_works(helper, tree):
    got = probe(helper, policy(tree), "rename", str(tree["rw"] / "file"), str(tree["rw"] / "moved"))
    assert got == "OK"


@pytest.mark.skipif(HOST_ABI < 3, reason="TRUNCATE needs Landlock ABI >= 3")
def test_truncate_of_read_only_file_fails(helper, tree):
    assert probe(helper, policy(tree, abi=3), "truncate", str(tree["ro"] / "file")) == "EACCES"
    assert (tree["ro"] / "file").read_text() == "read-only\n"
    assert probe(helper, policy(tree, abi=3), "truncate", str(tree["rw"] / "file")) == "OK"


@needs_landlock
def test_symlink_to_read_only_file_cannot_be_written(helper, tree):
    got = probe(helper, policy(tree), "symlink-write", str(tree["rw"] / "link"),
                str(tree["ro"] / "file"))
    assert got == "EACCES"
    assert (tree["ro"] / "file").read_text() == "read-only\n"


@needs_landlock
def test_exec_outside_x_fails(helper, tree):
    copy = str(tree["noexec"] / "busybox")
    res = run(helper, policy(tree), copy, "true")
    assert res.returncode == 126
    assert "EACCES" in res.stderr and copy in res.stderr
    res = run(helper, policy(tree), *bb("sh", "-c", f"{copy} true"))
    assert res.returncode == 126


@needs_landlock
def test_missing_optional_path_is_skipped(helper, tree):
    pol = policy(tree) + f";r={tree['ro']}/absent"
    assert run(helper, pol, *bb("true")).returncode == 0


@needs_landlock
def test_missing_required_path_fails(helper, tree):
    marker = tree["rw"] / "marker"
    res = run(helper, policy(tree) + f";r=!{tree['ro']}/absent", *bb("touch", str(marker)))
    assert res.returncode == 126
    assert f"{tree['ro']}/absent" in res.stderr and "ENOENT" in res.stderr
    assert not marker.exists()


@needs_landlock
def test_required_existing_path_works(helper, tree):
    res = run(helper, policy(tree) + f";w=!{tree['rw']}", *bb("touch", str(tree["rw"] / "m")))
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------------------- fail closed

def test_too_high_abi_refuses_and_runs_nothing(helper, tree):
    marker = tree["rw"] / "marker"
    res = run(helper, policy(tree, abi=99), *bb("touch", str(marker)))
    assert res.returncode == 126
    assert "abi" in res.stderr
    assert not marker.exists()


def test_no_landlock_refuses_and_runs_nothing(helpers, tree):
    marker = tree["rw"] / "marker"
    res = run(helpers["noll"], policy(tree), *bb("touch", str(marker)))
    assert res.returncode == 126
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith("iron-landlock: ") and "ENOSYS" in res.stderr
    assert not marker.exists()


@pytest.mark.parametrize("pol, field", [
    ("abi=1;bogus=1", "bogus"),
    ("abi=1;r", "r"),
    ("abi=one", "abi"),
    ("abi=0", "abi"),
    ("abi=8", "abi"),
    ("abi=", "abi"),
    ("r=/usr", "abi"),
    ("", "abi"),
    ("abi=1;r=usr", "r"),
    ("abi=1;w=/tmp:relative", "w"),
    ("abi=1;x=!", "x"),
    ("abi=1;tcp.connect=70000", "tcp.connect"),
    ("abi=1;tcp.bind=http", "tcp.bind"),
    ("abi=1;tcp.connect=-1", "tcp.connect"),
    ("abi=1;scope=yes", "scope"),
    ("abi=1;debug=2", "debug"),
])
def test_malformed_policy_is_refused(helper, tmp_path, pol, field):
    marker = tmp_path / "marker"
    res = run(helper, pol, *bb("touch", str(marker)))
    assert res.returncode == 126
    assert f'"{field}"' in res.stderr
    assert res.stderr.count("\n") == 1
    assert not marker.exists()


@pytest.mark.parametrize("argv", [[], ["abi=1"], ["abi=1", "--"], ["abi=1", "true"],
                                  ["abi=1", "-x", "true"]])
def test_usage_error_is_refused(helper, argv):
    res = subprocess.run([helper, *argv], capture_output=True, text=True, timeout=30)
    assert res.returncode == 126
    assert "usage" in res.stderr


# ---------------------------------------------------------------------------- network, scope, debug

@pytest.fixture
def listeners():
    socks = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        socks.append(s)
    yield [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()


@needs_net
def test_tcp_connect_only_to_listed_ports(helper, listeners):
    allowed, other = listeners
    pol = policy(None, f"tcp.connect={allowed}", abi=4)
    assert probe(helper, pol, "connect", str(allowed)) == "OK"
    assert probe(helper, pol, "connect", str(other)) == "EACCES"


@needs_net
def test_empty_tcp_connect_denies_every_port(helper, listeners):
    pol = policy(None, "tcp.connect=", abi=4)
    assert probe(helper, pol, "connect", str(listeners[0])) == "EACCES"


@needs_landlock
def test_without_tcp_keys_connect_is_not_handled(helper, listeners):
    assert probe(helper, policy(), "connect", str(listeners[0])) == "OK"


@needs_landlock
def test_debug_reports_what_was_enforced(helper):
    res = run(helper, policy(None, "debug=1", "scope=1", "tcp.connect=80", "tcp.bind="),
              *bb("true"))
    assert res.returncode == 0, res.stderr
    abi = min(HOST_ABI, 7)
    match = re.search(r"^iron-landlock: enforced abi=(\d+) fs=0x([0-9a-f]+) net=0x([0-9a-f]+) "
                      r"scoped=0x([0-9a-f]+)$", res.stderr, re.MULTILINE)
    assert match, res.stderr
    assert int(match[1]) == abi
    if abi >= 5:
        assert int(match[2], 16) == 0xFFFF
    if abi >= 4:
        assert int(match[3], 16) == 0x3
    if abi >= 6:
        assert int(match[4], 16) == 0x3


@pytest.mark.skipif(HOST_ABI != 7, reason="this host's Landlock ABI is not 7")
def test_debug_reports_abi_7_on_this_host(helper):
    res = run(helper, "abi=7;r=/usr;x=/usr;debug=1", *bb("true"))
    assert res.returncode == 0, res.stderr
    assert "iron-landlock: enforced abi=7 fs=0xffff net=0x0 scoped=0x0" in res.stderr


@pytest.mark.skipif(HOST_ABI < 6, reason="signal scoping needs Landlock ABI >= 6")
def test_scope_blocks_signals_to_processes_outside(helper):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        res = run(helper, policy(None, "scope=1", abi=6), *bb("kill", "-0", str(sleeper.pid)))
        assert res.returncode != 0
        res = run(helper, policy(None, abi=6), *bb("kill", "-0", str(sleeper.pid)))
        assert res.returncode == 0, res.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
