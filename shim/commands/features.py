"""`iron features`: crun's features document with iron's annotations added; always valid JSON.

crun only has `features` from 1.8.6; with an older crun iron describes what crun 1.8
supports itself, so docker (which asks at start-up) always gets a document.
"""

from __future__ import annotations

import json
import subprocess

from iron.shim import __version__

IRON_ANNOTATIONS = {
    "io.iron.version": __version__,
    "io.iron.modes": "minimal,standard,maximum",
    "io.iron.annotations": "io.iron.mode,io.iron.network.allow,io.iron.fs.write",
}

# What crun 1.8 implements, for crun builds that lack the command.
CRUN_18_FEATURES = {
    "ociVersionMin": "1.0.0",
    "ociVersionMax": "1.1.0",
    "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
                     "relatime", "norelatime", "strictatime", "nostrictatime", "noatime", "atime",
                     "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable",
                     "runbindable", "tmpcopyup", "idmap", "rro", "rrw"],
    "linux": {
        "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
        "capabilities": [],
        "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True},
        "seccomp": {"enabled": True,
                    "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                                "SCMP_ACT_TRAP"],
                    "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                                  "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                    "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64",
                              "SCMP_ARCH_ARM"]},
        "apparmor": {"enabled": True},
        "selinux": {"enabled": True},
    },
}


def document(runtime: str) -> dict:
    doc = None
    if runtime:
        out = subprocess.run([runtime, "features"], capture_output=True, text=True)
        if out.returncode == 0:
            try:
                doc = json.loads(out.stdout)
            except ValueError:
                doc = None
    if not isinstance(doc, dict):
        doc = json.loads(json.dumps(CRUN_18_FEATURES))
    doc.setdefault("annotations", {}).update(IRON_ANNOTATIONS)
    return doc


def main(runtime: str, parsed=None) -> int:
    print(json.dumps(document(runtime), indent=2))
    return 0
