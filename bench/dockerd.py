"""A docker daemon for the bench: the one already running if it has every runtime to time,
otherwise a private dockerd on a private containerd under a temp dir, stopped by pid afterwards.

The private pair touches nothing shared: own data-root, exec-root, pidfile, key file and unix
sockets; no iptables, no ip_forward, no default bridge (containers run with --network none);
and its own containerd, because a dockerd without one joins any containerd listening at
/run/containerd/containerd.sock."""

from __future__ import annotations

import json
import os
import subprocess
import time
from contextlib import contextmanager


@contextmanager
def docker_env(base: str, runtimes: dict[str, str]):
    """Yields the environment for the docker CLI. `runtimes` maps names to binaries."""
    env = {**os.environ, "DOCKER_CONFIG": os.path.join(base, "cli")}
    if has_runtimes(env, runtimes):
        yield env
        return
    with private_dockerd(base, runtimes) as host:
        yield {**env, "DOCKER_HOST": host}


def has_runtimes(env: dict, runtimes: dict[str, str]) -> bool:
    """Whether the dockerd the CLI reaches by default answers and knows every runtime."""
    try:
        done = subprocess.run(["docker", "info", "--format", "{{json .Runtimes}}"], env=env, capture_output=True,
                              text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and set(runtimes) <= set(json.loads(done.stdout or "{}"))


@contextmanager
def private_dockerd(base: str, runtimes: dict[str, str]):
    """Yields the DOCKER_HOST of a fresh dockerd; afterwards both daemons are stopped and unmounted."""
    os.makedirs(base)
    sock = os.path.join(base, "containerd.sock")
    containerd = start(["containerd", "--config", containerd_config(base, sock)], sock, base, "containerd")
    try:
        docker_sock = os.path.join(base, "docker.sock")
        dockerd = start(["dockerd", "--config-file", daemon_json(base, sock, docker_sock, runtimes)], docker_sock,
                        base, "dockerd")
        try:
            yield f"unix://{docker_sock}"
        finally:
            stop(dockerd)
    finally:
        stop(containerd)
        unmount_under(base)


def containerd_config(base: str, sock: str) -> str:
    path = os.path.join(base, "containerd.toml")
    with open(path, "w") as out:
        out.write(f'version = 2\nroot = "{base}/containerd-root"\nstate = "{base}/containerd-state"\n'
                  f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                  f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n')
    return path


def daemon_json(base: str, containerd_sock: str, docker_sock: str, runtimes: dict[str, str]) -> str:
    path = os.path.join(base, "daemon.json")
    with open(path, "w") as out:
        json.dump({"data-root": f"{base}/data", "exec-root": f"{base}/exec", "pidfile": f"{base}/dockerd.pid",
                   "deprecated-key-path": f"{base}/key.json", "hosts": [f"unix://{docker_sock}"],
                   "containerd": containerd_sock, "iptables": False, "ip-forward": False, "bridge": "none",
                   "runtimes": {name: {"path": binary} for name, binary in runtimes.items()}}, out)
    return path


def start(argv: list[str], sock: str, base: str, name: str, timeout: float = 30) -> subprocess.Popen:
    """Start a daemon logging to BASE/NAME.log; return once its socket exists."""
    log = os.path.join(base, f"{name}.log")
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            with open(log) as text:
                raise RuntimeError(f"{name} did not come up: {text.read()[-500:]}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def unmount_under(path: str) -> None:
    """dockerd leaves its data-root bind-mounted on itself; unmount whatever is left below path."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p == path or p.startswith(path + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
