"""Issue 3's resource items through iron directly: pids.max, the OOM killer, the CPU quota.

Each container runs the installed iron-standard (cgroup v1 on this host; the probes read
the container's own cgroup files, which cgroup v2 names cpu.stat/memory.events instead).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from tests.conftest import iron_bin

pytestmark = [pytest.mark.integration, pytest.mark.escape]


def probe_json(stdout: str) -> dict:
    return json.loads(next(line for line in stdout.splitlines() if line.startswith("{")))


def test_fork_bomb_hits_pids_max_and_the_host_stays_responsive(runtime):
    bundle = runtime.bundle(["sh", "-c", "cat /sys/fs/cgroup/pids/pids.max; iron-probe forkbomb 5000"])
    result = {}
    bomb = threading.Thread(target=lambda: result.update(
        done=runtime.run(iron_bin("standard"), "run", "--bundle", str(bundle), runtime.new_id())))
    bomb.start()
    latencies = []
    while bomb.is_alive():           # the host keeps starting processes promptly meanwhile
        start = time.perf_counter()
        subprocess.run(["true"], check=True)
        latencies.append(time.perf_counter() - start)
        time.sleep(0.02)
    bomb.join()
    done = result["done"]
    assert done.returncode == 0, done.stderr
    pids_max = int(done.stdout.split()[0])
    got = probe_json(done.stdout)
    assert pids_max == 512
    assert got["outcome"] == "blocked" and got["errno"] == "EAGAIN", got
    forks = int(got["detail"].split("after ")[1].split()[0])
    assert pids_max - 8 <= forks < pids_max, got
    assert latencies and max(latencies) < 1.0, latencies


def test_memory_hog_is_oom_killed_inside_only(runtime):
    sentinel = subprocess.Popen(["sleep", "120"])
    try:
        script = ("iron-probe memhog 2560; echo memhog_exit=$?; "
                  "grep -E '^oom_kill ' /sys/fs/cgroup/memory/memory.oom_control; "
                  "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo shell_alive")
        done = runtime.run(iron_bin("standard"), "run", "--bundle", str(runtime.bundle(["sh", "-c", script])),
                           runtime.new_id(), timeout=120)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.split("\n")
        assert "memhog_exit=137" in lines, done.stdout              # SIGKILL for the hog...
        assert "shell_alive" in lines, done.stdout                  # ...not for PID 1 of the container
        kills = next(int(line.split()[1]) for line in lines if line.startswith("oom_kill "))
        assert kills >= 1                                           # the kill came from the container's memcg
        assert int(lines[lines.index("shell_alive") - 1]) == 2 << 30
        assert sentinel.poll() is None                              # the host's processes are untouched
    finally:
        sentinel.kill()
        sentinel.wait()


def test_cpu_spinner_stays_within_the_quota(runtime):
    """An engine asks for half a CPU (lower than the profile's 2, so it wins); usage from cpuacct.usage."""
    def half_cpu(spec):
        spec["linux"]["resources"]["cpu"] = {"quota": 50000, "period": 100000}
    usage = "/sys/fs/cgroup/cpuacct/cpuacct.usage"
    script = f"a=$(cat {usage}); iron-probe cpuhog 3 2; b=$(cat {usage}); echo $a $b"
    bundle = runtime.bundle(["sh", "-c", script], edit=half_cpu)
    done = runtime.run(iron_bin("standard"), "run", "--bundle", str(bundle), runtime.new_id(), timeout=60)
    assert done.returncode == 0, done.stderr
    got = probe_json(done.stdout)
    wall = float(got["detail"].split("wall_seconds=")[1].split()[0])
    before, after = map(int, done.stdout.strip().splitlines()[-1].split())
    cpus = (after - before) / 1e9 / wall
    print(f"\ncpu quota 0.50: used {cpus:.3f} CPUs over {wall:.2f} s")
    assert 0.5 * 0.85 <= cpus <= 0.5 * 1.15, cpus
