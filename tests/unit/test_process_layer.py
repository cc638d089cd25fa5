"""iron.oci.process: cgroup limits, capabilities, namespaces, rlimits, privileged requests."""

from __future__ import annotations

import copy
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iron.oci import process
from iron.oci.context import Context, HostFacts
from iron.oci.errors import IronError, Refused
from iron.oci.profile import Loader
from tests.oci_schema import validate_config

PROFILES = {name: Loader("/nonexistent").load(name).data["process"]
            for name in ("minimal", "standard", "maximum")}
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
            "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
            "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
            "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
            "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
            "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
            "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
            "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
STANDARD_DROPS = ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
                  "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_MKNOD",
                  "CAP_AUDIT_CONTROL", "CAP_MAC_ADMIN", "CAP_MAC_OVERRIDE", "CAP_BPF",
                  "CAP_PERFMON", "CAP_DAC_READ_SEARCH", "CAP_SYSLOG", "CAP_SYS_PACCT",
                  "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_LINUX_IMMUTABLE", "CAP_WAKE_ALARM",
                  "CAP_BLOCK_SUSPEND"]


def ctx(mode: str = "standard", **host) -> Context:
    return Context(mode=mode, profiles_root=os.path.dirname(Loader("/nonexistent").path_of("minimal")),
                   host=HostFacts(**host))


def spec_like_docker(**linux) -> dict:
    caps = {k: ["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"] for k in ("bounding", "effective", "permitted")}
    spec = {
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
                    "env": ["PATH=/bin"], "capabilities": caps,
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}]},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                    "options": ["nosuid", "noexec", "nodev", "ro"]}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
                  "resources": {"devices": [{"allow": False, "access": "rwm"}]}},
    }
    spec["linux"].update(linux)
    return spec


def harden(spec, mode="standard", c=None):
    return process.apply(spec, PROFILES[mode], c or ctx(mode))


# ---------------------------------------------------------------------------- cgroups

def test_limits_from_the_profile_and_no_swap():
    out, decisions = harden(spec_like_docker())
    mem = out["linux"]["resources"]["memory"]
    assert mem == {"limit": 2 << 30, "swap": 2 << 30}
    assert out["linux"]["resources"]["pids"] == {"limit": 512}
    assert out["linux"]["resources"]["cpu"] == {"quota": 200_000, "period": 100_000}
    assert {d.field for d in decisions} >= {"linux.resources.memory.limit", "linux.resources.pids.limit"}
    validate_config(out)


def test_the_engines_lower_limits_win():
    spec = spec_like_docker(resources={"memory": {"limit": 64 << 20, "swap": 128 << 20},
                                       "pids": {"limit": 20},
                                       "cpu": {"quota": 50_000, "period": 100_000}})
    out, _ = harden(spec)
    res = out["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert res["pids"]["limit"] == 20
    assert res["cpu"] == {"quota": 50_000, "period": 100_000}


def test_unlimited_values_from_the_engine_are_capped():
    spec = spec_like_docker(resources={"memory": {"limit": -1, "swap": -1, "disableOOMKiller": True},
                                       "pids": {"limit": -1}, "cpu": {"quota": -1, "period": 50_000}})
    res = harden(spec)[0]["linux"]["resources"]
    assert res["memory"]["limit"] == 2 << 30 and res["memory"]["swap"] == 2 << 30
    assert res["memory"]["disableOOMKiller"] is False
    assert res["pids"]["limit"] == 512
    assert res["cpu"] == {"quota": 100_000, "period": 50_000}


def test_memory_limit_of_the_wrong_type_names_the_field():
    spec = spec_like_docker(resources={"memory": {"limit": "2G"}})
    with pytest.raises(IronError) as err:
        harden(spec)
    assert "linux.resources.memory.limit" in str(err.value) and "integer" in str(err.value)


def test_apply_does_not_touch_its_input():
    spec = spec_like_docker()
    before = copy.deepcopy(spec)
    harden(spec, "maximum")
    assert spec == before


def test_idempotent():
    once, _ = harden(spec_like_docker(), "maximum")
    twice, decisions = harden(once, "maximum")
    assert twice == once and decisions == []


# ---------------------------------------------------------------------------- capabilities, rlimits

def test_standard_drops_the_dangerous_capabilities():
    spec = spec_like_docker()
    spec["process"]["capabilities"] = {k: list(ALL_CAPS) for k in process.CAP_SETS}
    out, _ = harden(spec)
    for name in process.CAP_SETS:
        kept = set(out["process"]["capabilities"][name])
        assert kept and not kept & set(STANDARD_DROPS), name


def test_maximum_keeps_no_capabilities():
    spec = spec_like_docker()
    spec["process"]["capabilities"] = {k: list(ALL_CAPS) for k in process.CAP_SETS}
    out, _ = harden(spec, "maximum")
    assert all(out["process"]["capabilities"][k] == [] for k in process.CAP_SETS)


def test_rlimits_core_zero_and_nofile_capped():
    out, _ = harden(spec_like_docker())
    rl = {r["type"]: (r["soft"], r["hard"]) for r in out["process"]["rlimits"]}
    assert rl == {"RLIMIT_NOFILE": (4096, 4096), "RLIMIT_CORE": (0, 0)}


def test_no_new_privileges_and_oom_score():
    out, _ = harden(spec_like_docker())
    assert out["process"]["noNewPrivileges"] is True
    assert out["process"]["oomScoreAdj"] == 500
    spec = spec_like_docker()
    spec["process"]["oomScoreAdj"] = 900
    assert harden(spec)[0]["process"]["oomScoreAdj"] == 900


def test_minimal_never_unsets_no_new_privileges():
    spec = spec_like_docker()
    spec["process"]["noNewPrivileges"] = True
    assert harden(spec, "minimal")[0]["process"]["noNewPrivileges"] is True


# ---------------------------------------------------------------------------- namespaces

@pytest.mark.parametrize("kind,flag", [("pid", "--pid host"), ("ipc", "--ipc host")])
def test_host_pid_or_ipc_refused_in_standard(kind, flag):
    spec = spec_like_docker()
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != kind]
    with pytest.raises(Refused) as err:
        harden(spec)
    assert kind in str(err.value) and flag in str(err.value)
    out, _ = harden(spec, "minimal")
    assert kind not in {n["type"] for n in out["linux"]["namespaces"]}


