"""The store's statements about load: how much is waiting, how long a turn takes, and turns that waited too long.

Plain SQLAlchemy Core on a connection the caller opened (``SqlStore`` runs each in one transaction), kept apart from
``bot.store.sql`` like :mod:`bot.store.housekeeping`. What the fairness rules of :mod:`bot.admission` and the
overdue job (:mod:`bot.jobs.overdue`) ask:

* :func:`pending`: queued plus running turns of one person, of one channel and in all (one indexed scan of the
  unfinished turns, which the caps keep small).
* :func:`typical_seconds`: the mean duration of the turns that finished recently (the "try again in N minutes").
* :func:`expire_waiting`: queued turns created before a cut-off end as failed, each in a conditional update, so a
  turn a worker started in the meantime is left alone; returns the ones that ended.
"""

from __future__ import annotations

from sqlalchemy import case, func, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.base import Pending
from bot.store.schema import turns

UNFINISHED = ("queued", "running")
RECENT_TURNS = 50
"""Finished turns the typical duration is the mean of."""


async def pending(conn: AsyncConnection, *, team: str, user: str, channel: str) -> Pending:
    """Unfinished turns of ``user`` (in ``team``), of ``channel`` and in all."""
    mine = case(((turns.c.team == team) & (turns.c.user_id == user), 1), else_=0)
    here = case(((turns.c.team == team) & (turns.c.channel == channel), 1), else_=0)
    row = (await conn.execute(
        select(func.coalesce(func.sum(mine), 0), func.coalesce(func.sum(here), 0), func.count())
        .where(turns.c.status.in_(UNFINISHED))
    )).one()
    return Pending(user=int(row[0]), channel=int(row[1]), total=int(row[2]))


async def typical_seconds(conn: AsyncConnection, *, since: float) -> float | None:
    """Mean duration of the last :data:`RECENT_TURNS` turns that finished after ``since`` (None: none did)."""
    recent = (select((turns.c.finished_at - turns.c.started_at).label("took"))
              .where(turns.c.status == "done", turns.c.finished_at >= since, turns.c.started_at.is_not(None))
              .order_by(turns.c.finished_at.desc()).limit(RECENT_TURNS).subquery())
    value = (await conn.execute(select(func.avg(recent.c.took)))).scalar_one()
    return None if value is None else float(value)


async def expire_waiting(conn: AsyncConnection, *, before: float, now: float, error: str) -> list[RowMapping]:
    """End, as failed with ``error``, every turn still queued that was created before ``before``."""
    rows = (await conn.execute(select(turns).where(turns.c.status == "queued", turns.c.created_at < before)
                               .order_by(turns.c.created_at))).mappings().all()
    ended = []
    for row in rows:
        result = await conn.execute(update(turns).where(turns.c.id == row["id"], turns.c.status == "queued")
                                    .values(status="failed", finished_at=now, error=error))
        if result.rowcount:
            ended.append(row)
    return ended
