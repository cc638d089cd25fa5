"""podman 4 drives iron: by path and by the names deploy/register.sh registers."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import iron_bin
from tests.e2e.conftest import IMAGE, PROBES_MAX, ok, probe_outcome

pytestmark = pytest.mark.e2e
NONE = ["--network", "none"]


def name() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("runtime", ["path", "iron-minimal", "iron-standard", "iron-maximum"])
def test_run_attached_exit_code_and_hardening(podman, runtime):
    rt = iron_bin("standard") if runtime == "path" else runtime
    out = ok(podman("--runtime", rt, "run", "--rm", *NONE, IMAGE, "cat", "/proc/self/status"))
    fields = dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    assert int(fields["CapEff"].strip(), 16) & (1 << 21) == 0  # no CAP_SYS_ADMIN
    if runtime != "iron-minimal":  # minimal is the process layer only: no seccomp, no no_new_privs
        assert (fields["Seccomp"].strip(), fields["NoNewPrivs"].strip()) == ("2", "1")
    done = podman("--runtime", rt, "run", "--rm", *NONE, IMAGE, "sh", "-c", "exit 3")
    assert done.returncode == 3, done.stderr


def test_tty_run(podman):
    out = ok(podman("--runtime", "iron-standard", "run", "--rm", "-t", *NONE, IMAGE, "sh", "-c",
                    "[ -t 0 ] && echo tty-yes"))
    assert "tty-yes" in out


def test_detached_exec_pause_kill_and_limits(podman):
    n = name()
    ok(podman("--runtime", "iron-maximum", "run", "-d", "--name", n, *NONE, "--memory", "64m",
              "--pids-limit", "50", IMAGE, "sleep", "600"))
    try:
        out = ok(podman("exec", n, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                        "/sys/fs/cgroup/pids/pids.max"))
        assert out.split() == ["67108864", "50"]
        status = ok(podman("exec", n, "cat", "/proc/self/status"))
        assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status  # exec is confined too
        for probe in PROBES_MAX:
            assert probe_outcome(ok(podman("exec", n, "iron-probe", probe))) == "blocked", probe
        write = podman("exec", n, "sh", "-c", "echo x > /usr/iron-e2e")
        assert write.returncode != 0  # Landlock: /usr is not writable in maximum
        ok(podman("exec", "-t", n, "true"))
        ok(podman("pause", n))
        assert ok(podman("inspect", n, "--format", "{{.State.Status}}")).strip() == "paused"
        ok(podman("unpause", n))
        ok(podman("kill", n))
        assert ok(podman("wait", n)).strip() == "137"  # SIGKILL
    finally:
        podman("rm", "-f", "-t", "0", n)


def test_stop_sends_term_then_kill(podman):
    n, m = name(), name()
    ok(podman("--runtime", "iron-standard", "run", "-d", "--name", n, *NONE, IMAGE, "sleep", "600"))
    ok(podman("--runtime", "iron-standard", "run", "-d", "--name", m, *NONE, IMAGE, "sh", "-c",
              "trap '' TERM; while :; do sleep 1; done"))
    try:
        ok(podman("stop", "-t", "5", n))  # sleep as PID 1 ignores TERM by default → KILL too
        start = time.monotonic()
        ok(podman("stop", "-t", "2", m))
        took = time.monotonic() - start
        assert 1.8 <= took < 10, took
    finally:
        podman("rm", "-f", "-t", "0", n, m)


def test_read_only_and_networks(podman):
    done = podman("--runtime", "iron-standard", "run", "--rm", "--read-only", *NONE, IMAGE, "touch", "/x")
    assert done.returncode != 0 and "Read-only" in done.stderr + done.stdout
    out = ok(podman("--runtime", "iron-standard", "run", "--rm", *NONE, IMAGE, "ip", "-o", "link"))
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    out = ok(podman("--runtime", "iron-standard", "run", "--rm", IMAGE, "ip", "-o", "-4", "addr"))
    assert "eth0" in out  # the default netavark bridge works offline


def test_annotation_raises_and_lowering_is_refused(podman):
    raised = podman("--runtime", "iron-minimal", "run", "--rm", *NONE, "--annotation", "io.iron.mode=maximum",
                    IMAGE, "sh", "-c", "echo x > /usr/iron-e2e")
    assert raised.returncode != 0
    plain = podman("--runtime", "iron-minimal", "run", "--rm", *NONE, IMAGE, "sh", "-c", "echo x > /usr/iron-e2e")
    assert plain.returncode == 0, plain.stderr
    lowered = podman("--runtime", "iron-maximum", "run", "--rm", *NONE, "--annotation", "io.iron.mode=minimal",
                     IMAGE, "true")
    assert lowered.returncode != 0
    assert "io.iron.mode=minimal would lower the mode" in lowered.stderr, lowered.stderr
