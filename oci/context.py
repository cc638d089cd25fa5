"""The data a layer modifier may look at besides the spec and its profile section.

Plain classes, not dataclasses: importing dataclasses costs ~15 ms of every create.
"""

from __future__ import annotations


class Record:
    """Keyword construction with defaults, equality and repr over ``__slots__``; treat as frozen."""

    __slots__ = ()
    _defaults: dict = {}

    def __init__(self, **values):
        unknown = set(values) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {', '.join(sorted(unknown))}")
        for name in self.__slots__:
            default = self._defaults.get(name)
            object.__setattr__(self, name, values[name] if name in values else
                               (dict(default) if isinstance(default, dict) else default))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other):
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    def __hash__(self):
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def replace(self, **changes):
        return type(self)(**{**{n: getattr(self, n) for n in self.__slots__}, **changes})


class HostFacts(Record):
    """What preflight learned about the host. Modifiers receive data, never probe the host."""

    __slots__ = ("kernel", "arch", "seccomp", "landlock_abi", "network_hook", "libnftables", "landlock_helper",
                 "namespaces")
    _defaults = {"kernel": "", "arch": "x86_64", "seccomp": True,
                 "landlock_abi": 0,          # 0: Landlock unavailable
                 "network_hook": None,       # path of iron-nethook, when installed
                 "libnftables": True,        # the library the hook loads is installed
                 "landlock_helper": None,
                 "namespaces": {}}           # type → "dev:ino" of iron's own namespaces


class Policy(Record):
    """Operator settings from /etc/iron/config.toml that widen what annotations may do."""

    __slots__ = ("allow_annotation_lower", "allow_fs_write_annotation", "allow_network_annotation",
                 "host_network")
    _defaults = {"allow_annotation_lower": False, "allow_fs_write_annotation": False,
                 "allow_network_annotation": False,
                 "host_network": "refuse"}   # "refuse" | "isolate"


class Context(Record):
    """``profiles_root``: the folder profile-relative files (seccomp/…) resolve against."""

    __slots__ = ("mode", "profiles_root", "host", "policy", "annotations")
    _defaults = {"annotations": {}}

    def __init__(self, **values):
        values.setdefault("host", HostFacts())
        values.setdefault("policy", Policy())
        super().__init__(**values)
