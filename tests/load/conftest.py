"""Load tests: one Run (private state, audit log, cgroup parent) per test."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import require
from tests.load.harness import Run


@pytest.fixture
def load_run(tmp_path, rootfs):
    require(os.geteuid() == 0, "load tests need root")
    require(shutil.which("crun") is not None, "crun not installed")
    run = Run(tmp_path / "load", rootfs)
    yield run
    run.cleanup()
