"""Fuzzing the whole rewrite: mutated OCI specs and generated profiles through the pipeline.

Specs start from the OCI schema examples and iron's default bundle, then get mutated
(wrong types, missing fields, extra fields, odd values). For every mode the rewrite must
either raise IronError or return a spec that is valid against the OCI schema (when the
input was) and never looser than the input. Generated user profiles (with `extends`) go
through the Loader and then the same rewrite.
"""

from __future__ import annotations

import copy
import os
import json
import tempfile
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iron.oci import pipeline
from iron.oci.context import Context, HostFacts, Policy
from iron.oci.errors import IronError
from iron.oci.profile import Loader
from iron.shim.bundlekit import default_spec
from tests.oci_schema import SCHEMAS, validate_config

MODES = ("minimal", "standard", "maximum")
HOST = HostFacts(kernel="6.18", seccomp=True, landlock_abi=7, network_hook="/usr/local/lib/iron/iron-nethook",
                 landlock_helper="/usr/local/lib/iron/iron-landlock",
                 namespaces={"pid": "4:1", "ipc": "4:2", "network": "4:3", "mount": "4:4", "uts": "4:5"})
EXAMPLES = 300 if os.environ.get("CI") == "true" else 100
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _bases() -> list[dict]:
    specs = [json.loads(p.read_text()) for p in sorted((SCHEMAS / "examples").glob("*.json"))]
    return specs + [default_spec(["sh"])]


BASES = _bases()
LOADER = Loader("/nonexistent", cache_dir=tempfile.mkdtemp(prefix="iron-fuzz-cache-"))
PROFILES = {mode: LOADER.load(mode).data for mode in MODES}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["2G", "-1", "", "/", "../..", "CAP_SYS_ADMIN",
                                                           "SCMP_ACT_ALLOW", "host", "/proc/1/ns/net"]))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=8)
IRON_KEYS = ["io.iron.mode", "io.iron.fs.write", "io.iron.network.allow", "run.oci.seccomp_bpf_data",
             "run.oci.keep_original_groups", "run.oci.systemd.subgroup"]


