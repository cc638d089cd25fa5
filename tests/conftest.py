"""Shared fixtures: the installed iron binaries, a busybox-static rootfs, bundles, crun state.

Integration and e2e tests drive the *installed* iron (the path engines use:
/usr/local/bin/iron*), so run tests/run.sh (or install.sh) first. In CI
(CI=true) a missing tool is a failure; elsewhere it skips with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"
BIN_DIR = Path(os.environ.get("IRON_BIN_DIR", "/usr/local/bin"))


def require(condition: bool, why: str) -> None:
    """A missing tool fails in CI and skips elsewhere; a missing kernel feature always skips."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing in CI: {why}")
    pytest.skip(why)


def iron_bin(mode: str | None = None) -> str:
    name = "iron" if mode is None else f"iron-{mode}"
    path = BIN_DIR / name
    require(os.access(path, os.X_OK), f"{path} not installed (run install.sh)")
    return str(path)


@pytest.fixture(scope="session")
def probe_binary() -> str:
    out = REPO / "tests/probes/build/iron-probe"
    subprocess.run(["make", "-s", "-C", str(REPO / "tests/probes")], check=True)
    return str(out)


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory, probe_binary) -> str:
    from iron.shim.bundlekit import build_rootfs
    require(os.geteuid() == 0, "integration tests need root")
    require(shutil.which("crun") is not None, "crun not installed")
    path = tmp_path_factory.mktemp("rootfs") / "rootfs"
    build_rootfs(str(path), {probe_binary: "/usr/bin/iron-probe"})
    return str(path)


class Runtime:
    """Runs iron (or crun) with a private --root so tests never see other containers."""

    def __init__(self, root: Path, tmp: Path, rootfs: str):
        self.root = root
        self.tmp = tmp
        self.rootfs = rootfs
        self.created: list[tuple[str, str]] = []

    def bundle(self, args: list[str], terminal: bool = False, edit=None) -> Path:
        from iron.shim.bundlekit import make_bundle
        path = self.tmp / f"bundle-{uuid.uuid4().hex[:8]}"
        make_bundle(str(path), self.rootfs, args, terminal, edit)
        return path

    def run(self, binary: str, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        argv = [binary, "--root", str(self.root), *args]
        kw.setdefault("text", True)
        if not _detaches(args) or "stdout" in kw or "capture_output" in kw:
            kw.setdefault("capture_output", True)
            return subprocess.run(argv, timeout=timeout, **kw)
        # A detached container inherits our stdio: files, not pipes, or we would wait for it.
        with open(self.tmp / "detached.out", "w+") as out, open(self.tmp / "detached.err", "w+") as err:
            done = subprocess.run(argv, timeout=timeout, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=err, **kw)
            out.seek(0)
            err.seek(0)
            done.stdout, done.stderr = out.read(), err.read()
        return done

    def new_id(self) -> str:
        cid = f"iron-test-{uuid.uuid4().hex[:10]}"
        self.created.append(cid)
        return cid

    def cleanup(self) -> None:
        for cid in self.created:
            subprocess.run(["crun", "--root", str(self.root), "delete", "--force", cid],
                           capture_output=True, timeout=30)


def _detaches(args) -> bool:
    sub = next((a for a in args if not a.startswith("-")), None)
    return sub == "create" or (sub == "run" and ("-d" in args or "--detach" in args))


@pytest.fixture
def runtime(tmp_path, rootfs):
    root = tmp_path / "state"
    root.mkdir()
    rt = Runtime(root, tmp_path, rootfs)
    yield rt
    rt.cleanup()


def load_config(bundle: Path) -> dict:
    return json.loads((bundle / "config.json").read_text())
