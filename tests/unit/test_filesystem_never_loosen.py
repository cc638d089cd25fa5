"""Properties of the filesystem layer over generated specs: it never loosens and is idempotent."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iron.oci import filesystem
from iron.oci.context import Context, HostFacts, Policy
from iron.oci.landlock_policy import HELPER_PATH, LandlockPolicy, helper_mount, unwrap

HOST_HELPER = "/usr/local/lib/iron/iron-landlock"
SECTION = {
    "landlock": {
        "minAbi": 3,
        "read": ["/bin", "/sbin", "/usr", "/lib", "/lib64", "/opt", "/etc", "/proc", "/sys/fs/cgroup"],
        "write": ["/tmp", "/var/tmp", "/dev/shm", "$CWD", "$HOME"],
        "execute": ["/bin", "/sbin", "/usr", "/lib", "/lib64", "/opt"],
        "devices": ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/tty", "/dev/pts"],
    },
    "tmpfs": {"/tmp": "256MiB", "/dev/shm": "64MiB"},
}
LITERAL_WRITE = {"/tmp", "/var/tmp", "/dev/shm"}
READ_ONLY = {p for key in ("read", "execute", "devices") for p in SECTION["landlock"][key]} | {HELPER_PATH}
CAPS = {"/tmp": 256 << 20, "/dev/shm": 64 << 20}
CTX = Context(mode="maximum", profiles_root="/nonexistent",
              host=HostFacts(landlock_abi=6, landlock_helper=HOST_HELPER), policy=Policy())

# ------------------------------------------------------------------------ strategies

segment = st.sampled_from(["usr", "etc", "work", "home", "agent", "tmp", "dev", "sys", "fs",
                           "cgroup", "src", "root", "proc", "shm", "pts", "var", "opt", ".iron-landlock"])
path = st.one_of(
    st.just("/"),
    st.lists(segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.lists(segment, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts) + "/"),
)
word = st.text(alphabet="abcxyz-_./ 0123", min_size=1, max_size=8)
inner_args = st.lists(word, min_size=1, max_size=4)
loose_policy = st.builds(
    LandlockPolicy,
    min_abi=st.integers(1, 7),
    read=st.lists(path, max_size=3).map(tuple),
    write=st.lists(path, max_size=3).map(tuple),
    execute=st.lists(path, max_size=2).map(tuple),
    tcp_connect=st.none() | st.lists(st.integers(1, 65535), max_size=3).map(tuple),
    scope=st.booleans(),
).map(LandlockPolicy.to_arg)
prefix = st.one_of(loose_policy, st.just("garbage"), st.just(""))


@st.composite
def wrapped_args(draw):
    inner = draw(inner_args)
    args = list(inner)
    for policy in draw(st.lists(prefix, max_size=2)):
        args = [HELPER_PATH, policy, "--", *args]
    return args, inner


def size_option():
    return st.one_of(
        st.integers(1, 1 << 34).map(lambda n: f"size={n}"),
        st.integers(1, 4096).map(lambda n: f"size={n}m"),
        st.integers(1, 1 << 20).map(lambda n: f"nr_blocks={n}"),
        st.sampled_from(["size=0", "size=50%", "nr_blocks=0", "size=1g", "size=0x100000"]),
    )


@st.composite
def mount(draw):
    kind = draw(st.sampled_from(["tmpfs", "bind", "helper", "other"]))
    if kind == "tmpfs":
        dest = draw(st.sampled_from(["/tmp", "/dev/shm", "/tmp/", "/run", "/dev"]))
        options = draw(st.lists(st.one_of(size_option(), st.sampled_from(
            ["suid", "dev", "nosuid", "nodev", "noexec", "mode=1777", "rw"])), max_size=4))
        return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}
    if kind == "bind":
        dest = draw(st.sampled_from(["/tmp", "/dev/shm", "/work", "/tmp/.X11-unix", "/etc/hosts"]))
        return {"destination": dest, "type": "bind", "source": "/srv/host" + dest,
                "options": ["rbind", "rw"]}
    if kind == "helper":
        dest = draw(st.sampled_from([HELPER_PATH, "dev/.iron-landlock", "/dev//.iron-landlock"]))
        return {"destination": dest, "type": "bind", "source": draw(st.sampled_from(
            ["/evil/noop", HOST_HELPER])), "options": ["bind", "ro"]}
    return {"destination": draw(st.sampled_from(["/proc", "/sys", "/dev/pts"])),
            "type": "proc", "source": "proc"}


@st.composite
def spec(draw):
    args, inner = draw(wrapped_args())
    env = ["PATH=/usr/bin:/bin"]
    home = draw(st.none() | path)
    if home is not None:
        env.insert(draw(st.integers(0, 1)), f"HOME={home}")
    root = {"path": "rootfs"}
    readonly = draw(st.sampled_from([None, True, False]))
    if readonly is not None:
        root["readonly"] = readonly
    base = {"ociVersion": "1.0.2", "root": root,
            "process": {"args": args, "cwd": draw(path), "env": env, "user": {"uid": 0, "gid": 0}},
            "mounts": draw(st.lists(mount(), max_size=6))}
    return base, inner


def norm(p: str | None) -> str | None:
    return None if p is None else (p.rstrip("/") or "/")


def home_of(process: dict) -> str | None:
    for item in process["env"]:
        if item.startswith("HOME="):
            return norm(item[5:])
    return None


def parse_size(options: list[str]) -> int:
    sizes = [o for o in options if o.startswith(("size=", "nr_blocks="))]
    assert len(sizes) == 1, options
    value = sizes[0].split("=", 1)[1]
    units = {"k": 10, "m": 20, "g": 30}
    if value[-1] in units:
        return int(value[:-1], 0) << units[value[-1]]
    return int(value, 0)


relaxed = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------ properties


@relaxed
@given(spec())
def test_never_loosens(generated):
    original, inner = generated
    pristine = copy.deepcopy(original)
    out, decisions = filesystem.apply(original, SECTION, CTX)
    assert original == pristine                       # pure

    args = out["process"]["args"]
    policy, rest = unwrap(args)
    assert policy is not None and rest == inner       # the program is untouched
    assert args[3:] == inner and args[3:4] != [HELPER_PATH]   # replaced, never nested

    allowed = LITERAL_WRITE | {norm(original["process"]["cwd"]), home_of(original["process"])}
    assert set(policy.write) <= allowed               # never wider than the profile
    assert "/" not in policy.write
    for w in set(policy.write) - LITERAL_WRITE:       # a writable dir never opens a system dir
        for p in READ_ONLY:
            assert not (w == p or w.startswith(p + "/") or p.startswith(w + "/")), (w, p)
    assert policy.min_abi == 3 and policy.scope and policy.tcp_connect is None
    assert set(policy.write) | set(policy.execute) <= set(policy.read)

    assert out["root"]["readonly"] is True            # never flips back

    mounts = out["mounts"]
    assert mounts[-1] == helper_mount(HOST_HELPER)
    assert sum(m["destination"].lstrip("/").replace("//", "/") == HELPER_PATH[1:]
               for m in mounts) == 1
    for m in mounts:
        dest = norm(m["destination"])
        if m.get("type") == "tmpfs" and dest in CAPS:
            assert 0 < parse_size(m["options"]) <= CAPS[dest]      # size=0 is unlimited
            assert {"nosuid", "nodev"} <= set(m["options"])
            assert not {"suid", "dev"} & set(m["options"])
    for dest in CAPS:
        assert any(norm(m["destination"]) == dest for m in mounts)

    assert all(d.layer == "filesystem" for d in decisions)


@relaxed
@given(spec())
def test_twice_is_once(generated):
    original, _ = generated
    once, _ = filesystem.apply(original, SECTION, CTX)
    twice, decisions = filesystem.apply(once, SECTION, CTX)
    assert twice == once
    assert [d for d in decisions if d.before != d.after] == []


@relaxed
@given(spec(), wrapped_args(), path)
def test_exec_gets_exactly_the_containers_policy(generated, exec_args, cwd):
    container, _ = filesystem.apply(generated[0], SECTION, CTX)
    want, _ = unwrap(container["process"]["args"])
    args, inner = exec_args
    process = {"args": args, "cwd": cwd, "env": ["HOME=/"]}
    out, _ = filesystem.apply_exec(process, SECTION, CTX, container)
    got, rest = unwrap(out["args"])
    assert got == want and rest == inner
    again, _ = filesystem.apply_exec(out, SECTION, CTX, container)
    assert again == out
