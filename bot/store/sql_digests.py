"""``SqlDigests``: scheduled digests and what their runs cost, of ``SqlStore`` (its mixin)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, literal, select, update

from bot.store.base import DigestRecord, DigestStatus
from bot.store.schema import digest_runs, digests
from bot.store.sql_base import SqlParts
from bot.store.sql_rows import digest_record


class SqlDigests(SqlParts):
    """Digests (``bot.store.base.DigestStore``)."""

    async def add_digest(self, digest: DigestRecord) -> None:
        """Store a new digest."""
        async with self._write() as conn:
            await conn.execute(insert(digests).values(
                id=digest.id, team=digest.key.team, channel=digest.key.channel, thread_ts=digest.key.thread_ts,
                owner=digest.owner, question=digest.question, cron=digest.cron, tz=digest.tz, label=digest.label,
                created_at=digest.created_at, next_run_at=digest.next_run_at, status=digest.status,
                skip_unchanged=int(digest.skip_unchanged), last_run_at=digest.last_run_at,
                last_outcome=digest.last_outcome, last_hash=digest.last_hash, last_data_at=digest.last_data_at,
                failures=digest.failures,
            ))

    async def get_digest(self, digest_id: str) -> DigestRecord | None:
        """One digest by id."""
        async with self._read() as conn:
            row = (await conn.execute(select(digests).where(digests.c.id == digest_id))).mappings().first()
        return digest_record(row) if row else None

    async def list_digests(self, *, team: str | None = None, channel: str | None = None) -> list[DigestRecord]:
        """Digests that are not cancelled, by next run."""
        query = select(digests).where(digests.c.status != "cancelled")
        if team is not None:
            query = query.where(digests.c.team == team)
        if channel is not None:
            query = query.where(digests.c.channel == channel)
        async with self._read() as conn:
            rows = (await conn.execute(query.order_by(digests.c.next_run_at, digests.c.id))).mappings().all()
        return [digest_record(row) for row in rows]

    async def due_digests(self, now: float) -> list[DigestRecord]:
        """Active digests due at or before ``now``, oldest due first."""
        query = (select(digests).where(digests.c.status == "active", digests.c.next_run_at <= now)
                 .order_by(digests.c.next_run_at, digests.c.id))
        async with self._read() as conn:
            return [digest_record(row) for row in (await conn.execute(query)).mappings().all()]

    async def claim_digest(self, digest_id: str, *, due_at: float, next_run_at: float, now: float) -> bool:
        """``UPDATE ... WHERE next_run_at = due_at AND status = 'active'``: the first replica's update matches."""
        async with self._write() as conn:
            result = await conn.execute(update(digests).where(
                digests.c.id == digest_id, digests.c.next_run_at == due_at, digests.c.status == "active",
            ).values(next_run_at=next_run_at, last_run_at=now))
            return result.rowcount == 1

    async def finish_digest_run(
        self, digest_id: str, *, now: float, outcome: str, content_hash: str | None, data_changed_at: float | None,
        failures: int, status: DigestStatus, cost_usd: float | None = None,
    ) -> None:
        """Record a run's outcome, and what it cost in ``digest_runs``."""
        values: dict[str, Any] = {"last_outcome": outcome, "failures": failures, "last_run_at": now}
        if content_hash is not None:
            values["last_hash"] = content_hash
        if data_changed_at is not None:
            values["last_data_at"] = data_changed_at
        async with self._write() as conn:
            await conn.execute(update(digests).where(digests.c.id == digest_id, digests.c.status != "cancelled")
                               .values(status=status, **values))
            if cost_usd:
                source = select(digests.c.id, digests.c.channel, digests.c.owner, literal(now), literal(cost_usd)
                                ).where(digests.c.id == digest_id)
                await conn.execute(insert(digest_runs).from_select(
                    ["digest_id", "channel", "owner", "ran_at", "cost_usd"], source))

    async def cancel_digest(self, digest_id: str) -> bool:
        """Cancel a digest that is active or paused."""
        async with self._write() as conn:
            result = await conn.execute(update(digests).where(
                digests.c.id == digest_id, digests.c.status != "cancelled").values(status="cancelled"))
            return result.rowcount == 1
