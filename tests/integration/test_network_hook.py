"""iron-nethook, iron's network hook, against real network namespaces (root): what gets through, and what does not.

A container-side netns and a peer "test host" (tests/netns_hosts.py) stand in for a
container and the world; all traffic stays between them. The hook runs as crun runs
it: a separate process with the OCI state on stdin, for a process inside the netns, loading
the script iron renders at create (iron.hooks.nft_ruleset.render).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import netns_hosts  # noqa: E402

from tests.conftest import require  # noqa: E402

from iron.hooks.nft_ruleset import render  # noqa: E402

pytestmark = pytest.mark.integration
NFT = shutil.which("nft")
NETHOOK = "/usr/local/lib/iron/iron-nethook"     # installed by install.sh


def host_ruleset() -> str:
    return subprocess.run([NFT, "list", "ruleset"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def host_rules_before():
    reason = netns_hosts.skip_reason()
    if reason == netns_hosts.NO_NETNS:
        pytest.skip(reason)                      # a kernel without network namespaces
    require(reason is None, reason or "")
    require(NFT is not None, "nft not installed (apt-get install nftables)")
    before = host_ruleset()
    yield before
    after = host_ruleset()
    assert "table inet iron" not in after
    assert after == before, "the host's nftables ruleset changed"


@pytest.fixture(scope="module")
def hosts(host_rules_before):
    with netns_hosts.netns_hosts() as h:
        yield h


@pytest.fixture
def pid(hosts):
    """A process inside the container netns, with the netns reset (lo down, no iron table) first."""
    hosts.ip(hosts.container_ns, "link", "set", "lo", "down")
    nft_in(hosts, "delete", "table", "inet", "iron", check=False)
    hosts.ip(hosts.container_ns, "neigh", "flush", "all")
    sleeper = hosts.sleeper()
    yield sleeper
    hosts.kill(sleeper)
    nft_in(hosts, "delete", "table", "inet", "iron", check=False)


def nft_in(hosts, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return netns_hosts.run(["ip", "netns", "exec", hosts.container_ns, NFT, *args], check=check)


def hook(pid: int, policy: dict | str) -> subprocess.CompletedProcess:
    """The hook as crun runs it; ``policy`` is rendered as iron does at create, a str is loaded as is."""
    script = policy if isinstance(policy, str) else render(policy)
    state = {"ociVersion": "1.0.2", "id": "iron-test", "status": "creating", "pid": pid, "bundle": "/nonexistent"}
    return subprocess.run([NETHOOK, "--ruleset", script], input=json.dumps(state), capture_output=True,
                          text=True, timeout=30, env={})


def loaded(pid: int, policy: dict) -> None:
    done = hook(pid, policy)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


def probe(hosts, checks, ns=None, timeout=1.0) -> dict:
    results = hosts.probe(ns or hosts.container_ns, checks, timeout=timeout)
    return {check: result for check, result in zip(checks, results)}


def lo_is_up(hosts) -> bool:
    flags = hosts.ip(hosts.container_ns, "-o", "link", "show", "dev", "lo").stdout.split("<")[1].split(">")[0]
    return "UP" in flags.split(",")


# --- policy none ---

def test_none_blocks_everything_but_loopback(hosts, pid):
    outside = [("tcp", hosts.peer_v4, 7), ("tcp", hosts.peer_v6, 7), ("udp", hosts.peer_v4, 7),
               ("udp", hosts.peer_v6, 7), ("icmp", hosts.peer_v4, 0), ("icmp", hosts.peer_v6, 0),
               ("tcp", "198.19.1.1", 80)]
    baseline = probe(hosts, outside[:-1])
    assert set(baseline.values()) == {"ok"}, baseline          # the peer answers without iron
    assert not lo_is_up(hosts)

    loaded(pid, {"policy": "none", "allow": [], "dns": [], "inbound": []})

    assert lo_is_up(hosts)
    got = probe(hosts, outside + [("loopback", "127.0.0.1", 0), ("loopback", "::1", 0)])
    assert got.pop(("loopback", "127.0.0.1", 0)) == "ok"
    assert got.pop(("loopback", "::1", 0)) == "ok"
    assert "ok" not in got.values(), got
    for check, result in got.items():                          # dropped here, by nftables
        if check[0] in ("udp", "icmp"):
            assert result == "EPERM", (check, result)


def test_none_blocks_inbound(hosts, pid):
    server = hosts.echo_server(hosts.container_ns, (8080,), (7,))
    try:
        assert probe(hosts, [("tcp", hosts.container_v4, 8080)], ns=hosts.peer_ns) == {
            ("tcp", hosts.container_v4, 8080): "ok"}
        loaded(pid, {"policy": "none"})
        got = probe(hosts, [("tcp", hosts.container_v4, 8080), ("udp", hosts.container_v4, 7),
                            ("icmp", hosts.container_v4, 0), ("tcp", hosts.container_v6, 8080)], ns=hosts.peer_ns)
        assert "ok" not in got.values(), got
    finally:
        hosts.kill(server.pid)


# --- allowlists ---

def test_allowlist_one_tcp_destination(hosts, pid):
    loaded(pid, {"policy": "allowlist", "allow": [f"{hosts.peer_v4}:7"]})
    got = probe(hosts, [("tcp", hosts.peer_v4, 7), ("tcp", hosts.peer_v4, 8080), ("tcp", hosts.peer_v4, 53),
                        ("tcp", hosts.peer_v4_alt, 7), ("udp", hosts.peer_v4, 7), ("icmp", hosts.peer_v4, 0),
                        ("tcp", hosts.peer_v6, 7), ("udp", hosts.peer_v6, 7), ("icmp", hosts.peer_v6, 0),
                        ("loopback", "127.0.0.1", 0)])
    assert got.pop(("tcp", hosts.peer_v4, 7)) == "ok"
    assert got.pop(("loopback", "127.0.0.1", 0)) == "ok"
    assert "ok" not in got.values(), got
    assert got[("udp", hosts.peer_v4, 7)] == got[("icmp", hosts.peer_v4, 0)] == "EPERM"


def test_allowlist_udp_ipv6_and_portless_entries(hosts, pid):
    loaded(pid, {"policy": "allowlist",
                 "allow": [f"{hosts.peer_v4}:7/udp", f"[{hosts.peer_v6}]:7", hosts.peer_v4_alt]})
    got = probe(hosts, [("udp", hosts.peer_v4, 7), ("tcp", hosts.peer_v6, 7),           # listed
                        ("tcp", hosts.peer_v4_alt, 8080), ("icmp", hosts.peer_v4_alt, 0),  # port-less entry
                        ("tcp", hosts.peer_v4, 7), ("udp", hosts.peer_v4, 53),             # udp entry only
                        ("udp", hosts.peer_v6, 7), ("tcp", hosts.peer_v6, 8080),           # v6 port only
                        ("icmp", hosts.peer_v6, 0), ("icmp", hosts.peer_v4, 0), ("tcp", hosts.peer_v6_alt, 7)])
    allowed = list(got)[:4]
    assert [got[c] for c in allowed] == ["ok"] * 4, got
    assert "ok" not in [got[c] for c in list(got)[4:]], got


def test_dns_only_to_listed_resolvers(hosts, pid):
    loaded(pid, {"policy": "allowlist", "allow": [hosts.peer_v4], "dns": [hosts.peer_v4_alt, hosts.peer_v6_alt]})
    got = probe(hosts, [("udp", hosts.peer_v4_alt, 53), ("tcp", hosts.peer_v4_alt, 53), ("udp", hosts.peer_v6_alt, 53),
                        ("udp", hosts.peer_v4, 7),                   # the port-less entry itself
                        ("udp", hosts.peer_v4, 53), ("tcp", hosts.peer_v4, 53), ("udp", hosts.peer_v6, 53),
                        ("udp", hosts.peer_v4_alt, 7)])
    assert [got[c] for c in list(got)[:4]] == ["ok"] * 4, got
    assert "ok" not in [got[c] for c in list(got)[4:]], got
    assert got[("udp", hosts.peer_v4, 53)] == "EPERM"


def test_inbound_ports(hosts, pid):
    server = hosts.echo_server(hosts.container_ns, (8080, 7), ())
    try:
        loaded(pid, {"policy": "allowlist", "allow": [], "inbound": [8080]})
        got = probe(hosts, [("tcp", hosts.container_v4, 8080), ("tcp", hosts.container_v6, 8080),
                            ("tcp", hosts.container_v4, 7), ("tcp", hosts.container_v6, 7),
                            ("icmp", hosts.container_v4, 0)], ns=hosts.peer_ns)
        assert [got[c] for c in list(got)[:2]] == ["ok", "ok"], got
        assert "ok" not in [got[c] for c in list(got)[2:]], got
        # ...and inbound does not open outbound.
        assert probe(hosts, [("tcp", hosts.peer_v4, 8080)]) != {("tcp", hosts.peer_v4, 8080): "ok"}
    finally:
        hosts.kill(server.pid)


def test_metadata_and_link_local_blocked_by_a_wide_entry(hosts, pid):
    # 0.0.0.0/0:80 would include 169.254.169.254:80: the explicit drops come first.
    hosts.ip(hosts.peer_ns, "addr", "add", "169.254.169.254/32", "dev", hosts.peer_veth)
    hosts.ip(hosts.container_ns, "route", "add", "169.254.169.254/32", "via", hosts.peer_v4)
    try:
        server = hosts.echo_server(hosts.peer_ns, (80,), ())
        try:
            assert probe(hosts, [("tcp", "169.254.169.254", 80)]) == {("tcp", "169.254.169.254", 80): "ok"}
            loaded(pid, {"policy": "allowlist", "allow": ["0.0.0.0/0:80", "0.0.0.0/0:7"]})
            got = probe(hosts, [("tcp", "169.254.169.254", 80), ("tcp", hosts.peer_v4, 7)])
            assert got == {("tcp", "169.254.169.254", 80): "timeout", ("tcp", hosts.peer_v4, 7): "ok"}
            loaded(pid, {"policy": "allowlist", "allow": ["169.254.169.254:80"]})
            assert probe(hosts, [("tcp", "169.254.169.254", 80)]) == {("tcp", "169.254.169.254", 80): "ok"}
        finally:
            hosts.kill(server.pid)
    finally:
        hosts.ip(hosts.container_ns, "route", "del", "169.254.169.254/32")
        hosts.ip(hosts.peer_ns, "addr", "del", "169.254.169.254/32", "dev", hosts.peer_veth)


# --- idempotence, the engine's setup, the host ---

def test_loading_twice_is_idempotent(hosts, pid):
    policy = {"policy": "allowlist", "allow": [f"{hosts.peer_v4}:7", f"[{hosts.peer_v6}]:7"],
              "dns": [hosts.peer_v4_alt], "inbound": [8080]}
    loaded(pid, policy)
    first = nft_in(hosts, "list", "ruleset").stdout
    loaded(pid, policy)
    assert nft_in(hosts, "list", "ruleset").stdout == first
    loaded(pid, {"policy": "none"})
    assert nft_in(hosts, "list", "ruleset").stdout != first
    loaded(pid, policy)
    assert nft_in(hosts, "list", "ruleset").stdout == first
    assert first.count("table inet iron {") == 1
    assert probe(hosts, [("tcp", hosts.peer_v4, 7)]) == {("tcp", hosts.peer_v4, 7): "ok"}


def test_engine_links_and_routes_untouched(hosts, pid):
    def snapshot():
        ns = hosts.container_ns
        return [hosts.ip(ns, "-d", "link", "show", "dev", hosts.container_veth).stdout,
                hosts.ip(ns, "addr", "show", "dev", hosts.container_veth).stdout,
                hosts.ip(ns, "route", "show", "table", "all").stdout,
                hosts.ip(ns, "-6", "route", "show", "table", "all").stdout,
                hosts.ip(ns, "rule").stdout]
    before = snapshot()
    loaded(pid, {"policy": "allowlist", "allow": [f"{hosts.peer_v4}:7"]})
    after = snapshot()
    # The only change: lo is up, and the kernel adds lo's local routes to table local.
    strip = lambda text: "\n".join(ln for ln in text.splitlines() if " lo " not in f"{ln} " and "dev lo" not in ln)
    assert [strip(s) for s in after] == [strip(s) for s in before]


def test_refuses_the_host_netns(host_rules_before):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        done = hook(sleeper.pid, {"policy": "none"})
    finally:
        sleeper.kill()
        sleeper.wait()
    assert done.returncode == 1
    assert done.stderr.startswith("iron network hook: ") and "host network namespace" in done.stderr
    assert done.stderr.count("\n") == 1
    assert host_ruleset() == host_rules_before


def test_a_refused_ruleset_is_one_line_and_loads_nothing(hosts, pid):
    """libnftables' error comes back as one line, and its transaction leaves no table behind."""
    done = hook(pid, "table inet iron {}\ntable inet iron { chain c { bogus } }\n")
    assert done.returncode == 1
    assert done.stderr.startswith("iron network hook: libnftables.so.1 refused the ruleset: ")
    assert "Error" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "table inet iron" not in nft_in(hosts, "list", "ruleset").stdout


