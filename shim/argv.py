"""runc's command line, as data: which global flags take a value, where the subcommand is.

Behaviour-free: no policy here, only predicates over argv (the style of runc's own
argument structs). iron's two flags are listed apart from runc's and are the only
tokens ever removed before crun sees the argv.
"""

from __future__ import annotations


# Global flags of runc and crun that take a value (`--flag value` or `--flag=value`).
RUNC_VALUE_FLAGS = frozenset({"--root", "--log", "--log-format", "--criu", "--cgroup-manager",
                              "--log-level"})
# `--rootless` takes an optional value: only consume the next token when it is one of these.
ROOTLESS_VALUES = frozenset({"true", "false", "auto"})
IRON_FLAGS = frozenset({"--iron-mode", "--iron-config"})

# Subcommand flags that take a value, for the commands iron rewrites.
CREATE_VALUE_FLAGS = frozenset({"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds",
                                "--pidfd-socket"})
EXEC_VALUE_FLAGS = frozenset({"--console-socket", "--pidfd-socket", "--cwd", "--env", "-e", "--user", "-u",
                              "--additional-gids", "-g", "--process", "-p", "--process-label",
                              "--apparmor", "--cap", "-c", "--preserve-fds", "--pid-file", "--cgroup"})
# restore builds a container from a bundle, like create: it is rewritten too (runc's and crun's flags).
RESTORE_VALUE_FLAGS = CREATE_VALUE_FLAGS | frozenset({"--image-path", "--work-path", "--manage-cgroups-mode",
                                                      "--empty-ns", "--lsm-profile", "--lsm-mount-context"})
REWRITTEN = frozenset({"create", "run", "exec", "restore"})


class ParsedArgv:
    """The caller's argv, split. A plain class: dataclasses cost milliseconds on the fast path."""

    __slots__ = ("globals", "subcommand", "rest", "iron_mode", "iron_config", "log", "log_format",
                 "root", "version")

    def __init__(self, globals, subcommand, rest, iron_mode=None, iron_config=None, log=None,
                 log_format="text", root=None, version=False):
        self.globals = globals          # global flags for crun, iron's removed, order kept
        self.subcommand = subcommand
        self.rest = rest                # everything after the subcommand, untouched
        self.iron_mode = iron_mode
        self.iron_config = iron_config
        self.log = log
        self.log_format = log_format
        self.root = root
        self.version = version          # `--version` / `-v` / `-V` before any subcommand

    def crun_argv(self) -> list[str]:
        """The argv crun receives: the caller's, minus iron's own flags."""
        head = list(self.globals)
        return head + ([self.subcommand] if self.subcommand else []) + list(self.rest)


def _flag_name(token: str) -> str:
    """`-root=x` and `--root` both name `--root` (Go's flag package accepts one dash)."""
    name = token.split("=", 1)[0]
    if name.startswith("-") and not name.startswith("--") and len(name) > 2:
        name = "-" + name
    return name


def parse(argv: list[str]) -> ParsedArgv:
    """Split argv (without argv[0]) into global flags, subcommand and the rest."""
    kept: list[str] = []
    values: dict[str, str] = {}
    version = False
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("-") or token == "-":
            break
        name = _flag_name(token)
        inline = "=" in token
        value = token.split("=", 1)[1] if inline else None
        takes_value = name in RUNC_VALUE_FLAGS or name in IRON_FLAGS
        if takes_value and not inline:
            if i + 1 >= len(argv):
                from iron.oci.errors import IronError
                raise IronError("global flag needs a value", field=name, expected="a value after it")
            value = argv[i + 1]
        consumed = 2 if takes_value and not inline else 1
        if name == "--rootless" and not inline and i + 1 < len(argv) and argv[i + 1] in ROOTLESS_VALUES:
            consumed = 2
        if name in ("--version", "-v", "-V"):
            version = True
        if value is not None:
            values[name] = value
        if name not in IRON_FLAGS:
            kept.extend(argv[i:i + consumed])
        i += consumed
    sub = argv[i] if i < len(argv) else None
    rest = tuple(argv[i + 1:]) if sub is not None else ()
    return ParsedArgv(globals=tuple(kept), subcommand=sub, rest=rest,
                      iron_mode=values.get("--iron-mode"), iron_config=values.get("--iron-config"),
                      log=values.get("--log"), log_format=values.get("--log-format", "text"),
                      root=values.get("--root"), version=version)


class SubArgs:
    """A subcommand's args split into options (name, value, token span) and positionals."""

    __slots__ = ("options", "positionals", "tail")

    def __init__(self, options, positionals, tail):
        self.options = options          # (name, value, start, end) per option
        self.positionals = positionals  # indices into the args
        self.tail = tail                # where the command's own argv starts (exec), else len

    def value(self, *names: str) -> str | None:
        """The value of the last option among ``names`` (`-b x`, `-b=x`, `--bundle x`)."""
        found = None
        for name, value, _, _ in self.options:
            if name in names:
                found = value
        return found

    def has(self, *names: str) -> bool:
        return any(name in names for name, _, _, _ in self.options)


def split_args(args: tuple[str, ...] | list[str], value_flags: frozenset[str],
               stop_at_command: bool = False) -> SubArgs:
    """Split a subcommand's args. With ``stop_at_command`` (exec), everything after the
    container id is the command's own argv, as runc reads it."""
    options: list[tuple[str, str | None, int, int]] = []
    positionals: list[int] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            positionals.extend(range(i + 1, len(args)))
            i = len(args)
            break
        if token.startswith("-") and token != "-":
            name = _flag_name(token)
            if "=" in token:
                options.append((name, token.split("=", 1)[1], i, i + 1))
            elif name in value_flags:
                if i + 1 >= len(args):
                    from iron.oci.errors import IronError
                    raise IronError("flag needs a value", field=token, expected="a value after it")
                options.append((name, args[i + 1], i, i + 2))
                i += 1
            else:
                options.append((name, None, i, i + 1))
        else:
            positionals.append(i)
            if stop_at_command:
                return SubArgs(tuple(options), tuple(positionals), i + 1)
        i += 1
    return SubArgs(tuple(options), tuple(positionals), len(args))
