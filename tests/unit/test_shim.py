"""The shim's routing, with a fake execv: what reaches crun, what is written, what is refused."""

import json
import os
import subprocess
import sys

import pytest

from iron.shim import main as shim_main


class Exec(BaseException):  # not caught by the shim's handler, like a real execv
    pass


@pytest.fixture
def fake_exec(monkeypatch, tmp_path):
    calls = []
    crun = tmp_path / "crun"
    crun.write_text("#!/bin/sh\nexit 0\n")
    crun.chmod(0o755)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'runtime = "{crun}"\naudit_log = "{tmp_path}/audit.jsonl"\n'
                   f'profiles_dir = "{tmp_path}/profiles"\n')
    monkeypatch.setenv("IRON_CONFIG", str(cfg))
    monkeypatch.setenv("IRON_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr("iron.shim.config.CACHE_DIR", str(tmp_path / "run"))

    def execv(path, argv):
        calls.append((path, argv))
        raise Exec()
    monkeypatch.setattr(os, "execv", execv)
    return calls, str(crun), tmp_path


@pytest.mark.parametrize("argv", [
    ["state", "c1"], ["--root", "/r", "kill", "c1", "9"], ["delete", "--force", "c1"],
    ["--log", "/l", "--log-format", "json", "start", "c1"], ["ps", "c1"], ["pause", "c1"],
    ["events", "--stats", "c1"], ["kill", "--all", "c1", "9"],
])
def test_pass_through_keeps_argv(fake_exec, argv):
    calls, crun, _ = fake_exec
    with pytest.raises(Exec):
        shim_main.main(["iron", *argv])
    assert calls == [(crun, [crun, *argv])]


def test_iron_flags_never_reach_crun(fake_exec):
    calls, crun, _ = fake_exec
    with pytest.raises(Exec):
        shim_main.main(["iron", "--iron-mode", "maximum", "--root", "/r", "state", "c1"])
    assert calls[0][1] == [crun, "--root", "/r", "state", "c1"]


def test_unknown_subcommand_is_refused(fake_exec, capsys):
    calls, _, _ = fake_exec
    assert shim_main.main(["iron", "frobnicate"]) == 1
    assert calls == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown subcommand `frobnicate`" in err


def test_missing_delegate(fake_exec, monkeypatch, tmp_path, capsys):
    cfg = tmp_path / "other.toml"
    cfg.write_text('runtime = "/nonexistent/crun"\n')
    monkeypatch.setenv("IRON_CONFIG", str(cfg))
    assert shim_main.main(["iron", "state", "c1"]) == 1
    assert "delegate runtime not found" in capsys.readouterr().err


def test_error_reaches_runc_json_log(fake_exec, tmp_path):
    log = tmp_path / "log.json"
    assert shim_main.main(["iron", "--log", str(log), "--log-format", "json", "frobnicate"]) == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "frobnicate" in entry["msg"] and entry["time"]


def test_pass_through_imports_nothing_heavy(tmp_path):
    """The fast path may not import click, jsonschema, pyroute2, the profiles or the layers."""
    crun = tmp_path / "crun"
    crun.write_text("#!/bin/sh\nexit 0\n")
    crun.chmod(0o755)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'runtime = "{crun}"\n')
    code = (
        "import os, sys\n"
        "from iron.shim import main\n"
        "def execv(path, argv):\n"
        "    heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('click', 'jsonschema', 'pyroute2', 'psutil', 'pyseccomp', 'tomllib', 'json') "
        "or m.startswith('iron.oci'))\n"
        "    print(','.join(heavy)); sys.exit(0)\n"
        "os.execv = execv\n"
        "main.main(['iron', 'state', 'c1'])\n")
    env = {**os.environ, "IRON_CONFIG": str(cfg)}
    # prime the runtime cache (first read parses TOML), then check the steady state
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("facts, layer, message", [
    ({"network_hook": None}, "network", "network: the network hook is missing"),
    ({"network_hook": "/h", "libnftables": False}, "network", "network: libnftables.so.1 is missing"),
    ({"landlock_abi": 0, "landlock_helper": "/h"}, "filesystem", "filesystem: Landlock is not available"),
    ({"seccomp": False}, "syscall", "syscall: the kernel has no seccomp filter support"),
])
def test_preflight_names_what_a_layer_lacks(facts, layer, message):
    from iron.oci.context import HostFacts
    from iron.shim import host
    problems = host.blockers([layer], HostFacts(**facts), "/bin/true")
    assert any(p.startswith(message) for p in problems), problems
    ok = HostFacts(network_hook="/h", landlock_abi=7, landlock_helper="/h")
    assert [p for p in host.blockers([layer], ok, "/bin/true") if not p.startswith("process:")] == []


def test_libnftables_found_here():
    """The host check finds the library the way the loader does (tests run where nftables is installed)."""
    from iron.shim import host
    assert host.libnftables_installed()
