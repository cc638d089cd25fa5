"""dockerd 20.10 (our own instance) drives iron through the runtimes register.sh merged
into its daemon.json."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.conftest import IMAGE, PROBES_MAX, ok, probe_outcome

pytestmark = pytest.mark.e2e
NONE = ["--network", "none"]


def test_runtimes_listed(docker):
    out = ok(docker("info", "--format", "{{json .Runtimes}}"))
    for n in ("iron", "iron-minimal", "iron-standard", "iron-maximum"):
        assert f'"{n}"' in out


@pytest.mark.parametrize("mode", ["minimal", "standard", "maximum"])
def test_run_exit_code_and_hardening(docker, mode):
    out = ok(docker("run", "--rm", f"--runtime=iron-{mode}", *NONE, IMAGE, "cat", "/proc/self/status"))
    assert int(out.split("CapEff:\t")[1].split()[0], 16) & (1 << 21) == 0
    if mode != "minimal":
        assert "Seccomp:\t2" in out and "NoNewPrivs:\t1" in out
    done = docker("run", "--rm", f"--runtime=iron-{mode}", *NONE, IMAGE, "sh", "-c", "exit 3")
    assert done.returncode == 3, done.stderr


def test_maximum_exec_probes_stop_kill(docker):
    n = f"e2e-{uuid.uuid4().hex[:8]}"
    ok(docker("run", "-d", "--name", n, "--runtime=iron-maximum", *NONE, "--memory", "64m", "--pids-limit", "50",
              IMAGE, "sleep", "600"))
    try:
        out = ok(docker("exec", n, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                        "/sys/fs/cgroup/pids/pids.max", "/proc/self/status"))
        assert out.split()[:2] == ["67108864", "50"]
        assert "Seccomp:\t2" in out and "NoNewPrivs:\t1" in out
        dev = ok(docker("exec", n, "cat", "/proc/net/dev")).splitlines()[2:]  # netlink is seccomp-blocked
        assert [line.split(":")[0].strip() for line in dev] == ["lo"]
        for probe in PROBES_MAX:
            assert probe_outcome(ok(docker("exec", n, "iron-probe", probe))) == "blocked", probe
        assert docker("exec", n, "sh", "-c", "echo x > /usr/iron-e2e").returncode != 0
        ok(docker("exec", "-t", n, "true"))
        start = time.monotonic()
        ok(docker("stop", "-t", "2", n))  # sleep as PID 1 ignores TERM → KILL after 2 s
        assert 1.8 <= time.monotonic() - start < 10
        ok(docker("start", n))
        ok(docker("kill", n))
        assert ok(docker("wait", n)).strip() == "137"  # SIGKILL
    finally:
        docker("rm", "-f", n)
