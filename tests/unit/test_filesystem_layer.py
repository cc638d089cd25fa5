"""Layer 3 (filesystem): Landlock helper wrapping, helper mount, read-only root, tmpfs caps."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iron.oci import filesystem
from iron.oci.context import Context, HostFacts, Policy
from iron.oci.errors import IronError, Refused
from iron.oci.landlock_policy import HELPER_PATH, LandlockPolicy, helper_mount, unwrap

HOST_HELPER = "/usr/local/lib/iron/iron-landlock"

SECTION = {
    "landlock": {
        "minAbi": 3,
        "read": ["/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/etc",
                 "/proc", "/sys/fs/cgroup"],
        "write": ["/tmp", "/var/tmp", "/dev/shm", "$CWD", "$HOME"],
        "execute": ["/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/opt"],
        "devices": ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                    "/dev/tty", "/dev/pts", "/dev/ptmx", "/dev/console"],
    },
    "tmpfs": {"/tmp": "256MiB", "/dev/shm": "64MiB"},
}
LITERAL_WRITE = ("/tmp", "/var/tmp", "/dev/shm")


def realistic_spec(**process) -> dict:
    """A config.json as podman 4 writes it for `podman run -w /work alpine sh -c 'echo hi'`."""
    spec = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0, "umask": 18, "additionalGids": [0]},
            "args": ["sh", "-c", "echo hi"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm", "container=podman", "HOME=/root", "HOSTNAME=3f2a"],
            "cwd": "/work",
            "capabilities": {key: ["CAP_CHOWN", "CAP_KILL"]
                             for key in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}],
            "noNewPrivileges": True,
            "oomScoreAdj": 0,
        },
        "root": {"path": "/var/lib/containers/storage/overlay/3f2a/merged"},
        "hostname": "3f2a",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/etc/hostname", "type": "bind",
             "source": "/run/containers/storage/overlay-containers/3f2a/userdata/hostname",
             "options": ["bind", "rprivate"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "annotations": {"io.container.manager": "libpod", "org.opencontainers.image.stopSignal": "15"},
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    spec["process"].update(process)
    return spec


def ctx(*, abi: int = 6, helper: str | None = HOST_HELPER, allow_write: bool = False,
        annotations: dict | None = None) -> Context:
    return Context(mode="maximum", profiles_root=Path("/nonexistent"),
                   host=HostFacts(landlock_abi=abi, landlock_helper=helper),
                   policy=Policy(allow_fs_write_annotation=allow_write),
                   annotations=annotations or {})


def policy_of(spec_or_process: dict) -> LandlockPolicy:
    args = spec_or_process.get("process", spec_or_process)["args"]
    policy, _ = unwrap(args)
    assert policy is not None, args
    return policy


def mount_at(spec: dict, dest: str) -> list[dict]:
    return [m for m in spec["mounts"] if m["destination"] == dest]


def changes(decisions) -> list:
    return [d for d in decisions if d.before != d.after]


def validate_schema(spec: dict) -> None:
    """Validate with tests/oci_schema.py when another engineer has written it; else skip."""
    path = Path(__file__).resolve().parents[1] / "oci_schema.py"
    if not path.exists():
        return
    module_spec = importlib.util.spec_from_file_location("iron_tests_oci_schema", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    result = module.validate_config(spec)
    assert not result or result is True, result


# ------------------------------------------------------------------------ basics


def test_absent_section_returns_spec_unchanged():
    spec = realistic_spec()
    out, decisions = filesystem.apply(spec, None, ctx())
    assert out is spec and decisions == []


def test_absent_section_leaves_exec_unchanged():
    process = {"args": ["id"], "cwd": "/"}
    out, decisions = filesystem.apply_exec(process, None, ctx(), realistic_spec())
    assert out is process and decisions == []


def test_input_is_not_mutated():
    spec = realistic_spec()
    before = copy.deepcopy(spec)
    section = copy.deepcopy(SECTION)
    filesystem.apply(spec, SECTION, ctx())
    assert spec == before and SECTION == section


def test_realistic_spec_end_to_end():
    out, decisions = filesystem.apply(realistic_spec(), SECTION, ctx())
    assert out["process"]["args"][0] == HELPER_PATH
    assert out["process"]["args"][2:] == ["--", "sh", "-c", "echo hi"]
    policy = policy_of(out)
    assert policy.write == ("/tmp", "/var/tmp", "/dev/shm", "/work", "/root")
    assert policy.min_abi == 3 and policy.scope is True
    assert policy.tcp_connect is None and policy.tcp_bind is None
    assert policy.execute == tuple(SECTION["landlock"]["execute"])
    assert policy.devices == tuple(SECTION["landlock"]["devices"])
    assert out["root"]["readonly"] is True
    assert out["mounts"][-1] == helper_mount(HOST_HELPER)
    assert {d.field for d in changes(decisions)} == {
        "process.args", "root.readonly", "mounts[destination=/tmp]",
        "mounts[destination=/dev/shm]", f"mounts[destination={HELPER_PATH}]"}
    assert all(d.layer == "filesystem" for d in decisions)
    json.dumps([d.to_json() for d in decisions])
    validate_schema(out)


def test_read_covers_write_and_execute():
    policy = policy_of(filesystem.apply(realistic_spec(), SECTION, ctx())[0])
    assert set(policy.write) <= set(policy.read)
    assert set(policy.execute) <= set(policy.read)
    assert len(policy.read) == len(set(policy.read))


def test_shipped_maximum_profile_section_applies():
    import iron.profiles
    profile = json.loads((Path(iron.profiles.__file__).parent / "maximum.json").read_text())
    out, _ = filesystem.apply(realistic_spec(), profile["filesystem"], ctx(abi=7))
    assert unwrap(out["process"]["args"])[1] == ["sh", "-c", "echo hi"]
    validate_schema(out)


# ------------------------------------------------------------------------ process.args


def loose_prefix(args, **policy):
    return [HELPER_PATH, LandlockPolicy(**policy).to_arg(), "--", *args]


@pytest.mark.parametrize("args, inner", [
    (["sh", "-c", "echo hi"], ["sh", "-c", "echo hi"]),
    (["/app/agent"], ["/app/agent"]),
    (loose_prefix(["sh"], write=("/",), read=("/",)), ["sh"]),
    (loose_prefix(["sh"], write=("/",), tcp_connect=(1, 2), tcp_bind=(22,)), ["sh"]),
    (loose_prefix(loose_prefix(["sh", "-x"], write=("/etc",)), write=("/",)), ["sh", "-x"]),
    ([HELPER_PATH, "not a policy", "--", "sh"], ["sh"]),
    ([HELPER_PATH, "abi=1;w=/", "--", "--", "x"], ["--", "x"]),
    # not iron's prefix shape: kept as the program to run (it can only stack more Landlock)
    ([HELPER_PATH, "abi=1;w=/", "sh"], [HELPER_PATH, "abi=1;w=/", "sh"]),
    (["/other/landlock", "w=/", "--", "sh"], ["/other/landlock", "w=/", "--", "sh"]),
], ids=["plain", "one-arg", "smuggled-loose", "smuggled-tcp", "smuggled-nested",
        "smuggled-garbage", "double-dash-inner", "no-dashdash", "foreign-helper"])
def test_args_wrapped_once_with_fresh_policy(args, inner):
    out, decisions = filesystem.apply(realistic_spec(args=args), SECTION, ctx())
    fresh = policy_of(filesystem.apply(realistic_spec(), SECTION, ctx())[0])
    assert out["process"]["args"] == [HELPER_PATH, fresh.to_arg(), "--", *inner]
    assert [d.field for d in decisions].count("process.args") == 1


@pytest.mark.parametrize("args", [[], [HELPER_PATH, "abi=3", "--"], None, ["sh", 3]],
                         ids=["empty", "prefix-only", "missing", "not-strings"])
def test_bad_args_fail_closed(args):
    with pytest.raises(IronError, match="process.args"):
        filesystem.apply(realistic_spec(args=args), SECTION, ctx())


def test_missing_process_fails_closed():
    spec = realistic_spec()
    del spec["process"]
    with pytest.raises(IronError, match="process"):
        filesystem.apply(spec, SECTION, ctx())


# ------------------------------------------------------------------------ $CWD and $HOME


@pytest.mark.parametrize("cwd, writable", [
    ("/work", "/work"),
    ("/work/", "/work"),
    ("/home/agent/project", "/home/agent/project"),
    ("/tmp/build", "/tmp/build"),
    ("/", None),
    ("/usr", None),
    ("/usr/src/app", None),
    ("/etc", None),
    ("/etc/nginx", None),
    ("/proc/self", None),
    ("/sys", None),                # contains /sys/fs/cgroup
    ("/dev", None),                # contains /dev/null and the helper
    ("/dev/pts", None),
    ("/opt/app", None),
], ids=lambda v: repr(v))
def test_cwd_never_opens_a_system_dir(cwd, writable):
    spec = realistic_spec(cwd=cwd, env=["PATH=/bin"])
    out, decisions = filesystem.apply(spec, SECTION, ctx())
    write = policy_of(out).write
    assert write[:3] == LITERAL_WRITE
    assert write[3:] == ((writable,) if writable and writable not in LITERAL_WRITE else ())
    notes = [d for d in decisions if d.field == "process.cwd"]
    assert bool(notes) == (writable is None)
    assert all(d.before == d.after for d in notes)


def test_missing_cwd_means_root_and_is_skipped():
    spec = realistic_spec(env=[])
    del spec["process"]["cwd"]
    assert policy_of(filesystem.apply(spec, SECTION, ctx())[0]).write == LITERAL_WRITE


@pytest.mark.parametrize("env, home", [
    (["HOME=/root"], "/root"),
    (["PATH=/bin", "HOME=/home/agent/"], "/home/agent"),
    (["HOME=/home/a", "HOME=/etc"], "/home/a"),   # getenv() sees the first one
    ([], None),
    (["HOME="], None),
    (["HOME=/"], None),
    (["HOME=/usr/local/nginx"], None),
    (["HOME=/etc"], None),
    (["NOTHOME=/x", "XHOME=/y"], None),
], ids=lambda v: repr(v))
def test_home(env, home):
    out, _ = filesystem.apply(realistic_spec(cwd="/", env=env), SECTION, ctx())
    assert policy_of(out).write == LITERAL_WRITE + ((home,) if home else ())


def test_cwd_equal_to_a_literal_write_path_is_not_duplicated():
    out, _ = filesystem.apply(realistic_spec(cwd="/tmp", env=["HOME=/tmp"]), SECTION, ctx())
    assert policy_of(out).write == LITERAL_WRITE


def test_read_root_profile_keeps_cwd_writable():
    section = {"landlock": {"minAbi": 1, "read": ["/"], "write": ["/tmp", "$CWD"],
                            "execute": ["/usr"]}}
    out, _ = filesystem.apply(realistic_spec(cwd="/work"), section, ctx())
    assert policy_of(out).write == ("/tmp", "/work")
    out, _ = filesystem.apply(realistic_spec(cwd="/"), section, ctx())
    assert policy_of(out).write == ("/tmp",)


# ------------------------------------------------------------------------ errors name the field


def with_landlock(**changes_) -> dict:
    section = copy.deepcopy(SECTION)
    section["landlock"].update(changes_)
    return section


@pytest.mark.parametrize("section, field", [
    (with_landlock(write=["/tmp", "/var/tmp", "tmp"]), "filesystem.landlock.write[2]"),
    (with_landlock(write=["/tmp", "/x/../etc"]), "filesystem.landlock.write[1]"),
    (with_landlock(read=["/usr", "/a:b"]), "filesystem.landlock.read[1]"),
    (with_landlock(execute=["/bin", "/./usr"]), "filesystem.landlock.execute[1]"),
    (with_landlock(devices=["/dev//null"]), "filesystem.landlock.devices[0]"),
    (with_landlock(write=["$TMPDIR"]), "filesystem.landlock.write[0]"),
    (with_landlock(read=["$CWD"]), "filesystem.landlock.read[0]"),
    (with_landlock(write=[7]), "filesystem.landlock.write[0]"),
    (with_landlock(write="/tmp"), "filesystem.landlock.write"),
    (with_landlock(minAbi="3"), "filesystem.landlock.minAbi"),
    (with_landlock(minAbi=0), "filesystem.landlock.minAbi"),
    (with_landlock(minAbi=True), "filesystem.landlock.minAbi"),
    (with_landlock(refer=["/"]), "filesystem.landlock.refer"),
    ({**SECTION, "overlay": {}}, "filesystem.overlay"),
    ({**SECTION, "tmpfs": {"/tmp": "lots"}}, "filesystem.tmpfs['/tmp']"),
    ({**SECTION, "tmpfs": {"/tmp": 0}}, "filesystem.tmpfs['/tmp']"),
    ({**SECTION, "tmpfs": {"/tmp": "-1MiB"}}, "filesystem.tmpfs['/tmp']"),
    ({**SECTION, "tmpfs": {"tmp": "1MiB"}}, "filesystem.tmpfs['tmp']"),
    ({**SECTION, "tmpfs": ["/tmp"]}, "filesystem.tmpfs"),
    ({**SECTION, "landlock": ["/"]}, "filesystem.landlock"),
    ([], "filesystem"),
])
def test_bad_section_names_the_field(section, field):
    with pytest.raises(IronError) as err:
        filesystem.apply(realistic_spec(), section, ctx())
    assert err.value.field == field
    assert str(err.value).startswith(field)


@pytest.mark.parametrize("process, field", [
    ({"cwd": "work"}, "process.cwd"),
    ({"cwd": "/work/../etc"}, "process.cwd"),
    ({"cwd": "/a:b"}, "process.cwd"),
    ({"env": ["PATH=/bin", "HOME=root"]}, "process.env[1]"),
    ({"env": ["HOME=/home/a;w=/"]}, "process.env[0]"),
])
def test_bad_process_paths_name_the_field(process, field):
    with pytest.raises(IronError) as err:
        filesystem.apply(realistic_spec(**process), SECTION, ctx())
    assert err.value.field == field


@pytest.mark.parametrize("size, expected", [
    ("256MiB", "size=256m"), ("256M", "size=256m"), ("1GiB", "size=1g"), ("2g", "size=2g"),
    ("512KiB", "size=512k"), (1000, "size=1000"), ("1536 MiB", "size=1536m"),
])
def test_profile_sizes(size, expected):
    section = {"tmpfs": {"/tmp": size}}
    out, _ = filesystem.apply(realistic_spec(), section, ctx())
    assert mount_at(out, "/tmp")[0]["options"][-1] == expected


# ------------------------------------------------------------------------ the host


def test_no_helper_fails_closed():
    with pytest.raises(IronError, match="install.sh") as err:
        filesystem.apply(realistic_spec(), SECTION, ctx(helper=None))
    assert "Landlock helper" in str(err.value)


@pytest.mark.parametrize("abi", [0, 1, 2])
def test_old_abi_fails_closed(abi):
    with pytest.raises(IronError) as err:
        filesystem.apply(realistic_spec(), SECTION, ctx(abi=abi))
    assert str(err.value).startswith(
        f"Landlock ABI {abi} < required 3; maximum mode cannot be enforced on this host")


def test_exec_checks_the_host_too():
    with pytest.raises(IronError, match="Landlock ABI 2 < required 3"):
        filesystem.apply_exec({"args": ["id"]}, SECTION, ctx(abi=2), realistic_spec())


def test_tmpfs_only_section_needs_no_landlock():
    out, _ = filesystem.apply(realistic_spec(), {"tmpfs": {"/tmp": "1MiB"}}, ctx(abi=0, helper=None))
    assert out["process"]["args"] == ["sh", "-c", "echo hi"]
    assert mount_at(out, "/tmp") and not mount_at(out, HELPER_PATH)


# ------------------------------------------------------------------------ the annotation

ANN = "io.iron.fs.write"


def test_annotation_refused_without_config():
    with pytest.raises(Refused) as err:
        filesystem.apply(realistic_spec(), SECTION, ctx(annotations={ANN: "/data"}))
    assert ANN in str(err.value) and "allow_fs_write_annotation" in str(err.value)
    assert "config.toml" in str(err.value)


def test_annotation_in_spec_annotations_is_refused_too():
    spec = realistic_spec()
    spec["annotations"][ANN] = "/data"
    with pytest.raises(Refused, match="allow_fs_write_annotation"):
        filesystem.apply(spec, SECTION, ctx())


@pytest.mark.parametrize("value", ["", " ", ",,"])
def test_empty_annotation_asks_for_nothing(value):
    out, _ = filesystem.apply(realistic_spec(), SECTION, ctx(annotations={ANN: value}))
    assert policy_of(out).write == LITERAL_WRITE + ("/work", "/root")


@pytest.mark.parametrize("value, extra", [
    ("/data", ("/data",)),
    ("/data, /cache/", ("/data", "/cache")),
    ("/data,/work", ("/data",)),
])
def test_annotation_allowed_by_config(value, extra):
    out, _ = filesystem.apply(realistic_spec(), SECTION,
                              ctx(allow_write=True, annotations={ANN: value}))
    assert policy_of(out).write == LITERAL_WRITE + ("/work", "/root") + extra


@pytest.mark.parametrize("value, field", [
    ("/data,cache", f"annotations.{ANN}[1]"),
    ("/data/../etc", f"annotations.{ANN}[0]"),
    ("!/data", f"annotations.{ANN}[0]"),
])
def test_allowed_annotation_still_checks_paths(value, field):
    with pytest.raises(IronError) as err:
        filesystem.apply(realistic_spec(), SECTION, ctx(allow_write=True, annotations={ANN: value}))
    assert err.value.field == field


@pytest.mark.parametrize("value", ["/", "/usr/lib", "/etc", "/sys", "/dev"])
def test_allowed_annotation_never_opens_a_system_dir(value):
    with pytest.raises(Refused, match="read-only|is /"):
        filesystem.apply(realistic_spec(), SECTION, ctx(allow_write=True, annotations={ANN: value}))


# ------------------------------------------------------------------------ root.readonly


@pytest.mark.parametrize("root, decided", [
    ({"path": "rootfs"}, True),
    ({"path": "rootfs", "readonly": False}, True),
    ({"path": "rootfs", "readonly": True}, False),
])
def test_root_readonly(root, decided):
    spec = realistic_spec()
    spec["root"] = root
    out, decisions = filesystem.apply(spec, SECTION, ctx())
    assert out["root"] == {**root, "readonly": True}
    assert any(d.field == "root.readonly" for d in decisions) == decided


def test_no_root_fails_closed():
    spec = realistic_spec()
    del spec["root"]
    with pytest.raises(IronError, match="root"):
        filesystem.apply(spec, SECTION, ctx())


# ------------------------------------------------------------------------ tmpfs


def tmpfs(dest, *options):
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": list(options)}


@pytest.mark.parametrize("engine, expected", [
    (tmpfs("/tmp", "nosuid", "nodev", "size=1g"), ["nosuid", "nodev", "size=256m"]),
    (tmpfs("/tmp", "nosuid", "nodev", "size=16m"), ["nosuid", "nodev", "size=16m"]),
    (tmpfs("/tmp", "rw", "noexec"), ["rw", "noexec", "nosuid", "nodev", "size=256m"]),
    (tmpfs("/tmp", "nosuid", "nodev", "size=0"), ["nosuid", "nodev", "size=256m"]),
    (tmpfs("/tmp", "nosuid", "nodev", "size=50%"), ["nosuid", "nodev", "size=256m"]),
    (tmpfs("/tmp", "nosuid", "nodev", "size=8m", "size=2g"), ["nosuid", "nodev", "size=256m"]),
    (tmpfs("/tmp", "nosuid", "nodev", "size=2g", "nr_blocks=1024"), ["nosuid", "nodev", "size=4m"]),
    (tmpfs("/tmp", "nosuid", "nodev", "size=0x1000000"), ["nosuid", "nodev", "size=0x1000000"]),
    (tmpfs("/tmp", "suid", "dev", "mode=1777", "size=64M"), ["mode=1777", "nosuid", "nodev", "size=64M"]),
    ({"destination": "/tmp/", "type": "tmpfs", "source": "tmpfs"}, ["nosuid", "nodev", "size=256m"]),
], ids=["bigger", "smaller", "no-size", "unlimited", "percent", "last-size-wins", "nr_blocks",
        "hex", "suid-dev-dropped", "no-options"])
def test_engine_tmpfs_is_capped(engine, expected):
    spec = realistic_spec()
    spec["mounts"].append(engine)
    out, decisions = filesystem.apply(spec, SECTION, ctx())
    at = [m for m in out["mounts"] if m["destination"].rstrip("/") == "/tmp"]
    assert len(at) == 1 and at[0]["options"] == expected
    again, more = filesystem.apply(out, SECTION, ctx())
    assert again == out and changes(more) == []


def test_docker_dev_shm_is_left_alone():
    shm = tmpfs("/dev/shm", "noexec", "nosuid", "nodev", "mode=1777", "size=65536k")
    spec = realistic_spec()
    spec["mounts"].insert(3, shm)
    out, decisions = filesystem.apply(spec, SECTION, ctx())
    assert mount_at(out, "/dev/shm") == [shm]
    assert not any(d.field.startswith("mounts[destination=/dev/shm]") for d in decisions)


@pytest.mark.parametrize("value", ["size=lots", "size=08", "nr_blocks=1x"])
def test_unreadable_engine_size_fails(value):
    spec = realistic_spec()
    spec["mounts"].append(tmpfs("/tmp", value))
    with pytest.raises(IronError, match=r"mounts\[destination=/tmp\]\.options"):
        filesystem.apply(spec, SECTION, ctx())


@pytest.mark.parametrize("engine", [
    {"destination": "/tmp", "type": "bind", "source": "/var/tmp/job-42", "options": ["rbind", "rw"]},
    {"destination": "/tmp", "type": "none", "source": "/var/tmp/job-42", "options": ["rbind"]},
    {"destination": "/dev/shm", "type": "bind", "source": "/run/containers/shm",
     "options": ["bind", "private"]},
])
def test_engine_bind_mount_is_kept_and_noted(engine):
    spec = realistic_spec()
    spec["mounts"].append(engine)
    out, decisions = filesystem.apply(spec, SECTION, ctx())
    assert mount_at(out, engine["destination"]) == [engine]
    notes = [d for d in decisions if d.field == f"mounts[destination={engine['destination']}]"]
    assert len(notes) == 1 and notes[0].before == notes[0].after == engine
    assert "Landlock still confines" in notes[0].reason


def test_new_tmpfs_options_and_order():
    out, _ = filesystem.apply(realistic_spec(), SECTION, ctx())
    dests = [m["destination"] for m in out["mounts"]]
    assert mount_at(out, "/tmp") == [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                       "options": ["nosuid", "nodev", "mode=1777", "size=256m"]}]
    assert mount_at(out, "/dev/shm")[0]["options"][-1] == "size=64m"
    assert dests.index("/dev") < dests.index("/dev/shm") < dests.index(HELPER_PATH)
    assert dests[-1] == HELPER_PATH


def test_new_tmpfs_does_not_shadow_engine_mounts_beneath_it():
    spec = realistic_spec()
    x11 = {"destination": "/tmp/.X11-unix", "type": "bind", "source": "/tmp/.X11-unix",
           "options": ["rbind", "ro"]}
    spec["mounts"].insert(1, x11)
    out, _ = filesystem.apply(spec, SECTION, ctx())
    dests = [m["destination"] for m in out["mounts"]]
    assert dests.index("/tmp") < dests.index("/tmp/.X11-unix")


def test_new_dev_shm_lands_after_dev_even_if_dev_is_late():
    spec = realistic_spec()
    dev = spec["mounts"].pop(1)
    spec["mounts"].append(dev)
    out, _ = filesystem.apply(spec, SECTION, ctx())
    dests = [m["destination"] for m in out["mounts"]]
    assert dests.index("/dev") < dests.index("/dev/shm") < dests.index(HELPER_PATH)


# ------------------------------------------------------------------------ the helper mount


@pytest.mark.parametrize("shadow", [
    {"destination": HELPER_PATH, "type": "bind", "source": "/home/evil/landlock-noop",
     "options": ["bind", "ro"]},
    {"destination": "dev/.iron-landlock", "type": "bind", "source": "/evil", "options": ["bind"]},
    {"destination": "/dev//.iron-landlock", "type": "bind", "source": "/evil", "options": ["bind"]},
    {"destination": "/dev/x/../.iron-landlock", "type": "bind", "source": "/evil", "options": ["bind"]},
    {"destination": HELPER_PATH, "type": "tmpfs", "source": "tmpfs"},
])
def test_helper_cannot_be_shadowed(shadow):
    spec = realistic_spec()
    spec["mounts"].append(shadow)
    out, decisions = filesystem.apply(spec, SECTION, ctx())
    assert shadow not in out["mounts"]
    assert out["mounts"][-1] == helper_mount(HOST_HELPER)
    assert sum(m["destination"] == HELPER_PATH for m in out["mounts"]) == 1
    assert any(d.before == shadow and d.after is None for d in decisions)


def test_helper_mount_moved_to_the_end():
    spec = realistic_spec()
    spec["mounts"].insert(0, helper_mount(HOST_HELPER))
    out, _ = filesystem.apply(spec, SECTION, ctx())
    assert out["mounts"][-1] == helper_mount(HOST_HELPER)
    assert out["mounts"].count(helper_mount(HOST_HELPER)) == 1


def test_spec_without_mounts_gets_the_helper():
    spec = realistic_spec()
    del spec["mounts"]
    out, _ = filesystem.apply(spec, SECTION, ctx())
    assert out["mounts"][-1] == helper_mount(HOST_HELPER)


# ------------------------------------------------------------------------ idempotence


def variants():
    yield "realistic", realistic_spec()
    yield "cwd-root", realistic_spec(cwd="/", env=[])
    yield "smuggled", realistic_spec(args=loose_prefix(["sh"], write=("/",)))
    spec = realistic_spec()
    spec["mounts"] += [tmpfs("/tmp", "size=9g", "suid"),
                       {"destination": HELPER_PATH, "type": "bind", "source": "/evil"}]
    yield "engine-mounts", spec
    spec = realistic_spec()
    spec["root"]["readonly"] = True
    yield "already-readonly", spec


@pytest.mark.parametrize("spec", [s for _, s in variants()], ids=[n for n, _ in variants()])
def test_idempotent(spec):
    once, first = filesystem.apply(spec, SECTION, ctx())
    twice, second = filesystem.apply(once, SECTION, ctx())
    assert twice == once
    assert changes(second) == []
    assert changes(first)
    validate_schema(once)


# ------------------------------------------------------------------------ exec


@pytest.fixture
def container():
    """The container as iron wrote it at create, with the network layer's TCP ports added."""
    spec, _ = filesystem.apply(realistic_spec(), SECTION, ctx())
    policy, inner = unwrap(spec["process"]["args"])
    spec["process"]["args"] = [HELPER_PATH, policy.with_tcp((3128,), ()).to_arg(), "--", *inner]
    return spec