def _paths(value, prefix=()):
    """Every (container path) in the document, so a mutation can target any of them."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*prefix, i))


def _get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated_specs(draw):
    spec = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 4))):
        paths = [p for p in _paths(spec) if p]
        kind = draw(st.sampled_from(["delete", "replace", "extra", "annotation"]))
        if kind == "annotation":
            notes = spec.setdefault("annotations", {})
            if isinstance(notes, dict):
                notes[draw(st.sampled_from(IRON_KEYS))] = draw(st.one_of(st.text(max_size=20),
                                                                        st.sampled_from(MODES)))
            continue
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _get(spec, path[:-1])
        if kind == "delete":
            del parent[path[-1]]
        elif kind == "replace":
            parent[path[-1]] = draw(json_values)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return spec


def _ctx(mode: str, annotations) -> Context:
    return Context(mode=mode, profiles_root=LOADER.builtin, host=HOST, policy=Policy(),
                   annotations=dict(annotations) if isinstance(annotations, dict) else {})


def _schema_valid(spec) -> bool:
    try:
        validate_config(spec)
        return True
    except jsonschema.ValidationError:
        return False


def _harden(spec, profile: dict, mode: str):
    """The rewrite; None when iron refused cleanly. Any other exception fails the test."""
    try:
        out, _ = pipeline.harden(copy.deepcopy(spec), profile, _ctx(mode, spec.get("annotations")))
    except IronError as err:
        assert str(err) and "\n" not in str(err)
        return None
    json.dumps(out)                 # still a JSON document
    return out


def _at(doc, *keys):
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def assert_not_looser(before: dict, after: dict) -> None:
    caps_before = _at(before, "process", "capabilities")
    caps_after = _at(after, "process", "capabilities") or {}
    if isinstance(caps_before, dict):
        for kind, caps in caps_after.items():
            if kind in caps_before and _str_list(caps_before[kind]):
                assert set(caps) <= set(caps_before[kind]), f"capabilities.{kind} grew"
            elif _str_list(caps_before.get(kind)) or kind not in caps_before:
                assert not caps, f"capabilities.{kind} added"
    for path in (("memory", "limit"), ("pids", "limit")):
        old = _at(before, "linux", "resources", *path)
        if isinstance(old, int) and not isinstance(old, bool) and old > 0:
            new = _at(after, "linux", "resources", *path)
            assert isinstance(new, int) and 0 < new <= old, f"linux.resources.{'.'.join(path)} raised"
    if isinstance(_at(before, "linux", "seccomp"), dict):
        assert isinstance(_at(after, "linux", "seccomp"), dict), "seccomp removed"
    if _at(before, "root", "readonly") is True:
        assert _at(after, "root", "readonly") is True, "root.readonly unset"
    if _at(before, "process", "noNewPrivileges") is True:
        assert _at(after, "process", "noNewPrivileges") is True, "noNewPrivileges unset"
    old_ns = _at(before, "linux", "namespaces")
    if isinstance(old_ns, list) and all(isinstance(n, dict) and isinstance(n.get("type"), str) for n in old_ns):
        new_ns = {n.get("type") for n in _at(after, "linux", "namespaces") or []}
        assert {n["type"] for n in old_ns} <= new_ns, "namespaces removed"


def _check(spec, profile: dict, mode: str) -> None:
    out = _harden(spec, profile, mode)
    if out is None:
        return
    if _schema_valid(spec):
        validate_config(out)
    assert_not_looser(spec, out)


@pytest.mark.parametrize("mode", MODES)
@FUZZ
@given(spec=mutated_specs())
def test_mutated_specs(mode, spec):
    _check(spec, PROFILES[mode], mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("index", range(len(BASES)))
def test_unmutated_bases(mode, index):
    """The bases themselves: schema-valid output, never looser. The OCI examples share the
    host's pid namespace, which only minimal allows; iron's default bundle runs in every mode."""
    spec = BASES[index]
    out = _harden(spec, PROFILES[mode], mode)
    if out is None:
        assert mode != "minimal" and index < len(BASES) - 1
        return
    validate_config(out)
    assert_not_looser(spec, out)


# --- profiles ---------------------------------------------------------------------
section_values = st.one_of(json_values, st.fixed_dictionaries({}, optional={
    "limits": st.dictionaries(st.sampled_from(["memory", "cpus", "pids", "nofile", "swap"]),
                              st.one_of(st.integers(-5, 10**10), st.sampled_from(["1GiB", "64m", "x"]),
                                        st.floats(allow_nan=False, allow_infinity=False)), max_size=4),
    "capabilities": st.lists(st.sampled_from(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN", "CAP_NOPE", "chown"]),
                             max_size=4),
    "noNewPrivileges": st.booleans(), "readonlyRootfs": st.booleans(),
    "hostAccess": st.sampled_from(["allow", "refuse", "maybe"]), "oomScoreAdj": st.integers(-2000, 2000)}))
network_values = st.fixed_dictionaries({}, optional={
    "policy": st.sampled_from(["none", "allowlist", "open", "bogus"]),
    "allow": st.lists(st.sampled_from(["10.0.0.1", "10.0.0.0/8", "10.0.0.1:80", "300.1.1.1", "::1",
                                       "[::1]:443", "a:b", "1.2.3.4:0", "1.2.3.4:70000", ""]), max_size=3)})
fs_values = st.fixed_dictionaries({}, optional={"landlock": st.fixed_dictionaries({}, optional={
    "minAbi": st.integers(-1, 9),
    "read": st.lists(st.sampled_from(["/usr", "/etc", "tmp", "/a/../b", "$ROOTFS", "/"]), max_size=3),
    "write": st.lists(st.sampled_from(["/tmp", "/home", "x", "/tmp/./y", "$ROOTFS/tmp"]), max_size=3)})})


@st.composite
def profile_chains(draw):
    """One to three user profiles, each extending the previous; the first extends a mode (or garbage)."""
    docs = []
    parent = draw(st.sampled_from([*MODES, *MODES, "nope", "user-0"]))
    for i in range(draw(st.integers(1, 3))):
        doc = {"name": f"user-{i}", "extends": parent}
        for key, strategy in (("process", section_values), ("network", network_values),
                              ("filesystem", fs_values), ("syscall", st.one_of(st.none(), json_values))):
            if draw(st.booleans()):
                doc[key] = draw(st.one_of(st.none(), strategy))
        if draw(st.integers(0, 9)) == 0:
            doc[draw(st.text(min_size=1, max_size=6))] = draw(json_values)
        docs.append(doc)
        parent = doc["name"]
    return docs


@FUZZ
@given(chain=profile_chains(), spec=st.sampled_from(BASES))
def test_generated_profiles(chain, spec):
    with tempfile.TemporaryDirectory() as folder:
        for doc in chain:
            (Path(folder) / f"{doc['name']}.json").write_text(json.dumps(doc))
        loader = Loader(folder, cache_dir=f"{folder}/cache")
        try:
            profile = loader.load(chain[-1]["name"])
        except IronError as err:
            assert str(err) and "\n" not in str(err)
            return
        _check(spec, profile.data, profile.name)
