"""API keys: ``ds_<id>_<secret>``, printed once by ``datastory api-key create``; the store keeps only the id and
the SHA-256 of the secret part, and a presented key is compared in constant time.

The secret is 256 bits from :mod:`secrets`, so a plain SHA-256 (no salt, no slow hash) is enough: there is no
dictionary to guess from, and a fast hash keeps the check off the request's latency.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from bot.store.sessions import ApiKeyRecord, SessionStore

PREFIX = "ds_"
_SHAPE = re.compile(r"^ds_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: the full key (shown once) and what is stored."""

    key: str
    record: ApiKeyRecord


def make_key(name: str, *, now: float) -> NewKey:
    """A new key named ``name``: a 48-bit public id and a 256-bit secret."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return NewKey(key=f"{PREFIX}{key_id}_{secret}",
                  record=ApiKeyRecord(id=key_id, name=name, secret_sha256=_digest(secret), created_at=now))


def key_id_of(key: str) -> str | None:
    """The public id of a well-formed key, or None."""
    match = _SHAPE.match(key)
    return match.group(1) if match else None


async def verify(store: SessionStore, presented: str) -> ApiKeyRecord | None:
    """The live key ``presented`` is, or None (malformed, unknown, revoked or wrong secret)."""
    match = _SHAPE.match(presented.strip())
    if match is None:
        return None
    record = await store.get_api_key(match.group(1))
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(_digest(match.group(2)), record.secret_sha256):
        return None
    return record
