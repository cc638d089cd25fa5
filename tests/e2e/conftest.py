"""Engine fixtures for the e2e tests: a locally built image (busybox-static + iron-probe),
and private instances of podman, dockerd and containerd under temp dirs, registered with
iron through deploy/register.sh and stopped (by pid) afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, require

IMAGE = "localhost/iron-e2e:latest"
ULIMITS = ["nofile=1024:1024", "nproc=1024:1024"]  # no CAP_SYS_RESOURCE on CI machines
PROBES_MAX = ("mount", "bpf", "keyctl", "unshare_user")


def register(engine: str, action: str, **env: str) -> str:
    done = subprocess.run(["bash", str(REPO / "deploy/register.sh"), engine, action], text=True,
                          capture_output=True, timeout=60, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout


def run(argv: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    return subprocess.run(argv, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"{done.args}: rc={done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def probe_outcome(stdout: str) -> str:
    return json.loads(stdout.strip().splitlines()[-1])["outcome"]


@pytest.fixture(scope="session")
def short_tmp():
    # podman refuses a --runroot over 50 characters, unix sockets want short paths too
    path = Path(tempfile.mkdtemp(prefix="irone2e-"))
    yield path
    subprocess.run(["umount", "-R", "-l", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def image_tar(rootfs, short_tmp) -> Path:
    tar = short_tmp / "rootfs.tar"
    subprocess.run(["tar", "-C", rootfs, "-cf", str(tar), "."], check=True)
    return tar


class Podman:
    def __init__(self, base: Path, conf: Path):
        self.base = base
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def argv(self, *args: str) -> list[str]:
        b = self.base
        return ["podman", "--root", str(b / "root"), "--runroot", str(b / "run"), "--tmpdir", str(b / "tmp"),
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", *args]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return run(self.argv(*args), timeout=timeout, env=self.env)


@pytest.fixture(scope="session")
def podman(short_tmp, image_tar):
    require(shutil.which("podman") is not None, "podman not installed")
    base = short_tmp / "p"
    register("podman", "add", IRON_PODMAN_CONF_DIR=str(base / "conf.d"))
    dropin = (base / "conf.d/iron.conf").read_text()
    conf = base / "containers.conf"
    # CONTAINERS_CONF replaces every other file: the registered drop-in plus this machine's ulimits
    conf.write_text(f"[containers]\ndefault_ulimits = {json.dumps(ULIMITS)}\n\n{dropin}")
    p = Podman(base, conf)
    ok(p("import", "--change", 'CMD ["/bin/sh"]', str(image_tar), IMAGE))
    yield p
    # conmon's exit command removes --rm containers asynchronously: give it a moment
    for _ in range(50):
        left = p("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Command}} {{.Status}}").stdout.splitlines()
        if not left:
            break
        time.sleep(0.2)
    if left:
        p("rm", "-f", "-t", "0", *[line.split()[0] for line in left])
    register("podman", "remove", IRON_PODMAN_CONF_DIR=str(base / "conf.d"))
    assert not left, f"containers left behind: {left}"


def _wait_for(path: Path, proc: subprocess.Popen, log: Path, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Docker:
    def __init__(self, base: Path):
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{base}/docker.sock", "DOCKER_CONFIG": str(base / "cli")}

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return run(["docker", *args], timeout=timeout, env=self.env)


@pytest.fixture(scope="session")
def docker(short_tmp, image_tar):
    require(shutil.which("dockerd") is not None, "dockerd not installed (docker.io)")
    require(shutil.which("docker") is not None, "docker CLI not installed")
    base = short_tmp / "d"
    base.mkdir()
    daemon_json = base / "daemon.json"
    daemon_json.write_text(json.dumps({
        "data-root": str(base / "data"), "exec-root": str(base / "exec"), "pidfile": str(base / "dockerd.pid"),
        "hosts": [f"unix://{base}/docker.sock"], "iptables": False, "ip-forward": False, "bridge": "none"}))
    register("docker", "add", IRON_DOCKER_DAEMON_JSON=str(daemon_json))
    log = base / "dockerd.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["dockerd", "--config-file", str(daemon_json)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    d = Docker(base)
    try:
        _wait_for(base / "docker.sock", proc, log, "dockerd")
        ok(d("import", "-c", 'CMD ["/bin/sh"]', str(image_tar), IMAGE))
        yield d
    finally:
        left = d("ps", "-aq").stdout.split()
        if left:
            d("rm", "-f", *left)
        _stop(proc)
        subprocess.run(["umount", "-R", "-l", str(base / "data")], capture_output=True)
    assert not left, f"containers left behind: {left}"


class Containerd:
    def __init__(self, base: Path):
        self.base = base
        self.sock = str(base / "containerd.sock")
        self.state = base / "state"

    def ctr(self, *args: str, ns: str = "default", timeout: float = 120) -> subprocess.CompletedProcess:
        return run(["ctr", "-a", self.sock, "-n", ns, *args], timeout=timeout)


CNI_NET = "irone2e"
CNI_BRIDGE = "irone2e0"


@pytest.fixture(scope="session")
def containerd(short_tmp, podman, image_tar):
    """Our own containerd with iron's CRI handlers from register.sh; images from `podman save`."""
    require(shutil.which("containerd") is not None and shutil.which("ctr") is not None, "containerd not installed")
    base = short_tmp / "c"
    (base / "cni").mkdir(parents=True)
    (base / "cni/10-irone2e.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": CNI_NET, "plugins": [{
            "type": "bridge", "bridge": CNI_BRIDGE, "isGateway": False, "ipMasq": False,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.123.45.0/24"}]]}}]}))
    config = base / "config.toml"
    config.write_text(f"""version = 2
root = "{base}/root"
state = "{base}/state"
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE.replace(':latest', '')}-pause:latest"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{base}/cni"
""")
    register("containerd", "add", IRON_CONTAINERD_CONFIG=str(config))
    c = Containerd(base)
    archive = base / "images.tar"
    pause = f"{IMAGE.replace(':latest', '')}-pause:latest"
    ok(podman("import", "--change", 'ENTRYPOINT ["/bin/sleep", "2147483647"]', str(image_tar), pause))
    ok(podman("save", "-m", "-o", str(archive), IMAGE, pause))
    log = base / "containerd.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        _wait_for(Path(c.sock), proc, log, "containerd")
        for ns in ("default", "k8s.io"):
            ok(c.ctr("images", "import", str(archive), ns=ns))
        yield c
    finally:
        left = {}
        for ns in ("default", "k8s.io"):
            tasks = c.ctr("tasks", "ls", "-q", ns=ns).stdout.split()
            for t in tasks:
                c.ctr("tasks", "kill", "-s", "SIGKILL", t, ns=ns)
                c.ctr("tasks", "rm", "-f", t, ns=ns)
            names = c.ctr("containers", "ls", "-q", ns=ns).stdout.split()
            if names:
                c.ctr("containers", "rm", *names, ns=ns)
                left[ns] = names
        _stop(proc)
        subprocess.run(["umount", "-R", "-l", str(base / "state")], capture_output=True)
        subprocess.run(["ip", "link", "del", CNI_BRIDGE], capture_output=True)
        shutil.rmtree(f"/var/lib/cni/networks/{CNI_NET}", ignore_errors=True)
        register("containerd", "remove", IRON_CONTAINERD_CONFIG=str(config))
    assert not left, f"containers left behind: {left}"
