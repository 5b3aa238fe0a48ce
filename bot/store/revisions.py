"""The store's schema revision: where a database stands, and bringing it to the head with Alembic.

The revisions live in ``bot.store.migrations`` (package data); Alembic is configured here, programmatically, so
no ``alembic.ini`` exists at run time. Every function takes a synchronous ``Connection`` already inside the
caller's transaction (``SqlStore`` runs them through ``AsyncConnection.run_sync`` under its migration lock), so an
upgrade commits or rolls back as one unit with the lock held.

A database built before Alembic has a ``schema_version`` table counting versions 1 to 7: it is *adopted* by
stamping the revision of its highest version (``0001`` ... ``0007``) and dropping ``schema_version``, in the same
transaction as the upgrade that follows. The table is dropped, not kept, so one record of the schema exists and
nothing can read a stale one; code from before Alembic that is rolled back onto the database still starts (its
steps only add what is missing, and it writes ``schema_version`` again).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Float, Integer, MetaData, Table, Text, func, inspect, select

logger = logging.getLogger(__name__)

LEGACY_TABLE: Final = "schema_version"

_legacy = Table(
    LEGACY_TABLE,
    MetaData(),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Float, nullable=False),
)


class SchemaNotAtHead(RuntimeError):
    """The database is behind this code's head revision and migrating at start is off (``DATASTORY_MIGRATE``)."""

    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"the database schema is at {current or 'nothing (empty database)'} and this code needs {head} (head); "
            "run `datastory migrate` (or start with DATASTORY_MIGRATE=true)"
        )
        self.current = current
        self.head = head


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database stands: ``current`` (None when empty), ``head`` of this code, and whether it is known."""

    current: str | None
    head: str
    known: bool
    legacy_version: int | None = None

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def newer(self) -> bool:
        """The database carries a revision this code does not have (a newer release migrated it)."""
        return self.current is not None and not self.known


def legacy_revision(version: int) -> str:
    """The Alembic revision of a former ``schema_version`` version (``7`` -> ``0007``)."""
    return f"{version:04d}"


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revisions shipped with the package (read once; call it off the event loop the first time)."""
    script = ScriptDirectory.from_config(_config())
    script.get_heads()  # reads every revision file now, not later on the event loop
    return script


def head() -> str:
    """This code's head revision."""
    heads = script_directory().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the store migrations must have one head, found {sorted(heads)}")
    return heads[0]


def state(conn: Connection) -> SchemaState:
    """Where the database on ``conn`` stands (reads only)."""
    current = MigrationContext.configure(conn).get_current_revision()
    legacy: int | None = None
    if current is None and inspect(conn).has_table(LEGACY_TABLE):
        legacy = conn.execute(select(func.max(_legacy.c.version))).scalar_one_or_none() or 0
        current = legacy_revision(legacy) if legacy else None
    known = current is None or _known(current)
    return SchemaState(current=current, head=head(), known=known, legacy_version=legacy)


def upgrade(conn: Connection) -> tuple[SchemaState, str]:
    """Adopt a pre-Alembic database, then upgrade to head; returns the state before and the revision after.

    A database newer than this code is left alone (a warning is logged): additive revisions let an older replica
    keep running during a rolling deploy.
    """
    before = state(conn)
    if before.newer:
        logger.warning("database schema is newer than this code db_revision=%s code_head=%s",
                       before.current, before.head)
        return before, before.current or ""
    config = _config(conn)
    if before.legacy_version is not None:
        if before.current is not None:
            command.stamp(config, before.current)
            logger.info("schema adopted from schema_version version=%d revision=%s",
                        before.legacy_version, before.current)
        _legacy.drop(conn)
    if not before.at_head:
        command.upgrade(config, "head")
        logger.info("schema migrated from=%s to=%s", before.current or "empty", before.head)
    return before, before.head


def _known(revision: str) -> bool:
    try:
        return script_directory().get_revision(revision) is not None
    except Exception:  # alembic raises its own ResolutionError/CommandError for an unknown id
        return False


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("bot.store") / "migrations").replace("%", "%%"))
    if conn is not None:
        config.attributes["connection"] = conn
    return config
