"""`iron --version`: iron's version, then the delegate's."""

from __future__ import annotations

import subprocess

from iron.shim import __version__


def main(runtime: str) -> int:
    print(f"iron version {__version__}")
    if not runtime:
        print("delegate: crun not found")
        return 1
    out = subprocess.run([runtime, "--version"], capture_output=True, text=True)
    print(f"delegate: {runtime}")
    print(out.stdout.rstrip())
    return 0
