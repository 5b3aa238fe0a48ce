"""``SqlStore``: the ``Store`` protocol on SQLAlchemy Core over an async engine, for SQLite and PostgreSQL.

User-facing URLs (``sqlite:///PATH``, ``postgresql://...``, ``postgres://...``) are mapped to the async drivers
(aiosqlite, asyncpg). Every method is one statement or one transaction; the ones that must be safe when replicas
race (``claim``, ``submit_turn``) rely on ``INSERT ... ON CONFLICT DO NOTHING`` and its row count, never on a read
followed by a write.

SQLite runs in WAL mode with a busy timeout and foreign keys on; write transactions start with ``BEGIN IMMEDIATE``
so two processes never deadlock on a lock upgrade, and writes from one process are serialised by an asyncio lock
(``:memory:`` databases share one connection, so there every access is serialised).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Table, case, delete, event, func, insert, literal, select, text, update
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from bot.store import housekeeping, load, revisions, sqlite_driver
from bot.store.base import (
    DigestRecord,
    DigestStatus,
    FileRecord,
    NewTurn,
    Pending,
    Removed,
    ThreadKey,
    ThreadRecord,
    ThreadStatus,
    TurnOutcomeRecord,
    TurnRecord,
    TurnStatus,
)
from bot.store.revisions import SchemaNotAtHead, SchemaState
from bot.store.schema import dedupe, digest_runs, digests, files, threads, turns
from bot.store.sql_queue import SqlQueue
from bot.store.sql_rows import (
    digest_record,
    file_record,
    file_row,
    key_of,
    thread_is,
    thread_record,
    turn_record,
    turn_row,
    unique_files,
)
from bot.store.sql_sessions import SessionRows

logger = logging.getLogger(__name__)

SQLITE_DRIVER: Final = "sqlite+aiosqlite"
POSTGRES_DRIVER: Final = "postgresql+asyncpg"
_SQLITE_SCHEMES: Final = frozenset({"sqlite", "sqlite+aiosqlite"})
_POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg"})
_MIGRATION_LOCK_ID: Final = 0x6461746173746F72  # "datastor": the advisory lock replicas migrate under
_BEGIN_OPTION: Final = "datastory_sqlite_begin"
_UNFINISHED: Final = ("queued", "running")

_Insert = sqlite.Insert | pg.Insert


class _Duplicate(Exception):
    """Raised inside ``submit_turn``'s transaction to roll it back."""