def test_joining_the_host_namespace_by_path_is_refused():
    st_ = os.stat("/proc/self/ns/pid")
    c = ctx(namespaces={"pid": f"{st_.st_dev}:{st_.st_ino}"})
    spec = spec_like_docker()
    spec["linux"]["namespaces"][0] = {"type": "pid", "path": "/proc/self/ns/pid"}
    with pytest.raises(Refused):
        harden(spec, c=c)


def test_joining_another_namespace_by_path_is_kept():
    c = ctx(namespaces={"ipc": "1:1"})
    spec = spec_like_docker()
    spec["linux"]["namespaces"][2] = {"type": "ipc", "path": "/proc/self/ns/ipc"}
    out, _ = harden(spec, c=c)
    assert {"type": "ipc", "path": "/proc/self/ns/ipc"} in out["linux"]["namespaces"]


def test_uts_mount_cgroup_always_private():
    spec = spec_like_docker(namespaces=[{"type": "pid"}, {"type": "ipc"}])
    out, _ = harden(spec, "minimal")
    assert {n["type"] for n in out["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "cgroup"}


# ---------------------------------------------------------------------------- privileged requests

def privileged_spec() -> dict:
    """Roughly what `docker run --privileged --device /dev/sda` writes."""
    spec = spec_like_docker()
    spec["process"]["capabilities"] = {k: list(ALL_CAPS) for k in process.CAP_SETS}
    spec["mounts"][1]["options"] = ["nosuid", "noexec", "nodev", "rw"]
    spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                           "options": ["nosuid", "rw"]})
    spec["linux"]["devices"] = [{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
                                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]
    spec["linux"]["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    return spec


def test_privileged_is_clamped_in_standard():
    out, decisions = harden(privileged_spec())
    assert out["linux"]["devices"] == [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}]
    assert out["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    assert "ro" in out["mounts"][1]["options"] and "rw" not in out["mounts"][1]["options"]
    assert "ro" in out["mounts"][2]["options"]
    assert set(process.MASKED) <= set(out["linux"]["maskedPaths"])
    assert set(process.READONLY) <= set(out["linux"]["readonlyPaths"])
    assert all(d.reason for d in decisions)
    validate_config(out)


def test_minimal_keeps_devices_but_still_clamps_sys():
    out, _ = harden(privileged_spec(), "minimal")
    assert len(out["linux"]["devices"]) == 2
    assert "ro" in out["mounts"][1]["options"]


@pytest.mark.parametrize("source", ["/", "/var/run/docker.sock", "/run/containerd/containerd.sock",
                                    "/proc/1", "/sys/kernel", "/etc/iron"])
def test_host_control_binds_refused_in_standard(source):
    spec = spec_like_docker()
    spec["mounts"].append({"destination": "/host", "type": "bind", "source": source,
                           "options": ["rbind"]})
    with pytest.raises(Refused) as err:
        harden(spec)
    assert "mounts[2].source" in str(err.value)
    harden(spec, "minimal")


def test_ordinary_bind_kept():
    spec = spec_like_docker()
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": "/srv/data",
                           "options": ["rbind"]})
    out, _ = harden(spec)
    assert out["mounts"][-1]["source"] == "/srv/data"


