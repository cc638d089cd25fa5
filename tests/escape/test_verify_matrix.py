"""`iron verify --json` on this host: the threat → layer matrix, asserted cell by cell.

One run of the three modes with --layers-alone (~50 s on 2 cores) feeds most tests; a second
run with deliberately weakened profiles proves the check can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import iron_bin, require

pytestmark = [pytest.mark.integration, pytest.mark.escape]

CLAIMS = {"minimal": {"resources"}, "standard": {"resources", "syscalls"},
          "maximum": {"resources", "syscalls", "files", "network", "escape"}}


def host_ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


def netns_names() -> set[str]:
    return set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()


def verify(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    require(os.geteuid() == 0, "iron verify needs root")
    require(shutil.which("nft") is not None, "nft not installed")
    require(os.access("/usr/local/lib/iron/iron-probe", os.X_OK), "iron-probe not installed (run install.sh)")
    done = subprocess.run([iron_bin(), "verify", "--json", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})
    assert done.stdout.startswith("{"), done.stderr
    return done, json.loads(done.stdout)


@pytest.fixture(scope="module")
def full_run():
    before_rules, before_ns = host_ruleset(), netns_names()
    done, report = verify("--layers-alone")
    # The test host's namespaces are gone, and the host's own ruleset never changed.
    assert netns_names() == before_ns
    assert host_ruleset() == before_rules
    return done, report


def cells(report: dict, section: str = "matrix") -> dict[tuple[str, str], dict]:
    return {(c["column"], c["threat"]): c for c in report[section]["cells"]}


def test_passes_within_a_minute(full_run):
    done, report = full_run
    assert done.returncode == 0, report["failures"]
    assert report["ok"] and report["failures"] == []
    print(f"\niron verify --layers-alone: {report['seconds']} s")


@pytest.mark.parametrize("mode", ["minimal", "standard", "maximum"])
def test_mode_blocks_what_it_claims(full_run, mode):
    _, report = full_run
    mine = [c for c in report["matrix"]["cells"] if c["column"] == mode and c["category"] != "benign"]
    assert len(mine) >= 40
    for c in mine:
        if c["category"] in CLAIMS[mode]:
            assert c["outcome"] == "blocked", c
            assert c["verdict"].startswith("blocked by "), c
        assert c["outcome"] != "error", c


def test_evidence_names_the_mechanism(full_run):
    got = cells(full_run[1])
    assert got[("maximum", "forkbomb")]["evidence"].startswith("pids.max hit")
    assert got[("maximum", "memhog")]["evidence"].startswith("OOM kill")
    assert got[("standard", "ptrace")]["verdict"] == "blocked by syscall (EPERM)"
    assert got[("maximum", "read_secret")]["verdict"] == "blocked by filesystem (EACCES)"
    assert got[("maximum", "udp4")]["verdict"] == "blocked by network (EPERM)"      # the nftables drop
    assert got[("maximum", "signal")]["evidence"] == "ESRCH"


def test_lower_modes_really_allow_the_rest(full_run):
    """The test host is reachable and files are writable without the layers: the probes can see ALLOWED."""
    got = cells(full_run[1])
    for mode in ("minimal", "standard"):
        for threat in ("tcp4", "tcp6", "udp4", "dns", "metadata", "exec_tcp4", "write_etc", "read_secret",
                       "rename", "exec_write_etc"):
            assert got[(mode, threat)]["verdict"] == "ALLOWED", got[(mode, threat)]
    assert got[("minimal", "ptrace")]["verdict"] == "ALLOWED"
    assert got[("minimal", "io_uring")]["verdict"] == "ALLOWED"


def test_benign_workload_works_everywhere(full_run):
    _, report = full_run
    benign = [c for c in report["matrix"]["cells"] if c["threat"] == "benign"]
    assert {c["column"] for c in benign} == {"minimal", "standard", "maximum"}
    assert all(c["verdict"] == "works" for c in benign), benign


def test_each_layer_alone_blocks_its_threats(full_run):
    _, report = full_run
    section = report["layers_alone"]
    assert {c["name"]: c["layers"] for c in section["columns"]} == {
        "verify-process-only": ["process"], "verify-syscall-only": ["syscall"],
        "verify-filesystem-only": ["filesystem"], "verify-network-only": ["network"]}
    by_column: dict[str, list[dict]] = {}
    for c in section["cells"]:
        by_column.setdefault(c["column"], []).append(c)
    for column, mine in by_column.items():
        layer = column.split("-")[1]
        assert len(mine) >= 6, column
        for c in mine:
            assert c["outcome"] == "blocked" and c["verdict"].startswith(f"blocked by {layer} "), c


@pytest.fixture
def weakened(tmp_path):
    """Operator profiles that extend maximum but switch one layer off."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name, layer in (("weak-no-filesystem", "filesystem"), ("weak-no-network", "network")):
        (profiles / f"{name}.json").write_text(json.dumps({"name": name, "extends": "maximum", layer: None}))
    config = tmp_path / "config.toml"
    config.write_text(f'profiles_dir = "{profiles}"\n')
    return {"IRON_CONFIG": str(config)}


def test_a_weakened_profile_fails_the_check(weakened):
    done, report = verify("--mode", "weak-no-filesystem", "--mode", "weak-no-network", env=weakened)
    assert done.returncode == 1
    assert not report["ok"]
    got = cells(report)
    # (writes to /etc stay blocked: maximum's process layer keeps the rootfs read-only)
    for threat in ("read_secret", "rename", "link", "exec_read_secret"):
        assert got[("weak-no-filesystem", threat)]["verdict"] == "ALLOWED"
        assert got[("weak-no-filesystem", threat)]["failed"]
        assert got[("weak-no-network", threat)]["outcome"] == "blocked"
    for threat in ("tcp4", "udp6", "dns", "metadata"):
        assert got[("weak-no-network", threat)]["verdict"] == "ALLOWED"
        assert got[("weak-no-network", threat)]["failed"]
        assert got[("weak-no-filesystem", threat)]["outcome"] == "blocked"
    failed = {(c["column"], c["category"]) for c in report["matrix"]["cells"] if c["failed"]}
    assert {category for column, category in failed if column == "weak-no-network"} == {"network"}
    assert {category for column, category in failed if column == "weak-no-filesystem"} <= {"files", "escape"}
    assert any(f.startswith("matrix: weak-no-filesystem: read_secret: ALLOWED") for f in report["failures"])