def async_url(url: str) -> URL:
    """Map a user-facing database URL to its async driver; ``ValueError`` (without the URL) when unsupported."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "DATASTORY_DATABASE_URL is not a database URL; use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None
    scheme = parsed.drivername.lower()
    if scheme in _SQLITE_SCHEMES:
        return parsed.set(drivername=SQLITE_DRIVER)
    if scheme in _POSTGRES_SCHEMES:
        query = dict(parsed.query)
        if "sslmode" in query and "ssl" not in query:  # libpq spelling; asyncpg takes ``ssl`` with the same values
            query["ssl"] = query.pop("sslmode")
        return parsed.set(drivername=POSTGRES_DRIVER, query=query)
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}; use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def describe_url(url: URL) -> str:
    """A loggable description of a database URL: backend, host and database, never the user or password."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite:{url.database or ':memory:'}"
    return f"{url.get_backend_name()}://{url.host or ''}{f':{url.port}' if url.port else ''}/{url.database or ''}"


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class SqlStore(SqlQueue, SessionRows):
    """The store on SQLite (default, one process) or PostgreSQL (several replicas)."""

    def __init__(self, *, url: str, echo: bool = False, migrate: bool = True) -> None:
        self._url = async_url(url)
        self._echo = echo
        self._migrate_at_open = migrate
        self._sqlite = self._url.get_backend_name() == "sqlite"
        self._memory = _is_memory(self._url)
        self._engine: AsyncEngine | None = None
        self._write_lock = asyncio.Lock()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._url.get_backend_name()

    def __repr__(self) -> str:
        return f"SqlStore({describe_url(self._url)})"

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and bring the schema to this code's head revision (idempotent; safe when replicas start together).

        With ``migrate=False`` nothing is changed: a database behind the head raises ``SchemaNotAtHead``.
        """
        if self._engine is None:
            self._engine = self._create_engine()
        try:
            if self._migrate_at_open:
                _before, revision = await self.migrate()
            else:
                found = await self.schema_state()
                if not (found.at_head or found.newer):
                    raise SchemaNotAtHead(found.current, found.head)
                revision = found.current or ""
        except BaseException:
            await self.close()
            raise
        logger.info("store open db=%s schema_revision=%s", describe_url(self._url), revision)

    async def close(self) -> None:
        """Dispose of the connection pool; ``open()`` may be called again afterwards."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def ping(self, *, timeout: float = 5.0) -> bool:
        """True when the database answers ``SELECT 1`` within ``timeout`` seconds."""
        if self._engine is None:
            return False
        try:
            async with asyncio.timeout(timeout), self._read() as conn:
                return bool((await conn.execute(text("SELECT 1"))).scalar_one() == 1)
        except Exception as exc:  # a health check reports, it does not raise
            logger.warning("store ping failed db=%s error=%s", describe_url(self._url), type(exc).__name__)
            return False

    def _create_engine(self) -> AsyncEngine:
        url = self._url
        if not self._sqlite:
            return create_async_engine(url, echo=self._echo, pool_pre_ping=True)
        if self._memory:
            url = url.set(database=":memory:")
        else:
            database = url.database or ""
            if not database.startswith("file:"):
                path = Path(database).expanduser().resolve()
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                # The bot's own file: 0600 whatever the umask (SQLite gives its -wal and -shm the same mode).
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
                url = url.set(database=str(path))
        # sqlite3.connect's arguments as the aiosqlite dialect makes them, for a driver taking one trip to the
        # connection's thread per statement (bot.store.sqlite_driver); creating an engine connects nothing
        args, kwargs = create_async_engine(url).dialect.create_connect_args(url)
        pool = {"poolclass": StaticPool} if self._memory else {}
        engine = create_async_engine(url, echo=self._echo, async_creator=sqlite_driver.connector(args, kwargs),
                                     **pool)
        _configure_sqlite(engine)
        return engine

    async def schema_state(self) -> SchemaState:
        """Where the database's schema stands against this code's head revision (reads only)."""
        if self._engine is None:
            self._engine = self._create_engine()
        await asyncio.to_thread(revisions.script_directory)  # revision files are read off the event loop
        async with self._read() as conn:
            return await conn.run_sync(revisions.state)

    async def migrate(self) -> tuple[SchemaState, str]:
        """Upgrade to the head revision under the migration lock; returns the state before and the revision after.

        One transaction holds the lock (``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on
        PostgreSQL) for the adoption of a pre-Alembic database and every revision applied, so replicas starting
        together migrate once and a failed revision leaves the database as it was.
        """
        if self._engine is None:
            self._engine = self._create_engine()
        await asyncio.to_thread(revisions.script_directory)
        async with self._write() as conn:
            if not self._sqlite:
                await conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_ID)))
            return await conn.run_sync(revisions.upgrade)

    # -- transactions ----------------------------------------------------------------------------------------

    def _require(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the store is not open; call open() first")
        return self._engine

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success, rolled back on error."""
        engine = self._require()
        async with self._write_lock if self._sqlite else nullcontext(), engine.connect() as conn:
            if self._sqlite:
                await conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with conn.begin():
                yield conn

    def _read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        if self._memory:
            return self._serialised_read()
        return self._require().connect()

    @asynccontextmanager
    async def _serialised_read(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock, self._require().connect() as conn:
            yield conn

    def _insert(self, table: Table) -> _Insert:
        return sqlite.insert(table) if self._sqlite else pg.insert(table)

    # -- dedupe ----------------------------------------------------------------------------------------------

    async def claim(self, key: str, *, now: float) -> bool:
        """Insert a dedupe key; True for the one caller (of any replica) that inserted it."""
        stmt = self._insert(dedupe).values(key=key, created_at=now).on_conflict_do_nothing(index_elements=["key"])
        async with self._write() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def prune_dedupe(self, before: float) -> int:
        """Delete dedupe keys created before ``before``; returns how many."""
        async with self._write() as conn:
            return (await conn.execute(delete(dedupe).where(dedupe.c.created_at < before))).rowcount

    # -- turns submission ------------------------------------------------------------------------------------

    async def submit_turn(self, turn: NewTurn, *, dedupe_keys: tuple[str, ...], holder: str | None = None,
                          hold_until: float | None = None) -> bool:
        """Claim every key, upsert the thread and the files, add the queued turn: all or nothing.

        The files are recorded under ``turn.key``. A file the thread already has (same Slack id) is updated
        (name, size, types, URL, message, user; facts when given) and keeps its upload state and ``created_at``.
        A duplicate key, or a turn id that exists already, returns False and writes nothing. With ``holder``, the
        turn is stored leased to it until ``hold_until`` (the accepting replica greets it before anyone runs it).
        """
        try:
            async with self._write() as conn:
                await self._claim_all(conn, dedupe_keys, turn.created_at)
                await self._upsert_thread(conn, turn.key, turn.created_at)
                for record in sorted(unique_files(turn.files), key=lambda f: f.slack_file_id):
                    await self._upsert_file(conn, turn.key, record)
                row = turn_row(turn) | {"lease_owner": holder, "lease_expires_at": hold_until if holder else None}
                added = await conn.execute(
                    self._insert(turns).values(**row).on_conflict_do_nothing(index_elements=["id"])
                )
                if added.rowcount != 1:
                    raise _Duplicate
        except _Duplicate:
            logger.info("duplicate turn not stored turn=%s thread=%s", turn.id, turn.key)
            return False
        return True

    async def _claim_all(self, conn: AsyncConnection, keys: Sequence[str], now: float) -> None:
        unique = sorted(set(keys))  # one order for every replica: no deadlock between overlapping key sets
        if not unique:
            return
        stmt = self._insert(dedupe).values([{"key": k, "created_at": now} for k in unique])
        result = await conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
        if result.rowcount != len(unique):
            raise _Duplicate

    async def _upsert_thread(self, conn: AsyncConnection, key: ThreadKey, now: float) -> None:
        stmt = self._insert(threads).values(
            team=key.team, channel=key.channel, thread_ts=key.thread_ts, status="new", created_at=now,
            last_active_at=now,
        )
        later = case((threads.c.last_active_at < stmt.excluded.last_active_at, stmt.excluded.last_active_at),
                     else_=threads.c.last_active_at)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[threads.c.team, threads.c.channel, threads.c.thread_ts],
            set_={"last_active_at": later},
        ))

    async def _upsert_file(self, conn: AsyncConnection, key: ThreadKey, record: FileRecord) -> None:
        stmt = self._insert(files).values(**file_row(key, record))
        new = stmt.excluded
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[files.c.team, files.c.channel, files.c.thread_ts, files.c.slack_file_id],
            set_={
                "name": new.name, "size": new.size, "mimetype": new.mimetype, "filetype": new.filetype,
                "download_url": new.download_url, "message_ts": new.message_ts, "user_id": new.user_id,
                "facts": case((new.facts != "", new.facts), else_=files.c.facts),
            },
        ))

    # -- threads ---------------------------------------------------------------------------------------------

    async def get_thread(self, key: ThreadKey) -> ThreadRecord | None:
        """The thread, or None."""
        async with self._read() as conn:
            row = (await conn.execute(select(threads).where(*thread_is(threads, key)))).first()
        return None if row is None else thread_record(row._mapping)

    async def list_threads(self, *, team: str | None = None) -> list[ThreadRecord]:
        """Every thread (of one team when given), oldest first."""
        stmt = select(threads).order_by(threads.c.created_at, threads.c.team, threads.c.channel, threads.c.thread_ts)
        if team is not None:
            stmt = stmt.where(threads.c.team == team)
        async with self._read() as conn:
            return [thread_record(row._mapping) for row in await conn.execute(stmt)]

    async def pending_turns(self, *, team: str, user: str, channel: str) -> Pending:
        """Unfinished turns of a person, a channel and in all (:func:`bot.store.load.pending`)."""
        async with self._read() as conn:
            return await load.pending(conn, team=team, user=user, channel=channel)

    async def typical_turn_seconds(self, *, since: float) -> float | None:
        """Mean duration of recent turns (:func:`bot.store.load.typical_seconds`)."""
        async with self._read() as conn:
            return await load.typical_seconds(conn, since=since)

    async def expire_waiting(self, *, before: float, now: float, error: str) -> list[TurnRecord]:
        """End the turns that waited too long (:func:`bot.store.load.expire_waiting`)."""
        async with self._write() as conn:
            return [turn_record(row) for row in await load.expire_waiting(conn, before=before, now=now, error=error)]

    async def idle_threads(self, *, before: float) -> list[ThreadRecord]:
        """Threads with a container, last active before ``before`` (an index serves it)."""
        async with self._read() as conn:
            return [thread_record(row._mapping) for row in await conn.execute(housekeeping.idle_threads(before))]

    async def threads_with_containers(self, container_ids: Sequence[str]) -> list[ThreadRecord]:
        """The threads owning one of ``container_ids``."""
        async with self._read() as conn:
            return [thread_record(row._mapping) for query in housekeeping.owners(container_ids)
                    for row in await conn.execute(query)]

    async def purge_team(self, team: str) -> Removed:
        """Delete everything of the workspace ``team`` (:func:`bot.store.housekeeping.purge_team`)."""
        async with self._write() as conn:
            return await housekeeping.purge_team(conn, team)

    async def prune(self, *, before: float) -> Removed:
        """Retention (:func:`bot.store.housekeeping.prune`)."""
        async with self._write() as conn:
            return await housekeeping.prune(conn, before)

    async def set_container(self, key: ThreadKey, *, container_id: str, name: str, backend: str, now: float) -> None:
        """Record the thread's container, mark it active, forget the response chain (creates the thread if new)."""
        values = {"container_id": container_id, "container_name": name, "backend": backend, "status": "active",
                  "last_response_id": None, "last_active_at": now}
        stmt = self._insert(threads).values(team=key.team, channel=key.channel, thread_ts=key.thread_ts,
                                            created_at=now, **values)
        async with self._write() as conn:
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[threads.c.team, threads.c.channel, threads.c.thread_ts], set_=values,
            ))

    async def clear_container(
        self, key: ThreadKey, *, status: ThreadStatus, expected_container_id: str | None = None
    ) -> bool:
        """Forget the container and the response chain; the files lose their upload state so a rebuild re-uploads.

        With ``expected_container_id`` the thread is changed only while it still has that container.
        """
        async with self._write() as conn:
            return await self._clear(conn, key, status, expected_container_id)

    async def clear_containers(self, items: list[tuple[ThreadKey, str]], *, status: ThreadStatus) -> int:
        """Clear many threads (each only while it still has the given container) in one transaction."""
        if not items:
            return 0
        async with self._write() as conn:
            return sum([await self._clear(conn, key, status, container_id) for key, container_id in items])

    async def _clear(self, conn: AsyncConnection, key: ThreadKey, status: ThreadStatus, expected: str | None) -> bool:
        where = [*thread_is(threads, key)]
        if expected is not None:
            where.append(threads.c.container_id == expected)
        changed = await conn.execute(update(threads).where(*where).values(
            container_id=None, container_name=None, last_response_id=None, status=status,
        ))
        if changed.rowcount == 0:
            return False
        await conn.execute(update(files).where(*thread_is(files, key)).values(
            container_id=None, sandbox_path=None, sandbox_file_id=None,
        ))
        return True

    async def busy_threads(self) -> set[ThreadKey]:
        """Threads that have a queued or running turn."""
        query = select(turns.c.team, turns.c.channel, turns.c.thread_ts).where(
            turns.c.status.in_(("queued", "running"))).distinct()
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {key_of(row) for row in rows}

    async def set_last_response(self, key: ThreadKey, response_id: str | None, *, now: float) -> None:
        """Remember the response to chain on and touch ``last_active_at``."""
        async with self._write() as conn:
            await conn.execute(update(threads).where(*thread_is(threads, key)).values(
                last_response_id=response_id, last_active_at=now,
            ))

    async def touch(self, key: ThreadKey, *, now: float) -> None:
        """Set ``last_active_at``."""
        async with self._write() as conn:
            await conn.execute(update(threads).where(*thread_is(threads, key)).values(last_active_at=now))

    # -- files -----------------------------------------------------------------------------------------------

    async def list_files(self, key: ThreadKey) -> list[FileRecord]:
        """The thread's files, oldest first."""
        stmt = select(files).where(*thread_is(files, key)).order_by(files.c.created_at, files.c.slack_file_id)
        async with self._read() as conn:
            return [file_record(row._mapping) for row in await conn.execute(stmt)]

    async def mark_uploaded(
        self, key: ThreadKey, slack_file_id: str, *, container_id: str, sandbox_path: str, sandbox_file_id: str,
        facts: str = "", read_options: str = "",
    ) -> None:
        """Record where the file lives now; ``facts`` and ``read_options`` replace the stored ones only when not
        empty."""
        values: dict[str, Any] = {"container_id": container_id, "sandbox_path": sandbox_path,
                                  "sandbox_file_id": sandbox_file_id}
        if facts:
            values["facts"] = facts
        if read_options:
            values["read_options"] = read_options
        async with self._write() as conn:
            await conn.execute(update(files).where(
                *thread_is(files, key), files.c.slack_file_id == slack_file_id,
            ).values(**values))

    async def mark_refused(self, key: ThreadKey, slack_file_id: str, *, turn_id: str, reason: str) -> None:
        """Record that ``turn_id`` refused the file, and why."""
        async with self._write() as conn:
            await conn.execute(update(files).where(
                *thread_is(files, key), files.c.slack_file_id == slack_file_id,
            ).values(refused_reason=reason, refused_turn=turn_id))

    # -- turns -----------------------------------------------------------------------------------------------

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        """One turn by id, or None."""
        async with self._read() as conn:
            row = (await conn.execute(select(turns).where(turns.c.id == turn_id))).first()
        return None if row is None else turn_record(row._mapping)

    async def set_status_ts(self, turn_id: str, status_ts: str) -> None:
        """Remember the ts of the turn's status reply."""
        async with self._write() as conn:
            await conn.execute(update(turns).where(turns.c.id == turn_id).values(status_ts=status_ts))

    async def start_turn(self, turn_id: str, *, now: float) -> bool:
        """Mark the turn running (again, when resumed) and set ``started_at``; False when it already ended."""
        async with self._write() as conn:
            result = await conn.execute(update(turns).where(turns.c.id == turn_id, turns.c.status.in_(_UNFINISHED))
                                        .values(status="running", started_at=now))
            return bool(result.rowcount)

    async def finish_turn(
        self, turn_id: str, *, status: TurnStatus, now: float, outcome: TurnOutcomeRecord | None = None,
        owner: str | None = None,
    ) -> bool:
        """Record the turn's outcome and free its lease; with ``owner``, only while that replica holds the lease
        of the unfinished turn (False otherwise: another replica took it over)."""
        o = outcome or TurnOutcomeRecord()
        where = [turns.c.id == turn_id]
        if owner is not None:
            where += [turns.c.lease_owner == owner, turns.c.status.in_(_UNFINISHED)]
        async with self._write() as conn:
            result = await conn.execute(update(turns).where(*where).values(
                status=status, finished_at=now, response_id=o.response_id, error=o.error,
                input_tokens=o.input_tokens, output_tokens=o.output_tokens, answer=o.answer, code=o.code,
                model=o.model, cost_usd=o.cost_usd, lease_owner=None, lease_expires_at=None,
            ))
            return result.rowcount == 1

    # -- digests ---------------------------------------------------------------------------------------------

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

    async def list_turns(self, key: ThreadKey) -> list[TurnRecord]:
        """The thread's turns, oldest first."""
        query = select(turns).where(*thread_is(turns, key)).order_by(turns.c.created_at, turns.c.id)
        async with self._read() as conn:
            return [turn_record(row) for row in (await conn.execute(query)).mappings()]

    async def spent_since(self, since: float, *, user: str | None = None, channel: str | None = None) -> float:
        """Sum of ``cost_usd`` of the turns started and digest runs finished at or after ``since``, filtered by user
        (a digest run's owner) and/or channel."""
        asked = select(func.coalesce(func.sum(turns.c.cost_usd), 0.0)).where(turns.c.started_at >= since)
        scheduled = select(func.coalesce(func.sum(digest_runs.c.cost_usd), 0.0)).where(digest_runs.c.ran_at >= since)
        if user is not None:
            asked = asked.where(turns.c.user_id == user)
            scheduled = scheduled.where(digest_runs.c.owner == user)
        if channel is not None:
            asked = asked.where(turns.c.channel == channel)
            scheduled = scheduled.where(digest_runs.c.channel == channel)
        async with self._read() as conn:
            return float((await conn.execute(select(asked.scalar_subquery() + scheduled.scalar_subquery())))
                         .scalar_one())

    async def unfinished_turns(self) -> list[TurnRecord]:
        """Queued or running turns, oldest first."""
        stmt = select(turns).where(turns.c.status.in_(_UNFINISHED)).order_by(turns.c.created_at, turns.c.id)
        async with self._read() as conn:
            return [turn_record(row._mapping) for row in await conn.execute(stmt)]


# -- SQLite connection setup ---------------------------------------------------------------------------------


def _configure_sqlite(engine: AsyncEngine) -> None:
    """Pragmas on every new connection, and explicit ``BEGIN`` so SQLAlchemy (not sqlite3) controls transactions."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver emits no BEGIN of its own
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout = 30000")
            cursor.execute("PRAGMA foreign_keys = ON")
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
            except Exception as exc:
                # Switching a new database to WAL needs it to itself, and SQLite answers "locked" at once instead
                # of waiting (replicas starting together). The lock holder is another connection that has just made
                # the database WAL, which is persistent, so this connection has nothing left to switch.
                if "locked" not in str(exc):
                    raise
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


__all__ = ["SqlStore", "async_url", "describe_url"]
