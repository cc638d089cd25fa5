"""iron.oci: pure functions over the OCI runtime spec, one modifier per isolation layer.

Nothing in this package touches the host except ``bundle`` (file I/O) and
``profile`` (reading profile files). Every modifier has the shape
``apply(spec, section, ctx) -> (spec, decisions)`` and never mutates its input.
"""
