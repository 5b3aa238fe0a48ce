"""``SqlStore``: the ``Store`` protocol on SQLAlchemy Core over an async engine, for SQLite and PostgreSQL.

User-facing URLs (``sqlite:///PATH``, ``postgresql://...``, ``postgres://...``) are mapped to the async drivers
(aiosqlite, asyncpg). Every method is one statement or one transaction; the ones that must be safe when replicas
race (``claim``, ``submit_turn``) rely on ``INSERT ... ON CONFLICT DO NOTHING`` and its row count, never on a read
followed by a write.

The store is made of one mixin per concept (threads and files, turns, the queue and the ledger, digests, the
inbox, API sessions: :mod:`bot.store.sql_base`); this module has the engine, the transactions and housekeeping.

SQLite runs in WAL mode with a busy timeout and foreign keys on; write transactions start with ``BEGIN IMMEDIATE``
so two processes never deadlock on a lock upgrade, and writes from one process are serialised by an asyncio lock
(``:memory:`` databases share one connection, so there every access is serialised). A read is one ``SELECT`` in
autocommit (atomic on its own), unless it asks for a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Table, event, func, select, text
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from bot.store import housekeeping, revisions, sqlite_driver
from bot.store.base import Removed
from bot.store.revisions import SchemaNotAtHead, SchemaState
from bot.store.sql_base import Insert
from bot.store.sql_digests import SqlDigests
from bot.store.sql_inbox import SqlInbox
from bot.store.sql_queue import SqlQueue
from bot.store.sql_sessions import SessionRows
from bot.store.sql_threads import SqlThreads
from bot.store.sql_turns import SqlTurns
from bot.store.write_lock import WriteLock

logger = logging.getLogger(__name__)

SQLITE_DRIVER: Final = "sqlite+aiosqlite"
POSTGRES_DRIVER: Final = "postgresql+asyncpg"
_SQLITE_SCHEMES: Final = frozenset({"sqlite", "sqlite+aiosqlite"})
_POSTGRES_SCHEMES: Final = frozenset({"postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg"})
_MIGRATION_LOCK_ID: Final = 0x6461746173746F72  # "datastor": the advisory lock replicas migrate under
_BEGIN_OPTION: Final = "datastory_sqlite_begin"


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


class SqlStore(SqlThreads, SqlTurns, SqlQueue, SqlDigests, SqlInbox, SessionRows):
    """The store on SQLite (default, one process) or PostgreSQL (several replicas): the engine, the schema's
    revision, the transactions, and housekeeping across tables; each concept's calls are in its mixin
    (:mod:`bot.store.sql_threads`, ``sql_turns``, ``sql_queue``, ``sql_digests``, ``sql_inbox``, ``sql_sessions``)."""

    def __init__(self, *, url: str, echo: bool = False, migrate: bool = True) -> None:
        self._url = async_url(url)
        self._echo = echo
        self._migrate_at_open = migrate
        self._sqlite = self._url.get_backend_name() == "sqlite"
        self._memory = _is_memory(self._url)
        self._engine: AsyncEngine | None = None
        self._write_lock = WriteLock()

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
        async with self._read(snapshot=True) as conn:
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
    async def _write(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success, rolled back on error;
        ``urgent`` (someone waits for it: Slack's acknowledgement) goes before the other writers waiting on SQLite."""
        engine = self._require()
        async with self._write_lock.held(urgent=urgent) if self._sqlite else nullcontext(), engine.connect() as conn:
            if self._sqlite:
                await conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with conn.begin():
                yield conn

    def _read(self, *, snapshot: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection to read on. On SQLite its statements run in autocommit, each one atomic and reading the
        latest commit (a lone ``SELECT`` is its own transaction: no ``BEGIN``, no ``ROLLBACK``, one trip to the
        connection's thread); ``snapshot`` reads in one transaction instead (several statements that must agree)."""
        if not self._sqlite:
            return self._require().connect()
        return self._sqlite_read(snapshot=snapshot)

    @asynccontextmanager
    async def _sqlite_read(self, *, snapshot: bool) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock.held() if self._memory else nullcontext(), self._require().connect() as conn:
            if not snapshot:
                await conn.execution_options(**{_BEGIN_OPTION: ""})
            yield conn

    def _insert(self, table: Table) -> Insert:
        return sqlite.insert(table) if self._sqlite else pg.insert(table)

    # -- housekeeping (every table) ----------------------------------------------------------------------------

    async def purge_team(self, team: str) -> Removed:
        """Delete everything of the workspace ``team`` (:func:`bot.store.housekeeping.purge_team`)."""
        async with self._write() as conn:
            return await housekeeping.purge_team(conn, team)

    async def prune(self, *, before: float) -> Removed:
        """Retention (:func:`bot.store.housekeeping.prune`)."""
        async with self._write() as conn:
            return await housekeeping.prune(conn, before)


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
        if begin := conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"):  # "": autocommit (a read)
            conn.exec_driver_sql(begin)


__all__ = ["SqlStore", "async_url", "describe_url"]