@pytest.mark.parametrize("args, inner", [
    (["id"], ["id"]),
    (["sh", "-c", "cat /etc/shadow"], ["sh", "-c", "cat /etc/shadow"]),
    (loose_prefix(["sh"], write=("/",), read=("/",)), ["sh"]),
    (loose_prefix(loose_prefix(["sh"], write=("/etc",)), write=("/",)), ["sh"]),
    ([HELPER_PATH, "garbage", "--", "sh"], ["sh"]),
], ids=["plain", "plain-args", "pre-wrapped-loose", "pre-wrapped-nested", "pre-wrapped-garbage"])
def test_exec_gets_the_containers_policy(container, args, inner):
    process = {"args": args, "cwd": "/", "env": ["HOME=/"], "terminal": True}
    out, decisions = filesystem.apply_exec(process, SECTION, ctx(), container)
    assert out["args"] == [*container["process"]["args"][:3], *inner]
    assert {k: v for k, v in out.items() if k != "args"} == {k: v for k, v in process.items()
                                                              if k != "args"}
    assert [d.field for d in decisions] == ["process.args"]
    assert all(d.layer == "filesystem" for d in decisions)
    again, more = filesystem.apply_exec(out, SECTION, ctx(), container)
    assert again == out and more == []


def test_exec_does_not_mutate_its_input(container):
    process = {"args": loose_prefix(["sh"], write=("/",)), "cwd": "/work"}
    before = copy.deepcopy(process)
    filesystem.apply_exec(process, SECTION, ctx(), container)
    assert process == before


