"""Which mode a container gets: a floor pinned by the binary name, --iron-mode or the config
default; the `io.iron.mode` annotation may raise it, never lower it (unless config.toml allows)."""

from __future__ import annotations

from iron.oci.errors import IronError, Refused
from iron.oci.profile import Loader, Profile

ANNOTATION = "io.iron.mode"


def floor(pinned: str | None, flag: str | None, default: str, loader: Loader) -> tuple[Profile, str]:
    if pinned and flag:
        by_name, by_flag = loader.load(pinned), loader.load(flag, field="--iron-mode")
        if by_flag.rank < by_name.rank or (by_flag.rank == by_name.rank and flag != pinned):
            raise Refused(f"--iron-mode {flag} would lower the mode `{pinned}` pinned by the binary name")
        return by_flag, "--iron-mode"
    if flag:
        return loader.load(flag, field="--iron-mode"), "--iron-mode"
    if pinned:
        return loader.load(pinned), "binary name"
    return loader.load(default, field="config.toml: default_mode"), "config default"


def resolve(pinned: str | None, flag: str | None, annotations: dict, cfg, loader: Loader) -> tuple[Profile, str]:
    """The profile for a new container and where its mode came from."""
    base, source = floor(pinned, flag, cfg.default_mode, loader)
    asked = annotations.get(ANNOTATION)
    if asked is None or asked == base.name:
        return base, source
    field = f"annotations[\"{ANNOTATION}\"]"
    if not isinstance(asked, str):
        raise IronError("annotation must be a string", field=field, got=asked)
    wanted = loader.load(asked, field=field)
    if wanted.rank > base.rank or cfg.allow_annotation_lower:
        return wanted, "annotation"
    raise Refused(f"annotation {ANNOTATION}={asked} would lower the mode `{base.name}` "
                  f"(from the {source}); annotations may only raise it",
                  hint="set allow_annotation_lower = true in /etc/iron/config.toml to permit this")


def for_exec(recorded: str | None, pinned: str | None, flag: str | None, cfg, loader: Loader) -> tuple[Profile, str]:
    """An exec gets its container's mode (recorded at create), or the caller's floor if higher."""
    base, source = floor(pinned, flag, cfg.default_mode, loader)
    if recorded and recorded != base.name:
        container = loader.load(recorded, field=f"container annotations[\"{ANNOTATION}\"]")
        if container.rank >= base.rank:
            return container, "container"
    return base, source
