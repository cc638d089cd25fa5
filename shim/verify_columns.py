"""The table's columns: the modes asked for, or single-layer test profiles (--layers-alone)."""

from __future__ import annotations

import json
import os

from iron.oci import units
from iron.oci.profile import Loader, Profile
from iron.shim import config
from iron.shim.verify_run import BIN_DIR, Column
from iron.shim.verify_threats import LAYERS

BUILTIN = ("minimal", "standard", "maximum")


def alone_profiles(folder: str) -> list[str]:
    """One operator profile per layer: maximum with the other three layers switched off."""
    names = []
    for layer in LAYERS:
        name = f"verify-{layer}-only"
        doc = {"name": name, "extends": "maximum",
               "description": f"iron verify: the {layer} layer alone",
               **{other: None for other in LAYERS if other != layer}}
        with open(os.path.join(folder, f"{name}.json"), "w") as f:
            json.dump(doc, f, indent=2)
        names.append(name)
    return names


def write_config(cfg: config.Config, path: str, **overrides) -> None:
    values = {**cfg.to_json(), **{k: v for k, v in overrides.items() if v is not None}}
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def column(loader: Loader, name: str, alone: bool) -> Column:
    """A built-in mode runs as iron-MODE; claims follow the built-in mode a profile extends,
    so a weakened profile still has to block what its mode promises (--layers-alone: its own layers)."""
    profile: Profile = loader.load(name, field="--mode")
    argv = [os.path.join(BIN_DIR, f"iron-{name}")] if name in BUILTIN else \
        [os.path.join(BIN_DIR, "iron"), "--iron-mode", name]
    claims = profile.layers() if alone else loader.load(profile.base).layers()
    return Column(name, argv, claims, profile.layers())


def limits(profile: Profile) -> tuple[int, int]:
    """(pids, memory MiB) the probes must exceed: the profile's, or the built-in mode's if it has none."""
    found = (profile.data.get("process") or {}).get("limits") or {}
    pids = int(found.get("pids") or 1024)
    memory = units.parse_size(found["memory"], "process.limits.memory") // (1 << 20) if found.get("memory") else 4096
    return pids, memory
