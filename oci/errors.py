"""One error type for everything a user can get wrong or a host can lack."""

from __future__ import annotations


class IronError(Exception):
    """A clean, one-line failure: names the file, the field and what was expected.

    ``str()`` renders in crun's style, the bad value in backticks, e.g.
    ``/b/config.json: linux.resources.memory.limit: expected an integer, got `"2G"```.
    """

    def __init__(self, what: str, *, file: str | None = None, field: str | None = None,
                 expected: str | None = None, got: object = None, hint: str | None = None):
        self.what = what
        self.file = file
        self.field = field
        self.expected = expected
        self.got = got
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.file, self.field) if p)
        msg = f"{where}: {self.what}" if where else self.what
        if self.expected is not None:
            msg += f" (expected {self.expected}"
            msg += f", got `{_short(self.got)}`)" if self.got is not None else ")"
        if self.hint:
            msg += f"; {self.hint}"
        return msg.replace("\n", " ")

    def within(self, file: str) -> "IronError":
        """The same error, attributed to ``file`` when it had no file yet."""
        if self.file is None:
            self.file = file
        return self


class Refused(IronError):
    """The request is well-formed but iron will not run it in this mode (policy refusal)."""


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
