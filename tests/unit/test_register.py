"""deploy/register.sh: each engine's registration is idempotent and `remove` undoes exactly it."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import REPO


def register(engine: str, action: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "IRON_PODMAN_CONF_DIR": str(tmp_path / "conf.d"),
           "IRON_DOCKER_DAEMON_JSON": str(tmp_path / "daemon.json"),
           "IRON_CONTAINERD_CONFIG": str(tmp_path / "config.toml")}
    done = subprocess.run(["bash", str(REPO / "deploy/register.sh"), engine, action], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("engine, path, before", [
    ("docker", "daemon.json", '{"debug": true, "runtimes": {"crun": {"path": "/usr/bin/crun"}}}\n'),
    ("containerd", "config.toml", 'version = 2\n\n[plugins."io.containerd.grpc.v1.cri"]\n  x = 1\n'),
])
def test_add_twice_then_remove_restores(tmp_path, engine, path, before):
    target = tmp_path / path
    target.write_text(before)
    register(engine, "add", tmp_path)
    once = target.read_text()
    register(engine, "add", tmp_path)
    assert target.read_text() == once
    assert "iron-maximum" in once
    register(engine, "remove", tmp_path)
    if engine == "docker":
        assert json.loads(target.read_text()) == json.loads(before)
    else:
        assert target.read_text() == before


def test_docker_keeps_keys_writes_backup_and_says_reload(tmp_path):
    (tmp_path / "daemon.json").write_text('{"debug": true}')
    out = register("docker", "add", tmp_path).stdout
    merged = json.loads((tmp_path / "daemon.json").read_text())
    assert merged["debug"] is True
    assert merged["runtimes"]["iron-maximum"] == {"path": "/usr/local/bin/iron-maximum"}
    assert json.loads((tmp_path / "daemon.json.iron-backup").read_text()) == {"debug": True}
    assert "must reload" in out
    assert "needs no reload" in register("docker", "add", tmp_path).stdout


def test_containerd_keeps_operators_runc(tmp_path):
    own = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n  runtime_type = "x"\n'
    (tmp_path / "config.toml").write_text(own)
    register("containerd", "add", tmp_path)
    assert (tmp_path / "config.toml").read_text().count("runtimes.runc]") == 1


def test_podman_dropin_lists_iron_where_crun_is(tmp_path):
    register("podman", "add", tmp_path)
    text = (tmp_path / "conf.d/iron.conf").read_text()
    for key in ("runtime_supports_json", "runtime_supports_nocgroups"):
        line = next(line for line in text.splitlines() if line.startswith(key))
        assert '"crun"' in line and '"iron-maximum"' in line
    assert 'iron-standard = ["/usr/local/bin/iron-standard"]' in text
    register("podman", "remove", tmp_path)
    assert not (tmp_path / "conf.d/iron.conf").exists()