def test_exec_into_unwrapped_container_builds_from_section():
    container = realistic_spec()
    process = {"args": ["id"], "cwd": "/srv/job", "env": ["HOME=/home/agent"]}
    out, _ = filesystem.apply_exec(process, SECTION, ctx(), container)
    policy = policy_of(out)
    assert policy.write == LITERAL_WRITE + ("/srv/job", "/home/agent")
    assert policy.scope and policy.min_abi == 3 and policy.tcp_connect is None


def test_exec_into_unwrapped_container_checks_the_annotation():
    container = realistic_spec()
    container["annotations"][ANN] = "/data"
    with pytest.raises(Refused, match="allow_fs_write_annotation"):
        filesystem.apply_exec({"args": ["id"]}, SECTION, ctx(), container)


def test_exec_with_unreadable_container_policy_fails(container):
    container["process"]["args"][1] = "bogus"
    with pytest.raises(IronError) as err:
        filesystem.apply_exec({"args": ["id"]}, SECTION, ctx(), container)
    assert err.value.field == "process.args[1]"


@pytest.mark.parametrize("args", [[], [HELPER_PATH, "abi=1", "--"]])
def test_exec_without_a_program_fails(container, args):
    with pytest.raises(IronError, match="process.args"):
        filesystem.apply_exec({"args": args}, SECTION, ctx(), container)


