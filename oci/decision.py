"""What a layer changed, and why: feeds the audit log, `iron explain` and the property tests."""

from __future__ import annotations


class Decision:
    __slots__ = ("layer", "field", "before", "after", "reason")

    def __init__(self, layer: str, field: str, before, after, reason: str):
        self.layer = layer      # "process", "syscall", "filesystem", "network", "mode"
        self.field = field      # dotted spec path, e.g. "linux.resources.memory.limit"
        self.before = before
        self.after = after
        self.reason = reason

    def __eq__(self, other):
        return type(other) is Decision and self.to_json() == other.to_json()

    def __repr__(self):
        return "Decision(" + ", ".join(f"{k}={v!r}" for k, v in self.to_json().items()) + ")"

    def to_json(self) -> dict:
        return {"layer": self.layer, "field": self.field, "before": self.before,
                "after": self.after, "reason": self.reason}
