"""The Landlock helper's command line: one policy string, shared by the filesystem and network layers.

A wrapped process looks like ``[HELPER_PATH, POLICY, "--", *original_args]``. The policy
is ``key=value`` fields joined by ``;`` (see hooks/landlock/iron-landlock.c). Paths
may not contain ``:`` ``;`` or ``=``; profiles are checked for that when loaded.
"""

from __future__ import annotations


from .context import Record
from .errors import IronError

# Under /dev, which every runtime mounts as a fresh tmpfs: the mount point leaves no
# trace in the image, works with a read-only rootfs, and hides any file the image
# ships at that path.
HELPER_PATH = "/dev/.iron-landlock"

_PATH_KEYS = {"r": "read", "w": "write", "x": "execute", "d": "devices"}
_FORBIDDEN = set(":;=")


class LandlockPolicy(Record):
    """What the helper enforces. ``tcp_connect``/``tcp_bind`` None: that access is not handled."""

    __slots__ = ("min_abi", "read", "write", "execute", "devices", "tcp_connect", "tcp_bind",
                 "scope", "debug")
    _defaults = {"min_abi": 1, "read": (), "write": (), "execute": (), "devices": (),
                 "tcp_connect": None, "tcp_bind": None, "scope": False, "debug": False}

    def to_arg(self) -> str:
        fields = [f"abi={self.min_abi}"]
        for key, attr in _PATH_KEYS.items():
            paths = getattr(self, attr)
            if paths:
                fields.append(f"{key}={':'.join(paths)}")
        for key, ports in (("tcp.connect", self.tcp_connect), ("tcp.bind", self.tcp_bind)):
            if ports is not None:
                fields.append(f"{key}={','.join(str(p) for p in ports)}")
        if self.scope:
            fields.append("scope=1")
        if self.debug:
            fields.append("debug=1")
        return ";".join(fields)

    @classmethod
    def from_arg(cls, arg: str) -> "LandlockPolicy":
        values: dict = {}
        for field in filter(None, arg.split(";")):
            key, sep, value = field.partition("=")
            if not sep:
                raise IronError("malformed Landlock policy field", field=key,
                                expected="key=value", got=field)
            if key == "abi":
                values["min_abi"] = int(value)
            elif key in _PATH_KEYS:
                values[_PATH_KEYS[key]] = tuple(filter(None, value.split(":")))
            elif key in ("tcp.connect", "tcp.bind"):
                ports = tuple(int(p) for p in filter(None, value.split(",")))
                values["tcp_connect" if key == "tcp.connect" else "tcp_bind"] = ports
            elif key in ("scope", "debug"):
                values[key] = value == "1"
            else:
                raise IronError("unknown Landlock policy field", field=key,
                                expected="abi, r, w, x, d, tcp.connect, tcp.bind, scope or debug")
        return cls(**values)

    def with_tcp(self, connect: tuple[int, ...] | None, bind: tuple[int, ...] | None) -> "LandlockPolicy":
        return self.replace(tcp_connect=connect, tcp_bind=bind)

    @property
    def handles_fs(self) -> bool:
        return bool(self.read or self.write or self.execute or self.devices)


def check_path(path: str, field: str) -> None:
    """A Landlock path must be absolute, normalised and free of the policy's separators."""
    bare = path.lstrip("!")
    if not bare.startswith("/") or "/../" in bare + "/" or "/./" in bare + "/" or "//" in bare:
        raise IronError("Landlock paths must be absolute without `.` or `..`", field=field,
                        expected="an absolute normalised path", got=path)
    if _FORBIDDEN & set(bare):
        raise IronError("Landlock paths may not contain `:` `;` or `=`", field=field, got=path)


def unwrap(args: list[str]) -> tuple[LandlockPolicy | None, list[str]]:
    """Split iron's prefix off ``args``; anything that is not exactly iron's prefix is left alone."""
    if len(args) >= 3 and args[0] == HELPER_PATH and args[2] == "--":
        return LandlockPolicy.from_arg(args[1]), list(args[3:])
    return None, list(args)


def wrap(args: list[str], policy: LandlockPolicy) -> list[str]:
    """Prefix ``args`` with the helper; an existing iron prefix is replaced, never nested."""
    _, inner = unwrap(args)
    return [HELPER_PATH, policy.to_arg(), "--", *inner]


def helper_mount(host_helper: str) -> dict:
    return {"destination": HELPER_PATH, "type": "bind", "source": host_helper,
            "options": ["bind", "ro", "nosuid", "nodev"]}
