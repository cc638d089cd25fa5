"""Print containerd's (1.6, config version 2) CRI drop-in with iron's three runtime handlers.

    python containerd_dropin.py BIN_DIR
"""

from __future__ import annotations

import os
import sys

MODES = ("minimal", "standard", "maximum")
BASE = 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes'


def dropin(bin_dir: str) -> str:
    lines = ["# added by iron (deploy/register.sh)", "version = 2", ""]
    for mode in MODES:
        name = f"iron-{mode}"
        lines += [
            f'[{BASE}."{name}"]',
            '  runtime_type = "io.containerd.runc.v2"',
            '  pod_annotations = ["io.iron.*"]',
            '  container_annotations = ["io.iron.*"]',
            f'[{BASE}."{name}".options]',
            f'  BinaryName = "{os.path.join(bin_dir, name)}"',
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(dropin(sys.argv[1]))
