"""Alembic revisions of the store, on SQLite and a real PostgreSQL: head equals the tables the code uses, a
database built by the former ``schema_version`` mechanism is adopted and upgraded in place, replicas migrate once,
and ``DATASTORY_MIGRATE=false`` refuses a database behind the head without touching it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from bot.store import SqlStore
from bot.store.base import TurnOutcomeRecord
from bot.store.revisions import SchemaNotAtHead, head, script_directory
from bot.store.schema import METADATA
from tests.unit import legacy_schema
from tests.unit.test_store import KEY, a_file, a_turn

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "bot" / "store" / "migrations"
REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011"]


def _differences(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), METADATA))


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def _inspect(store: SqlStore) -> tuple[list[Any], set[str], str | None]:
    async with store._require().connect() as conn:
        diffs = await conn.run_sync(_differences)
        tables = await conn.run_sync(_tables)
        revision = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
    return diffs, tables, revision


def test_the_revisions_are_the_former_versions_in_one_line() -> None:
    script = script_directory()
    assert [r.revision for r in reversed(list(script.walk_revisions()))] == REVISIONS
    assert head() == REVISIONS[-1]


async def test_a_new_database_at_head_has_exactly_the_tables_of_the_code(db_url: str) -> None:
    store = SqlStore(url=db_url)
    await store.open()
    try:
        diffs, tables, revision = await _inspect(store)
        assert diffs == []  # a table/column/index added to bot.store.schema without its revision fails here
        assert tables == set(METADATA.tables) | {"alembic_version"}
        assert revision == head()
        assert (await store.schema_state()).at_head
    finally:
        await store.close()


@pytest.mark.parametrize("version", range(1, legacy_schema.LATEST + 1))
async def test_a_database_of_the_schema_version_era_is_adopted_and_upgraded(db_url: str, version: int) -> None:
    old = SqlStore(url=db_url, migrate=False)
    await legacy_schema.build_database(db_url, upto=version)
    old._engine = old._create_engine()
    async with old._engine.begin() as conn:
        await conn.execute(text("INSERT INTO threads VALUES ('T1', 'C1', '1700000000.000100', 'active', 1, 1, "
                                "'cntr_1', 'n', 'openai', NULL)"))
        await conn.execute(text(
            "INSERT INTO turns (id, team, channel, thread_ts, message_ts, user_id, question, file_ids, status, "
            "created_at, input_tokens, output_tokens) VALUES ('t1', 'T1', 'C1', '1700000000.000100', "
            "'1700000000.000100', 'U1', 'old question', '[]', 'running', 5, 0, 0)"))
    state = await old.schema_state()
    assert (state.current, state.legacy_version, state.at_head) == (f"{version:04d}", version, False)
    await old.close()

    store = SqlStore(url=db_url)
    await store.open()
    try:
        diffs, tables, revision = await _inspect(store)
        assert diffs == [] and revision == head()
        assert "schema_version" not in tables  # adopted: one record of the schema, Alembic's
        await store.finish_turn("t1", status="done", now=9.0, outcome=TurnOutcomeRecord(answer="kept", cost_usd=0.5))
        turn = await store.get_turn("t1")
        assert turn is not None and (turn.question, turn.answer, turn.cost_usd) == ("old question", "kept", 0.5)
        thread = await store.get_thread(KEY)
        assert thread is not None and thread.container_id == "cntr_1"
        assert await store.list_digests() == [] and await store.spent_since(0.0) == 0.0
        await store.submit_turn(a_turn("t2", files=(a_file("F1"),)), dedupe_keys=("k2",))
        await store.mark_uploaded(KEY, "F1", container_id="c", sandbox_path="/p", sandbox_file_id="f",
                                  read_options='{"sep": ";"}')
        assert [f.read_options for f in await store.list_files(KEY)] == ['{"sep": ";"}']
        claimed = await store.claim_turn(owner="r1", now=10.0, lease_seconds=30.0)  # and 0008: the queue
        assert claimed is not None and claimed.id == "t2" and claimed.attempts == 1
        assert await store.record_part("t2", "answer:0", "1.0", now=11.0)
        assert await store.acquire_lease("leader", owner="r1", now=11.0, seconds=10.0)
    finally:
        await store.close()


@pytest.mark.parametrize("legacy", [None, 3])
async def test_replicas_starting_together_migrate_once(db_url: str, legacy: int | None) -> None:
    if legacy is not None:  # three replicas of the new release on a database of the old one: adopted once
        await legacy_schema.build_database(db_url, upto=legacy)
    stores = [SqlStore(url=db_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        async with stores[0]._require().connect() as conn:
            rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        assert rows == [head()]
        diffs, tables, _revision = await _inspect(stores[0])
        assert diffs == [] and "schema_version" not in tables
        assert await stores[1].claim("k", now=1.0) and not await stores[2].claim("k", now=1.0)
    finally:
        for s in stores:
            await s.close()


async def test_migrate_false_refuses_a_database_behind_head_and_leaves_it_alone(db_url: str) -> None:
    store = SqlStore(url=db_url, migrate=False)
    await legacy_schema.build_database(db_url, upto=5)
    with pytest.raises(SchemaNotAtHead) as refused:
        await store.open()
    assert str(refused.value) == ("the database schema is at 0005 and this code needs 0011 (head); "
                                  "run `datastory migrate` (or start with DATASTORY_MIGRATE=true)")
    assert store._engine is None  # closed on the way out
    empty = SqlStore(url=db_url.replace("store.db", "empty.db") if "sqlite" in db_url else db_url, migrate=False)
    if "sqlite" in db_url:
        with pytest.raises(SchemaNotAtHead, match="at nothing"):
            await empty.open()
    before, after = await store.migrate()  # what `datastory migrate` does
    try:
        assert (before.current, after) == ("0005", "0011")
        await store.open()  # now at head: migrate=False starts
        assert (await store.schema_state()).at_head
    finally:
        await store.close()


async def test_a_database_newer_than_the_code_is_used_as_is(db_url: str) -> None:
    store = SqlStore(url=db_url)
    await store.open()
    async with store._require().begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    await store.close()
    for migrate in (True, False):  # an older replica during a rolling deploy keeps running (revisions are additive)
        again = SqlStore(url=db_url, migrate=migrate)
        await again.open()
        try:
            found = await again.schema_state()
            assert (found.current, found.newer, found.at_head) == ("0099", True, False)
            assert await again.claim(f"k{migrate}", now=1.0)
        finally:
            await again.close()




def test_a_regular_install_ships_the_revisions_and_migrates(tmp_path: Path) -> None:
    # a wheel (what `pip install .` and the Dockerfile install) built from a copy of the sources, then imported
    # from where it was installed, not from this checkout
    source = tmp_path / "src"
    for name in ("bot", "handlers"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("datastory-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("bot/store/migrations/")}
    expected = {f"bot/store/migrations/{p.relative_to(MIGRATIONS).as_posix()}" for p in MIGRATIONS.rglob("*.py")}
    assert shipped == expected and len(expected) == len(REVISIONS) + 2  # every revision, env.py, __init__.py
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    script = ("import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]); import asyncio, bot\n"
              "from bot.store import SqlStore\n"
              "async def main():\n"
              "    store = SqlStore(url=sys.argv[3]); await store.open(); state = await store.schema_state()\n"
              "    await store.close(); print(bot.__file__, state.current, state.head)\n"
              "asyncio.run(main())\n")
    result = subprocess.run([sys.executable, "-S", "-c", script, str(target), sysconfig.get_paths()["purelib"],
                             f"sqlite:///{tmp_path / 'db.sqlite'}"], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == [str(target / "bot" / "__init__.py"), REVISIONS[-1], REVISIONS[-1]], result.stderr
