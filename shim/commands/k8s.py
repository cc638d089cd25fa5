"""`iron k8s manifests`: the Kubernetes RuntimeClasses for the handlers that
`install.sh --containerd` registers (the same text as deploy/k8s/runtimeclasses.yaml)."""

from __future__ import annotations

import sys

MODES = ("minimal", "standard", "maximum")
HEADER = """\
# RuntimeClasses for the iron handlers that `install.sh --containerd` registers.
# Pods opt in with `spec.runtimeClassName: iron-maximum` (or -standard / -minimal).
# The pod's sandbox (pause) container, marked io.kubernetes.cri.container-type=sandbox,
# runs under the same handler in every mode; its network namespace is the pod's, so the
# pod's network policy is applied there.
"""


def manifests() -> str:
    docs = [f"apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: iron-{m}\nhandler: iron-{m}\n"
            for m in MODES]
    return HEADER + "---\n".join(docs)


def main(args: list[str], prog: str) -> int:
    if args != ["manifests"]:
        sys.stderr.write("usage: iron k8s manifests   (prints RuntimeClass manifests for kubectl apply -f -)\n")
        return 2
    sys.stdout.write(manifests())
    return 0
