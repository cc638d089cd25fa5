"""A throwaway test host for the network probes: one peer netns, one netns per column.

Every column's container joins its own netns (so one column's nftables rules never leak
into another's) through a veth pair to the peer. The peer runs no listeners: the kernel's
TCP reset or ICMP port-unreachable proves a packet arrived. Addresses are from the
benchmark range 198.18.0.0/15 and a ULA; nothing leaves the machine, and ``close``
removes every namespace (and with it every veth) whatever failed before.
"""

from __future__ import annotations

import os
import secrets
import subprocess

METADATA = "169.254.169.254"


class ProbeNet:
    def __init__(self, columns: list[str]):
        self.token = secrets.token_hex(3)
        self.peer = f"iron-verify-{self.token}-peer"
        self.made: list[str] = []
        self.paths: dict[str, str] = {}
        self.addrs: dict[str, tuple[str, str, str]] = {}
        try:
            self._add_ns(self.peer)
            self._ip(self.peer, "link", "set", "lo", "up")
            self._ip(self.peer, "addr", "add", f"{METADATA}/32", "dev", "lo")
            for i, column in enumerate(columns, start=1):
                self._column(i, column)
        except BaseException:
            self.close()
            raise

    def _column(self, i: int, column: str) -> None:
        ns = f"iron-verify-{self.token}-{i}"
        self._add_ns(ns)
        inner, outer = f"ivc{self.token}{i}", f"ivp{self.token}{i}"
        _run("ip", "link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer, "netns", self.peer)
        v4, v6 = f"198.18.{i}", f"fd00:1e0:{i}:"
        self._ip(ns, "addr", "add", f"{v4}.1/24", "dev", inner)
        self._ip(ns, "-6", "addr", "add", f"{v6}:1/64", "dev", inner, "nodad")
        self._ip(self.peer, "addr", "add", f"{v4}.2/24", "dev", outer)
        self._ip(self.peer, "addr", "add", f"{v4}.3/24", "dev", outer)
        self._ip(self.peer, "-6", "addr", "add", f"{v6}:2/64", "dev", outer, "nodad")
        self._ip(ns, "link", "set", inner, "up")
        self._ip(self.peer, "link", "set", outer, "up")
        self._ip(ns, "route", "add", "default", "via", f"{v4}.2")
        self._ip(ns, "-6", "route", "add", "default", "via", f"{v6}:2")
        self.paths[column] = f"/var/run/netns/{ns}"
        self.addrs[column] = (f"{v4}.2", f"{v6}:2", f"{v4}.3")

    def _add_ns(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self.made.append(name)

    def _ip(self, ns: str, *args: str) -> None:
        _run("ip", "-n", ns, *args)

    def close(self) -> None:
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made = []

    def __enter__(self) -> "ProbeNet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")})
    if done.returncode != 0:
        from iron.oci.errors import IronError
        raise IronError(f"test network setup failed: {' '.join(argv)}: {done.stderr.strip()}")
