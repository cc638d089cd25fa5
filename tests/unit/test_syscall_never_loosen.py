"""Property: the syscall layer never lets a call run that the engine's profile (or iron's) denies.

Engine profiles are generated: a random default action, random subsets of syscall names with
random actions and single-index argument conditions. For every name and for argument values
at the edges of every condition involved, the merged profile may allow a call only where both
inputs allow it. This holds both under the tiny evaluator (the strictest matching rule wins)
and as crun compiles the profile (it skips rules whose action equals the default).
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iron.oci import syscall
from iron.oci.context import Context, HostFacts
from iron.oci.seccomp_names import load_seccomp_profile
from tests.unit.seccomp_testlib import MAXIMUM, PROFILES, STANDARD, allows, sample_args

POOL = ["socket", "personality", "clone", "clone3", "ioctl", "mkdir", "read", "ptrace", "mount",
        "msgget", "getpid", "prctl", "socketcall", "vmsplice"]
VALUES = [0, 1, 2, 8, 10, 16, 17, 38, 40, 262, 0x5401, 0x20000, 0x10000000, 0x7E020000,
          0xffffffff, 2**63, 2**64 - 1]
OPS = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
       "SCMP_CMP_MASKED_EQ"]
RULE_ACTIONS = ["SCMP_ACT_ALLOW"] * 4 + ["SCMP_ACT_ERRNO"] * 3 + [
    "SCMP_ACT_LOG", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"]
DEFAULT_ACTIONS = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_LOG", "SCMP_ACT_KILL_PROCESS",
                   "SCMP_ACT_KILL", "SCMP_ACT_TRAP", "SCMP_ACT_TRACE"]
ERRNO_ACTIONS = {"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"}


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IRON_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@st.composite
def arg(draw, index):
    op = draw(st.sampled_from(OPS))
    out = {"index": index, "value": draw(st.sampled_from(VALUES)), "op": op}
    if op == "SCMP_CMP_MASKED_EQ":
        out["valueTwo"] = draw(st.sampled_from(VALUES)) & out["value"]
    return out


@st.composite
def entry(draw):
    action = draw(st.sampled_from(RULE_ACTIONS))
    out = {"names": draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True)),
           "action": action}
    if action in ERRNO_ACTIONS and draw(st.booleans()):
        out["errnoRet"] = draw(st.sampled_from([1, 13, 22, 38]))
    indices = draw(st.lists(st.sampled_from([0, 1, 2]), max_size=2, unique=True))
    if indices:
        out["args"] = [draw(arg(i)) for i in indices]
    return out


@st.composite
def engine_profile(draw):
    default = draw(st.sampled_from(DEFAULT_ACTIONS))
    out = {"defaultAction": default, "syscalls": draw(st.lists(entry(), max_size=8))}
    if default in ERRNO_ACTIONS and draw(st.booleans()):
        out["defaultErrnoRet"] = draw(st.sampled_from([1, 38]))
    if draw(st.booleans()):
        out["architectures"] = ["SCMP_ARCH_X86_64"] + draw(
            st.lists(st.sampled_from(["SCMP_ARCH_X86", "SCMP_ARCH_X32"]), unique=True))
    if any(e["action"] == "SCMP_ACT_NOTIFY" for e in out["syscalls"]):
        out["listenerPath"] = "/run/agent.sock"
    return out


def only(profile: dict, name: str) -> dict:
    """The profile cut down to ``name``'s entries: the same verdicts for it, evaluated faster."""
    return {**profile, "syscalls": [e for e in profile.get("syscalls", []) if name in e["names"]]}


def crun_view(profile: dict) -> dict:
    default = (profile["defaultAction"], profile.get("defaultErrnoRet", 1))
    return {**profile, "syscalls": [e for e in profile["syscalls"]
                                    if (e["action"], e.get("errnoRet", 1)) != default]}


CTX = Context(mode="standard", profiles_root=PROFILES, host=HostFacts(arch="x86_64"))
SECTIONS = {"standard": ({"seccomp": "seccomp/agent-standard.json"}, STANDARD),
            "maximum": ({"seccomp": "seccomp/agent-maximum.json"}, MAXIMUM)}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine=engine_profile(), which=st.sampled_from(sorted(SECTIONS)))
def test_never_allows_what_either_profile_denies(engine, which):
    section, path = SECTIONS[which]
    iron = load_seccomp_profile(path, "x86_64")
    spec = {"ociVersion": "1.0.2", "linux": {"seccomp": copy.deepcopy(engine)}}
    out, _ = syscall.apply(spec, section, CTX)
    merged = out["linux"]["seccomp"]
    assert set(merged["architectures"]) <= set(engine.get("architectures", ["SCMP_ARCH_X86_64"]))
    for name in POOL:
        e, p, m = only(engine, name), only(iron, name), only(merged, name)
        compiled = crun_view(m)
        for args in sample_args(e, p, m, name=name):
            if allows(m, name, args) or allows(compiled, name, args):
                assert allows(e, name, args), ("engine denies", name, args)
                assert allows(p, name, args), ("iron denies", name, args)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(engine=engine_profile(), which=st.sampled_from(sorted(SECTIONS)))
def test_applying_twice_changes_nothing(engine, which):
    section, _ = SECTIONS[which]
    once, _ = syscall.apply({"linux": {"seccomp": engine}}, section, CTX)
    twice, _ = syscall.apply(once, section, CTX)
    assert twice == once
