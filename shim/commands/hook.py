"""`iron hook NAME ARGS…`: OCI hooks iron adds to a container. Kept off click: hooks are on
every start of a maximum container and must start fast."""

from __future__ import annotations

import sys

HOOKS = {"network": "network"}   # name -> module under iron.hooks


def main(args: list[str], prog: str) -> int:
    if not args or args[0] not in HOOKS:
        sys.stderr.write(f"iron hook: expected one of {', '.join(HOOKS)}\n")
        return 2
    hook = getattr(__import__("iron.hooks", fromlist=[HOOKS[args[0]]]), HOOKS[args[0]])
    hook.leave(hook.main(args[1:]))         # ends the process as soon as the hook's work is done
    return 1                                # not reached
