"""Test hosts in network namespaces: a "container side" and a "peer" joined by a veth pair.

Network tests send traffic only here, never off the machine::

    container netns (ip netns add)          peer netns ("test host")
    veth  198.18.0.1/24, fd00:1e0::1/64 ──  veth  198.18.0.2/24 (+ .3), fd00:1e0::2/64 (+ ::3)
    default routes via the peer             TCP + UDP echo listeners, IPv4 and IPv6

Addresses come from the benchmark range 198.18.0.0/15 and a ULA /64. ``lo`` in the
container netns is left down, as a container engine leaves it. Every process started
here is tracked and stopped by its pid; ``close()`` removes the veths and both
namespaces, whatever failed before.

Usage (root only; ``skip_reason()`` says why it cannot run)::

    from netns_hosts import netns_hosts
    with netns_hosts() as hosts:
        pid = hosts.sleeper()                      # a process inside the container netns
        hosts.probe(hosts.container_ns, [("tcp", hosts.peer_v4, 7)])   # -> ["ok"]

Probe results are "ok" or the failure: an errno name ("EPERM" is what a local nftables
drop gives), "timeout", or "mismatch".
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

V4_PREFIX = 24
V6_PREFIX = 64
CONTAINER_V4, PEER_V4, PEER_V4_ALT = "198.18.0.1", "198.18.0.2", "198.18.0.3"
CONTAINER_V6, PEER_V6, PEER_V6_ALT = "fd00:1e0::1", "fd00:1e0::2", "fd00:1e0::3"
TCP_PORTS = (7, 53, 8080)
UDP_PORTS = (7, 53)

_ECHO_SERVER = r"""
import json, selectors, socket, sys
tcp_ports, udp_ports, udp_addrs = json.loads(sys.argv[1])
sel = selectors.DefaultSelector()
def bound(kind, addr, port):
    fam = socket.AF_INET if "." in addr else socket.AF_INET6
    s = socket.socket(fam, kind)
    if addr == "::":
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    return s
for port in tcp_ports:
    s = bound(socket.SOCK_STREAM, "::", port); s.listen(64); sel.register(s, selectors.EVENT_READ, "accept")
# One UDP socket per address: a reply must come from the address the request went to.
for port in udp_ports:
    for addr in udp_addrs:
        sel.register(bound(socket.SOCK_DGRAM, addr, port), selectors.EVENT_READ, "udp")
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if key.data == "accept":
            conn, _ = s.accept(); sel.register(conn, selectors.EVENT_READ, "tcp")
        elif key.data == "udp":
            data, peer = s.recvfrom(65535); s.sendto(data, peer)
        else:
            try:
                data = s.recv(65535)
            except OSError:
                data = b""
            if data:
                s.sendall(data)
            else:
                sel.unregister(s); s.close()
"""

_PROBE = r"""
import errno, json, os, socket, struct, sys, time
def errname(err):
    if isinstance(err, socket.timeout):
        return "timeout"
    return errno.errorcode.get(err.errno, str(err.errno)) if err.errno else type(err).__name__
def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET
def tcp(host, port, timeout):
    with socket.socket(family(host), socket.SOCK_STREAM) as s:
        s.settimeout(timeout); s.connect((host, port)); s.sendall(b"iron-probe")
        return "ok" if s.recv(64) == b"iron-probe" else "mismatch"
def udp(host, port, timeout):
    with socket.socket(family(host), socket.SOCK_DGRAM) as s:
        s.settimeout(timeout); s.sendto(b"iron-probe", (host, port))
        return "ok" if s.recvfrom(64)[0] == b"iron-probe" else "mismatch"
def checksum(data):
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF); total += total >> 16
    return ~total & 0xFFFF
