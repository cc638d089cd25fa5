"""Mode profiles: find by name, follow `extends`, validate against the schema, rank.

Built-in profiles live in the package (profiles/); operators add their own in
/etc/iron/profiles/NAME.json. A profile's rank is that of the built-in mode at the
nearest built-in in its `extends` chain, so a custom profile ranks as the mode it builds on.
Schema validation imports jsonschema (slow), so a file that passed once is remembered
by the sha256 of its bytes. Paths are plain strings: pathlib's import costs milliseconds
on every create.
"""

from __future__ import annotations

import os

from .digest import sha256_hex
from .errors import IronError
from .jsonio import loads

MODES = ("minimal", "standard", "maximum")
SCHEMA_FILE = "profile.schema.json"


def _builtin_dir() -> str:
    import iron.profiles
    return os.path.dirname(os.path.realpath(iron.profiles.__file__))


class Profile:
    """A resolved profile: ``data`` has `extends` applied and profile-relative paths made absolute.

    ``base`` is the nearest built-in mode in the chain: a custom profile ranks as the mode it extends.
    """

    __slots__ = ("name", "data", "files", "base")

    def __init__(self, name: str, data: dict, files: tuple[str, ...], base: str):
        self.name = name
        self.data = data
        self.files = files      # the chain, most specific first
        self.base = base        # the built-in mode at the root of the chain

    @property
    def rank(self) -> int:
        return MODES.index(self.base)

    def layers(self) -> list[str]:
        return [layer for layer in ("process", "syscall", "filesystem", "network") if self.data.get(layer)]


class Loader:
    def __init__(self, user_dir: str = "/etc/iron/profiles", cache_dir: str | None = None):
        self.user_dir = str(user_dir)
        self.builtin = _builtin_dir()
        self.cache_dir = str(cache_dir or os.environ.get("IRON_CACHE_DIR", "/var/cache/iron"))

    def path_of(self, name: str, field: str = "mode") -> str:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise IronError("invalid profile name", field=field, expected="a profile name", got=name)
        for folder in (self.builtin, self.user_dir):   # built-ins cannot be shadowed
            candidate = os.path.join(folder, f"{name}.json")
            if os.path.isfile(candidate):
                return candidate
        known = ", ".join(self.names())
        raise IronError(f"unknown mode `{name}`", field=field, expected=f"one of {known}")

    def names(self) -> list[str]:
        found = {f[:-5] for f in os.listdir(self.builtin) if f.endswith(".json") and f != SCHEMA_FILE}
        if os.path.isdir(self.user_dir):
            found |= {f[:-5] for f in os.listdir(self.user_dir) if f.endswith(".json")}
        return sorted(found, key=lambda n: (MODES.index(n) if n in MODES else len(MODES), n))

    def load(self, name: str, field: str = "mode") -> Profile:
        return self.load_file(self.path_of(name, field))

    def load_file(self, path: str) -> Profile:
        chain: list[tuple[str, dict]] = []
        seen: list[str] = []
        current: str | None = str(path)
        while current is not None:
            raw = _read(current)
            doc = _parse(current, raw)
            self._validate(current, raw, doc)
            name = doc["name"]
            if name in seen:
                raise IronError("circular `extends`: " + " → ".join([*seen, name]), file=current,
                                field="extends")
            seen.append(name)
            chain.append((current, _absolute_paths(doc, os.path.dirname(current))))
            parent = doc.get("extends")
            if parent is None:
                if name not in MODES or os.path.dirname(current) != self.builtin:
                    raise IronError("a profile must extend a built-in mode", file=current,
                                    field="extends", expected="one of " + ", ".join(MODES))
                current = None
            else:
                current = self.path_of(parent, field=f"{current}: extends")
        data: dict = {}
        for _, doc in reversed(chain):
            data = _merge(data, doc)
        data.pop("extends", None)
        data["name"] = chain[0][1]["name"]
        base = next(doc["name"] for p, doc in chain
                    if os.path.dirname(p) == self.builtin and doc["name"] in MODES)
        return Profile(data["name"], data, tuple(p for p, _ in chain), base)

    def _validate(self, path: str, raw: bytes, doc: dict) -> None:
        stamps = os.path.join(self.cache_dir, "profiles-valid")
        stamp = os.path.join(stamps, sha256_hex(raw))
        if os.path.exists(stamp):
            return
        errors = schema_errors(doc, os.path.join(self.builtin, SCHEMA_FILE))
        if errors:
            raise errors[0].within(path)
        _check_values(doc, path)
        try:
            os.makedirs(stamps, exist_ok=True)
            os.close(os.open(stamp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError:
            pass



def schema_errors(doc: dict, schema_path: str) -> list[IronError]:
    import jsonschema
    with open(schema_path, "rb") as f:
        schema = loads(f.read())
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = _json_path(err.absolute_path)
        out.append(IronError(f"schema: {err.message}", field=where))
    return out


def _check_values(doc: dict, file: str) -> None:
    """Checks the schema cannot express: path hygiene for Landlock, sizes."""
    from .landlock_policy import check_path
    landlock = ((doc.get("filesystem") or {}).get("landlock")) or {}
    for key in ("read", "write", "execute", "devices"):
        for i, path in enumerate(landlock.get(key, [])):
            if not path.startswith("$"):
                try:
                    check_path(path, f"filesystem.landlock.{key}[{i}]")
                except IronError as err:
                    raise err.within(file)


def _json_path(parts) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise IronError(f"cannot read profile: {err.strerror}", file=path) from err


def _parse(path: str, raw: bytes) -> dict:
    try:
        doc = loads(raw)
    except ValueError as err:
        raise IronError(f"profile is not valid JSON: {err}", file=path) from err
    if not isinstance(doc, dict):
        raise IronError("profile is not a JSON object", file=path, expected="a JSON object")
    return doc


def _absolute_paths(doc: dict, folder: str) -> dict:
    """Profile-relative file references become absolute, relative to the file that named them."""
    syscall = doc.get("syscall")
    if isinstance(syscall, dict) and isinstance(syscall.get("seccomp"), str):
        seccomp = syscall["seccomp"]
        if not os.path.isabs(seccomp):
            doc = {**doc, "syscall": {**syscall, "seccomp": os.path.join(folder, seccomp)}}
    return doc


def _merge(base: dict, over: dict) -> dict:
    """Deep merge: objects merge, anything else replaces; ``null`` switches a section off."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