# ---------------------------------------------------------------------------- exec

def test_exec_clamps_caps_and_sets_no_new_privileges():
    proc = {"args": ["sh"], "cwd": "/", "capabilities": {"bounding": ["CAP_CHOWN", "CAP_NET_RAW"]}}
    out, _ = process.apply_exec(proc, PROFILES["standard"], ctx())
    assert out["capabilities"]["bounding"] == ["CAP_CHOWN"]
    assert out["noNewPrivileges"] is True


def test_privileged_exec_refused_in_standard_allowed_in_minimal():
    proc = {"args": ["sh"], "cwd": "/", "capabilities": {"bounding": ALL_CAPS}}
    with pytest.raises(Refused):
        process.apply_exec(proc, PROFILES["standard"], ctx())
    out, _ = process.apply_exec(proc, PROFILES["minimal"], ctx("minimal"))
    assert "CAP_SYS_ADMIN" not in out["capabilities"]["bounding"]


# ---------------------------------------------------------------------------- never loosen

caps_st = st.lists(st.sampled_from(ALL_CAPS), unique=True)
opt_int = st.one_of(st.none(), st.integers(min_value=-1, max_value=1 << 40))


@st.composite
def engine_specs(draw):
    spec = spec_like_docker()
    spec["process"]["capabilities"] = {k: draw(caps_st) for k in draw(
        st.lists(st.sampled_from(process.CAP_SETS), unique=True))}
    spec["process"]["noNewPrivileges"] = draw(st.booleans())
    nofile = draw(st.integers(min_value=0, max_value=1 << 20))
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": nofile,
                                   "soft": draw(st.integers(min_value=0, max_value=nofile))}]
    res = spec["linux"]["resources"]
    for key, path in (("memory", "limit"), ("pids", "limit"), ("cpu", "quota")):
        value = draw(opt_int)
        if value is not None:
            res[key] = {path: value}
    spec["root"]["readonly"] = draw(st.booleans())
    spec["linux"]["maskedPaths"] = draw(st.lists(st.sampled_from(["/proc/kcore", "/x", "/y"]), unique=True))
    return spec


def _effective(value, unlimited=(None, -1, 0)):
    return float("inf") if value in unlimited else value


@settings(max_examples=300, deadline=None)
@given(engine_specs(), st.sampled_from(["minimal", "standard", "maximum"]))
def test_never_looser_than_the_engine(spec, mode):
    out, _ = harden(spec, mode)
    for name in process.CAP_SETS:
        assert set(out["process"]["capabilities"].get(name, [])) <= set(
            spec["process"]["capabilities"].get(name, [])) or name not in spec["process"]["capabilities"]
    assert out["process"]["noNewPrivileges"] >= spec["process"]["noNewPrivileges"]
    before = {r["type"]: r for r in spec["process"]["rlimits"]}
    for r in out["process"]["rlimits"]:
        if r["type"] in before:
            assert r["hard"] <= before[r["type"]]["hard"] and r["soft"] <= before[r["type"]]["soft"]
    for key, path in (("memory", "limit"), ("pids", "limit")):
        old = spec["linux"]["resources"].get(key, {}).get(path)
        assert _effective(out["linux"]["resources"][key][path]) <= _effective(old)
    old_cpu = spec["linux"]["resources"].get("cpu", {}).get("quota")
    assert _effective(out["linux"]["resources"]["cpu"]["quota"]) <= _effective(old_cpu)
    assert out["root"].get("readonly", False) >= spec["root"]["readonly"]
    assert set(spec["linux"]["maskedPaths"]) <= set(out["linux"]["maskedPaths"])
    validate_config(json.loads(json.dumps(out)))


@pytest.mark.parametrize("source", [
    "/var/lib/containers/storage/overlay-containers/abc/userdata/shm",
    "/var/lib/docker/containers/abc/resolv.conf",
    "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/shm"])
def test_engines_own_per_container_binds_kept(source):
    """Engines bind resolv.conf, hosts and shm from beneath their state roots: not host control."""
    spec = spec_like_docker()
    spec["mounts"].append({"destination": "/dev/shm", "type": "bind", "source": source,
                           "options": ["rbind"]})
    out, _ = harden(spec, "maximum")
    assert out["mounts"][-1]["source"] == source
