"""Faults during create: a missing or crashing delegate, missing nft or Landlock helper, a failing
network hook, iron SIGKILLed mid-rewrite, a full disk, an unwritable audit log.

Each fault ends in a non-zero exit with one clear line, and leaves no half-created container:
no crun state, no cgroup under the test's parent, no mount or process of the bundle.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import iron_bin, require
from tests.load.harness import cgroup_leftovers, mounts_mentioning, processes_mentioning

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def fault(runtime, tmp_path):
    """A private config.toml and a cgroup parent for this test; leak checks on the way out."""
    tag = f"ironfault-{uuid.uuid4().hex[:8]}"
    cfg = tmp_path / "config.toml"
    audit = tmp_path / "audit.jsonl"
    settings = {"audit_log": str(audit), "runtime": "/usr/bin/crun"}

    def write_config(**extra):
        cfg.write_text("".join(f'{k} = "{v}"\n' for k, v in {**settings, **extra}.items()))

    def bundle(args=("true",), edit=None):
        def edits(spec):
            spec["linux"]["cgroupsPath"] = f"/{tag}/{uuid.uuid4().hex[:8]}"
            if edit:
                edit(spec)
        return runtime.bundle(list(args), edit=edits)

    def iron(mode, *args, env=None, timeout=60):
        return runtime.run(iron_bin(mode), *args, timeout=timeout,
                           env={**os.environ, "IRON_CONFIG": str(cfg), **(env or {})})

    def no_leftovers():
        assert os.listdir(runtime.root) == [], "crun state left"
        assert cgroup_leftovers(tag) == []
        assert mounts_mentioning([str(tmp_path) + "/bundle", tag]) == []
        assert processes_mentioning([str(tmp_path) + "/bundle", tag]) == []

    write_config()
    yield type("Fault", (), dict(config=staticmethod(write_config), bundle=staticmethod(bundle),
                                 iron=staticmethod(iron), no_leftovers=staticmethod(no_leftovers),
                                 audit=audit, tmp=tmp_path, runtime=runtime))
    for controller in Path("/sys/fs/cgroup").iterdir():
        parent = controller / tag
        if parent.is_dir():
            for child in sorted(parent.rglob("*"), key=lambda p: -len(p.parts)):
                if child.is_dir():
                    child.rmdir()
            parent.rmdir()


def _one_line(out, expected: str) -> None:
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert expected in lines[0], lines[0]


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_delegate_missing(fault):
    fault.config(runtime="/nonexistent/crun")
    bundle = fault.bundle()
    before = (bundle / "config.json").read_bytes()
    _one_line(fault.iron("standard", "create", "-b", str(bundle), fault.runtime.new_id()),
              "delegate runtime not found")
    assert (bundle / "config.json").read_bytes() == before
    fault.no_leftovers()


def test_delegate_crashing(fault):
    """crun replaced by a program that dies of SIGSEGV: its death is the caller's exit status."""
    fake = _script(fault.tmp / "crashing-crun", 'echo "fake-crun: segmentation fault" >&2\nkill -SEGV $$\n')
    fault.config(runtime=fake)
    bundle = fault.bundle()
    out = fault.iron("standard", "create", "-b", str(bundle), fault.runtime.new_id())
    assert out.returncode == -signal.SIGSEGV
    assert out.stderr.strip() == "fake-crun: segmentation fault"
    json.loads((bundle / "config.json").read_text())     # the rewrite before it is whole
    fault.no_leftovers()


def test_network_hook_missing_in_maximum(fault):
    fault.config(network_hook="/nonexistent/iron-nethook")
    bundle = fault.bundle()
    before = (bundle / "config.json").read_bytes()
    _one_line(fault.iron("maximum", "create", "-b", str(bundle), fault.runtime.new_id()),
              "the network hook is missing")
    assert (bundle / "config.json").read_bytes() == before
    fault.no_leftovers()


def test_landlock_helper_missing(fault):
    fault.config(landlock_helper="/nonexistent/iron-landlock")
    bundle = fault.bundle()
    before = (bundle / "config.json").read_bytes()
    _one_line(fault.iron("maximum", "create", "-b", str(bundle), fault.runtime.new_id()),
              "Landlock helper is missing")
    assert (bundle / "config.json").read_bytes() == before
    fault.no_leftovers()


