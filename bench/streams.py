"""TCP streams out of two container-like network namespaces, one with iron's ruleset, one without.

    with StreamHosts(tcp) as hosts:              # tcp: bench/tcp.c, built static
        hosts.stream_mb_s(256, ruleset=False)
        hosts.stream_mb_s(256, ruleset=True)

Three namespaces of the bench's own: a "server" running the sink, and two identical
"containers", each joined to the server by a veth pair (/30s from the benchmark range
198.19.77.0/24). The real hook, iron-nethook, loads iron's ruleset into one of them, as
crun runs it, once: an allowlist of the sink's address and port. No packet leaves the
namespaces. Every process started here is stopped by its pid, and deleting the
namespaces removes the veth pairs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

from iron.hooks.nft_ruleset import render

NETHOOK = "/usr/local/lib/iron/iron-nethook"
PORT = 5201


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, timeout=120, **kw)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise RuntimeError(f"{' '.join(argv[:5])}… exit {done.returncode}: {lines[-1][-300:]}")
    return done


class StreamHosts:
    def __init__(self, tcp: str):
        self.tcp = tcp
        self.token = uuid.uuid4().hex[:6]
        self.server_ns = f"iron-bench-{self.token}-s"
        self.clients = {ruleset: f"iron-bench-{self.token}-{'iron' if ruleset else 'plain'}"
                        for ruleset in (False, True)}
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> StreamHosts:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def server_addr(ruleset: bool) -> str:
        """The sink's address on the veth pair to each container: 198.19.77.2/30 and .6/30."""
        return f"198.19.77.{6 if ruleset else 2}"

    def _create(self) -> None:
        for ns in (self.server_ns, *self.clients.values()):
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
        for ruleset, ns in self.clients.items():
            first = 4 if ruleset else 0
            self._link(ns, f"ib{self.token}{first}c", f"198.19.77.{first + 1}",
                       f"ib{self.token}{first}s", f"198.19.77.{first + 2}")
        sink = self._start(self.server_ns, [self.tcp, "sink", str(PORT)], stdout=subprocess.PIPE)
        if sink.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the tcp sink in {self.server_ns} did not start")
        self._load_ruleset(self.clients[True])

    def _link(self, ns: str, dev: str, addr: str, server_dev: str, server_addr: str) -> None:
        run(["ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", server_dev,
             "netns", self.server_ns])
        for where, name, address in ((ns, dev, addr), (self.server_ns, server_dev, server_addr)):
            run(["ip", "-n", where, "addr", "add", f"{address}/30", "dev", name])
            run(["ip", "-n", where, "link", "set", name, "up"])

    def _start(self, ns: str, argv: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self.processes.append(proc)
        return proc

    def _load_ruleset(self, ns: str) -> None:
        """The hook, as crun runs it: the OCI state of a process in ``ns`` on stdin."""
        holder = self._start(ns, ["sleep", "3600"])
        wait_in_netns(holder.pid, ns)
        ruleset = render({"policy": "allowlist", "allow": [f"{self.server_addr(True)}:{PORT}"]})
        state = json.dumps({"ociVersion": "1.0.2", "id": "bench", "status": "creating", "pid": holder.pid})
        run([NETHOOK, "--ruleset", ruleset], input=state.encode())
        run(["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "iron"])     # it is there

    def stream_mb_s(self, mib: int, ruleset: bool) -> float:
        """One stream of ``mib`` MiB to the sink, in MB/s (10^6 bytes), from the container with or
        without iron's ruleset."""
        out = run(["ip", "netns", "exec", self.clients[ruleset], self.tcp, "send", self.server_addr(ruleset),
                   str(PORT), str(mib)]).stdout
        return (mib << 20) / (int(out) / 1e9) / 1e6

    def close(self) -> None:
        for proc in self.processes:
            proc.kill()
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def wait_in_netns(pid: int, ns: str, timeout: float = 5.0) -> None:
    """Until ``ip netns exec`` has entered ``ns``: the hook refuses a process in the host's netns."""
    want = os.stat(f"/run/netns/{ns}").st_ino
    deadline = time.monotonic() + timeout
    while os.stat(f"/proc/{pid}/ns/net").st_ino != want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {pid} did not enter netns {ns} within {timeout} s")
        time.sleep(0.005)