def test_a_policy_with_no_paths_left_is_refused_not_passed_to_the_helper():
    """The helper treats a pathless policy as network-only (files unrestricted): fail closed."""
    from iron.oci.context import Context, HostFacts
    from iron.oci.errors import IronError
    ctx = Context(mode="custom", profiles_root=Path("/nonexistent"),
                  host=HostFacts(landlock_abi=7, landlock_helper="/usr/local/lib/iron/iron-landlock"))
    spec = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "env": []}}
    with pytest.raises(IronError) as err:
        filesystem.apply(spec, {"landlock": {"minAbi": 1, "write": ["$CWD"]}}, ctx)
    assert "filesystem.landlock" in str(err.value)


# The kernel's memparse() grammar, written as a regular expression: the test's own oracle.
MEMPARSE = r"(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kKmMgGtTpPeE]?)"


@settings(max_examples=3000, deadline=None)
@given(st.from_regex(MEMPARSE, fullmatch=True) | st.text("0123456789abcdefxXkKmMgGtTpPeE%- \n", max_size=8))
def test_mount_size_reads_the_kernels_grammar(text):
    import re
    m = re.fullmatch(MEMPARSE, text)
    if m is None:
        expected = None
    else:
        digits = m.group(1)
        base = 16 if digits[:2].lower() == "0x" else 8 if digits[0] == "0" else 10
        expected = int(digits[2:] if base == 16 else digits, base) << {"": 0, "k": 10, "m": 20, "g": 30, "t": 40,
                                                                      "p": 50, "e": 60}[m.group(2).lower()]
    assert filesystem._memparse(text) == expected
