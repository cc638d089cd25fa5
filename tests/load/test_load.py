"""Load: many lifecycles per mode, sequential and concurrent, through iron and through podman.

Afterwards nothing of the run is left on the host (cgroups, crun state, mounts, netns,
processes, podman containers, our own fds) and the audit log holds exactly one record per
create/exec. Counts: IRON_LOAD_SEQUENTIAL (500), IRON_LOAD_CONCURRENT (20),
IRON_LOAD_PODMAN_SEQUENTIAL (500), IRON_LOAD_PODMAN_CONCURRENT (20); CI runs the defaults.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import require
from tests.load.harness import MODES, count, open_fds

pytestmark = pytest.mark.load


def _no_leaks(run, fds_before: int) -> None:
    """podman's conmon runs `podman container cleanup` after the container exits, asynchronously:
    give the host up to 20 s to settle before counting."""
    deadline = time.monotonic() + 20
    leaks = run.leaks()
    while any(leaks.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        leaks = run.leaks()
    assert not any(leaks.values()), {k: v[:5] for k, v in leaks.items() if v}
    assert open_fds() <= fds_before, "the driver leaked file descriptors"


def _audited_once(run, events_per_container: int) -> None:
    records = run.audit_records()
    assert not [r for r in records if "refused" in r]
    per_container = {}
    for record in records:
        per_container[record["container"]] = per_container.get(record["container"], 0) + 1
    assert len(records) == events_per_container * len(run.ids), (len(records), len(run.ids))
    assert set(per_container.values()) == {events_per_container}


def _concurrently(fn, mode: str, n: int) -> None:
    with ThreadPoolExecutor(max_workers=n) as pool:
        for future in [pool.submit(fn, mode) for _ in range(n)]:
            future.result()


@pytest.mark.parametrize("mode", MODES)
def test_direct_sequential(load_run, mode):
    fds = open_fds()
    for _ in range(count("IRON_LOAD_SEQUENTIAL", 500)):
        load_run.direct_run(mode)
    _no_leaks(load_run, fds)
    _audited_once(load_run, 1)


@pytest.mark.parametrize("mode", MODES)
def test_direct_concurrent(load_run, mode):
    """create, start, exec, kill, delete at once: two audit records (create, exec) each."""
    fds = open_fds()
    _concurrently(lambda m: load_run.direct_full(m), mode, count("IRON_LOAD_CONCURRENT", 20))
    _no_leaks(load_run, fds)
    _audited_once(load_run, 2)


@pytest.mark.parametrize("mode", MODES)
def test_podman_sequential(load_run, mode):
    require(shutil.which("podman") is not None, "podman not installed")
    load_run.podman_ready()
    fds = open_fds()
    for _ in range(count("IRON_LOAD_PODMAN_SEQUENTIAL", 500)):
        load_run.podman_run(mode)
    _no_leaks(load_run, fds)
    _audited_once(load_run, 1)


@pytest.mark.parametrize("mode", MODES)
def test_podman_concurrent(load_run, mode):
    """`podman run -d`, `podman exec`, `podman rm -f` at once."""
    require(shutil.which("podman") is not None, "podman not installed")
    load_run.podman_ready()
    fds = open_fds()
    _concurrently(lambda m: load_run.podman_run(m, exec_too=True), mode,
                  count("IRON_LOAD_PODMAN_CONCURRENT", 20))
    _no_leaks(load_run, fds)
    _audited_once(load_run, 2)
