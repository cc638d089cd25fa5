"""Validate a config.json against the OCI runtime-spec schema (v1.3.0, kept in tests/data)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent / "data" / "oci-runtime-spec-schema"
_BASE = "file:///oci-schema/"


@functools.cache
def _validator():
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    def load(path: Path) -> dict:
        return json.loads(path.read_text())

    registry = Registry().with_resources(
        (_BASE + p.name, Resource.from_contents(load(p), default_specification=DRAFT4))
        for p in SCHEMAS.glob("*.json"))
    schema = {**load(SCHEMAS / "config-schema.json"), "id": _BASE + "config-schema.json"}
    return jsonschema.Draft4Validator(schema, registry=registry)


def validate_config(spec: dict) -> None:
    """Raise jsonschema.ValidationError naming the first path where ``spec`` breaks the schema."""
    _validator().validate(spec)


def example(name: str = "minimal.json") -> dict:
    return json.loads((SCHEMAS / "examples" / name).read_text())
