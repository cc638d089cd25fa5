"""`iron k8s manifests` prints the RuntimeClasses kept in deploy/k8s/, one per CRI handler."""

from __future__ import annotations

from iron.shim.commands import k8s
from tests.conftest import REPO


def test_printed_manifests_match_deploy_folder(capsys):
    assert k8s.main(["manifests"], "iron") == 0
    printed = capsys.readouterr().out
    assert printed == (REPO / "deploy/k8s/runtimeclasses.yaml").read_text()
    for mode in ("minimal", "standard", "maximum"):
        assert f"  name: iron-{mode}\nhandler: iron-{mode}\n" in printed


def test_unknown_subcommand_is_usage_error(capsys):
    assert k8s.main([], "iron") == 2
    assert "usage: iron k8s manifests" in capsys.readouterr().err
