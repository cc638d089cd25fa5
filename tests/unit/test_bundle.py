"""oci/bundle.py's atomic write: the new bytes or the old, never a half, and no temp files left."""

from __future__ import annotations

import os
import subprocess

from iron.oci import bundle


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_write_replaces_and_keeps_the_mode(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"old")
    path.chmod(0o600)
    bundle.write_atomic(str(path), b"new")
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_temps_of_killed_writers_are_cleared(tmp_path):
    """A temp file named for this pid (pid reuse after a SIGKILL) would make O_EXCL refuse
    the write; one of a dead pid is litter. A live process's may be a write in progress."""
    path = tmp_path / "config.json"
    path.write_bytes(b"old")
    mine, dead, live = (tmp_path / f".config.json.iron-{pid}" for pid in (os.getpid(), _dead_pid(), 1))
    for stale in (mine, dead, live):
        stale.write_bytes(b"half")
    others = [tmp_path / f".config.json.iron-{name}" for name in ("notapid", "\u00b2", "9" * 30, "")]
    for other in others:
        other.write_bytes(b"other")
    bundle.write_atomic(str(path), b"new")
    assert path.read_bytes() == b"new"
    assert not mine.exists() and not dead.exists()
    assert live.exists() and all(other.exists() for other in others)
