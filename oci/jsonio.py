"""JSON through the C accelerator directly.

The json package imports re (and enum, functools, …): about 10 ms of every create on a
small VM, more than iron's own work in minimal mode. The C scanner and encoder it wraps
need none of that. Anything the fast path does not accept goes to the json package, so
errors (a ValueError) read exactly as json's.
"""

from __future__ import annotations

_SPACE = " \t\n\r"


class _Settings:
    """What the C scanner reads: json.JSONDecoder's defaults."""
    strict = True
    object_hook = object_pairs_hook = None
    parse_float = parse_constant = float
    parse_int = int
    memo: dict = {}


def loads(data: str | bytes):
    from _json import make_scanner
    try:
        text = data.decode() if isinstance(data, bytes) else data
        start = len(text) - len(text.lstrip(_SPACE))
        value, end = make_scanner(_Settings)(text, start)
        if not text[end:].strip(_SPACE):
            return value
    except Exception:                             # noqa: BLE001 - json.loads below says what
        pass
    import json
    return json.loads(data)


def _unencodable(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value, default=_unencodable, compact: bool = False, sort_keys: bool = False) -> str:
    """json.dumps(value) on one line (``compact``: no spaces); NaN and infinities are refused.
    ``default`` turns what JSON cannot hold into something it can, as json's does."""
    from _json import encode_basestring_ascii, make_encoder
    colon, comma = (":", ",") if compact else (": ", ", ")
    encode = make_encoder(None, default, encode_basestring_ascii, None, colon, comma, sort_keys, False, False)
    return "".join(encode(value, 0))


def copy_tree(value):
    """A deep copy of parsed JSON (dicts, lists, scalars): copy.deepcopy without its memo."""
    kind = type(value)
    if kind is dict:
        return {key: copy_tree(item) for key, item in value.items()}
    if kind is list:
        return [copy_tree(item) for item in value]
    return value
