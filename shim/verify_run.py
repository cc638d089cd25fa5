"""Runs one threat in a fresh container of one column, through the installed iron binaries."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass

from iron.shim import bundlekit
from iron.shim.verify_threats import VOLUME, VOLUME_LOCKED, VOLUME_WORK, Outcome, Targets, Threat

BIN_DIR = os.environ.get("IRON_BIN_DIR", "/usr/local/bin")
TIMEOUT = 60
# The workload's home is writable in maximum; /root must then be outside every list.
HOME = "HOME=/home/agent"


@dataclass
class Column:
    """One column of the table: a mode (or a test profile) and how to start iron for it."""
    name: str
    argv: list[str]                 # iron-MODE, or iron --iron-mode NAME
    claims: list[str]               # layers whose threats this column must block
    layers: list[str]               # layers the profile really has
    targets: Targets | None = None
    netns: str | None = None


class Runner:
    def __init__(self, workdir: str, rootfs: str, config_path: str):
        self.workdir = workdir
        self.rootfs = rootfs
        self.config = config_path
        self.state = os.path.join(workdir, "state")
        os.makedirs(self.state, exist_ok=True)

    def iron(self, column: Column, *args: str, **kw) -> subprocess.CompletedProcess:
        argv = [*column.argv, "--iron-config", self.config, "--root", self.state, *args]
        if "stderr" not in kw:
            kw["capture_output"] = True
        return subprocess.run(argv, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL, **kw)

    def bundle(self, column: Column, args: list[str], volume: bool = False) -> str:
        path = os.path.join(self.workdir, f"bundle-{uuid.uuid4().hex[:10]}")

        def edit(spec):
            if volume:
                host = os.path.join(path, "volume")
                for sub in (VOLUME_WORK, VOLUME_LOCKED):
                    os.makedirs(os.path.join(host, os.path.relpath(sub, VOLUME)))
                spec["mounts"].append({"destination": VOLUME, "type": "bind", "source": host,
                                       "options": ["rbind", "rw"]})
            if column.netns:
                spec["linux"]["namespaces"] = [
                    {"type": "network", "path": column.netns} if ns["type"] == "network" else ns
                    for ns in spec["linux"]["namespaces"]]
            spec["process"]["cwd"] = VOLUME_WORK if volume else "/tmp"
            spec["process"]["env"] = [HOME if e.startswith("HOME=") else e for e in spec["process"]["env"]]
        return bundlekit.make_bundle(path, self.rootfs, args, edit=edit)

    def run(self, column: Column, threat: Threat) -> Outcome:
        cid = f"iron-verify-{uuid.uuid4().hex[:10]}"
        bundle = self.bundle(column, threat.argv(column.targets), threat.volume)
        try:
            done = self.iron(column, "run", "--bundle", bundle, cid)
        except subprocess.TimeoutExpired:
            return Outcome("error", f"no result in {TIMEOUT} s")
        finally:
            self._delete(column, cid)
        return self._judged(threat, done)

    def run_execs(self, column: Column, threats: list[Threat]) -> dict[str, Outcome]:
        """Exec probes share one running container: each is a new process, inline or a process file."""
        cid = f"iron-verify-{uuid.uuid4().hex[:10]}"
        bundle = self.bundle(column, ["sleep", "120"])
        results: dict[str, Outcome] = {}
        try:
            # Detached: the container keeps our stdio, so a file, not a pipe we would wait on.
            with open(os.path.join(self.workdir, f"{cid}.err"), "w+") as err:
                started = self.iron(column, "run", "-d", "--bundle", bundle, cid,
                                    stdout=subprocess.DEVNULL, stderr=err)
                err.seek(0)
                started.stderr = err.read()
            if started.returncode != 0:
                why = Outcome("error", f"container did not start: {_last_line(started.stderr)}")
                return {t.key: why for t in threats}
            for i, threat in enumerate(threats):
                args = threat.argv(column.targets)
                if i % 2:       # every other exec goes through a process file
                    process = os.path.join(self.workdir, f"process-{uuid.uuid4().hex[:10]}.json")
                    spec = bundlekit.default_spec(args)["process"]
                    spec["cwd"] = "/tmp"
                    spec["env"] = [HOME if e.startswith("HOME=") else e for e in spec["env"]]
                    with open(process, "w") as f:
                        json.dump(spec, f)
                    done = self.iron(column, "exec", "--process", process, cid)
                else:
                    done = self.iron(column, "exec", "--cwd", "/tmp", cid, *args)
                results[threat.key] = self._judged(threat, done)
        except subprocess.TimeoutExpired:
            for threat in threats:
                results.setdefault(threat.key, Outcome("error", f"no result in {TIMEOUT} s"))
        finally:
            self._delete(column, cid)
        return results

    def _judged(self, threat: Threat, done: subprocess.CompletedProcess) -> Outcome:
        got = threat.outcome(done.returncode, done.stdout)
        if got.verdict == "error" and done.stderr.strip():
            return Outcome("error", f"{got.evidence}: {_last_line(done.stderr)}")
        return got

    def _delete(self, column: Column, cid: str) -> None:
        subprocess.run([*column.argv, "--iron-config", self.config, "--root", self.state, "delete", "--force", cid],
                       capture_output=True, timeout=TIMEOUT)


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""