def test_leaves_no_process_behind(hosts, pid):
    """The child that closes libnftables' socket after the hook exits is gone soon after."""
    netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    loaded(pid, {"policy": "allowlist", "allow": [f"{hosts.peer_v4}:7"]})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and in_netns(netns) != {pid}:
        time.sleep(0.01)
    assert in_netns(netns) == {pid}


def in_netns(inode: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                found.add(int(entry))
        except OSError:
            continue
    return found


def test_hook_wall_time(hosts, pid, record_property):
    """The hook's cost on every container start: median of 10 runs (reported, loosely bounded)."""
    policy = {"policy": "allowlist", "allow": [f"{hosts.peer_v4}:7"], "dns": [hosts.peer_v4_alt]}
    times = []
    for _ in range(10):
        start = time.perf_counter()
        loaded(pid, policy)
        times.append(time.perf_counter() - start)
    median_ms = statistics.median(times) * 1000
    record_property("hook_median_ms", round(median_ms, 1))
    print(f"\niron-nethook: median {median_ms:.1f} ms over 10 runs "
          f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")
    assert median_ms < 1000


# --- under crun 1.8.1, as iron's createRuntime hook ---

def test_under_crun(hosts, tmp_path, host_rules_before):
    crun = shutil.which("crun")
    require(crun is not None, "crun not installed")
    from iron.shim.bundlekit import build_rootfs, find_busybox, make_bundle
    try:
        find_busybox()
    except Exception as err:                     # noqa: BLE001 - any reason means: no rootfs here
        require(False, f"no busybox rootfs: {err}")
    rootfs = tmp_path / "rootfs"
    build_rootfs(str(rootfs))
    hosts.ip(hosts.container_ns, "link", "set", "lo", "down")
    ruleset = render({"policy": "allowlist", "allow": [f"{hosts.peer_v4}:7"]})
    script = (f"echo iron-crun | nc -w 2 {hosts.peer_v4} 7; echo allowed=$?; "
              f"nc -w 1 {hosts.peer_v4} 8080 </dev/null; echo denied=$?; "
              "ip link show lo | grep -q 'UP' && echo lo=up")

    def edit(spec):
        spec["linux"]["namespaces"] = [ns if ns["type"] != "network" else
                                       {"type": "network", "path": hosts.container_path}
                                       for ns in spec["linux"]["namespaces"]]
        spec["hooks"] = {"createRuntime": [{"path": NETHOOK, "args": ["iron-nethook", "--ruleset", ruleset],
                                            "timeout": 10}]}
        spec["linux"].pop("resources", None)

    bundle = make_bundle(str(tmp_path / "bundle"), str(rootfs), ["sh", "-c", script], edit=edit)
    root = tmp_path / "crun-root"
    root.mkdir()
    cid = f"iron-net-{hosts.token}"
    try:
        done = subprocess.run([crun, "--root", str(root), "run", "--bundle", bundle, cid],
                              capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run([crun, "--root", str(root), "delete", "--force", cid], capture_output=True, timeout=30)
        nft_in(hosts, "delete", "table", "inet", "iron", check=False)
    if done.returncode != 0 and "cgroup" in done.stderr and "iron network hook" not in done.stderr:
        require(False, f"crun cannot run containers here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert "iron-crun" in lines and "allowed=0" in lines and "lo=up" in lines, done.stdout
    assert "denied=0" not in lines, done.stdout


def test_host_ruleset_unchanged(host_rules_before):
    assert host_ruleset() == host_rules_before
