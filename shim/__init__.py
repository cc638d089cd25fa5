"""iron.shim: the runtime CLI. runc's argv in, crun's argv out; iron's own commands beside it."""

__version__ = "0.1.0"
