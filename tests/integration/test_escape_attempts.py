"""Escape attempts a careful attacker would try against iron itself, each in a real container."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from iron.oci.landlock_policy import HELPER_PATH
from tests.conftest import iron_bin, load_config

WRITE_ETC = ["sh", "-c", "echo owned > /etc/owned && echo WROTE || echo DENIED"]
PERMISSIVE = "abi=1;r=/;w=/;x=/"


def _start(runtime, mode: str, args=("sleep", "300"), edit=None):
    bundle = runtime.bundle(list(args), edit=edit)
    cid = runtime.new_id()
    out = runtime.run(iron_bin(mode), "run", "-d", "--bundle", str(bundle), cid)
    assert out.returncode == 0, out.stderr
    return cid, bundle


def _pid(runtime, cid) -> int:
    out = runtime.run("crun", "state", cid)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["pid"]


def _cap_eff(text: str) -> int:
    line = next(ln for ln in text.splitlines() if ln.startswith("CapEff:"))
    return int(line.split()[1], 16)


CAP_NET_RAW, CAP_SYS_ADMIN = 13, 21


def test_exec_asking_for_extra_capabilities(runtime):
    cid, bundle = _start(runtime, "standard")
    iron = iron_bin("standard")
    refused = runtime.run(iron, "exec", "--cap", "CAP_SYS_ADMIN", cid, "true")
    assert refused.returncode != 0 and "CAP_SYS_ADMIN" in refused.stderr
    process = dict(load_config(bundle)["process"])
    process["args"] = ["cat", "/proc/self/status"]
    process["capabilities"] = {k: ["CAP_NET_RAW", "CAP_CHOWN"] for k in
                               ("bounding", "effective", "permitted")}
    pfile = runtime.tmp / "process.json"
    pfile.write_text(json.dumps(process))
    out = runtime.run(iron, "exec", "--process", str(pfile), cid)
    assert out.returncode == 0, out.stderr
    assert not _cap_eff(out.stdout) & (1 << CAP_NET_RAW), "CAP_NET_RAW survived the clamp"


def test_privileged_exec_refused(runtime):
    cid, _ = _start(runtime, "maximum")
    process = {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
               "capabilities": {k: ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"] for k in
                                ("bounding", "effective", "permitted")}}
    pfile = runtime.tmp / "privileged.json"
    pfile.write_text(json.dumps(process))
    before = pfile.read_bytes()
    out = runtime.run(iron_bin("maximum"), "exec", "--process", str(pfile), cid)
    assert out.returncode != 0 and "privileged exec" in out.stderr
    assert pfile.read_bytes() == before


@pytest.mark.parametrize("value", ["minimal", "off", "none"])
def test_annotation_cannot_switch_the_mode_off(runtime, value):
    def edit(spec):
        spec["annotations"] = {"io.iron.mode": value}
    bundle = runtime.bundle(WRITE_ETC, edit=edit)
    out = runtime.run(iron_bin("maximum"), "run", "--bundle", str(bundle), runtime.new_id())
    assert "WROTE" not in out.stdout
    assert out.returncode != 0 and "io.iron.mode" in out.stderr


def test_process_file_cannot_skip_the_helper(runtime):
    """A process file that replaces args, with or without its own permissive helper prefix."""
    cid, _ = _start(runtime, "maximum")
    for args in (WRITE_ETC, [HELPER_PATH, PERMISSIVE, "--", *WRITE_ETC]):
        pfile = runtime.tmp / "skip.json"
        pfile.write_text(json.dumps({"args": args, "cwd": "/", "user": {"uid": 0, "gid": 0}}))
        out = runtime.run(iron_bin("maximum"), "exec", "--process", str(pfile), cid)
        assert "DENIED" in out.stdout and "WROTE" not in out.stdout, (args, out.stdout, out.stderr)
        written = json.loads(pfile.read_text())["args"]
        assert written[0] == HELPER_PATH and written[1] != PERMISSIVE
        assert written.count(HELPER_PATH) == 1


def test_image_shipping_its_own_helper(runtime, tmp_path, probe_binary):
    """A file at the helper's path in the image never runs: iron's bind mount is what runs."""
    from iron.shim.bundlekit import build_rootfs, make_bundle
    rootfs = tmp_path / "evil-rootfs"
    build_rootfs(str(rootfs))
    fake = rootfs / HELPER_PATH.lstrip("/")
    fake.write_text('#!/bin/sh\nshift 2\necho FAKE-HELPER\nexec "$@"\n')
    fake.chmod(0o755)
    bundle = make_bundle(str(tmp_path / "bundle-evil"), str(rootfs), WRITE_ETC)
    out = runtime.run(iron_bin("maximum"), "run", "--bundle", bundle, runtime.new_id())
    assert "FAKE-HELPER" not in out.stdout and "WROTE" not in out.stdout, out.stdout
    assert "DENIED" in out.stdout


def test_config_with_a_prefix_is_not_double_wrapped_or_bypassed(runtime):
    def edit(spec):
        spec["process"]["args"] = [HELPER_PATH, PERMISSIVE, "--", *WRITE_ETC]
    bundle = runtime.bundle(WRITE_ETC, edit=edit)
    out = runtime.run(iron_bin("maximum"), "run", "--bundle", str(bundle), runtime.new_id())
    assert "DENIED" in out.stdout and "WROTE" not in out.stdout, (out.stdout, out.stderr)
    args = load_config(bundle)["process"]["args"]
    assert args.count(HELPER_PATH) == 1 and args[1] != PERMISSIVE and args[3:] == WRITE_ETC


def test_joining_another_containers_namespaces_keeps_every_layer(runtime):
    """A pod-style join of another container's netns and ipc: allowed, still confined and filtered."""
    first, _ = _start(runtime, "maximum")
    pid = _pid(runtime, first)

    def edit(spec):
        spec["linux"]["namespaces"] = [
            {"type": t, "path": f"/proc/{pid}/ns/{'net' if t == 'network' else t}"}
            if t in ("network", "ipc") else {"type": t}
            for t in (n["type"] for n in spec["linux"]["namespaces"])]
    second, _ = _start(runtime, "maximum", edit=edit)
    iron = iron_bin("maximum")
    out = runtime.run(iron, "exec", second, *WRITE_ETC)
    assert "DENIED" in out.stdout, (out.stdout, out.stderr)
    status = runtime.run(iron, "exec", second, "cat", "/proc/self/status").stdout
    assert _cap_eff(status) == 0 and "NoNewPrivs:\t1" in status and "Seccomp:\t2" in status
    second_pid = _pid(runtime, second)
    assert os.stat(f"/proc/{second_pid}/ns/net").st_ino == os.stat(f"/proc/{pid}/ns/net").st_ino
    table = subprocess.run(["nsenter", f"--net=/proc/{second_pid}/ns/net", "nft", "list", "table",
                            "inet", "iron"], capture_output=True, text=True, timeout=10)
    assert table.returncode == 0 and "drop" in table.stdout, table.stderr


