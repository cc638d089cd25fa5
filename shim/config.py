"""/etc/iron/config.toml: the operator's settings.

Two readers: ``runtime_path`` for the pass-through fast path (no tomllib: a tiny
stat-keyed cache in /run/iron), and ``load`` for create/exec and iron's own commands.
"""

from __future__ import annotations

import os

DEFAULT_PATH = "/etc/iron/config.toml"
CACHE_DIR = "/run/iron"

# key: (type, default). Paths and names are strings; switches are booleans.
SETTINGS = {
    "runtime": (str, ""),                       # empty: crun on PATH
    "default_mode": (str, "standard"),
    "profiles_dir": (str, "/etc/iron/profiles"),
    "landlock_helper": (str, "/usr/local/lib/iron/iron-landlock"),
    "network_hook": (str, "/usr/local/lib/iron/iron-nethook"),
    "audit_log": (str, "/var/log/iron/audit.jsonl"),
    "audit_on_failure": (str, "auto"),          # auto: fail closed for maximum, warn otherwise
    "allow_annotation_lower": (bool, False),
    "allow_fs_write_annotation": (bool, False),
    "allow_network_annotation": (bool, False),
    "host_network": (str, "refuse"),            # refuse | isolate
}
CHOICES = {"audit_on_failure": ("auto", "fail", "warn"), "host_network": ("refuse", "isolate")}


def config_path(flag: str | None) -> str:
    return flag or os.environ.get("IRON_CONFIG") or DEFAULT_PATH


class Config:
    """Settings with defaults filled in; attribute per key of SETTINGS."""

    def __init__(self, path: str, values: dict):
        self.path = path
        for key, (_, default) in SETTINGS.items():
            setattr(self, key, values.get(key, default))

    def to_json(self) -> dict:
        return {key: getattr(self, key) for key in SETTINGS}


def load(path: str) -> Config:
    """Parse and check config.toml; a missing file means all defaults."""
    from iron.oci.errors import IronError
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            raw = f.read()
    except FileNotFoundError:
        return Config(path, {})
    except OSError as err:
        raise IronError(f"cannot read config: {err.strerror}", file=path) from err
    key = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}:{path}"
    cached = _cached_values(key)
    if cached is not None:
        return Config(path, cached)
    values = _parse(path, raw)
    from iron.oci.jsonio import dumps
    write_cache(os.path.join(CACHE_DIR, "config.cache"), f"{key}\n{dumps(values)}")
    return Config(path, values)


def _cached_values(key: str) -> dict | None:
    """The checked settings of a config.toml seen before: tomllib costs ~15 ms on each create."""
    try:
        with open(os.path.join(CACHE_DIR, "config.cache")) as f:
            cached_key, text = f.read().split("\n", 1)
    except (OSError, ValueError):
        return None
    if cached_key != key:
        return None
    from iron.oci.jsonio import loads
    try:
        values = loads(text)
    except ValueError:
        return None
    return values if isinstance(values, dict) else None


def _parse(path: str, raw: bytes) -> dict:
    from iron.oci.errors import IronError
    import tomllib
    try:
        values = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise IronError(f"TOML syntax error: {err}", file=path) from err
    for key, value in values.items():
        if key not in SETTINGS:
            raise IronError("unknown setting", file=path, field=key,
                            expected="one of " + ", ".join(SETTINGS))
        kind = SETTINGS[key][0]
        if not isinstance(value, kind):
            raise IronError("wrong type", file=path, field=key, expected=kind.__name__, got=value)
        if key in CHOICES and value not in CHOICES[key]:
            raise IronError("unknown value", file=path, field=key,
                            expected=" or ".join(CHOICES[key]), got=value)
    return values


def runtime_path(path: str) -> str:
    """The delegate runtime, cheaply: only `runtime` is needed to pass a command through."""
    try:
        st = os.stat(path)
    except OSError:
        return find_on_path("crun")
    key = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}:{path}"
    cache = os.path.join(CACHE_DIR, "runtime.cache")
    try:
        with open(cache) as f:
            cached_key, cached_runtime = f.read().split("\n", 1)
        if cached_key == key:
            return cached_runtime or find_on_path("crun")
    except (OSError, ValueError):
        pass
    runtime = load(path).runtime
    write_cache(cache, f"{key}\n{runtime}")
    return runtime or find_on_path("crun")


def find_on_path(name: str) -> str:
    for folder in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin").split(":"):
        candidate = os.path.join(folder or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return ""


def write_cache(path: str, text: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass   # a cache is an optimisation only
