"""Frozen copy of the store's schema history before Alembic: the DDL versions 1 to 7 ran, as SQL, per dialect.

Captured from the last release with ``schema_version`` (CreateTable/CreateIndex of its tables, split by the
version that introduced each part). ``build(conn, upto)`` makes the database that release left after applying
versions 1..``upto``, ``schema_version`` rows included. Never edit: it is what old databases look like.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_STEPS: dict[int, tuple[str, list[str]]] = {
    1: ("create threads, files, turns, dedupe", [
        """CREATE TABLE schema_version (version INTEGER NOT NULL, description TEXT NOT NULL,
            applied_at FLOAT NOT NULL, PRIMARY KEY (version))""",
        """CREATE TABLE threads (team TEXT NOT NULL, channel TEXT NOT NULL, thread_ts TEXT NOT NULL,
            status TEXT NOT NULL, created_at FLOAT NOT NULL, last_active_at FLOAT NOT NULL, container_id TEXT,
            container_name TEXT, backend TEXT, last_response_id TEXT,
            CONSTRAINT pk_threads PRIMARY KEY (team, channel, thread_ts))""",
        """CREATE TABLE files (team TEXT NOT NULL, channel TEXT NOT NULL, thread_ts TEXT NOT NULL,
            slack_file_id TEXT NOT NULL, name TEXT NOT NULL, size BIGINT NOT NULL, mimetype TEXT NOT NULL,
            filetype TEXT NOT NULL, download_url TEXT NOT NULL, message_ts TEXT NOT NULL, user_id TEXT NOT NULL,
            created_at FLOAT NOT NULL, container_id TEXT, sandbox_path TEXT, sandbox_file_id TEXT,
            facts TEXT NOT NULL,
            CONSTRAINT pk_files PRIMARY KEY (team, channel, thread_ts, slack_file_id),
            CONSTRAINT fk_files_thread FOREIGN KEY(team, channel, thread_ts)
                REFERENCES threads (team, channel, thread_ts) ON DELETE CASCADE)""",
        """CREATE TABLE turns (id TEXT NOT NULL, team TEXT NOT NULL, channel TEXT NOT NULL, thread_ts TEXT NOT NULL,
            message_ts TEXT NOT NULL, user_id TEXT NOT NULL, question TEXT NOT NULL, file_ids TEXT NOT NULL,
            status TEXT NOT NULL, created_at FLOAT NOT NULL, status_ts TEXT, started_at FLOAT, finished_at FLOAT,
            response_id TEXT, error TEXT, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
            PRIMARY KEY (id),
            CONSTRAINT fk_turns_thread FOREIGN KEY(team, channel, thread_ts)
                REFERENCES threads (team, channel, thread_ts) ON DELETE CASCADE)""",
        "CREATE INDEX ix_turns_status_created ON turns (status, created_at)",
        "CREATE INDEX ix_turns_thread ON turns (team, channel, thread_ts)",
        'CREATE TABLE dedupe ("key" TEXT NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY ("key"))',
        "CREATE INDEX ix_dedupe_created_at ON dedupe (created_at)",
    ]),
    2: ("turns: answer, code, model, cost_usd", [
        "ALTER TABLE turns ADD COLUMN answer TEXT",
        "ALTER TABLE turns ADD COLUMN code TEXT",
        "ALTER TABLE turns ADD COLUMN model TEXT",
        "ALTER TABLE turns ADD COLUMN cost_usd FLOAT",
    ]),
    3: ("create digests", [
        """CREATE TABLE digests (id TEXT NOT NULL, team TEXT NOT NULL, channel TEXT NOT NULL,
            thread_ts TEXT NOT NULL, owner TEXT NOT NULL, question TEXT NOT NULL, cron TEXT NOT NULL,
            tz TEXT NOT NULL, label TEXT NOT NULL, created_at FLOAT NOT NULL, next_run_at FLOAT NOT NULL,
            status TEXT NOT NULL, skip_unchanged INTEGER NOT NULL, last_run_at FLOAT, last_outcome TEXT,
            last_hash TEXT, last_data_at FLOAT, failures INTEGER NOT NULL, PRIMARY KEY (id))""",
        "CREATE INDEX ix_digests_channel ON digests (team, channel)",
        "CREATE INDEX ix_digests_due ON digests (status, next_run_at)",
    ]),
    4: ("files: refused_reason, refused_turn", [
        "ALTER TABLE files ADD COLUMN refused_reason TEXT",
        "ALTER TABLE files ADD COLUMN refused_turn TEXT",
    ]),
    5: ("create digest_runs", [
        """CREATE TABLE digest_runs (id {serial} NOT NULL, digest_id TEXT NOT NULL, channel TEXT NOT NULL,
            owner TEXT NOT NULL, ran_at FLOAT NOT NULL, cost_usd FLOAT NOT NULL, PRIMARY KEY (id))""",
        "CREATE INDEX ix_digest_runs_ran_at ON digest_runs (ran_at)",
    ]),
    6: ("threads: indexes on last_active_at and container_id", [
        "CREATE INDEX ix_threads_container ON threads (container_id)",
        "CREATE INDEX ix_threads_last_active ON threads (last_active_at)",
    ]),
    7: ("files: read_options", ["ALTER TABLE files ADD COLUMN read_options TEXT"]),
}

LATEST = max(_STEPS)


async def build(conn: AsyncConnection, upto: int = LATEST) -> None:
    """Run the old versions 1..``upto`` on ``conn`` (in the caller's transaction), recording each like the old code."""
    serial = "SERIAL" if conn.dialect.name == "postgresql" else "INTEGER"
    for version in range(1, upto + 1):
        description, statements = _STEPS[version]
        for statement in statements:
            await conn.execute(text(statement.replace("{serial}", serial)))
        await conn.execute(
            text("INSERT INTO schema_version (version, description, applied_at) VALUES (:v, :d, :at)"),
            {"v": version, "d": description, "at": 1_700_000_000.0 + version},
        )


async def build_database(url: str, upto: int = LATEST) -> None:
    """A database at ``url`` as the old release left it after versions 1..``upto`` (the engine is disposed)."""
    from bot.store import SqlStore

    engine = SqlStore(url=url, migrate=False)._create_engine()
    try:
        async with engine.begin() as conn:
            await build(conn, upto=upto)
    finally:
        await engine.dispose()
