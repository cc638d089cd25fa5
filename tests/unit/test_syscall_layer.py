"""Layer 2 (syscall): iron's seccomp profile merged with the engine's, as tables."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from iron.oci import seccomp_names, syscall
from iron.oci.context import Context, HostFacts
from iron.oci.decision import Decision
from iron.oci.errors import IronError, Refused
from tests.unit.seccomp_testlib import (MAXIMUM, PROFILES, STANDARD, all_names, allows, evaluate,
                                        load, render_docker, sample_args,
                                        validate_seccomp_against_schema)

STD = {"seccomp": "seccomp/agent-standard.json"}
MAX = {"seccomp": "seccomp/agent-maximum.json"}
ALLOW, ERRNO = "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"
X86_64 = "SCMP_ARCH_X86_64"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("IRON_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "seccomp"


def ctx(annotations=None, root=PROFILES, arch="x86_64") -> Context:
    return Context(mode="standard", profiles_root=root, host=HostFacts(arch=arch),
                   annotations=annotations or {})


def base_spec(seccomp: dict | None = None, annotations: dict | None = None) -> dict:
    spec = {"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"},
            "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "pid"}]}}
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    if annotations is not None:
        spec["annotations"] = annotations
    return spec


def seccomp_of(section=STD, engine=None, **kw) -> dict:
    out, _ = syscall.apply(base_spec(engine, **kw), section, ctx())
    return out["linux"]["seccomp"]


def denylist(*names, errno=1) -> dict:
    return {"defaultAction": ALLOW, "architectures": [X86_64],
            "syscalls": [{"names": list(names), "action": ERRNO, "errnoRet": errno}]}


def allowlist(*names, default=ERRNO, extra=()) -> dict:
    return {"defaultAction": default, "architectures": [X86_64, "SCMP_ARCH_X86"],
            "syscalls": [{"names": list(names), "action": ALLOW}, *extra]}


DOCKER = render_docker()
ENGINES = {
    "none": None,
    "docker": DOCKER,
    "docker with CAP_SYS_ADMIN": render_docker(frozenset({"CAP_SYS_ADMIN"})),
    "default ALLOW denylist": denylist("ptrace", "mkdir", "chmod"),
    "allowlist without mkdir": allowlist("read", "write", "openat", "socket", "clone", "personality"),
    "socket only AF_INET": allowlist("read", extra=[
        {"names": ["socket"], "action": ALLOW, "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]),
    "ioctl only TCGETS": allowlist("read", default=ALLOW, extra=[
        {"names": ["ioctl"], "action": ERRNO, "errnoRet": 25,
         "args": [{"index": 1, "value": 0x5401, "op": "SCMP_CMP_NE"}]}]),
    "repeated index (crun ORs it)": allowlist("read", extra=[
        {"names": ["personality"], "action": ALLOW, "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]),
    "KILL_PROCESS default": {"defaultAction": "SCMP_ACT_KILL_PROCESS",
                             "syscalls": [{"names": ["read", "write", "exit_group"], "action": ALLOW}]},
    "ENOSYS default (podman)": {"defaultAction": ERRNO, "defaultErrnoRet": 38,
                                "architectures": [X86_64, "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                                "syscalls": [{"names": ["read", "socket", "ptrace"], "action": ALLOW}]},
}

# (engine, syscall, args, expected (action, errno) in the result)
PROBES = [
    ("none", "read", (), (ALLOW, None)),
    ("none", "ptrace", (), (ERRNO, 1)),
    ("none", "mount", (), (ERRNO, 1)),
    ("none", "clone3", (), (ERRNO, 38)),
    ("none", "socket", (1,), (ALLOW, None)),
    ("none", "socket", (17,), (ERRNO, 1)),
    ("docker", "mkdir", (), (ALLOW, None)),
    ("docker", "ptrace", (), (ERRNO, 1)),              # docker allows it on kernels ≥ 4.8
    ("docker", "socket", (16, 3, 0), (ALLOW, None)),
    ("docker", "socket", (38,), (ERRNO, 1)),
    ("docker", "personality", (0x40000,), (ERRNO, 1)),
    ("docker with CAP_SYS_ADMIN", "mount", (), (ERRNO, 1)),
    ("docker with CAP_SYS_ADMIN", "clone", (0x10000000,), (ERRNO, 1)),
    ("docker with CAP_SYS_ADMIN", "clone", (17,), (ALLOW, None)),
    ("docker with CAP_SYS_ADMIN", "clone3", (), (ERRNO, 38)),
    ("default ALLOW denylist", "mkdir", (), (ERRNO, 1)),
    ("default ALLOW denylist", "chmod", (), (ERRNO, 1)),
    ("default ALLOW denylist", "ptrace", (), (ERRNO, 1)),
    ("default ALLOW denylist", "openat", (), (ALLOW, None)),
    ("default ALLOW denylist", "socket", (2,), (ALLOW, None)),
    ("default ALLOW denylist", "socket", (40,), (ERRNO, 1)),
    ("allowlist without mkdir", "mkdir", (), (ERRNO, 1)),
    ("allowlist without mkdir", "openat", (), (ALLOW, None)),
    ("allowlist without mkdir", "clone", (17,), (ALLOW, None)),
    ("allowlist without mkdir", "clone", (0x20000,), (ERRNO, 1)),
    ("allowlist without mkdir", "socket", (10,), (ALLOW, None)),
    ("socket only AF_INET", "socket", (2,), (ALLOW, None)),
    ("socket only AF_INET", "socket", (1,), (ERRNO, 1)),
    ("socket only AF_INET", "socket", (17,), (ERRNO, 1)),
    ("ioctl only TCGETS", "ioctl", (0, 0x5401), (ALLOW, None)),
    ("ioctl only TCGETS", "ioctl", (0, 0x5402), (ERRNO, 25)),   # the engine's errno is kept
    ("repeated index (crun ORs it)", "personality", (0,), (ALLOW, None)),
    ("repeated index (crun ORs it)", "personality", (8,), (ALLOW, None)),
    ("repeated index (crun ORs it)", "personality", (0x20000,), (ERRNO, 1)),
    ("KILL_PROCESS default", "read", (), (ALLOW, None)),
    ("KILL_PROCESS default", "openat", (), ("SCMP_ACT_KILL_PROCESS", None)),
    ("KILL_PROCESS default", "ptrace", (), ("SCMP_ACT_KILL_PROCESS", None)),
    ("ENOSYS default (podman)", "openat", (), (ERRNO, 1)),  # equal strength: iron's errno
    ("ENOSYS default (podman)", "ptrace", (), (ERRNO, 1)),
    ("ENOSYS default (podman)", "socket", (1,), (ALLOW, None)),
]


@pytest.mark.parametrize("engine,name,args,expected", PROBES,
                         ids=[f"{e}: {n}{a}" for e, n, a, _ in PROBES])
def test_merged_profile(engine, name, args, expected):
    assert evaluate(seccomp_of(STD, copy.deepcopy(ENGINES[engine])), name, args) == expected


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("section", [STD, MAX], ids=["standard", "maximum"])
def test_never_looser_than_either_profile(engine, section):
    e = ENGINES[engine]
    out = seccomp_of(section, copy.deepcopy(e))
    iron = load(STANDARD if section is STD else MAXIMUM)
    for name in sorted(all_names(out, iron, e)):
        for args in sample_args(out, iron, e, name=name):
            if allows(out, name, args):
                assert allows(iron, name, args) and allows(e, name, args), (name, args)


def test_no_engine_gives_iron_profile_unchanged():
    out = seccomp_of(STD)
    iron = load(STANDARD)
    assert {k: out[k] for k in ("defaultAction", "defaultErrnoRet", "architectures")} == \
        {k: iron[k] for k in ("defaultAction", "defaultErrnoRet", "architectures")}
    assert _rule_set(out) == _rule_set(iron)


def test_docker_engine_gives_iron_profile_unchanged():
    """Docker's default is a superset of agent-standard: merging changes nothing."""
    assert seccomp_of(STD, copy.deepcopy(DOCKER)) == seccomp_of(STD)