def test_joining_the_host_pid_namespace_by_path_is_refused(runtime):
    def edit(spec):
        spec["linux"]["namespaces"] = [{"type": "pid", "path": "/proc/self/ns/pid"} if n["type"] == "pid"
                                       else n for n in spec["linux"]["namespaces"]]
    # /proc/self here is resolved by iron itself: the namespace iron (and the engine) runs in
    bundle = runtime.bundle(["true"], edit=edit)
    before = (bundle / "config.json").read_bytes()
    out = runtime.run(iron_bin("maximum"), "run", "--bundle", str(bundle), runtime.new_id())
    assert out.returncode != 0 and "host's pid namespace" in out.stderr
    assert (bundle / "config.json").read_bytes() == before


def test_restore_is_hardened_like_create(runtime):
    """restore builds a container from a bundle: iron hardens its config.json before crun sees it."""
    bundle = runtime.bundle(["true"])
    runtime.run(iron_bin("standard"), "restore", "--image-path", str(runtime.tmp / "no-image"),
                "--bundle", str(bundle), runtime.new_id())
    spec = load_config(bundle)
    assert spec["annotations"]["io.iron.mode"] == "standard"
    assert spec["linux"]["seccomp"]["defaultAction"] != "SCMP_ACT_ALLOW"


def test_restore_refused_where_layers_cannot_survive_it(runtime):
    bundle = runtime.bundle(["true"])
    before = (bundle / "config.json").read_bytes()
    out = runtime.run(iron_bin("maximum"), "restore", "-b", str(bundle), runtime.new_id())
    assert out.returncode != 0
    assert "restore refused in mode `maximum`" in out.stderr and "filesystem" in out.stderr
    assert (bundle / "config.json").read_bytes() == before
