"""The hardening pipeline: one modifier per layer, applied in this order, stopping at the first error.

spec' = network(filesystem(syscall(process(spec))))
The order matters in one place: the network layer adds its TCP ports to the Landlock
prefix the filesystem layer wrote.
"""

from __future__ import annotations

from .context import Context
from .decision import Decision

LAYERS = ("process", "syscall", "filesystem", "network")


def _module(layer: str):
    """The layer's module, imported on first use (importlib itself costs ~1 ms to import)."""
    return getattr(__import__("iron.oci", fromlist=[layer]), layer)


def harden(spec: dict, profile: dict, ctx: Context) -> tuple[dict, list[Decision]]:
    """Apply every layer the profile has; a layer it lacks is not touched."""
    decisions: list[Decision] = []
    for layer in LAYERS:
        section = profile.get(layer)
        if section is None:
            continue
        spec, made = _module(layer).apply(spec, section, ctx)
        decisions.extend(made)
    return spec, decisions


def harden_exec(process: dict, profile: dict, ctx: Context, container: dict) -> tuple[dict, list[Decision]]:
    """The same mode for a process exec'd into a running container."""
    decisions: list[Decision] = []
    for layer in LAYERS:
        section = profile.get(layer)
        module = _module(layer)
        if section is None or not hasattr(module, "apply_exec"):
            continue
        if layer == "filesystem":
            process, made = module.apply_exec(process, section, ctx, container)
        else:
            process, made = module.apply_exec(process, section, ctx)
        decisions.extend(made)
    return process, decisions
