"""The runc lifecycle through iron, with real crun: every mode behaves like crun to the caller."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import iron_bin, load_config
from tests.console import ConsoleSocket
from tests.oci_schema import validate_config

pytestmark = pytest.mark.integration
MODES = ["minimal", "standard", "maximum"]


def _state(runtime, cid) -> dict:
    out = runtime.run("crun", "state", cid)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _wait_status(runtime, cid, status, timeout=10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = runtime.run("crun", "state", cid)
        if out.returncode == 0 and json.loads(out.stdout)["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} never became {status}")


@pytest.mark.parametrize("mode", MODES)
def test_run_passes_exit_code(runtime, mode):
    bundle = runtime.bundle(["sh", "-c", "echo out; echo err >&2; exit 3"])
    out = runtime.run(iron_bin(mode), "run", "--bundle", str(bundle), runtime.new_id())
    assert out.returncode == 3
    assert out.stdout == "out\n" and "err\n" in out.stderr
    validate_config(load_config(bundle))
    assert load_config(bundle)["annotations"]["io.iron.mode"] == mode


@pytest.mark.parametrize("mode", MODES)
def test_signal_exit_status(runtime, mode):
    """A container killed by a signal: `run` exits 128+N, as with crun (PID 1 cannot kill itself)."""
    bundle = runtime.bundle(["sleep", "300"])
    cid = runtime.new_id()
    iron = iron_bin(mode)
    attached = subprocess.Popen([iron, "--root", str(runtime.root), "run", "-b", str(bundle), cid],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        _wait_status(runtime, cid, "running")
        assert runtime.run(iron, "kill", cid, "KILL").returncode == 0
        assert attached.wait(timeout=30) == 128 + signal.SIGKILL
    finally:
        attached.kill()


@pytest.mark.parametrize("mode", MODES)
def test_create_start_state_kill_delete(runtime, mode, tmp_path):
    bundle = runtime.bundle(["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"])
    cid = runtime.new_id()
    pid_file = tmp_path / "pid"
    iron = iron_bin(mode)
    out = runtime.run(iron, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid)
    assert out.returncode == 0, out.stderr
    pid = int(pid_file.read_text())
    assert _state(runtime, cid)["status"] == "created" and _state(runtime, cid)["pid"] == pid
    assert runtime.run(iron, "start", cid).returncode == 0
    _wait_status(runtime, cid, "running")
    state = json.loads(runtime.run(iron, "state", cid).stdout)
    assert state["id"] == cid and state["status"] == "running"
    assert runtime.run(iron, "kill", cid, "15").returncode == 0
    _wait_status(runtime, cid, "stopped")
    assert runtime.run(iron, "delete", cid).returncode == 0
    assert runtime.run("crun", "state", cid).returncode != 0
    # containerd calls delete --force again after delete: crun's answer passes through
    again = runtime.run(iron, "delete", "--force", cid)
    assert again.returncode == runtime.run("crun", "delete", "--force", cid).returncode


@pytest.mark.parametrize("mode", MODES)
def test_run_detached_and_exec(runtime, mode, tmp_path):
    bundle = runtime.bundle(["sleep", "300"])
    cid = runtime.new_id()
    iron = iron_bin(mode)
    out = runtime.run(iron, "run", "-d", "--bundle", str(bundle), cid)
    assert out.returncode == 0, out.stderr
    inline = runtime.run(iron, "exec", cid, "sh", "-c", "echo inline $0; exit 5", "arg0")
    assert inline.returncode == 5 and inline.stdout == "inline arg0\n", inline.stderr
    process = dict(load_config(bundle)["process"], args=["sh", "-c", "echo from-file"], terminal=False)
    process_file = tmp_path / "process.json"
    process_file.write_text(json.dumps(process))
    out = runtime.run(iron, "exec", "--process", str(process_file), cid)
    assert out.returncode == 0 and out.stdout == "from-file\n", out.stderr
    runtime.run(iron, "kill", cid, "9")
    _wait_status(runtime, cid, "stopped")
    assert runtime.run(iron, "delete", cid).returncode == 0


@pytest.mark.parametrize("mode", MODES)
def test_console_socket_terminal(runtime, mode, tmp_path):
    bundle = runtime.bundle(["sh", "-c", "tty; echo tty-ok"], terminal=True)
    cid = runtime.new_id()
    console = ConsoleSocket(str(tmp_path / "console.sock"))
    try:
        iron = iron_bin(mode)
        out = runtime.run(iron, "create", "--bundle", str(bundle), "--console-socket", console.path, cid)
        assert out.returncode == 0, out.stderr
        assert runtime.run(iron, "start", cid).returncode == 0
        text = console.read_all()
        assert "/dev/pts/0" in text and "tty-ok" in text
    finally:
        console.close()


def test_error_goes_to_runc_json_log(runtime, tmp_path):
    bundle = runtime.bundle(["true"])
    log = tmp_path / "runc.log"
    before = (bundle / "config.json").read_bytes()
    out = runtime.run(iron_bin(), "--log", str(log), "--log-format", "json", "--iron-mode", "nonesuch",
                      "create", "--bundle", str(bundle), runtime.new_id())
    assert out.returncode != 0
    assert out.stderr.count("\n") == 1 and "unknown mode `nonesuch`" in out.stderr
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "nonesuch" in entry["msg"]
    assert (bundle / "config.json").read_bytes() == before


def test_hardening_twice_is_hardening_once(runtime):
    bundle = runtime.bundle(["true"])
    iron = iron_bin("maximum")
    assert runtime.run(iron, "run", "-b", str(bundle), runtime.new_id()).returncode == 0
    once = (bundle / "config.json").read_bytes()
    assert runtime.run(iron, "run", "-b", str(bundle), runtime.new_id()).returncode == 0
    assert (bundle / "config.json").read_bytes() == once
