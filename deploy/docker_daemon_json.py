"""Merge iron's runtimes into docker's daemon.json, or take exactly them out again.

    python docker_daemon_json.py add|remove FILE BIN_DIR

Other keys are kept; `add` saves the file before it as FILE.iron-backup, `remove` deletes it.
No runtimeArgs: dockerd 20.10 would wrap them in a shell script with an unquoted $@.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

NAMES = ("iron", "iron-minimal", "iron-standard", "iron-maximum")


def ours(bin_dir: str) -> dict:
    return {name: {"path": os.path.join(bin_dir, name)} for name in NAMES}


def load(path: str) -> dict:
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return {}
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise SystemExit(f"register.sh: {path}: expected a JSON object at the top")
    return data


def write(path: str, data: dict, backup: bool = True) -> None:
    if backup and os.path.exists(path):
        shutil.copy2(path, path + ".iron-backup")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(action: str, path: str, bin_dir: str) -> int:
    data = load(path)
    runtimes = data.setdefault("runtimes", {})
    wanted = ours(bin_dir)
    if action == "add":
        clash = [n for n in NAMES if n in runtimes and runtimes[n] != wanted[n]]
        if clash:
            raise SystemExit(f"register.sh: {path}: runtimes {clash} exist with other settings; "
                             "remove them first")
        changed = any(n not in runtimes for n in NAMES)
        runtimes.update(wanted)
    else:
        changed = any(runtimes.get(n) == wanted[n] for n in NAMES)
        for n in NAMES:
            if runtimes.get(n) == wanted[n]:
                del runtimes[n]
        if not runtimes:
            del data["runtimes"]
    if not changed:
        print(f"==> docker: {path} already {'has' if action == 'add' else 'lacks'} iron's runtimes; "
              "dockerd needs no reload")
        return 0
    if action == "add":
        write(path, data)
        print(f"==> docker: added runtimes {', '.join(NAMES)} in {path} (backup {path}.iron-backup); "
              "dockerd must reload: kill -HUP $(pidof dockerd)")
        return 0
    # back to the file before `add`: its backup goes too, and so does a file only iron made
    if data:
        write(path, data, backup=False)
    else:
        os.remove(path)
    if os.path.exists(path + ".iron-backup"):
        os.remove(path + ".iron-backup")
    print(f"==> docker: removed runtimes {', '.join(NAMES)} from {path}; "
          "dockerd must reload: kill -HUP $(pidof dockerd)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
