"""What a layer changed, and why: feeds the audit log, `iron explain` and the property tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Decision:
    layer: str          # "process", "syscall", "filesystem", "network", "mode"
    field: str          # dotted spec path, e.g. "linux.resources.memory.limit"
    before: Any
    after: Any
    reason: str

    def to_json(self) -> dict:
        return {"layer": self.layer, "field": self.field, "before": self.before,
                "after": self.after, "reason": self.reason}
