"""iron.oci.network (the layer modifier) and iron-nethook's argv/stdin handling (no root needed)."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iron.hooks.nft_ruleset import render
from iron.oci import landlock_policy as ll
from iron.oci import network
from iron.oci.context import Context, HostFacts, Policy
from iron.oci.errors import IronError, Refused

HELPER = "/usr/local/lib/iron/iron-landlock"
NETHOOK = "/usr/local/lib/iron/iron-nethook"
NETHOOK_SRC = Path(__file__).resolve().parents[2] / "hooks" / "nethook"
SCHEMA_HELPER = Path(__file__).resolve().parents[1] / "oci_schema.py"


def validate(spec: dict) -> None:
    """Validate against the OCI runtime-spec schema."""
    module_spec = importlib.util.spec_from_file_location("iron_tests_oci_schema", SCHEMA_HELPER)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    module.validate_config(spec)


def base_spec() -> dict:
    return {
        "ociVersion": "1.0.2-dev",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "echo hi"], "cwd": "/",
                    "env": ["PATH=/usr/bin:/bin"]},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
    }


def ctx(abi: int = 0, host_network: str = "refuse", annotation_ok: bool = False, annotations=None,
        network_hook: str | None = NETHOOK, helper: str | None = HELPER) -> Context:
    return Context(mode="maximum", profiles_root=Path("/nonexistent"),
                   host=HostFacts(landlock_abi=abi, network_hook=network_hook, landlock_helper=helper),
                   policy=Policy(allow_network_annotation=annotation_ok, host_network=host_network),
                   annotations=dict(annotations or {}))


NONE = {"policy": "none", "allow": [], "dns": [], "inbound": [], "hostNetwork": "refuse"}
ALLOW = {"policy": "allowlist", "allow": ["198.18.0.2:7", "198.18.0.9:53/udp"], "dns": ["198.18.0.3"],
         "inbound": [8080]}


def iron_hooks(spec: dict) -> list[dict]:
    return [h for h in spec.get("hooks", {}).get("createRuntime", []) if network.is_iron_network_hook(h)]


def hook_script(spec: dict) -> str:
    (h,) = iron_hooks(spec)
    return h["args"][2]


@pytest.fixture(autouse=True)
def not_host_netns(monkeypatch):
    monkeypatch.setattr(network, "is_host_netns", lambda path: False)


# --- absent section, purity, idempotence ---

def test_absent_section_is_a_no_op():
    spec = base_spec()
    out, decisions = network.apply(spec, None, ctx())
    assert out is spec and decisions == []
    process = {"args": ["sh"]}
    assert network.apply_exec(process, None, ctx(abi=6)) == (process, [])


@pytest.mark.parametrize("section", [NONE, ALLOW], ids=["none", "allowlist"])
@pytest.mark.parametrize("abi", [0, 4, 6])
def test_pure_and_idempotent(section, abi):
    spec = base_spec()
    spec["hooks"] = {"createRuntime": [{"path": "/usr/bin/other", "args": ["other"]}],
                     "poststop": [{"path": "/bin/true"}]}
    before = copy.deepcopy(spec)
    once, decisions = network.apply(spec, section, ctx(abi=abi))
    assert spec == before                              # the input is never mutated
    assert decisions and all(d.layer == "network" for d in decisions)
    twice, again = network.apply(once, section, ctx(abi=abi))
    assert twice == once and again == []
    assert len(iron_hooks(twice)) == 1
    validate(twice)


# --- the namespace ---

def host_spec() -> dict:
    spec = base_spec()
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"]
    return spec


@pytest.mark.parametrize("section_setting, policy_setting", [
    (None, "refuse"), ("refuse", "refuse"), ("refuse", "isolate")])
def test_host_networking_refused(section_setting, policy_setting):
    section = dict(NONE)
    if section_setting is None:
        section.pop("hostNetwork")
    else:
        section["hostNetwork"] = section_setting
    with pytest.raises(Refused) as info:
        network.apply(host_spec(), section, ctx(host_network=policy_setting))
    assert str(info.value) == ("host networking refused in mode maximum (linux.namespaces has no network "
                               "namespace); run without --network host / --net-host / hostNetwork: true")


@pytest.mark.parametrize("section_setting, policy_setting", [(None, "isolate"), ("isolate", "refuse")])
def test_host_networking_isolated(section_setting, policy_setting):
    section = {k: v for k, v in NONE.items() if k != "hostNetwork"}
    if section_setting:
        section["hostNetwork"] = section_setting
    out, decisions = network.apply(host_spec(), section, ctx(host_network=policy_setting))
    assert {"type": "network"} in out["linux"]["namespaces"]
    (d,) = [d for d in decisions if d.field.startswith("linux.namespaces")]
    assert d.before is None and d.after == {"type": "network"} and "isolate" in d.reason
    validate(out)


def test_no_linux_section_at_all_is_host_networking():
    spec = base_spec()
    del spec["linux"]
    with pytest.raises(Refused):
        network.apply(spec, NONE, ctx())
    out, _ = network.apply(spec, {"policy": "none", "hostNetwork": "isolate"}, ctx())
    assert out["linux"]["namespaces"] == [{"type": "network"}]


def test_path_to_the_host_netns_is_host_networking(monkeypatch):
    spec = base_spec()
    spec["linux"]["namespaces"][1] = {"type": "network", "path": "/proc/1/ns/net"}
    monkeypatch.setattr(network, "is_host_netns", lambda path: path == "/proc/1/ns/net")
    with pytest.raises(Refused, match=r"network path /proc/1/ns/net is the host's network namespace"):
        network.apply(spec, NONE, ctx())
    out, decisions = network.apply(spec, {**NONE, "hostNetwork": "isolate"}, ctx())
    assert out["linux"]["namespaces"][1] == {"type": "network"}
    assert decisions[0].field == "linux.namespaces[1]"
    assert decisions[0].before == {"type": "network", "path": "/proc/1/ns/net"}


def test_engine_netns_path_is_kept_and_filtered():
    spec = base_spec()
    spec["linux"]["namespaces"][1] = {"type": "network", "path": "/run/netns/netns-1234"}
    out, decisions = network.apply(spec, NONE, ctx())
    assert out["linux"]["namespaces"] == spec["linux"]["namespaces"]
    assert not [d for d in decisions if d.field.startswith("linux.namespaces")]
    assert len(iron_hooks(out)) == 1


def test_is_host_netns_itself(monkeypatch, tmp_path):
    monkeypatch.undo()
    assert network.is_host_netns("/proc/self/ns/net")          # iron's own namespace counts
    assert not network.is_host_netns(str(tmp_path / "missing"))
    assert not network.is_host_netns(str(tmp_path))


def test_bad_host_network_setting():
    with pytest.raises(IronError, match=r"network\.hostNetwork"):
        network.apply(base_spec(), {**NONE, "hostNetwork": "allow"}, ctx())


# --- the createRuntime hook ---

def test_hook_shape():
    out, _ = network.apply(base_spec(), ALLOW, ctx())
    (h,) = out["hooks"]["createRuntime"]
    assert h == {"path": NETHOOK, "args": ["iron-nethook", "--ruleset", h["args"][2]], "timeout": 10}
    assert hook_script(out) == render({"policy": "allowlist", "allow": ALLOW["allow"], "dns": ALLOW["dns"],
                                       "inbound": [8080]})


def test_hook_needs_its_path():
    with pytest.raises(IronError, match="host.network_hook"):
        network.apply(base_spec(), NONE, ctx(network_hook=None))


def test_hook_replaces_ours_in_place_and_keeps_others():
    spec = base_spec()
    stale = {"path": "/opt/old/iron", "args": ["iron", "hook", "network", "--policy", "{}"]}   # iron < 0.2
    other1 = {"path": "/usr/bin/nvidia-ctk", "args": ["nvidia-ctk", "hook", "update-ldcache"]}
    other2 = {"path": "/usr/libexec/oci/hooks.d/x", "args": ["x"], "timeout": 5}
    loose = {"path": "/elsewhere/iron-nethook", "args": ["nethook", "--ruleset", "flush ruleset"]}
    renamed = {"path": "/opt/x/nethook", "args": ["iron-nethook", "--ruleset", "flush ruleset"]}
    spec["hooks"] = {"createRuntime": [other1, stale, other2, loose, renamed], "prestart": [other2]}
    out, decisions = network.apply(spec, NONE, ctx())
    hooks = out["hooks"]["createRuntime"]
    assert hooks[0] == other1 and hooks[2] == other2 and len(hooks) == 3
    assert network.is_iron_network_hook(hooks[1]) and hooks[1]["path"] == NETHOOK
    assert out["hooks"]["prestart"] == [other2]
    (d,) = [d for d in decisions if d.field == "hooks.createRuntime"]
    assert d.before == [stale, loose, renamed]


def test_hook_updated_when_the_policy_changes():
    once, _ = network.apply(base_spec(), NONE, ctx())
    twice, decisions = network.apply(once, ALLOW, ctx())
    assert len(iron_hooks(twice)) == 1 and "policy drop" in hook_script(twice)
    assert hook_script(twice) == hook_script(network.apply(base_spec(), ALLOW, ctx())[0])
    assert [d.field for d in decisions] == ["hooks.createRuntime"]


def test_invalid_section_fails_before_anything():
    spec = base_spec()
    with pytest.raises(IronError) as info:
        network.apply(spec, {"policy": "allowlist", "allow": ["198.18.0.2:7", "10.0.0.1:0"]}, ctx())
    assert str(info.value).startswith("network.allow[1]: ")


# --- the allow annotation ---

ANNOTATED = {"io.iron.network.allow": "198.18.0.5:443, [fd00::5]:22,198.18.0.2:7"}


@pytest.mark.parametrize("where", ["spec", "ctx"])
def test_annotation_refused_unless_the_operator_permits_it(where):
    spec = base_spec()
    if where == "spec":
        spec["annotations"] = dict(ANNOTATED)
    with pytest.raises(Refused) as info:
        network.apply(spec, ALLOW, ctx(annotations=ANNOTATED if where == "ctx" else None))
    assert str(info.value).startswith("annotations.io.iron.network.allow: ")
    assert "allow_network_annotation" in str(info.value)
    with pytest.raises(Refused):
        network.apply_exec({"args": ["sh"]}, ALLOW, ctx(annotations=ANNOTATED))


def test_annotation_adds_destinations_when_permitted():
    out, decisions = network.apply(base_spec(), ALLOW, ctx(annotation_ok=True, annotations=ANNOTATED))
    assert hook_script(out) == render({"policy": "allowlist", "dns": ALLOW["dns"], "inbound": [8080], "allow": [
        "198.18.0.2:7", "198.18.0.9:53/udp", "198.18.0.5:443", "[fd00::5]:22"]})
    assert "io.iron.network.allow" in [d for d in decisions if d.field == "hooks.createRuntime"][0].reason


def test_annotation_turns_policy_none_into_an_allowlist_when_permitted():
    out, _ = network.apply(base_spec(), NONE, ctx(annotation_ok=True, annotations=ANNOTATED))
    assert hook_script(out) == render({"policy": "allowlist", "allow": ["198.18.0.5:443", "[fd00::5]:22", "198.18.0.2:7"],
                                       "dns": [], "inbound": []})


@pytest.mark.parametrize("value", ["", " , ,"])
def test_empty_annotation_widens_nothing(value):
    out, _ = network.apply(base_spec(), NONE, ctx(annotations={"io.iron.network.allow": value}))
    assert hook_script(out) == render(NONE)


def test_invalid_annotation_entry_names_it():
    with pytest.raises(IronError) as info:
        network.apply(base_spec(), ALLOW, ctx(annotation_ok=True,
                                             annotations={"io.iron.network.allow": "198.18.0.5:443,bad"}))
    assert str(info.value).startswith("annotations.io.iron.network.allow[1]: ")


# --- Landlock TCP ports (second barrier) ---

def policy_of(args: list[str]) -> ll.LandlockPolicy:
    found, _ = ll.unwrap(args)
    assert found is not None
    return found


@pytest.mark.parametrize("section, connect, bind", [
    (NONE, (), ()),
    (ALLOW, (7, 53), (8080,)),                                        # udp entry excluded; DNS over TCP
    ({"policy": "allowlist", "allow": ["198.18.0.2:443", "198.18.0.3:80", "198.18.0.4:443"]}, (80, 443), ()),
    ({"policy": "allowlist", "allow": ["198.18.0.2:443", "198.18.0.0/24"], "inbound": [22]}, None, (22,)),
    ({"policy": "allowlist", "allow": ["198.18.0.2:53/udp"]}, (), ()),
])
def test_landlock_tcp_ports(section, connect, bind):
    out, decisions = network.apply(base_spec(), section, ctx(abi=4))
    args = out["process"]["args"]
    assert args[3:] == ["sh", "-c", "echo hi"]
    got = policy_of(args)
    assert (got.tcp_connect, got.tcp_bind, got.min_abi) == (connect, bind, 4)
    assert not got.handles_fs
    assert [m for m in out["mounts"] if m["destination"] == ll.HELPER_PATH] == [ll.helper_mount(HELPER)]
    assert {"process.args", "mounts"} <= {d.field for d in decisions}
    validate(out)


@pytest.mark.parametrize("abi", [0, 1, 3])
def test_no_landlock_below_abi_4(abi):
    out, decisions = network.apply(base_spec(), NONE, ctx(abi=abi))
    assert out["process"]["args"] == ["sh", "-c", "echo hi"]
    assert out["mounts"] == base_spec()["mounts"]
    assert not [d for d in decisions if d.field in ("process.args", "mounts")]


def fs_wrapped_spec() -> dict:
    spec = base_spec()
    fs = ll.LandlockPolicy(min_abi=3, read=("/usr", "/etc"), write=("/tmp",), execute=("/usr",),
                           devices=("/dev/null",))
    spec["process"]["args"] = ll.wrap(spec["process"]["args"], fs)
    spec["mounts"].append(ll.helper_mount(HELPER))
    return spec


def test_landlock_merge_keeps_the_filesystem_fields():
    spec = fs_wrapped_spec()
    out, _ = network.apply(spec, ALLOW, ctx(abi=5))
    got = policy_of(out["process"]["args"])
    assert (got.read, got.write, got.execute, got.devices) == (("/usr", "/etc"), ("/tmp",), ("/usr",),
                                                               ("/dev/null",))
    assert (got.tcp_connect, got.tcp_bind, got.min_abi) == ((7, 53), (8080,), 4)
    assert out["process"]["args"][3:] == ["sh", "-c", "echo hi"]    # never nested
    assert out["mounts"].count(ll.helper_mount(HELPER)) == 1
    assert out["mounts"] == spec["mounts"]                          # already there, in place


def test_landlock_merge_never_widens_ports_already_there():
    spec = base_spec()
    spec["process"]["args"] = ll.wrap(["sh"], ll.LandlockPolicy(min_abi=5, tcp_connect=(7,), tcp_bind=()))
    out, _ = network.apply(spec, ALLOW, ctx(abi=6))
    got = policy_of(out["process"]["args"])
    assert (got.tcp_connect, got.tcp_bind, got.min_abi) == ((7,), (), 5)


def test_foreign_mount_at_the_helper_path_is_replaced():
    spec = base_spec()
    spec["mounts"].append({"destination": ll.HELPER_PATH, "type": "bind", "source": "/tmp/fake",
                           "options": ["bind"]})
    out, _ = network.apply(spec, NONE, ctx(abi=4))
    assert [m for m in out["mounts"] if m["destination"] == ll.HELPER_PATH] == [ll.helper_mount(HELPER)]


def test_landlock_needs_the_helper():
    with pytest.raises(IronError, match="Landlock helper"):
        network.apply(base_spec(), NONE, ctx(abi=4, helper=None))


def test_apply_exec_wraps_the_process():
    process = {"args": ["cat", "/etc/hostname"], "cwd": "/", "env": []}
    before = copy.deepcopy(process)
    out, decisions = network.apply_exec(process, ALLOW, ctx(abi=4))
    assert process == before
    got = policy_of(out["args"])
    assert (got.tcp_connect, got.tcp_bind) == ((7, 53), (8080,))
    assert out["args"][3:] == ["cat", "/etc/hostname"]
    assert [d.field for d in decisions] == ["process.args"]
    again, more = network.apply_exec(out, ALLOW, ctx(abi=4))
    assert again == out and more == []
    assert network.apply_exec(process, ALLOW, ctx(abi=3))[0] == process


# --- iron-nethook's argv, stdin and refusals (nothing here needs root) ---

@pytest.fixture(scope="module")
def nethook() -> str:
    subprocess.run(["make", "-s", "-C", str(NETHOOK_SRC), "all"], check=True)
    return str(NETHOOK_SRC / "build" / "iron-nethook")


def run_hook(binary: str, args: list[str], stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, timeout=30)


NO_SUCH_PID = 999999999


@pytest.mark.parametrize("args, stdin, code, message", [
    ([], "{}", 2, "--ruleset is required"),
    (["--ruleset"], "{}", 2, "--ruleset needs a value"),
    (["--ruleset", "x", "--bogus"], "{}", 2, "unknown argument `--bogus`"),
    (["--ruleset", ""], "{}", 2, "--ruleset is empty"),
    (["--ruleset=x"], "not json", 1, "stdin is not the OCI state JSON"),
    (["--ruleset", "x"], "[1]", 1, "stdin is not the OCI state JSON"),
    (["--ruleset", "x"], '{"id": "x"}', 1, "the OCI state on stdin has no container pid"),
    (["--ruleset", "x"], '{"pid": true}', 1, "no container pid (got `true`)"),
    (["--ruleset", "x"], '{"pid": "12"}', 1, "no container pid"),
    (["--ruleset", "x"], '{"pid": 1.5}', 1, "no container pid"),
    (["--ruleset", "x"], '{"pid": -3}', 1, "no container pid"),
    (["--ruleset", "x"], '{"pid": 0}', 1, "no container pid"),
    (["--ruleset", "x"], '{"pid": 99999999999999999999}', 1, "no container pid"),
    (["--ruleset", "x"], '{"pid": 5, "pid": 6}', 1, "names the container pid twice"),
    (["--ruleset", "x"], f'{{"pid": {NO_SUCH_PID}}} x', 1, "text after the object"),
    (["--ruleset", "x"], f'{{"a": {{"pid": 1}}, "b": "\\"pid\\": 1", "pid": {NO_SUCH_PID}}}', 1,
     f"cannot open /proc/{NO_SUCH_PID}/ns/net"),
])
def test_hook_errors_are_one_line(nethook, args, stdin, code, message):
    done = run_hook(nethook, args, stdin)
    assert done.returncode == code
    assert done.stderr.startswith("iron network hook: ") and message in done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_hook_refuses_the_host_netns(nethook):
    done = run_hook(nethook, ["--ruleset", render(NONE)], json.dumps({"pid": os.getpid()}))
    assert done.returncode == 1
    assert done.stderr.startswith(f"iron network hook: container pid {os.getpid()} ")
    assert "host network namespace" in done.stderr and done.stderr.count("\n") == 1


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(state=st.dictionaries(st.text(max_size=6).filter(lambda k: k != "pid"), JSON, max_size=5),
       pid=st.none() | st.integers(min_value=NO_SUCH_PID - 1000, max_value=NO_SUCH_PID),
       indent=st.none() | st.integers(0, 2), ascii_only=st.booleans())
def test_hook_reads_the_pid_as_json_does(nethook, state, pid, indent, ascii_only):
    """The hook's small JSON reader finds the top-level pid wherever the key sits, as json does."""
    if pid is not None:
        state = {**state, "pid": pid}
    done = run_hook(nethook, ["--ruleset", "x"], json.dumps(state, indent=indent, ensure_ascii=ascii_only))
    assert done.returncode == 1
    expected = f"cannot open /proc/{pid}/ns/net" if pid is not None else "has no container pid"
    assert expected in done.stderr, done.stderr
