"""The C launcher decides pass-through exactly as the Python shim would.

Both are run over generated argvs against a fake delegate that records what it receives;
the argv the delegate sees, the exit code and stderr must match, and pass-through
commands must not start Python at all when the delegate is known from the cache.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import REPO, require

pytestmark = pytest.mark.integration

FAKE = "#!/bin/sh\nprintf '%s\\0' \"$0\" \"$@\" > \"$FAKE_OUT\"\nexit 7\n"
ENTRY = """import os, sys
sys.path.insert(0, {site!r})
if os.environ.get("ENTRY_MARK"):
    open(os.environ["ENTRY_MARK"], "w").close()
from iron.shim.main import main
sys.exit(main(sys.argv[1:]))
"""


class Pair:
    """The launcher and the Python shim, each wired to the same fake delegate."""

    def __init__(self, work: Path):
        self.work = work
        fake_dir = work / "path"
        fake_dir.mkdir()
        self.fake = fake_dir / "crun"          # also crun on PATH: nothing real is ever called
        self.fake.write_text(FAKE)
        self.fake.chmod(0o755)
        self.config = work / "config.toml"
        self.config.write_text(f'runtime = "{self.fake}"\n')
        self.entry = work / "iron-shim.py"
        self.entry.write_text(ENTRY.format(site=sysconfig.get_paths()["purelib"]))
        build = work / "build"
        subprocess.run(["make", "-s", "-B", "-C", str(REPO / "shim/launcher"), f"PYTHON={sys.executable}",
                        f"ENTRY={self.entry}", f"BUILD={build}"], check=True)
        self.launcher = work / "iron"
        os.link(build / "iron", self.launcher)
        self.env = {"PATH": f"{fake_dir}:/usr/bin:/bin", "IRON_CONFIG": str(self.config),
                    "HOME": str(work)}

    def run(self, argv: list[str], python: bool, tag: str) -> tuple[int, list[str], str, bool]:
        out, mark = self.work / f"out-{tag}", self.work / f"mark-{tag}"
        for path in (out, mark):
            path.unlink(missing_ok=True)
        cmd = ([sys.executable, "-IS", str(self.entry), str(self.launcher), *argv] if python
               else [str(self.launcher), *argv])
        env = dict(self.env, FAKE_OUT=str(out), ENTRY_MARK=str(mark))
        done = subprocess.run(cmd, env=env, cwd=self.work, capture_output=True, text=True, timeout=30)
        seen = out.read_bytes().decode().split("\0")[:-1] if out.exists() else []
        return done.returncode, seen, done.stderr, mark.exists()


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Pair:
    require(os.geteuid() == 0, "the runtime cache lives in /run/iron (root)")
    require(subprocess.run(["which", "gcc"], capture_output=True).returncode == 0, "gcc not installed")
    return Pair(tmp_path_factory.mktemp("launcher"))


def test_pass_through_skips_python(pair):
    pair.run(["state", "c1"], python=True, tag="warm")      # the shim writes the runtime cache
    rc, seen, _, started_python = pair.run(["--root", "/tmp/r", "--iron-mode", "maximum", "state", "c1"],
                                           python=False, tag="fast")
    assert (rc, seen, started_python) == (7, [str(pair.fake), "--root", "/tmp/r", "state", "c1"], False)


def test_rewritten_and_own_commands_go_to_python(pair):
    for argv in (["create", "c1"], ["exec", "c1", "true"], ["check"], ["--version"], ["features"]):
        assert pair.run(argv, python=False, tag="slow")[3], argv


def test_changed_config_is_read_again(pair):
    pair.run(["state", "c1"], python=True, tag="warm")
    other = pair.work / "path" / "other"
    other.write_text(FAKE)
    other.chmod(0o755)
    pair.config.write_text(f'runtime = "{other}"\n')
    try:
        rc, seen, _, started_python = pair.run(["state", "c1"], python=False, tag="changed")
        assert (seen[:1], started_python) == ([str(other)], True)
        assert pair.run(["state", "c1"], python=False, tag="cached")[1:] == ([str(other), "state", "c1"], "", False)
    finally:
        pair.config.write_text(f'runtime = "{pair.fake}"\n')


TOKENS = st.sampled_from([
    "--root", "--root=/tmp/r", "-root", "--log", "--log=/tmp/l", "--log-format", "json", "--log-format=json",
    "--debug", "--systemd-cgroup", "--rootless", "--rootless=true", "true", "auto", "--criu", "-criu=x",
    "--cgroup-manager", "--log-level=debug", "--iron-mode", "--iron-mode=maximum", "-iron-mode=x",
    "--iron-config", "--iron-config=", "--unknown", "-x", "-", "--", "state", "start", "kill", "delete",
    "-f", "ps", "events", "spec", "list", "help", "c1", "KILL", "mounts", "pause", "update", "checkpoint",
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(TOKENS, max_size=7))
def test_same_decision_as_the_shim(pair, argv):
    pair.run(["state", "c1"], python=True, tag="warm")
    rc_py, seen_py, err_py, _ = pair.run(argv, python=True, tag="py")
    rc_c, seen_c, err_c, _ = pair.run(argv, python=False, tag="c")
    assert (rc_c, seen_c[1:], err_c) == (rc_py, seen_py[1:], err_py)
    assert seen_c[:1] == seen_py[:1]