def test_network_hook_failing(fault):
    """The hook fails inside crun's create: crun's create fails, naming the hook, and crun
    removes what it built. The delegate is crun behind a wrapper that hands the hook a
    ruleset with a destination nftables cannot hold, as a corrupted or hostile edit of
    config.json would. (crun 1.8 does not pass the hook's own stderr on.)"""
    require(os.path.exists("/usr/bin/crun"), "crun not installed")
    corrupt = ("import json, sys; p = sys.argv[1]; s = json.load(open(p)); "
               "h = s['hooks']['createRuntime'][0]; i = h['args'].index('--ruleset'); "
               "h['args'][i + 1] = 'table inet iron { chain output { ip daddr 999.1.2.3 accept; } }'; "
               "json.dump(s, open(p, 'w'))")
    wrapper = _script(fault.tmp / "corrupting-crun",
                      'for a; do case "$prev" in -b|--bundle) b=$a;; esac; prev=$a; done\n'
                      f'{sys.executable} -c "{corrupt}" "$b/config.json" || exit 99\n'
                      'exec /usr/bin/crun "$@"\n')
    fault.config(runtime=wrapper)
    bundle = fault.bundle(["sleep", "60"])
    cid = fault.runtime.new_id()
    out = fault.iron("maximum", "create", "-b", str(bundle), cid)
    _one_line(out, "error executing hook `/usr/local/lib/iron/iron-nethook`")
    fault.no_leftovers()


def _big_spec(spec):
    """Large enough (several MB) that the rewrite takes a while to kill it in the middle of."""
    spec["process"]["env"] += [f"PAD{i}={'x' * 40}" for i in range(60000)]


def test_sigkill_mid_rewrite_leaves_old_or_new(fault):
    """SIGKILL at spread-out moments of a create: config.json always parses and is the old
    version or a hardened one; the delegate is a no-op so only iron's write is exercised."""
    fault.config(runtime=_script(fault.tmp / "noop-crun", "exit 0\n"))
    bundle = fault.bundle(edit=_big_spec)
    original = (bundle / "config.json").read_bytes()
    argv = [iron_bin("standard"), "--root", str(fault.runtime.root), "create", "-b", str(bundle), "x"]
    env = {**os.environ, "IRON_CONFIG": str(fault.tmp / "config.toml")}
    start = time.monotonic()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    full = time.monotonic() - start
    hardened = (bundle / "config.json").read_bytes()
    assert hardened != original
    seen = set()
    for step in range(16):          # from at once to 3x a whole create (a busy host is slower)
        (bundle / "config.json").write_bytes(original)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * step / 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = (bundle / "config.json").read_bytes()
        assert now in (original, hardened), f"partial config.json after a kill at step {step}"
        seen.add("new" if now == hardened else "old")
        for leftover in bundle.glob(".config.json.iron-*"):   # a killed writer's temp file; never read
            leftover.unlink()
    assert seen == {"old", "new"}, seen


@pytest.fixture
def small_tmpfs(tmp_path):
    require(os.geteuid() == 0, "mounting a tmpfs needs root")
    where = tmp_path / "full-disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], check=True)
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_disk_full_keeps_original(fault, small_tmpfs):
    """The rewritten file does not fit next to the original: the original is kept, no temp left."""
    bundle = small_tmpfs / "bundle"
    bundle.mkdir()
    spec = json.loads((fault.bundle(edit=lambda s: s["process"]["env"].extend(
        f"PAD{i}={'x' * 40}" for i in range(22000))) / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    before = (bundle / "config.json").read_bytes()
    assert len(before) > 1024 * 1024
    _one_line(fault.iron("standard", "create", "-b", str(bundle), fault.runtime.new_id()),
              "No space left on device; the original is unchanged")
    assert (bundle / "config.json").read_bytes() == before
    assert sorted(os.listdir(bundle)) == ["config.json"]
    fault.no_leftovers()


def _unwritable_audit(fault):
    blocker = fault.tmp / "not-a-dir"
    blocker.write_text("")
    return str(blocker / "audit.jsonl")


def test_audit_unwritable_maximum_fails_closed(fault):
    """The log is opened before anything changes, so the refusal leaves config.json as it was."""
    fault.config(audit_log=_unwritable_audit(fault))
    bundle = fault.bundle()
    before = (bundle / "config.json").read_bytes()
    _one_line(fault.iron("maximum", "create", "-b", str(bundle), fault.runtime.new_id()),
              "cannot write the audit log")
    assert (bundle / "config.json").read_bytes() == before
    fault.no_leftovers()


@pytest.mark.parametrize("mode", ["minimal", "standard"])
def test_audit_unwritable_warns_below_maximum(fault, mode):
    fault.config(audit_log=_unwritable_audit(fault))
    bundle = fault.bundle()
    out = fault.iron(mode, "run", "-b", str(bundle), fault.runtime.new_id())
    assert out.returncode == 0, out.stderr
    assert "warning: cannot write the audit log" in out.stderr
    fault.no_leftovers()


@pytest.mark.parametrize("setting, mode, runs", [("fail", "minimal", False), ("warn", "maximum", True)])
def test_audit_on_failure_setting(fault, setting, mode, runs):
    fault.config(audit_log=_unwritable_audit(fault), audit_on_failure=setting)
    bundle = fault.bundle()
    out = fault.iron(mode, "run", "-b", str(bundle), fault.runtime.new_id())
    if runs:
        assert out.returncode == 0 and "warning: cannot write the audit log" in out.stderr, out.stderr
    else:
        _one_line(out, "cannot write the audit log")
    fault.no_leftovers()
