"""iron's entry point. Decide pass-through first; import anything heavier only when needed.

`iron`, `iron-minimal`, `iron-standard` and `iron-maximum` all land here; the last three
pin a mode by their own name.
"""

from __future__ import annotations

import os
import sys

from iron.shim import argv as runc_argv
from iron.shim import config

# crun's and runc's subcommands; anything else is refused rather than guessed at.
RUNC_COMMANDS = frozenset({"checkpoint", "create", "delete", "events", "exec", "features", "kill",
                           "list", "pause", "ps", "restore", "resume", "run", "spec", "start",
                           "state", "update", "help", "mounts"})
# iron's own commands: name -> module under iron.shim.commands (imported on demand).
IRON_COMMANDS = {"check": "check", "explain": "explain", "profile": "profile", "verify": "verify",
                 "k8s": "k8s"}


def pinned_mode(prog: str) -> str | None:
    """`iron-NAME` pins the mode NAME (built-in or an operator's profile); `iron` pins nothing."""
    name = os.path.basename(prog)
    return name[len("iron-"):] if name.startswith("iron-") else None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    parsed = None
    try:
        parsed = runc_argv.parse(argv[1:])
        sub = parsed.subcommand
        if sub in IRON_COMMANDS and not parsed.globals:
            name = IRON_COMMANDS[sub]   # __import__: importing importlib itself costs ~2 ms
            command = getattr(__import__("iron.shim.commands", fromlist=[name]), name)
            return command.main(list(parsed.rest), argv[0])
        cfg_path = config.config_path(parsed.iron_config)
        if sub is None and parsed.version:
            from iron.shim.commands.version import main as version
            return version(config.runtime_path(cfg_path))
        if sub is not None and sub not in RUNC_COMMANDS:
            from iron.oci.errors import IronError
            raise IronError(f"unknown subcommand `{sub}`",
                            expected="a runc subcommand or one of " + ", ".join(IRON_COMMANDS))
        if sub == "features":
            from iron.shim.commands.features import main as features
            return features(config.runtime_path(cfg_path), parsed)
        if sub in runc_argv.REWRITTEN:
            from iron.shim.rewrite import main as rewrite
            return rewrite(parsed, argv[0], cfg_path)
        from iron.shim import delegate
        delegate.execv(config.runtime_path(cfg_path), parsed.crun_argv())
        return 127  # not reached
    except Exception as err:  # noqa: BLE001 - one handler turns every failure into one line
        return _fail(err, parsed)


def _fail(err: Exception, parsed) -> int:
    from iron.oci.errors import IronError
    from iron.shim.runclog import report_error
    if isinstance(err, BrokenPipeError):   # `iron … | head`: the reader left, as with any CLI
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        return 141
    if isinstance(err, IronError):
        message = str(err)
    else:
        if os.environ.get("IRON_DEBUG"):
            raise err
        message = f"internal error: {type(err).__name__}: {err}"
    report_error(message, getattr(parsed, "log", None), getattr(parsed, "log_format", "text"))
    return 1


if __name__ == "__main__":
    sys.exit(main())