def _rule_set(profile: dict) -> set:
    return {(n, e["action"], e.get("errnoRet"), json.dumps(e.get("args", []), sort_keys=True))
            for e in profile["syscalls"] for n in e["names"]}


@pytest.mark.parametrize("engine_arches,expected", [
    (None, [X86_64]),                                   # no list: libseccomp's native arch only
    ([X86_64], [X86_64]),
    ([X86_64, "SCMP_ARCH_X86"], [X86_64, "SCMP_ARCH_X86"]),
    ([X86_64, "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
     [X86_64, "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    (["SCMP_ARCH_AARCH64"], ["SCMP_ARCH_AARCH64"]),     # empty intersection: the engine's
])
def test_architectures_are_intersected(engine_arches, expected):
    engine = allowlist("read")
    if engine_arches is None:
        del engine["architectures"]
    else:
        engine["architectures"] = engine_arches
    assert seccomp_of(STD, engine)["architectures"] == expected


def test_flags_are_united():
    engine = {**allowlist("read"), "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]}
    assert seccomp_of(STD, engine)["flags"] == ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]
    assert "flags" not in seccomp_of(STD, allowlist("read"))


@pytest.mark.parametrize("name,kept", [("mkdir", True), ("ptrace", False)])
def test_engine_notify_kept_only_where_iron_allows(name, kept):
    engine = {"defaultAction": ALLOW, "listenerPath": "/run/agent.sock", "listenerMetadata": "m",
              "syscalls": [{"names": [name], "action": "SCMP_ACT_NOTIFY"}]}
    out = seccomp_of(STD, engine)
    assert evaluate(out, name)[0] == ("SCMP_ACT_NOTIFY" if kept else ERRNO)
    assert ("listenerPath" in out, "listenerMetadata" in out) == (kept, kept)


def crun_view(profile: dict) -> dict:
    """What crun compiles: it skips every rule whose action (and errno) is the default's."""
    default = (profile["defaultAction"], profile.get("defaultErrnoRet", 1))
    keep = [e for e in profile["syscalls"]
            if (e["action"], e.get("errnoRet", 1)) != default]
    return {**profile, "syscalls": keep}


@pytest.mark.parametrize("mode,allowed", [(0o755, False), (0o700, False), (0o644, True), (0o600, True)])
def test_engine_deny_next_to_allow_survives_crun_skipping_default_rules(mode, allowed):
    """The engine's ERRNO(1) rule equals iron's default, so crun would drop it; it must not
    leave an overlapping allow behind."""
    engine = {"defaultAction": "SCMP_ACT_LOG", "syscalls": [
        {"names": ["mkdir"], "action": ALLOW, "args": [{"index": 1, "value": 0o755, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdir"], "action": ERRNO, "errnoRet": 1,
         "args": [{"index": 1, "value": 0o100, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0o100}]}]}
    out = seccomp_of(STD, engine)
    assert allows(engine, "mkdir", (0, mode)) is allowed
    assert allows(out, "mkdir", (0, mode)) is allowed
    assert allows(crun_view(out), "mkdir", (0, mode)) is allowed


@pytest.mark.parametrize("request_,expected", [
    (0x5412, (ERRNO, 1)), (0x541C, (ERRNO, 1)),              # TIOCSTI, TIOCLINUX: the engine's
    (0x5401, (ALLOW, None)), (0x5413, (ALLOW, None)), (0x541B, (ALLOW, None)), (0, (ALLOW, None)),
    (2**64 - 1, (ALLOW, None)), (0x5411, (ALLOW, None)), (0x541D, (ALLOW, None)),
])
def test_engine_denylist_with_argument_filters_keeps_the_rest_allowed(request_, expected):
    """Default-ALLOW engines deny by argument; iron's stricter default must not swallow the rest."""
    engine = {"defaultAction": ALLOW, "syscalls": [
        {"names": ["ioctl"], "action": ERRNO, "args": [{"index": 1, "value": v, "op": "SCMP_CMP_EQ"}]}
        for v in (0x5412, 0x541C)]}
    out = seccomp_of(STD, engine)
    assert evaluate(out, "ioctl", (0, request_)) == expected
    assert allows(crun_view(out), "ioctl", (0, request_)) is (expected[0] == ALLOW)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("section", [STD, MAX], ids=["standard", "maximum"])
def test_idempotent(engine, section):
    once, _ = syscall.apply(base_spec(copy.deepcopy(ENGINES[engine])), section, ctx())
    twice, _ = syscall.apply(once, section, ctx())
    assert twice == once


@pytest.mark.parametrize("engine", ["docker", "ioctl only TCGETS", "repeated index (crun ORs it)"])
def test_deterministic_and_sorted(engine):
    shuffled = copy.deepcopy(ENGINES[engine])
    shuffled["syscalls"] = [{**e, "names": sorted(e["names"], reverse=True)}
                            for e in reversed(shuffled["syscalls"])]
    out = seccomp_of(STD, shuffled)
    assert out == seccomp_of(STD, copy.deepcopy(ENGINES[engine]))
    assert all(e["names"] == sorted(e["names"]) for e in out["syscalls"])


@pytest.mark.parametrize("engine", ENGINES)
def test_output_is_valid_oci(engine):
    validate_seccomp_against_schema(seccomp_of(STD, copy.deepcopy(ENGINES[engine])))


def test_absent_section_changes_nothing():
    spec = base_spec(DOCKER)
    out, decisions = syscall.apply(spec, None, ctx())
    assert (out, decisions) == (spec, [])


def test_input_is_not_mutated():
    spec = base_spec(copy.deepcopy(DOCKER), annotations={"a": "b"})
    before = copy.deepcopy(spec)
    syscall.apply(spec, STD, ctx())
    assert spec == before


def test_absolute_profile_path():
    assert seccomp_of({"seccomp": str(STANDARD)}) == seccomp_of(STD)


@pytest.mark.parametrize("engine,before,after", [
    (None, "none (unconfined)", "agent-standard.json: 353 allowed, default ERRNO(1)"),
    ("docker", "engine: 369 allowed, default ERRNO(1)",
     "agent-standard.json: 353 allowed, default ERRNO(1)"),
    ("KILL_PROCESS default", "engine: 3 allowed, default KILL_PROCESS",
     "agent-standard.json: 3 allowed, default KILL_PROCESS"),
])
def test_decision(engine, before, after):
    _, decisions = syscall.apply(base_spec(copy.deepcopy(ENGINES.get(engine))), STD, ctx())
    assert len(decisions) == 1
    d = decisions[0]
    assert isinstance(d, Decision)
    assert (d.layer, d.field, d.before, d.after) == ("syscall", "linux.seccomp", before, after)
    assert d.reason


REFUSED = ["run.oci.seccomp_bpf_data", "run.oci.seccomp.plugins", "run.oci.seccomp.receiver",
           "run.oci.seccomp.something_new"]


@pytest.mark.parametrize("key", REFUSED)
@pytest.mark.parametrize("where", ["spec", "context"])
def test_refused_annotations(key, where):
    annotations = {key: "AAAA", "run.oci.seccomp_fail_unknown_syscall": "1"}
    spec = base_spec(annotations=annotations if where == "spec" else None)
    with pytest.raises(Refused) as err:
        syscall.apply(spec, STD, ctx(annotations if where == "context" else None))
    assert key in str(err.value)


def test_harmless_annotation_allowed():
    spec = base_spec(annotations={"run.oci.seccomp_fail_unknown_syscall": "1", "run.oci.other": "x"})
    out, _ = syscall.apply(spec, STD, ctx())
    assert out["annotations"] == spec["annotations"]


def test_annotations_not_checked_without_a_syscall_section():
    spec = base_spec(annotations={"run.oci.seccomp_bpf_data": "AAAA"})
    assert syscall.apply(spec, None, ctx()) == (spec, [])


# ---- profile files: names, shape, cache --------------------------------------------------

def write_profile(tmp_path: Path, syscalls: list, **top) -> Path:
    path = tmp_path / "custom.json"
    path.write_text(json.dumps({"defaultAction": ERRNO, **top, "syscalls": syscalls}))
    return path


def test_unknown_syscall_names_file_and_entry(tmp_path):
    path = write_profile(tmp_path, [{"names": ["read"], "action": ALLOW},
                                    {"names": ["write", "close", "notasyscall"], "action": ALLOW}])
    with pytest.raises(IronError) as err:
        syscall.apply(base_spec(), {"seccomp": str(path)}, ctx())
    e = err.value
    assert (e.file, e.field, e.got) == (str(path), "syscalls[1].names[2]", "notasyscall")
    assert str(path) in str(e) and "syscalls[1].names[2]" in str(e) and "`notasyscall`" in str(e)


@pytest.mark.parametrize("arches,kept", [
    (None, False), ([X86_64], False), ([X86_64, "SCMP_ARCH_X86"], True)])
def test_name_missing_on_every_target_arch_is_dropped(tmp_path, arches, kept):
    top = {"architectures": arches} if arches else {}
    path = write_profile(tmp_path, [{"names": ["read", "socketcall"], "action": ALLOW},
                                    {"names": ["_llseek"], "action": ALLOW}], **top)
    rendered = seccomp_names.load_seccomp_profile(path, "x86_64")
    assert ("socketcall" in all_names(rendered), "_llseek" in all_names(rendered)) == (kept, kept)
    assert "read" in all_names(rendered)
    assert len(rendered["syscalls"]) == (2 if kept else 1)


@pytest.mark.parametrize("syscalls,top,field", [
    ([{"names": ["socket"], "action": ALLOW, "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_NE"},
                                                      {"index": 0, "value": 2, "op": "SCMP_CMP_NE"}]}],
     {}, "syscalls[0].args[1].index"),
    ([{"names": ["read"], "action": "SCMP_ACT_MAYBE"}], {}, "syscalls[0].action"),
    ([{"names": ["read"], "action": ALLOW, "errnoRet": 1}], {}, "syscalls[0].errnoRet"),
    ([{"names": [], "action": ALLOW}], {}, "syscalls[0].names"),
    ([{"names": ["read"], "action": ALLOW, "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}],
     {}, "syscalls[0].args[0].index"),
    ([{"names": ["read"], "action": ALLOW, "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}],
     {}, "syscalls[0].args[0].value"),
    ([{"names": ["read"], "action": ALLOW}], {"architectures": ["SCMP_ARCH_AARCH64"]}, "architectures"),
    ([{"names": ["read"], "action": ALLOW}], {"architectures": ["SCMP_ARCH_Z80"]}, "architectures"),
    ([{"names": ["read"], "action": ALLOW}], {"defaultAction": ALLOW}, "defaultAction"),
])
def test_invalid_iron_profile(tmp_path, syscalls, top, field):
    path = write_profile(tmp_path, syscalls, **top)
    with pytest.raises(IronError) as err:
        syscall.apply(base_spec(), {"seccomp": str(path)}, ctx())
    assert (err.value.file, err.value.field) == (str(path), field)


@pytest.mark.parametrize("engine,field", [
    ("not an object", "linux.seccomp"),
    ({"syscalls": []}, "linux.seccomp.defaultAction"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": ["read"], "action": "ALLOW"}]},
     "linux.seccomp.syscalls[0].action"),
    ({"defaultAction": ALLOW, "syscalls": [{"names": ["read"], "action": ALLOW,
                                            "args": [{"index": 0, "value": 1, "op": "EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].op"),
])
def test_invalid_engine_profile(engine, field):
    with pytest.raises(IronError) as err:
        syscall.apply(base_spec(engine), STD, ctx())
    assert err.value.field == field


@pytest.mark.parametrize("section", [{}, {"seccomp": 3}, {"seccomp": ""}])
def test_invalid_section(section):
    with pytest.raises(IronError) as err:
        syscall.apply(base_spec(), section, ctx())
    assert err.value.field == "syscall.seccomp"


def test_missing_profile_file(tmp_path):
    with pytest.raises(IronError) as err:
        syscall.apply(base_spec(), {"seccomp": "seccomp/nope.json"}, ctx(root=tmp_path))
    assert err.value.file == str(tmp_path / "seccomp" / "nope.json")


def test_cache_written_then_used(cache_dir, monkeypatch):
    first = seccomp_names.load_seccomp_profile(STANDARD, "x86_64")
    entries = list(cache_dir.glob("*.json"))
    assert len(entries) == 1
    monkeypatch.setattr(seccomp_names, "render", _must_not_render)
    assert seccomp_names.load_seccomp_profile(STANDARD, "x86_64") == first


def _must_not_render(*a, **k):
    raise AssertionError("cache miss")


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"key": "x", "value": {}}',
                                     b'{"key": "KEY", "value": {"defaultAction": 5}}', b"[]"])
def test_corrupt_cache_entry_is_ignored_and_rewritten(cache_dir, garbage):
    good = seccomp_names.load_seccomp_profile(STANDARD, "x86_64")
    [entry] = cache_dir.glob("*.json")
    entry.write_bytes(garbage.replace(b"KEY", entry.stem.encode()))
    assert seccomp_names.load_seccomp_profile(STANDARD, "x86_64") == good
    assert json.loads(entry.read_text())["value"] == good


def test_cache_key_has_arch_and_content(cache_dir, tmp_path):
    seccomp_names.load_seccomp_profile(STANDARD, "x86_64")
    copy_ = tmp_path / "copy.json"
    copy_.write_bytes(STANDARD.read_bytes() + b"\n")
    seccomp_names.load_seccomp_profile(copy_, "x86_64")
    seccomp_names.load_seccomp_profile(STANDARD, "amd64")      # same arch, other spelling
    assert len(list(cache_dir.glob("*.json"))) == 2


def test_unwritable_cache_still_works(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("IRON_CACHE_DIR", str(blocker))         # a file: mkdir fails
    assert seccomp_names.load_seccomp_profile(STANDARD, "x86_64")["defaultAction"] == ERRNO
    assert list(tmp_path.glob("**/*.json")) == []


def test_host_arch_not_covered():
    with pytest.raises(IronError) as err:
        seccomp_names.load_seccomp_profile(MAXIMUM, "aarch64")
    assert err.value.field == "architectures" and "SCMP_ARCH_AARCH64" in str(err.value)


def test_merge_remembered_under_its_whole_input(cache_dir, monkeypatch):
    iron = seccomp_names.load_seccomp_profile(STANDARD, "x86_64")
    first = syscall.remembered_merge(iron, copy.deepcopy(DOCKER), "SCMP_ARCH_X86_64")
    assert first == syscall.merge(iron, copy.deepcopy(DOCKER), "SCMP_ARCH_X86_64")
    assert len(list(cache_dir.glob("merged-*"))) == 1
    monkeypatch.setattr(syscall, "merge", lambda *a: pytest.fail("cache miss"))
    assert syscall.remembered_merge(iron, copy.deepcopy(DOCKER), "SCMP_ARCH_X86_64") == first
    monkeypatch.undo()
    monkeypatch.setenv("IRON_CACHE_DIR", str(cache_dir.parent))
    other = copy.deepcopy(DOCKER)
    other["syscalls"] = other["syscalls"][1:]
    syscall.remembered_merge(iron, other, "SCMP_ARCH_X86_64")
    syscall.remembered_merge(iron, None, "SCMP_ARCH_X86_64")
    assert len(list(cache_dir.glob("merged-*"))) == 3


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[]", b'{"key": "x", "value": {}}', b'{"key": "KEY"}',
                                     b'{"key": "KEY", "value": {"defaultAction": 5}}'])
def test_corrupt_merge_entry_is_merged_again(cache_dir, garbage):
    iron = seccomp_names.load_seccomp_profile(STANDARD, "x86_64")
    first = syscall.remembered_merge(iron, copy.deepcopy(DOCKER), "SCMP_ARCH_X86_64")
    (entry,) = cache_dir.glob("merged-*")
    key = entry.name.removeprefix("merged-")
    entry.write_bytes(garbage.replace(b"KEY", key.encode()))
    assert syscall.remembered_merge(iron, copy.deepcopy(DOCKER), "SCMP_ARCH_X86_64") == first


def test_libseccomp_version_remembered_until_the_loader_cache_changes(cache_dir, monkeypatch, tmp_path):
    ld_cache = tmp_path / "ld.so.cache"
    ld_cache.write_bytes(b"one")
    monkeypatch.setattr(seccomp_names, "LD_CACHE", str(ld_cache))
    real = seccomp_names.libseccomp_version()
    asked = []
    monkeypatch.setattr(seccomp_names, "_ask_libseccomp_version", lambda: asked.append(1) or "9.9.9")
    assert seccomp_names.libseccomp_version() == real and not asked
    ld_cache.write_bytes(b"two, longer")                      # ldconfig rewrote it
    assert seccomp_names.libseccomp_version() == "9.9.9" and asked == [1]
    st = ld_cache.stat()                                       # the right key, a value that is no version
    (cache_dir / "libseccomp-version").write_text(
        json.dumps({"key": f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}", "value": 5}))
    assert seccomp_names.libseccomp_version() == "9.9.9" and asked == [1, 1]