def icmp(host, port, timeout):
    v6 = ":" in host
    ident = os.getpid() & 0xFFFF
    request, reply = (128, 129) if v6 else (8, 0)
    header = struct.pack("!BBHHH", request, 0, 0, ident, 1) + b"iron-probe"
    if not v6:
        header = header[:2] + struct.pack("!H", checksum(header)) + header[4:]
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    with socket.socket(family(host), socket.SOCK_RAW, proto) as s:
        s.settimeout(timeout); s.sendto(header, (host, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = s.recv(2048)
            body = data if v6 else data[(data[0] & 0x0F) * 4:]
            kind, _, _, rid, _ = struct.unpack("!BBHHH", body[:8])
            if kind == reply and rid == ident:
                return "ok"
        return "timeout"
def loopback(host, port, timeout):
    with socket.socket(family(host), socket.SOCK_STREAM) as srv:
        srv.bind((host, 0)); srv.listen(1)
        with socket.socket(family(host), socket.SOCK_STREAM) as c:
            c.settimeout(timeout); c.connect(srv.getsockname()[:2])
            conn, _ = srv.accept()
            with conn:
                c.sendall(b"iron-probe")
                return "ok" if conn.recv(64) == b"iron-probe" else "mismatch"
results = []
for kind, host, port, timeout in json.loads(sys.argv[1]):
    try:
        results.append({"tcp": tcp, "udp": udp, "icmp": icmp, "loopback": loopback}[kind](host, port, timeout))
    except OSError as err:
        results.append(errname(err))
print(json.dumps(results))
"""


NO_NETNS = "no network namespace support"


def skip_reason() -> str | None:
    """Why these fixtures cannot run here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespace tests need root"
    if not shutil.which("ip"):
        return "iproute2 (`ip`) not installed"
    if not os.path.isdir("/proc/self/ns") or not os.path.exists("/proc/self/ns/net"):
        return NO_NETNS
    return None


def run(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 30)
    done = subprocess.run(argv, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@dataclass
class NetnsHosts:
    token: str
    container_ns: str
    peer_ns: str
    container_veth: str
    peer_veth: str
    container_v4: str = CONTAINER_V4
    peer_v4: str = PEER_V4
    peer_v4_alt: str = PEER_V4_ALT
    container_v6: str = CONTAINER_V6
    peer_v6: str = PEER_V6
    peer_v6_alt: str = PEER_V6_ALT
    tcp_ports: tuple[int, ...] = TCP_PORTS
    udp_ports: tuple[int, ...] = UDP_PORTS
    processes: list[subprocess.Popen] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    @property
    def container_path(self) -> str:
        """The container netns as an OCI ``linux.namespaces`` path."""
        return f"/run/netns/{self.container_ns}"

    # --- setup ---

    def create(self) -> None:
        for ns in (self.container_ns, self.peer_ns):
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
        run(["ip", "link", "add", self.container_veth, "netns", self.container_ns, "type", "veth",
             "peer", "name", self.peer_veth, "netns", self.peer_ns])
        for ns, dev in ((self.container_ns, self.container_veth), (self.peer_ns, self.peer_veth)):
            # No duplicate address detection: addresses are usable at once.
            self.sh(ns, f"echo 0 > /proc/sys/net/ipv6/conf/{dev}/accept_dad")
        self.ip(self.container_ns, "addr", "add", f"{self.container_v4}/{V4_PREFIX}", "dev", self.container_veth)
        self.ip(self.container_ns, "-6", "addr", "add", f"{self.container_v6}/{V6_PREFIX}", "dev",
                self.container_veth, "nodad")
        for addr in (self.peer_v4, self.peer_v4_alt):
            self.ip(self.peer_ns, "addr", "add", f"{addr}/{V4_PREFIX}", "dev", self.peer_veth)
        for addr in (self.peer_v6, self.peer_v6_alt):
            self.ip(self.peer_ns, "-6", "addr", "add", f"{addr}/{V6_PREFIX}", "dev", self.peer_veth, "nodad")
        self.ip(self.container_ns, "link", "set", self.container_veth, "up")
        self.ip(self.peer_ns, "link", "set", self.peer_veth, "up")
        self.ip(self.peer_ns, "link", "set", "lo", "up")
        self.wait_carrier()
        self.ip(self.container_ns, "route", "add", "default", "via", self.peer_v4)
        self.ip(self.container_ns, "-6", "route", "add", "default", "via", self.peer_v6)
        self.echo_server(self.peer_ns, self.tcp_ports, self.udp_ports)

    def wait_carrier(self, timeout: float = 5.0) -> None:
        """Until both veth ends pass packets: the kernel activates their qdisc (noop until then)
        from linkwatch, up to a second after carrier; packets sent earlier are lost."""
        deadline = time.monotonic() + timeout
        ends = ((self.container_ns, self.container_veth), (self.peer_ns, self.peer_veth))
        while True:
            shown = [self.ip(ns, "-o", "link", "show", "dev", dev).stdout for ns, dev in ends]
            if all("LOWER_UP" in s and "qdisc noop" not in s for s in shown):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"veth pair not up after {timeout} s: {shown}")
            time.sleep(0.02)

    def ip(self, ns: str, *args: str) -> subprocess.CompletedProcess:
        return run(["ip", "-n", ns, *args])

    def sh(self, ns: str, script: str) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", ns, "sh", "-c", script])

    # --- processes inside a namespace ---

    def start(self, ns: str, argv: list[str], **kw) -> subprocess.Popen:
        """A tracked process inside ``ns`` (``ip netns exec`` execs it: same pid)."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self.processes.append(proc)
        return proc

    def sleeper(self, seconds: int = 60) -> int:
        """The pid of a ``sleep`` inside the container netns, once it is really in there."""
        proc = self.start(self.container_ns, ["sleep", str(seconds)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        want = os.stat(self.container_path).st_ino
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if os.stat(f"/proc/{proc.pid}/ns/net").st_ino == want and _comm(proc.pid) == "sleep":
                    return proc.pid
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.005)
        raise RuntimeError(f"sleep did not start inside {self.container_ns}")

    def echo_server(self, ns: str, tcp_ports=TCP_PORTS, udp_ports=UDP_PORTS,
                    udp_addrs: list[str] | None = None) -> subprocess.Popen:
        """TCP echo on every address of ``ns``, UDP echo on ``udp_addrs`` (default: the addresses
        this helper gave ``ns``); ready when returned."""
        if udp_addrs is None:
            udp_addrs = ([self.peer_v4, self.peer_v4_alt, self.peer_v6, self.peer_v6_alt] if ns == self.peer_ns
                         else [self.container_v4, self.container_v6])
        payload = json.dumps([list(tcp_ports), list(udp_ports), list(udp_addrs)])
        proc = self.start(ns, [sys.executable, "-c", _ECHO_SERVER, payload],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if line.strip() != "ready":
            try:
                err = proc.communicate(timeout=5)[1].strip()
            except subprocess.TimeoutExpired:
                err = "no `ready` line"
            self.kill(proc.pid)
            raise RuntimeError(f"echo server in {ns} did not start: {err}")
        return proc

    def probe(self, ns: str, checks: list[tuple], timeout: float = 1.0) -> list[str]:
        """Run ``(kind, host, port)`` checks from inside ``ns``; kind: tcp, udp, icmp, loopback."""
        payload = json.dumps([[kind, host, port, timeout] for kind, host, port in checks])
        done = run(["ip", "netns", "exec", ns, sys.executable, "-c", _PROBE, payload],
                   timeout=30 + timeout * len(checks))
        return json.loads(done.stdout)

    def kill(self, pid: int) -> None:
        """Stop a process this helper started (by its pid) and forget it."""
        for proc in [p for p in self.processes if p.pid == pid]:
            self.stop(proc)
            self.processes.remove(proc)

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    # --- teardown ---

    def close(self) -> None:
        errors = []
        for proc in reversed(self.processes):
            try:
                self.stop(proc)
            except (OSError, subprocess.SubprocessError) as err:
                errors.append(f"stop pid {proc.pid}: {err}")
        self.processes.clear()
        if self.container_ns in self.namespaces:
            run(["ip", "-n", self.container_ns, "link", "del", self.container_veth], check=False)
        for ns in reversed(self.namespaces):
            done = run(["ip", "netns", "del", ns], check=False)
            if done.returncode != 0:
                errors.append(f"ip netns del {ns}: {done.stderr.strip()}")
        self.namespaces.clear()
        if errors:
            raise RuntimeError("netns_hosts cleanup: " + "; ".join(errors))


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


@contextmanager
def netns_hosts(tcp_ports=TCP_PORTS, udp_ports=UDP_PORTS) -> Iterator[NetnsHosts]:
    """A fresh container-side netns and peer test host; everything removed on exit."""
    token = secrets.token_hex(3)
    hosts = NetnsHosts(token=token, container_ns=f"iron-{token}-c", peer_ns=f"iron-{token}-p",
                       container_veth=f"irn{token}c", peer_veth=f"irn{token}p",
                       tcp_ports=tuple(tcp_ports), udp_ports=tuple(udp_ports))
    try:
        hosts.create()
        yield hosts
    finally:
        hosts.close()
