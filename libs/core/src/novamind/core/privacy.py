"""Pseudonymisation of patient identifiers (keyed hash).

A pseudonym is stable for one key, so events, logs and metrics about the same patient can be
correlated, and it cannot be reversed or recomputed without the key (HMAC-SHA256, RFC 2104).
"""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_PREFIX = "pt_"


def pseudonymise(identifier: str, key: bytes | str) -> str:
    """The pseudonym of ``identifier``: ``pt_`` + 20 hex digits of HMAC-SHA256 under ``key``.

    Already-pseudonymised values are returned unchanged, so applying it twice is harmless.
    """
    if is_pseudonym(identifier):
        return identifier
    raw_key = key.encode() if isinstance(key, str) else key
    digest = hmac.new(raw_key, identifier.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:20]


def is_pseudonym(value: str) -> bool:
    """Whether ``value`` has the shape of a pseudonym produced by :func:`pseudonymise`."""
    body = value[len(PSEUDONYM_PREFIX) :]
    return (
        value.startswith(PSEUDONYM_PREFIX) and len(body) == 20 and all(c in "0123456789abcdef" for c in body)
    )
