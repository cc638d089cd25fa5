"""Print the block register.sh appends to containerd's (1.6, version 2) config.toml: iron's
three CRI runtime handlers.

    python containerd_block.py BIN_DIR [with-runc]

An edit of config.toml rather than an `imports` drop-in: containerd 1.6 merges an imported
runtimes table over the main file's, dropping the operator's own runc options. Once any
runtime is configured, containerd's built-in `runc` handler is gone, so `with-runc` names it
again (type only) when the config does not define it.
"""

from __future__ import annotations

import os
import sys

MODES = ("minimal", "standard", "maximum")
BASE = 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes'
BEGIN = "# >>> iron runtimes (deploy/register.sh; removed by install.sh --uninstall --containerd)"
END = "# <<< iron runtimes"


def block(bin_dir: str, with_runc: bool) -> str:
    lines = ["", BEGIN]
    if with_runc:
        lines += [f"[{BASE}.runc]", '  runtime_type = "io.containerd.runc.v2"']
    for mode in MODES:
        name = f"iron-{mode}"
        lines += [
            f'[{BASE}."{name}"]',
            '  runtime_type = "io.containerd.runc.v2"',
            '  pod_annotations = ["io.iron.*"]',
            '  container_annotations = ["io.iron.*"]',
            f'[{BASE}."{name}".options]',
            f'  BinaryName = "{os.path.join(bin_dir, name)}"',
        ]
    return "\n".join(lines + [END, ""])


if __name__ == "__main__":
    sys.stdout.write(block(sys.argv[1], sys.argv[2:] == ["with-runc"]))
