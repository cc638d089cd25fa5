"""Issue 4 and 5 items the verify matrix does not show: what still works in maximum, fail-closed
Landlock, an allowlist, and root's attempts to undo the network rules.

Network traffic goes only to a peer netns created here (iron.shim.verify_netns), never off the host.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from iron.shim.verify_netns import ProbeNet
from tests.conftest import REPO, iron_bin, require

pytestmark = [pytest.mark.integration, pytest.mark.escape]


def probes(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def with_volume(tmp_path, name="volume"):
    host = tmp_path / name
    host.mkdir()

    def edit(spec):
        spec["mounts"].append({"destination": "/srv", "type": "bind", "source": str(host), "options": ["rbind", "rw"]})
        spec["process"]["cwd"] = "/srv"
    return host, edit


def operator_config(tmp_path, profile: dict | None = None, **settings) -> dict:
    profiles = tmp_path / "profiles"
    profiles.mkdir(exist_ok=True)
    if profile:
        (profiles / f"{profile['name']}.json").write_text(json.dumps(profile))
    lines = [f'profiles_dir = "{profiles}"'] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    return {**os.environ, "IRON_CONFIG": str(config)}


def test_maximum_still_writes_tmp_and_the_workdir(runtime, tmp_path):
    host, edit = with_volume(tmp_path)
    script = "echo one > /tmp/a && echo two > ./b && cat /tmp/a b && iron-probe create_in /dev/shm"
    done = runtime.run(iron_bin("maximum"), "run", "--bundle", str(runtime.bundle(["sh", "-c", script], edit=edit)),
                       runtime.new_id())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["one", "two"]
    assert probes(done.stdout)[0]["outcome"] == "allowed"
    assert (host / "b").read_text() == "two\n"


def test_without_landlock_the_command_never_runs(runtime, tmp_path):
    """A helper that sees no Landlock (as an old kernel would): fail closed, the entrypoint does not start."""
    subprocess.run(["make", "-s", "-C", str(REPO / "hooks/landlock"), "fake-enosys"], check=True)
    env = operator_config(tmp_path, landlock_helper=str(REPO / "hooks/landlock/build/iron-landlock-noll"))
    host, edit = with_volume(tmp_path)
    bundle = runtime.bundle(["sh", "-c", "echo ran > /srv/marker"], edit=edit)
    done = runtime.run(iron_bin("maximum"), "run", "--bundle", str(bundle), runtime.new_id(), env=env)
    assert done.returncode != 0
    assert "landlock" in done.stderr.lower(), done.stderr
    assert not (host / "marker").exists()


@pytest.fixture
def testnet():
    require(os.geteuid() == 0, "network namespaces need root")
    with ProbeNet(["allow"]) as net:
        yield net


def in_testnet(net: ProbeNet):
    def edit(spec):
        spec["linux"]["namespaces"] = [{"type": "network", "path": net.paths["allow"]} if ns["type"] == "network"
                                       else ns for ns in spec["linux"]["namespaces"]]
    return edit


def test_allowlist_lets_one_destination_through(runtime, tmp_path, testnet):
    peer_v4, peer_v6, alt = testnet.addrs["allow"]
    env = operator_config(tmp_path, {"name": "one-port", "extends": "maximum",
                                     "network": {"policy": "allowlist", "allow": [f"{peer_v4}:80"]}})
    checks = [("tcp_connect", peer_v4, "80"), ("tcp_connect", peer_v4, "81"), ("tcp_connect", alt, "80"),
              ("tcp_connect", peer_v6, "80"), ("udp_send", peer_v4, "80"), ("dns", alt),
              ("tcp_connect", "169.254.169.254", "80")]
    script = "; ".join("iron-probe " + " ".join(c) for c in checks)
    bundle = runtime.bundle(["sh", "-c", script], edit=in_testnet(testnet))
    done = runtime.run(iron_bin(), "--iron-mode", "one-port", "run", "--bundle", str(bundle), runtime.new_id(),
                       env=env)
    assert done.returncode == 0, done.stderr
    got = probes(done.stdout)
    assert len(got) == len(checks)
    assert got[0]["outcome"] == "allowed" and got[0]["errno"] == "ECONNREFUSED", got[0]   # reached the peer
    assert [g["outcome"] for g in got[1:]] == ["blocked"] * (len(checks) - 1), got


def test_root_cannot_undo_the_network_rules(runtime, testnet):
    ns = testnet.paths["allow"].rsplit("/", 1)[1]
    script = ("ip route del default; echo route=$?; ip link set lo down; echo link=$?; "
              "iron-probe netlink_audit; iron-probe packet_socket; iron-probe raw_socket; "
              f"iron-probe tcp_connect {testnet.addrs['allow'][0]} 80")
    bundle = runtime.bundle(["sh", "-c", script], edit=in_testnet(testnet))
    done = runtime.run(iron_bin("maximum"), "run", "--bundle", str(bundle), runtime.new_id())
    assert done.returncode == 0, done.stderr
    assert "route=0" not in done.stdout and "link=0" not in done.stdout, done.stdout
    assert [p["outcome"] for p in probes(done.stdout)] == ["blocked"] * 4, done.stdout
    table = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "iron"],
                           capture_output=True, text=True)
    assert table.returncode == 0 and "drop" in table.stdout            # the rules are still in force
    routes = subprocess.run(["ip", "-n", ns, "route"], capture_output=True, text=True, check=True).stdout
    assert routes.startswith("default via")
