"""Test helpers for the syscall layer: Docker's profile rendered to plain OCI, and a tiny
seccomp evaluator, both written independently of iron.oci.syscall so that they check it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "profiles"
STANDARD = PROFILES / "seccomp" / "agent-standard.json"
MAXIMUM = PROFILES / "seccomp" / "agent-maximum.json"
REFERENCE = REPO / "tests" / "data"   # copies of the reference data, with their licences
DOCKER = REFERENCE / "moby-seccomp" / "default.json"
SCHEMAS = REFERENCE / "oci-runtime-spec-schema"

ALLOWING = {"SCMP_ACT_ALLOW", "SCMP_ACT_LOG"}
_ORDER = ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_ERRNO",
          "SCMP_ACT_TRAP", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"]
_GOARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# ---- Docker's extended profile → plain OCI (moby's setupSeccomp, for tests) -------------

def render_docker(caps: frozenset[str] = frozenset(), arch: str = "amd64",
                  kernel: tuple[int, int] = (6, 18)) -> dict:
    """Evaluate includes/excludes like moby: excludes match on any arch/cap/minKernel, includes
    need the arch, every cap and the kernel."""
    raw = load(DOCKER)
    native = _GOARCH[arch]
    subs = next(m["subArchitectures"] or [] for m in raw["archMap"] if m["architecture"] == native)

    def min_kernel(flt: dict) -> tuple[int, int] | None:
        mk = flt.get("minKernel")
        return tuple(int(x) for x in mk.split(".")[:2]) if mk else None

    syscalls = []
    for entry in raw["syscalls"]:
        inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
        if arch in (exc.get("arches") or []) or set(exc.get("caps") or []) & caps:
            continue
        if min_kernel(exc) is not None and kernel >= min_kernel(exc):
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if not set(inc.get("caps") or []) <= caps:
            continue
        if min_kernel(inc) is not None and kernel < min_kernel(inc):
            continue
        syscalls.append({k: v for k, v in entry.items() if k in ("names", "action", "errnoRet", "args")})
    return {"defaultAction": raw["defaultAction"], "defaultErrnoRet": raw["defaultErrnoRet"],
            "architectures": [native, *subs], "syscalls": syscalls}


# ---- evaluator ------------------------------------------------------------------------------

_OPS = {"SCMP_CMP_NE": lambda x, v, w: x != v, "SCMP_CMP_LT": lambda x, v, w: x < v,
        "SCMP_CMP_LE": lambda x, v, w: x <= v, "SCMP_CMP_EQ": lambda x, v, w: x == v,
        "SCMP_CMP_GE": lambda x, v, w: x >= v, "SCMP_CMP_GT": lambda x, v, w: x > v,
        "SCMP_CMP_MASKED_EQ": lambda x, v, w: x & v == w}


def _holds(arg: dict, args: tuple[int, ...]) -> bool:
    i = arg["index"]
    return _OPS[arg["op"]](args[i] if i < len(args) else 0, arg["value"], arg.get("valueTwo", 0))


def _rules(entry: dict) -> list[list[dict]]:
    """crun: args ANDed, unless an index repeats; then one rule per arg (OR)."""
    args = entry.get("args") or []
    if len(args) < 2 or len({a["index"] for a in args}) == len(args):
        return [args]
    return [[a] for a in args]


def evaluate(profile: dict | None, name: str, args: tuple[int, ...] = ()) -> tuple[str, int | None]:
    """(action, errno) for syscall ``name`` with ``args``. A matching non-allowing rule wins
    (the strictest); else a matching allowing rule; else the default. None: no filter."""
    if profile is None:
        return "SCMP_ACT_ALLOW", None
    hits = []
    for entry in profile.get("syscalls", []):
        if name in entry["names"] and any(all(_holds(a, args) for a in r) for r in _rules(entry)):
            hits.append((entry["action"], entry.get("errnoRet")))
    deny = [h for h in hits if h[0] not in ALLOWING]
    if deny:
        return max(deny, key=lambda h: _ORDER.index(h[0]))
    if hits:
        return max(hits, key=lambda h: _ORDER.index(h[0]))
    return profile["defaultAction"], profile.get("defaultErrnoRet")


def allows(profile: dict | None, name: str, args: tuple[int, ...] = ()) -> bool:
    return evaluate(profile, name, args)[0] in ALLOWING


BASIC_VALUES = (0, 1, 2, 8, 9, 10, 16, 17, 38, 39, 40, 41, 262, 0x11, 0x20000, 0x20008, 0x40000,
                0x10000000, 0x7E020000, 0xffffffff, 2**64 - 1)


def sample_args(*profiles: dict | None, name: str) -> list[tuple[int, ...]]:
    """Argument vectors that hit every condition edge the profiles have for ``name``."""
    per_index: dict[int, set[int]] = {i: {0, 1} for i in range(6)}
    witnesses: list[dict[int, int]] = [{}]
    for profile in profiles:
        for entry in (profile or {}).get("syscalls", []):
            if name not in entry["names"]:
                continue
            for rule in _rules(entry):
                w = {}
                for a in rule:
                    v = a["value"]
                    per_index[a["index"]] |= {v, max(v - 1, 0), min(v + 1, 2**64 - 1),
                                              a.get("valueTwo", 0)}
                    w[a["index"]] = a.get("valueTwo", 0) if a["op"] == "SCMP_CMP_MASKED_EQ" else v
                witnesses.append(w)
    for i in (0, 1, 2):
        per_index[i] |= set(BASIC_VALUES)
    out = set()
    for w in witnesses:
        base = tuple(w.get(i, 0) for i in range(6))
        out.add(base)
        for i, values in per_index.items():
            for v in values:
                out.add(base[:i] + (v,) + base[i + 1:])
    return sorted(out)


def all_names(*profiles: dict | None) -> set[str]:
    return set(itertools.chain.from_iterable(
        e["names"] for p in profiles if p for e in p.get("syscalls", [])))


# ---- OCI schema -----------------------------------------------------------------------------

def validate_seccomp_against_schema(seccomp: dict) -> None:
    """Validate ``seccomp`` as ``linux.seccomp`` of a minimal config with the runtime-spec schema."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    base = "file:///oci-schema/"
    resources = [(base + p.name, Resource.from_contents(load(p), default_specification=DRAFT4))
                 for p in SCHEMAS.glob("*.json")]
    registry = Registry().with_resources(resources)
    schema = {**load(SCHEMAS / "config-schema.json"), "id": base + "config-schema.json"}
    config = {**load(SCHEMAS / "examples" / "minimal.json"), "linux": {"seccomp": seccomp}}
    jsonschema.Draft4Validator(schema, registry=registry).validate(config)
