"""Mode profiles: find by name, follow `extends`, validate against the schema, rank.

Built-in profiles live in the package (profiles/); operators add their own in
/etc/iron/profiles/NAME.json. A profile's rank is that of the built-in mode at the
nearest built-in in its `extends` chain, so a custom profile ranks as the mode it builds on.
Schema validation imports jsonschema (slow), so a file that passed once is remembered
by the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import IronError

MODES = ("minimal", "standard", "maximum")
SCHEMA_FILE = "profile.schema.json"


def _builtin_dir() -> Path:
    import iron.profiles
    return Path(iron.profiles.__file__).resolve().parent


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
        self.user_dir = Path(user_dir)
        self.builtin = _builtin_dir()
        self.cache_dir = Path(cache_dir or os.environ.get("IRON_CACHE_DIR", "/var/cache/iron"))

    def path_of(self, name: str, field: str = "mode") -> Path:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise IronError("invalid profile name", field=field, expected="a profile name", got=name)
        for folder in (self.builtin, self.user_dir):   # built-ins cannot be shadowed
            candidate = folder / f"{name}.json"
            if candidate.is_file():
                return candidate
        known = ", ".join(self.names())
        raise IronError(f"unknown mode `{name}`", field=field, expected=f"one of {known}")

    def names(self) -> list[str]:
        found = {p.stem for p in self.builtin.glob("*.json") if p.name != SCHEMA_FILE}
        if self.user_dir.is_dir():
            found |= {p.stem for p in self.user_dir.glob("*.json")}
        return sorted(found, key=lambda n: (MODES.index(n) if n in MODES else len(MODES), n))

    def load(self, name: str, field: str = "mode") -> Profile:
        return self.load_file(self.path_of(name, field))

    def load_file(self, path: Path) -> Profile:
        chain: list[tuple[Path, dict]] = []
        seen: list[str] = []
        current: Path | None = Path(path)
        while current is not None:
            raw = _read(current)
            doc = _parse(current, raw)
            self._validate(current, raw, doc)
            name = doc["name"]
            if name in seen:
                raise IronError("circular `extends`: " + " → ".join([*seen, name]), file=str(current),
                                field="extends")
            seen.append(name)
            chain.append((current, _absolute_paths(doc, current.parent)))
            parent = doc.get("extends")
            if parent is None:
                if name not in MODES or current.parent != self.builtin:
                    raise IronError("a profile must extend a built-in mode", file=str(current),
                                    field="extends", expected="one of " + ", ".join(MODES))
                current = None
            else:
                current = self.path_of(parent, field=f"{current}: extends")
        data: dict = {}
        for _, doc in reversed(chain):
            data = _merge(data, doc)
        data.pop("extends", None)
        data["name"] = chain[0][1]["name"]
        base = next(doc["name"] for p, doc in chain if p.parent == self.builtin and doc["name"] in MODES)
        return Profile(data["name"], data, tuple(str(p) for p, _ in chain), base)

    def _validate(self, path: Path, raw: bytes, doc: dict) -> None:
        digest = hashlib.sha256(raw).hexdigest()
        stamp = self.cache_dir / "profiles-valid" / digest
        if stamp.exists():
            return
        errors = schema_errors(doc, self.builtin / SCHEMA_FILE)
        if errors:
            raise errors[0].within(str(path))
        _check_values(doc, str(path))
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.touch()
        except OSError:
            pass


def schema_errors(doc: dict, schema_path: Path) -> list[IronError]:
    import jsonschema
    schema = json.loads(schema_path.read_text())
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


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise IronError(f"cannot read profile: {err.strerror}", file=str(path)) from err


def _parse(path: Path, raw: bytes) -> dict:
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise IronError(f"profile is not valid JSON: {err}", file=str(path)) from err
    if not isinstance(doc, dict):
        raise IronError("profile is not a JSON object", file=str(path), expected="a JSON object")
    return doc


def _absolute_paths(doc: dict, folder: Path) -> dict:
    """Profile-relative file references become absolute, relative to the file that named them."""
    syscall = doc.get("syscall")
    if isinstance(syscall, dict) and isinstance(syscall.get("seccomp"), str):
        seccomp = syscall["seccomp"]
        if not os.path.isabs(seccomp):
            doc = {**doc, "syscall": {**syscall, "seccomp": str(folder / seccomp)}}
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
