"""sha256 without hashlib's import of OpenSSL (~5 ms of every create that needs a digest)."""

from __future__ import annotations


def sha256_hex(data: bytes) -> str:
    try:
        from _sha256 import sha256      # CPython 3.11's built-in implementation
    except ImportError:
        from hashlib import sha256
    return sha256(data).hexdigest()
