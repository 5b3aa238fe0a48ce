"""API keys: ``ds_<id>_<secret>``, printed once by ``datastory api-key create``; the store keeps only the id and
the SHA-256 of the secret part, and a presented key is compared in constant time.

The secret is 256 bits from :mod:`secrets`, so a plain SHA-256 (no salt, no slow hash) is enough: there is no
dictionary to guess from, and a fast hash keeps the check off the request's latency.

A live key's row is kept in memory for :data:`CACHE_SECONDS` (:class:`KeyCache`), so a client's calls in a burst
read it once; the secret is still compared on every call, and a key revoked (by ``datastory api-key revoke``, any
process) is refused by every replica within those seconds. Only a live key presented with its secret is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.store.sessions import ApiKeyRecord, SessionStore

PREFIX = "ds_"
CACHE_SECONDS = 5.0
"""How long a live key's row is used without reading it again: a revocation is honoured within this time."""
CACHE_SIZE = 10_000
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


def _live(record: ApiKeyRecord | None, secret: str) -> ApiKeyRecord | None:
    """``record`` when it is live and ``secret`` is its secret (compared in constant time), else None."""
    if record is None or record.revoked_at is not None:
        return None
    return record if hmac.compare_digest(_digest(secret), record.secret_sha256) else None


async def verify(store: SessionStore, presented: str) -> ApiKeyRecord | None:
    """The live key ``presented`` is, or None (malformed, unknown, revoked or wrong secret)."""
    match = _SHAPE.match(presented.strip())
    return None if match is None else _live(await store.get_api_key(match.group(1)), match.group(2))


class KeyCache:
    """:func:`verify` with each live key's row kept for :data:`CACHE_SECONDS` (see the module docstring)."""

    def __init__(self, store: SessionStore, *, seconds: float = CACHE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._seconds = seconds
        self._monotonic = monotonic
        self._rows: dict[str, tuple[ApiKeyRecord, float]] = {}
        """Key id → its row and when it was read (``monotonic``)."""

    async def verify(self, presented: str) -> ApiKeyRecord | None:
        """The live key ``presented`` is, or None (malformed, unknown, revoked or wrong secret)."""
        match = _SHAPE.match(presented.strip())
        if match is None:
            return None
        key_id, now = match.group(1), self._monotonic()
        kept = self._rows.get(key_id)
        if kept is not None and now - kept[1] < self._seconds:
            return _live(kept[0], match.group(2))
        self._rows.pop(key_id, None)
        record = _live(await self._store.get_api_key(key_id), match.group(2))
        if record is not None:
            if len(self._rows) >= CACHE_SIZE:
                self._rows.clear()
            self._rows[key_id] = (record, now)
        return record

    def used(self, key_id: str, at: float) -> None:
        """The key's ``last_used_at`` was just stored as ``at``."""
        if (kept := self._rows.get(key_id)) is not None:
            self._rows[key_id] = (replace(kept[0], last_used_at=at), kept[1])
