"""``SqlInbox``: the durable inbox of ``SqlStore`` (its mixin): Slack message events stored before Slack is
acknowledged, each once by its event id, processed and marked done, replayed when not done in time.

A row is written by the replica that received the event, claimed by it until ``claimed_until`` (the grace period,
renewed while it is handling the event); a row still not done after its claim ran out is claimed by whichever
replica asks first (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers),
for a lease, one more attempt counted. The words of the message (``text``) are blanked when the row is done; done
rows go with retention.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, func, select, update

from bot.store.base import InboxEntry
from bot.store.schema import inbox
from bot.store.sql_base import SqlParts


def envelope(entry: InboxEntry) -> str:
    """The ids of an entry as the ``envelope`` column keeps them (JSON)."""
    return json.dumps({"thread_ts": entry.thread_ts, "user": entry.user, "user_team": entry.user_team,
                       "bot_user_id": entry.bot_user_id, "file_ids": list(entry.file_ids)}, separators=(",", ":"))


def inbox_entry(row: RowMapping) -> InboxEntry:
    """A row back to its entry."""
    ids: dict[str, Any] = json.loads(row["envelope"])
    return InboxEntry(
        event_id=row["event_id"], team=row["team"], channel=row["channel"], ts=row["ts"], user=str(ids.get("user")
        or ""), text=row["text"] or "", thread_ts=ids.get("thread_ts"), file_ids=tuple(ids.get("file_ids") or ()),
        user_team=str(ids.get("user_team") or ""), bot_user_id=str(ids.get("bot_user_id") or ""),
        received_at=row["received_at"], attempts=row["attempts"],
    )


class SqlInbox(SqlParts):
    """The inbox's half of ``SqlStore`` (see the module docstring)."""

    async def add_inbox(self, entry: InboxEntry, *, owner: str, hold_until: float) -> bool:
        """Store the event unless its id is stored already (Slack's retry, or a copy another replica took)."""
        [added] = await self.add_inbox_batch([entry], owner=owner, hold_until=hold_until)
        return added

    async def add_inbox_batch(self, entries: Sequence[InboxEntry], *, owner: str, hold_until: float) -> list[bool]:
        """Store several events in one statement (``INSERT ... ON CONFLICT DO NOTHING RETURNING``): for each, whether
        it was new (an id twice in ``entries`` is new once, the first time)."""
        if not entries:
            return []
        rows = {e.event_id: {
            "event_id": e.event_id, "team": e.team, "channel": e.channel, "ts": e.ts, "envelope": envelope(e),
            "text": e.text, "received_at": e.received_at, "claimed_by": owner, "claimed_until": hold_until,
            "attempts": 0} for e in reversed(entries)}  # the first of an id wins
        stmt = (self._insert(inbox).values(list(rows.values())).on_conflict_do_nothing(index_elements=["event_id"])
                .returning(inbox.c.event_id))
        async with self._write(urgent=True) as conn:  # Slack's acknowledgement waits for it
            added = {row.event_id for row in await conn.execute(stmt)}
        first: set[str] = set()
        result = []
        for e in entries:
            result.append(e.event_id in added and e.event_id not in first)
            first.add(e.event_id)
        return result

    async def finish_inbox(self, event_id: str, *, now: float) -> bool:
        """Mark the event processed and forget its words; False when it was done already (or is unknown)."""
        async with self._write() as conn:
            done = await conn.execute(update(inbox).where(inbox.c.event_id == event_id, inbox.c.done_at.is_(None))
                                      .values(done_at=now, text=None, claimed_by=None))
            return done.rowcount == 1

    async def renew_inbox(self, event_ids: Sequence[str], *, owner: str, until: float) -> int:
        """Extend ``owner``'s claim on the events it is still handling; returns how many it still holds."""
        if not event_ids:
            return 0
        async with self._write() as conn:
            kept = await conn.execute(update(inbox).where(
                inbox.c.event_id.in_(sorted(set(event_ids))), inbox.c.claimed_by == owner, inbox.c.done_at.is_(None),
            ).values(claimed_until=until))
            return int(kept.rowcount)

    async def claim_inbox(self, *, owner: str, now: float, lease_seconds: float, limit: int = 20) -> list[InboxEntry]:
        """Take up to ``limit`` events not done whose claim expired, oldest first, for ``lease_seconds``."""
        due = (select(inbox.c.event_id).where(inbox.c.done_at.is_(None), inbox.c.claimed_until < now)
               .order_by(inbox.c.received_at, inbox.c.event_id).limit(limit))
        if not self._sqlite:
            due = due.with_for_update(skip_locked=True)
        async with self._write() as conn:
            ids = [row.event_id for row in await conn.execute(due)]
            if not ids:
                return []
            await conn.execute(update(inbox).where(inbox.c.event_id.in_(ids)).values(
                claimed_by=owner, claimed_until=now + lease_seconds, attempts=inbox.c.attempts + 1))
            rows = (await conn.execute(select(inbox).where(inbox.c.event_id.in_(ids))
                                       .order_by(inbox.c.received_at, inbox.c.event_id))).mappings().all()
        return [inbox_entry(row) for row in rows]

    async def inbox_waiting(self) -> int:
        """Events stored and not processed yet."""
        async with self._read() as conn:
            return int((await conn.execute(select(func.count()).where(inbox.c.done_at.is_(None)))).scalar_one())

    async def get_inbox(self, event_id: str) -> tuple[InboxEntry, float | None] | None:
        """One event and when it was done (None: not yet), or None when unknown (for checks and tests)."""
        async with self._read() as conn:
            row = (await conn.execute(select(inbox).where(inbox.c.event_id == event_id))).mappings().first()
        return None if row is None else (inbox_entry(row), row["done_at"])

