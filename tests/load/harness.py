"""Lifecycles through iron (directly or via podman) and the host resources they must not leak.

Every container of a run carries a run-unique prefix, its cgroups live under a run-unique
parent, and iron writes to a private audit log (config.toml via --iron-config), so the
leak checks look only at what this run created, even with other containers on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from iron.shim.bundlekit import build_rootfs, make_bundle

MODES = ("minimal", "standard", "maximum")
BIN_DIR = Path(os.environ.get("IRON_BIN_DIR", "/usr/local/bin"))
CGROUP_ROOT = Path("/sys/fs/cgroup")
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = "localhost/ironload-busybox:latest"


def count(env: str, default: int) -> int:
    return int(os.environ.get(env, default))


class Run:
    """One load run: a work dir, a private crun --root, audit log and cgroup parent."""

    def __init__(self, work: Path, rootfs: str | None = None):
        self.work = Path(work)
        self.tag = f"ironload-{uuid.uuid4().hex[:8]}"
        self.state = self.work / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.audit = self.work / "audit.jsonl"
        self.config = self.work / "config.toml"
        self.config.write_text(f'audit_log = "{self.audit}"\n')
        if rootfs is None:
            rootfs = str(self.work / "rootfs")
            build_rootfs(rootfs)
        self.rootfs = rootfs
        self.ids: list[str] = []
        self._podman_ready = False
        self._netns_before = set(named_netns())
        # podman refuses a --runroot longer than 50 characters: a short folder of our own
        self.podman_dir = Path(tempfile.mkdtemp(prefix="ironload-"))

    # --- direct ---------------------------------------------------------------
    def _bundle(self, cid: str, args: list[str]) -> Path:
        path = self.work / "bundles" / cid
        make_bundle(str(path), self.rootfs, args,
                    edit=lambda s: s["linux"].__setitem__("cgroupsPath", f"/{self.tag}/{cid}"))
        return path

    def _iron(self, mode: str | None, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """stdio are files, not pipes: a created container keeps them open after iron exits."""
        binary = BIN_DIR / ("iron" if mode is None else f"iron-{mode}")
        with tempfile.TemporaryFile("w+") as err:
            out = subprocess.run([str(binary), "--iron-config", str(self.config), "--root", str(self.state),
                                  *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=err, timeout=timeout, text=True)
            err.seek(0)
            out.stderr = err.read()
        return out

    def new_id(self, mode: str) -> str:
        cid = f"{self.tag}-{mode}-{len(self.ids)}"
        self.ids.append(cid)
        return cid

    def direct_run(self, mode: str) -> float:
        """`run` an attached container that exits 0 (crun deletes it); seconds taken."""
        cid = self.new_id(mode)
        bundle = self._bundle(cid, ["true"])
        start = time.monotonic()
        out = self._iron(mode, "run", "-b", str(bundle), cid)
        took = time.monotonic() - start
        _check(out, f"run {cid}")
        shutil.rmtree(bundle)
        return took

    def direct_full(self, mode: str) -> float:
        """create, start, exec, kill, delete: every rewritten command and the pass-through ones."""
        cid = self.new_id(mode)
        bundle = self._bundle(cid, ["sleep", "600"])
        start = time.monotonic()
        _check(self._iron(mode, "create", "-b", str(bundle), cid), f"create {cid}")
        _check(self._iron(mode, "start", cid), f"start {cid}")
        _check(self._iron(mode, "exec", cid, "true"), f"exec {cid}")
        _check(self._iron(mode, "kill", cid, "KILL"), f"kill {cid}")
        _check(self._iron(mode, "delete", "--force", cid), f"delete {cid}")
        took = time.monotonic() - start
        shutil.rmtree(bundle)
        return took

    # --- podman ---------------------------------------------------------------
    def podman_argv(self, *args: str) -> list[str]:
        p = self.podman_dir
        return ["podman", "--root", str(p / "root"), "--runroot", str(p / "runroot"),
                "--tmpdir", str(p / "tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                *args]

    def podman_ready(self) -> None:
        if self._podman_ready:
            return
        tar = self.work / "rootfs.tar"
        subprocess.run(["tar", "-C", self.rootfs, "-cf", str(tar), "."], check=True)
        _check(subprocess.run(self.podman_argv("import", "--change", 'CMD ["/bin/sh"]', str(tar), IMAGE),
                              capture_output=True, text=True, timeout=120), "podman import")
        self._podman_ready = True

    def podman_run(self, mode: str, exec_too: bool = False) -> float:
        """`podman run --rm` (and, with exec_too, a detached one plus `podman exec`)."""
        self.podman_ready()
        name = self.new_id(mode)
        engine = ["--runtime", str(BIN_DIR / f"iron-{mode}"), "--runtime-flag",
                  f"iron-config={self.config}"]
        common = [*ULIMITS, "--network", "none", "--cgroup-parent", f"/{self.tag}", "--name", name]
        start = time.monotonic()
        if exec_too:
            _check(self._podman(*engine, "run", "-d", *common, IMAGE, "sleep", "600"), f"podman run -d {name}")
            _check(self._podman(*engine[2:], "exec", name, "true"), f"podman exec {name}")
            _check(self._podman("rm", "-f", "-t", "0", name), f"podman rm {name}")
        else:
            _check(self._podman(*engine, "run", "--rm", *common, IMAGE, "true"), f"podman run {name}")
        return time.monotonic() - start

    def _podman(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.podman_argv(*args), capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    # --- what must be left -------------------------------------------------------
    def audit_records(self) -> list[dict]:
        if not self.audit.exists():
            return []
        return [json.loads(line) for line in self.audit.read_text().splitlines()]

    def leaks(self) -> dict[str, list[str]]:
        """Everything of this run still on the host; every list must be empty."""
        engine_ids = {r["container"] for r in self.audit_records()} | set(self.ids)
        return {
            "cgroups": cgroup_leftovers(self.tag),
            "crun_state": sorted(os.listdir(self.state)) + crun_default_state(engine_ids),
            "mounts": mounts_mentioning([str(self.work), str(self.podman_dir), self.tag]),
            "netns": orphaned_netns(set(named_netns()) - self._netns_before),
            "processes": processes_mentioning([str(self.work), str(self.podman_dir), self.rootfs, self.tag,
                                               *engine_ids]),
            "podman_containers": self.podman_leftovers(),
        }

    def podman_leftovers(self) -> list[str]:
        if not self._podman_ready:
            return []
        out = self._podman("ps", "-a", "--format", "{{.Names}}")
        return [n for n in out.stdout.split() if n.startswith(self.tag)]

    def cleanup(self) -> None:
        """Best-effort removal of what a failed run left; the test has already counted it."""
        for name in os.listdir(self.state):
            subprocess.run(["crun", "--root", str(self.state), "delete", "--force", name], capture_output=True)
        if self._podman_ready:
            subprocess.run(self.podman_argv("rm", "-a", "-f", "-t", "0"), capture_output=True)
            subprocess.run(self.podman_argv("system", "reset", "-f"), capture_output=True)
        shutil.rmtree(self.podman_dir, ignore_errors=True)
        for controller in _controllers():
            parent = controller / self.tag
            if parent.is_dir():
                for child in sorted(parent.rglob("*"), key=lambda p: -len(p.parts)):
                    if child.is_dir():
                        _rmdir(child)
                _rmdir(parent)


def _check(out: subprocess.CompletedProcess, what: str) -> None:
    if out.returncode != 0:
        raise AssertionError(f"{what} failed ({out.returncode}): {out.stderr.strip()[-500:]}")


def _controllers() -> list[Path]:
    return [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def cgroup_leftovers(tag: str) -> list[str]:
    """Child cgroups under the run's parent in any hierarchy (the empty parent itself is ours).

    podman keeps one shared `conmon` cgroup per parent for its monitors; it is a leak only
    while a process is still in it.
    """
    left = []
    for controller in _controllers():
        parent = controller / tag
        if not parent.is_dir():
            continue
        for path in parent.rglob("*"):
            if not path.is_dir():
                continue
            if path == parent / "conmon" and not (path / "cgroup.procs").read_text().strip():
                continue
            left.append(str(path))
    return left


def crun_default_state(ids: set[str]) -> list[str]:
    folder = Path("/run/crun")
    return [str(folder / i) for i in ids if (folder / i).exists()]


def mounts_mentioning(needles: list[str]) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if any(n in line for n in needles)]


def named_netns() -> list[str]:
    """Named network namespaces (podman's and `ip netns`'s); new ones after a run are leaks."""
    folder = Path("/run/netns")
    return os.listdir(folder) if folder.is_dir() else []


def orphaned_netns(names: set[str]) -> list[str]:
    """Of ``names`` (new since the run began), podman's (`netns-…`) that no process is in: leaked,
    not someone else's live container. (Other tests on the host keep named netns of their own.)"""
    in_use = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                in_use.add(os.stat(f"/proc/{entry}/ns/net").st_ino)
            except OSError:
                continue
    left = []
    for name in sorted(n for n in names if n.startswith("netns-")):
        try:
            if os.stat(f"/run/netns/{name}").st_ino not in in_use:
                left.append(name)
        except OSError:
            continue
    return left


def processes_mentioning(needles: list[str]) -> list[str]:
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            root = os.readlink(f"/proc/{entry}/root")
        except OSError:
            continue
        if any(n in cmdline or n in root for n in needles):
            found.append(f"{entry}: {cmdline.strip()}")
    return found


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))
