"""The SQLite driver under ``SqlStore``: aiosqlite with one trip to its thread per statement.

aiosqlite runs each connection's ``sqlite3`` calls on a thread of its own, and every call is a trip there and back
(a queue put, a thread wake-up, a callback on the event loop). SQLAlchemy's aiosqlite adapter makes four of them
per statement (open a cursor, execute, fetch the rows, close the cursor), so one store call of a ``BEGIN``, a
statement and a commit took about ten, and under CPU load each trip waits for the thread to be scheduled. This
connection does a statement's work in one trip: the cursor is opened, executed, read to the end and closed on the
thread, and SQLAlchemy gets a cursor holding the rows, the description, the row count and the last row id. The
statements, their order and the transactions are SQLAlchemy's, unchanged.

Two more trips per transaction are saved without changing what SQLite does. A ``BEGIN`` (``BEGIN IMMEDIATE``) is
kept until the transaction's first statement and run on the thread just before it, in that statement's trip
(nothing else runs on the connection in between, so it takes its locks at the same point of the work). And each
trip reports whether the connection is left in a transaction, so a ``COMMIT`` or ``ROLLBACK`` with no transaction
open (SQLAlchemy's rollback when a connection goes back to its pool after a commit, or after a statement run in
autocommit) costs no trip: ``sqlite3`` would do nothing there either.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import aiosqlite

Row = tuple[Any, ...]
_Outcome = tuple[Any, int, Any, list[Row]]
_BEGIN = "BEGIN"


def _run(cursor: sqlite3.Cursor, call: Callable[[], object]) -> _Outcome:
    """On the connection's thread: run the statement, read every row, close the cursor."""
    try:
        call()
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor:
    """The aiosqlite cursor API SQLAlchemy uses, over rows read on the thread in the statement's trip."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: Any = None
        self.arraysize = 1
        self._rows: deque[Row] = deque()

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _trip(self, work: Callable[[sqlite3.Cursor], Callable[[], object]]) -> OneTripCursor:
        def on_thread() -> _Outcome:
            cursor = self._connection.sqlite().cursor()
            return _run(cursor, work(cursor))

        outcome: _Outcome = await self._connection.trip(on_thread)
        description, self.rowcount, self.lastrowid, rows = outcome
        self.description = description
        self._rows = deque(rows)
        return self

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> OneTripCursor:
        """Run one statement (one trip; a ``BEGIN`` waits for the next statement's trip)."""
        if not parameters and sql.lstrip()[:5].upper() == _BEGIN:
            self._connection.defer_begin(sql)
            self.description, self.rowcount, self.lastrowid, self._rows = None, -1, None, deque()
            return self
        return await self._trip(lambda c: lambda: c.execute(sql, () if parameters is None else parameters))

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> OneTripCursor:
        """Run one statement for each parameter set (one trip)."""
        return await self._trip(lambda c: lambda: c.executemany(sql, parameters))

    async def fetchone(self) -> Row | None:
        """The next row (already here)."""
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Row]:
        """Up to ``size`` rows (already here)."""
        return [self._rows.popleft() for _ in range(min(size or self.arraysize, len(self._rows)))]

    async def fetchall(self) -> list[Row]:
        """The rows left (already here)."""
        rows, self._rows = list(self._rows), deque()
        return rows

    async def close(self) -> None:
        """Nothing to close: the thread closed the cursor in the statement's trip."""
        self._rows.clear()


class _Ready:
    """What ``cursor()`` returns: awaitable and an async context manager, like aiosqlite's, with no trip."""

    def __init__(self, cursor: OneTripCursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Any:
        yield from ()
        return self._cursor

    async def __aenter__(self) -> OneTripCursor:
        return self._cursor

    async def __aexit__(self, *_: object) -> None:
        await self._cursor.close()


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors take one trip per statement (see the module docstring)."""

    _begin: str | None = None
    """A ``BEGIN`` not run yet: it runs in the next statement's trip."""
    _open = True
    """The connection may be in a transaction (not known yet, or the last trip left one open)."""
    trips = 0
    """Trips this connection made to its thread (for tests and benches)."""

    def sqlite(self) -> sqlite3.Connection:
        """The ``sqlite3`` connection (use only on the connection's thread)."""
        return self._conn

    def defer_begin(self, sql: str) -> None:
        """Keep ``sql`` (a ``BEGIN``) for the next statement's trip."""
        self._begin = sql

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Every trip (aiosqlite's own too) may leave a transaction open, until it says otherwise."""
        self._open = True
        self.trips += 1
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    async def trip(self, work: Callable[[], _Outcome]) -> _Outcome:
        """Run ``work`` on the connection's thread, after the ``BEGIN`` kept for it (one trip)."""
        begin, self._begin = self._begin, None

        def on_thread() -> tuple[_Outcome, bool]:
            connection = self._conn
            if begin is not None:
                connection.execute(begin)
            return work(), connection.in_transaction

        outcome, self._open = cast(tuple[_Outcome, bool], await self._execute(on_thread))
        return outcome

    async def _end(self, how: Callable[[], None]) -> None:
        if self._begin is not None:  # a transaction with no statement: nothing was begun
            self._begin = None
        if self._open:
            await self._execute(how)
            self._open = False

    async def commit(self) -> None:
        """Commit the transaction (no trip when none is open)."""
        await self._end(lambda: self._conn.commit())

    async def rollback(self) -> None:
        """Roll the transaction back (no trip when none is open)."""
        await self._end(lambda: self._conn.rollback())

    def cursor(self) -> Any:
        """A cursor; opening it costs no trip."""
        return _Ready(OneTripCursor(self))


def connector(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Callable[[], Any]:
    """An ``async_creator`` for SQLAlchemy: a connected :class:`OneTripConnection` with ``sqlite3.connect``'s
    arguments as the aiosqlite dialect would give them (``dialect.create_connect_args(url)``)."""

    async def create() -> OneTripConnection:
        connection = OneTripConnection(lambda: sqlite3.connect(*args, **kwargs), 64)
        connection._thread.daemon = True  # as SQLAlchemy's dialect does: an unclosed pool never blocks the exit
        return cast(OneTripConnection, await connection)

    return create
