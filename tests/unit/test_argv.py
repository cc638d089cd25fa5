"""runc's argv in all its spellings (table tests)."""

import pytest

from iron.oci.errors import IronError
from iron.shim.argv import CREATE_VALUE_FLAGS, EXEC_VALUE_FLAGS, parse, split_args


@pytest.mark.parametrize("argv, crun, sub, mode, log, fmt, root", [
    (["state", "x"], ["state", "x"], "state", None, None, "text", None),
    (["--root", "/r", "state", "x"], ["--root", "/r", "state", "x"], "state", None, None, "text", "/r"),
    (["--root=/r", "--log", "/l", "--log-format=json", "kill", "x", "9"],
     ["--root=/r", "--log", "/l", "--log-format=json", "kill", "x", "9"], "kill", None, "/l", "json", "/r"),
    (["--iron-mode", "maximum", "create", "x"], ["create", "x"], "create", "maximum", None, "text", None),
    (["--iron-mode=minimal", "--iron-config", "/c.toml", "run", "x"], ["run", "x"], "run", "minimal",
     None, "text", None),
    (["--debug", "--systemd-cgroup", "--rootless", "true", "delete", "x"],
     ["--debug", "--systemd-cgroup", "--rootless", "true", "delete", "x"], "delete", None, None, "text", None),
    (["--rootless", "delete", "x"], ["--rootless", "delete", "x"], "delete", None, None, "text", None),
    (["--cgroup-manager", "cgroupfs", "--criu", "/c", "ps", "x"],
     ["--cgroup-manager", "cgroupfs", "--criu", "/c", "ps", "x"], "ps", None, None, "text", None),
    (["-root", "/r", "start", "x"], ["-root", "/r", "start", "x"], "start", None, None, "text", "/r"),
    (["--unknown-flag", "start", "x"], ["--unknown-flag", "start", "x"], "start", None, None, "text", None),
    (["--debug", "--iron-mode", "standard", "--log", "/l", "exec", "x", "sh"],
     ["--debug", "--log", "/l", "exec", "x", "sh"], "exec", "standard", "/l", "text", None),
])
def test_global_flags(argv, crun, sub, mode, log, fmt, root):
    parsed = parse(argv)
    assert parsed.crun_argv() == crun
    assert (parsed.subcommand, parsed.iron_mode, parsed.log, parsed.log_format, parsed.root) == \
        (sub, mode, log, fmt, root)


def test_iron_config_is_stripped():
    parsed = parse(["--iron-config", "/etc/x.toml", "state", "a"])
    assert parsed.iron_config == "/etc/x.toml" and parsed.crun_argv() == ["state", "a"]


@pytest.mark.parametrize("argv", [["--root"], ["--iron-mode"], ["--log"]])
def test_global_flag_without_value(argv):
    with pytest.raises(IronError, match="needs a value"):
        parse(argv)


@pytest.mark.parametrize("args, bundle, cid", [
    (["--bundle", "/b", "id1"], "/b", "id1"),
    (["--bundle=/b", "id1"], "/b", "id1"),
    (["-b", "/b", "id1"], "/b", "id1"),
    (["-b=/b", "id1"], "/b", "id1"),
    (["-b", "create", "create"], "create", "create"),
    (["--pid-file", "/p", "--console-socket", "/s", "id1"], None, "id1"),
    (["id1", "--bundle", "/b"], "/b", "id1"),
    (["--no-pivot", "--bundle", "/b", "--preserve-fds", "2", "id1"], "/b", "id1"),
    (["-bundle", "/b", "id1"], "/b", "id1"),
])
def test_create_args(args, bundle, cid):
    sub = split_args(args, CREATE_VALUE_FLAGS)
    assert sub.value("--bundle", "-b") == bundle
    assert args[sub.positionals[-1]] == cid


def test_create_bundle_flag_missing_value():
    with pytest.raises(IronError, match="needs a value"):
        split_args(["id1", "--bundle"], CREATE_VALUE_FLAGS)


@pytest.mark.parametrize("args, process, cid, command", [
    (["--process", "/p.json", "--detach", "--pid-file", "/x", "c1"], "/p.json", "c1", []),
    (["-p=/p.json", "c1"], "/p.json", "c1", []),
    (["c1", "sh", "-c", "echo hi"], None, "c1", ["sh", "-c", "echo hi"]),
    (["-t", "--env", "A=1", "-u", "0", "c1", "ls", "--process", "x"], None, "c1", ["ls", "--process", "x"]),
    (["--cwd=/tmp", "c1", "--", "x"], None, "c1", ["--", "x"]),
])
def test_exec_args(args, process, cid, command):
    sub = split_args(args, EXEC_VALUE_FLAGS, stop_at_command=True)
    assert sub.value("--process", "-p") == process
    assert args[sub.positionals[0]] == cid
    assert args[sub.tail:] == command
