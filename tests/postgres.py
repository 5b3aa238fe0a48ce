"""A real PostgreSQL for tests: a fresh, uniquely named database per test, dropped afterwards.

The server comes from ``DATASTORY_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``); that
URL's database is only used as the admin connection that creates and drops the test databases. When the server
cannot be reached the test is skipped, or fails when ``CI=true`` (in CI the PostgreSQL tests must run).

Use the ``postgres_url`` fixture (registered in ``tests/conftest.py`` via ``pytest_plugins``), or
``temporary_database()`` directly for other scopes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT = 5.0


def admin_url() -> URL:
    """The server to create test databases on (``DATASTORY_TEST_DATABASE_URL`` or the default)."""
    return make_url(os.environ.get("DATASTORY_TEST_DATABASE_URL") or DEFAULT_URL)


def _dsn(url: URL) -> str:
    """A libpq-style DSN for asyncpg (no SQLAlchemy driver suffix)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _describe(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def _unreachable(url: URL, exc: BaseException) -> None:
    reason = (f"PostgreSQL not reachable at {_describe(url)} ({type(exc).__name__}: {exc}); "
              "set DATASTORY_TEST_DATABASE_URL to a server where the user may CREATE DATABASE")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


async def _admin_connection(url: URL) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_dsn(url), timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        _unreachable(url, exc)
        raise  # unreachable: skip/fail raise


async def drop_database(url: URL, name: str) -> None:
    """Terminate the database's leftover connections and drop it (no error when already gone)."""
    conn = await asyncpg.connect(_dsn(url), timeout=CONNECT_TIMEOUT)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


@asynccontextmanager
async def temporary_database(prefix: str = "datastory_test") -> AsyncIterator[str]:
    """Create a fresh database, yield its ``postgresql://`` URL (password included), drop it afterwards."""
    url = admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await _admin_connection(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        await drop_database(url, name)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """The URL of a fresh PostgreSQL database for this test (skipped, or failed in CI, without a server)."""
    async with temporary_database() as url:
        yield url
