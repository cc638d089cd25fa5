"""The data a layer modifier may look at besides the spec and its profile section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class HostFacts:
    """What preflight learned about the host. Modifiers receive data, never probe the host."""

    kernel: str = ""
    arch: str = "x86_64"
    seccomp: bool = True
    landlock_abi: int = 0            # 0: Landlock unavailable
    nft: str | None = None           # path of the nft binary
    landlock_helper: str | None = None
    namespaces: dict = field(default_factory=dict)   # type → "dev:ino" of iron's own namespaces


@dataclass(frozen=True)
class Policy:
    """Operator settings from /etc/iron/config.toml that widen what annotations may do."""

    allow_annotation_lower: bool = False
    allow_fs_write_annotation: bool = False
    allow_network_annotation: bool = False
    host_network: str = "refuse"     # "refuse" | "isolate"
    iron_exe: str = "/usr/local/bin/iron"


@dataclass(frozen=True)
class Context:
    mode: str
    profiles_root: Path              # where profile-relative files (seccomp/…) resolve
    host: HostFacts = field(default_factory=HostFacts)
    policy: Policy = field(default_factory=Policy)
    annotations: dict = field(default_factory=dict)
