"""Bad input: one clear line (stderr and runc's --log), a non-zero exit, and files left byte-identical.

Each row builds its situation in a temp dir and returns the argv to run plus the files
that must not change. The same table is in docs/bad-input.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import BIN_DIR, iron_bin

pytestmark = pytest.mark.integration


def _profile(env, name, doc):
    folder = env["profiles"]
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(doc))


def _annotated(runtime, annotations):
    return runtime.bundle(["true"], edit=lambda s: s.__setitem__("annotations", annotations))


def _with_config_text(runtime, env, text):
    bundle = runtime.bundle(["true"])
    (bundle / "config.json").write_text(text)
    return bundle


def _running_container(runtime):
    bundle = runtime.bundle(["sleep", "300"])
    cid = runtime.new_id()
    assert runtime.run(iron_bin("standard"), "run", "-d", "-b", str(bundle), cid).returncode == 0
    return cid


# (id, setup(runtime, env) -> (argv after the binary, binary mode, files to keep), expected text)
def case_missing_bundle(rt, env):
    return ["create", "-b", str(rt.tmp / "nope"), rt.new_id()], None, [], "bundle not found"


def case_bundle_is_file(rt, env):
    f = rt.tmp / "file"
    f.write_text("x")
    return ["create", "-b", str(f), rt.new_id()], None, [f], "not a directory"


def case_bundle_is_symlink(rt, env):
    bundle = rt.bundle(["true"])
    link = rt.tmp / "link"
    link.symlink_to(bundle)
    return ["create", "-b", str(link), rt.new_id()], None, [bundle / "config.json"], "is a symlink"


def case_config_missing(rt, env):
    bundle = rt.bundle(["true"])
    (bundle / "config.json").unlink()
    return ["create", "-b", str(bundle), rt.new_id()], None, [], "config.json not found"


def _bad_text(text, expect):
    def case(rt, env):
        bundle = _with_config_text(rt, env, text)
        return ["create", "-b", str(bundle), rt.new_id()], None, [bundle / "config.json"], expect
    return case


def case_config_is_dir(rt, env):
    bundle = rt.bundle(["true"])
    (bundle / "config.json").unlink()
    (bundle / "config.json").mkdir()
    return ["create", "-b", str(bundle), rt.new_id()], None, [], "cannot read config.json"


def _bad_spec(edit, expect, mode=None):
    def case(rt, env):
        bundle = rt.bundle(["true"], edit=edit)
        return ["create", "-b", str(bundle), rt.new_id()], mode, [bundle / "config.json"], expect
    return case


def case_unknown_mode_flag(rt, env):
    bundle = rt.bundle(["true"])
    return ["--iron-mode", "turbo", "create", "-b", str(bundle), rt.new_id()], None, \
        [bundle / "config.json"], "unknown mode `turbo`"


def case_unknown_mode_binary(rt, env):
    bundle = rt.bundle(["true"])
    link = rt.tmp / "iron-turbo"
    link.symlink_to(BIN_DIR / "iron")
    return ["create", "-b", str(bundle), rt.new_id()], str(link), [bundle / "config.json"], "unknown mode `turbo`"


def _custom_profile(name, doc, expect, extra=None):
    def case(rt, env):
        _profile(env, name, doc)
        if extra:
            extra(env)
        bundle = rt.bundle(["true"])
        return ["--iron-mode", name, "create", "-b", str(bundle), rt.new_id()], None, \
            [bundle / "config.json"], expect
    return case


def _seccomp_with_unknown(env):
    path = env["profiles"] / "bad-seccomp.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                                "syscalls": [{"names": ["read", "notasyscall"], "action": "SCMP_ACT_ALLOW"}]}))


def _circular(env):
    _profile(env, "loop-b", {"name": "loop-b", "extends": "loop-a"})


def case_exec_bad_process_file(rt, env):
    cid = _running_container(rt)
    bad = rt.tmp / "process.json"
    bad.write_text('{"args": ["sh"')
    return ["exec", "--process", str(bad), cid], "standard", [bad], "process file is not valid JSON"


def case_exec_process_not_object(rt, env):
    cid = _running_container(rt)
    bad = rt.tmp / "process.json"
    bad.write_text('["sh"]')
    return ["exec", "--process", str(bad), cid], "standard", [bad], "not a JSON object"


def case_unknown_subcommand(rt, env):
    return ["frobnicate", "x"], None, [], "unknown subcommand `frobnicate`"


def case_config_toml_syntax(rt, env):
    bundle = rt.bundle(["true"])
    env["config"].write_text("default_mode = \n")
    return ["create", "-b", str(bundle), rt.new_id()], None, [bundle / "config.json"], "TOML syntax error"


def case_config_toml_unknown_key(rt, env):
    bundle = rt.bundle(["true"])
    env["config"].write_text(env["config"].read_text() + "colour = \"blue\"\n")
    return ["create", "-b", str(bundle), rt.new_id()], None, [bundle / "config.json"], "unknown setting"


def case_missing_delegate(rt, env):
    bundle = rt.bundle(["true"])
    env["config"].write_text(env["config"].read_text() + 'runtime = "/nonexistent/crun"\n')
    return ["create", "-b", str(bundle), rt.new_id()], None, [bundle / "config.json"], \
        "delegate runtime not found"


CASES = {
    "missing bundle": case_missing_bundle,
    "bundle is a file": case_bundle_is_file,
    "bundle is a symlink": case_bundle_is_symlink,
    "config.json missing": case_config_missing,
    "config.json unreadable (a directory)": case_config_is_dir,
    "config.json empty": _bad_text("", "config.json is empty"),
    "config.json truncated": _bad_text('{"ociVersion": "1.0', "not valid JSON"),
    "config.json not JSON": _bad_text("hello", "not valid JSON"),
    "config.json an array": _bad_text("[1, 2]", "not a JSON object"),
    "memory limit as a string": _bad_spec(
        lambda s: s["linux"].setdefault("resources", {}).__setitem__("memory", {"limit": "2G"}),
        "linux.resources.memory.limit"),
    "annotations not an object": _bad_spec(lambda s: s.__setitem__("annotations", ["x"]), "annotations"),
    "unknown mode (flag)": case_unknown_mode_flag,
    "unknown mode (binary name)": case_unknown_mode_binary,
    "unknown mode (annotation)": _bad_spec(lambda s: s.__setitem__("annotations", {"io.iron.mode": "turbo"}),
                                           "unknown mode `turbo`"),
    "annotation lowers the mode": _bad_spec(
        lambda s: s.__setitem__("annotations", {"io.iron.mode": "minimal"}), "would lower the mode", "maximum"),
    "run.oci.seccomp_bpf_data replaces seccomp": _bad_spec(
        lambda s: s.__setitem__("annotations", {"run.oci.seccomp_bpf_data": "AAAA"}),
        "run.oci.seccomp_bpf_data", "standard"),
    "profile schema violation": _custom_profile(
        "bad-schema", {"name": "bad-schema", "extends": "standard", "process": {"limits": {"pids": "many"}}},
        "$.process.limits.pids"),
    "unknown syscall in a profile": _custom_profile(
        "bad-syscall", {"name": "bad-syscall", "extends": "minimal", "syscall": {"seccomp": "bad-seccomp.json"}},
        "notasyscall", _seccomp_with_unknown),
    "circular extends": _custom_profile("loop-a", {"name": "loop-a", "extends": "loop-b"}, "circular",
                                        _circular),
    "invalid CIDR in the allowlist": _custom_profile(
        "bad-cidr", {"name": "bad-cidr", "extends": "maximum",
                     "network": {"policy": "allowlist", "allow": ["300.1.2.3/8"]}}, "network.allow[0]"),
    "invalid port in the allowlist": _custom_profile(
        "bad-port", {"name": "bad-port", "extends": "maximum",
                     "network": {"policy": "allowlist", "allow": ["10.0.0.1:70000"]}}, "network.allow[0]"),
    "relative Landlock path": _custom_profile(
        "bad-rel", {"name": "bad-rel", "extends": "maximum",
                    "filesystem": {"landlock": {"minAbi": 1, "write": ["tmp"]}}}, "filesystem.landlock.write"),
    "`..` in a Landlock path": _custom_profile(
        "bad-dots", {"name": "bad-dots", "extends": "maximum",
                     "filesystem": {"landlock": {"minAbi": 1, "read": ["/usr/../etc"]}}}, "filesystem.landlock.read[0]"),
    "exec with a malformed process file": case_exec_bad_process_file,
    "exec with a process file that is not an object": case_exec_process_not_object,
    "unknown subcommand": case_unknown_subcommand,
    "config.toml syntax error": case_config_toml_syntax,
    "config.toml unknown key": case_config_toml_unknown_key,
    "missing delegate": case_missing_delegate,
}


@pytest.fixture
def env(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text(f'profiles_dir = "{tmp_path / "profiles"}"\naudit_log = "{tmp_path / "audit.jsonl"}"\n')
    monkeypatch.setenv("IRON_CONFIG", str(config))
    return {"config": config, "profiles": tmp_path / "profiles", "audit": tmp_path / "audit.jsonl"}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, runtime, env, tmp_path):
    argv, binary, keep, expected = CASES[name](runtime, env)
    if binary is None:
        binary = iron_bin()
    elif not binary.startswith("/"):
        binary = iron_bin(binary)
    before = {p: p.read_bytes() for p in keep}
    log = tmp_path / "runc-log.json"
    out = runtime.run(binary, "--log", str(log), "--log-format", "json", *argv,
                      env={**os.environ, "IRON_CONFIG": str(env["config"])})
    assert out.returncode == 1, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert expected in lines[0], lines[0]
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert logged and logged[-1]["msg"] == lines[0] and logged[-1]["level"] == "error"
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} changed"
