"""containerd 1.6 (our own instance): `ctr run` with the runc v2 shim and iron as its binary."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import iron_bin
from tests.e2e.conftest import IMAGE, PROBES_MAX, ok, probe_outcome

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("mode", ["minimal", "standard", "maximum"])
def test_ctr_run_per_mode(containerd, mode):
    rt = iron_bin(mode)
    n = f"e2e-{uuid.uuid4().hex[:8]}"
    out = ok(containerd.ctr("run", "--rm", "--runc-binary", rt, IMAGE, n, "cat", "/proc/self/status"))
    assert int(out.split("CapEff:\t")[1].split()[0], 16) & (1 << 21) == 0
    if mode != "minimal":
        assert "Seccomp:\t2" in out and "NoNewPrivs:\t1" in out
    done = containerd.ctr("run", "--rm", "--runc-binary", rt, IMAGE, n, "sh", "-c", "exit 3")
    assert done.returncode == 3, done.stderr
    write = containerd.ctr("run", "--rm", "--runc-binary", rt, IMAGE, n, "sh", "-c", "echo x > /usr/iron-e2e")
    assert (write.returncode != 0) == (mode == "maximum")


def test_ctr_detached_exec_limits_probes(containerd):
    n = f"e2e-{uuid.uuid4().hex[:8]}"
    ok(containerd.ctr("run", "-d", "--runc-binary", iron_bin("minimal"), "--memory-limit", "67108864",
                      "--annotation", "io.iron.mode=maximum", IMAGE, n, "sleep", "600"))
    try:
        def exec_(*argv: str) -> str:
            return ok(containerd.ctr("tasks", "exec", "--exec-id", f"x{uuid.uuid4().hex[:6]}", n, *argv))
        # ctr's spec mounts no cgroupfs inside: read the limit on the host (cgroupsPath /default/<id>)
        with open(f"/sys/fs/cgroup/memory/default/{n}/memory.limit_in_bytes") as f:
            assert f.read().strip() == "67108864"
        status = exec_("cat", "/proc/self/status")  # the annotation raised minimal to maximum
        assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status
        for probe in PROBES_MAX:
            assert probe_outcome(exec_("iron-probe", probe)) == "blocked", probe
    finally:
        containerd.ctr("tasks", "kill", "-s", "SIGKILL", n)
        containerd.ctr("tasks", "rm", "-f", n)
        ok(containerd.ctr("containers", "rm", n))
