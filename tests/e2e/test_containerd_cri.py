"""containerd's CRI plugin with iron's runtime handlers (from register.sh's drop-in): a pod
sandbox and a container in it, driven through the CRI v1 gRPC API like a kubelet would."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from tests.e2e.conftest import IMAGE, PROBES_MAX, ok, probe_outcome

pytestmark = pytest.mark.e2e
MEMORY = 64 << 20


@pytest.fixture
def cri(containerd):
    from tests.e2e.cri import RuntimeService
    client = RuntimeService(containerd.sock)
    pods: list[str] = []
    client.pods = pods
    yield client
    for pod in pods:
        client.remove_pod(pod)
    client.close()


def bundle_config(containerd, cid: str) -> dict:
    with open(containerd.state / "io.containerd.runtime.v2.task/k8s.io" / cid / "config.json") as f:
        return json.load(f)


def task_pid(containerd, cid: str) -> str:
    pid, state = next(line.split()[1:3] for line in ok(containerd.ctr("tasks", "ls", ns="k8s.io")).splitlines()
                      if line.startswith(cid))
    assert state == "RUNNING", (cid, state)
    return pid


def task_status(containerd, cid: str) -> str:
    """/proc/PID/status of the task's process once it runs its own program (not crun's init)."""
    pid = task_pid(containerd, cid)
    deadline = time.monotonic() + 10
    while True:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        if not status.startswith("Name:\tcrun") or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def start_pod(cri, mode: str, annotations: dict[str, str]) -> tuple[str, bytes]:
    from tests.e2e.cri import pod_config
    config = pod_config(f"e2e-{uuid.uuid4().hex[:8]}", annotations)
    pod = cri.run_pod(config, f"iron-{mode}")
    cri.pods.append(pod)
    return pod, config


@pytest.mark.parametrize("mode", ["minimal", "standard", "maximum"])
def test_pod_sandbox_and_container_per_mode(containerd, cri, mode):
    from tests.e2e.cri import container_config
    pod, pconf = start_pod(cri, mode, {"io.iron.e2e": "pod", "other.e2e": "dropped"})
    sandbox = bundle_config(containerd, pod)
    assert sandbox["annotations"]["io.kubernetes.cri.container-type"] == "sandbox"
    assert sandbox["annotations"]["io.iron.e2e"] == "pod" and "other.e2e" not in sandbox["annotations"]
    status = task_status(containerd, pod)  # the pause container runs, hardened like the rest
    assert status.split("State:\t")[1].startswith(("S", "R"))
    if mode != "minimal":
        assert "Seccomp:\t2" in status and "NoNewPrivs:\t1" in status
    cid = cri.create_container(pod, container_config("c", IMAGE, ["sleep", "600"], MEMORY), pconf)
    cri.start_container(cid)
    config = bundle_config(containerd, cid)
    net = [os.readlink(f"/proc/{task_pid(containerd, i)}/ns/net") for i in (pod, cid)]
    assert net[0] == net[1] and net[0] != os.readlink("/proc/self/ns/net")  # the pod's own netns
    with open(f"/sys/fs/cgroup/memory{config['linux']['cgroupsPath']}/memory.limit_in_bytes") as f:
        assert int(f.read()) == MEMORY
    code, out, err = cri.exec_sync(cid, ["cat", "/proc/self/status"])
    assert code == 0, err
    if mode != "minimal":
        assert "Seccomp:\t2" in out and "NoNewPrivs:\t1" in out
    code, out, err = cri.exec_sync(cid, ["sh", "-c", "echo x > /usr/iron-e2e"])
    assert (code != 0) == (mode == "maximum"), (out, err)
    if mode == "maximum":
        for probe in PROBES_MAX:
            code, out, err = cri.exec_sync(cid, ["iron-probe", probe])
            assert code == 0 and probe_outcome(out) == "blocked", (probe, out, err)


def test_pod_annotation_raises_the_mode(containerd, cri):
    from tests.e2e.cri import container_config
    pod, pconf = start_pod(cri, "minimal", {"io.iron.mode": "maximum"})
    cid = cri.create_container(pod, container_config("c", IMAGE, ["sleep", "600"], MEMORY), pconf)
    cri.start_container(cid)
    assert bundle_config(containerd, cid)["annotations"]["io.iron.mode"] == "maximum"
    code, _, _ = cri.exec_sync(cid, ["sh", "-c", "echo x > /usr/iron-e2e"])
    assert code != 0
    assert "Seccomp:\t2" in task_status(containerd, pod)
