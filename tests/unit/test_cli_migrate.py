"""``datastory migrate`` and ``DATASTORY_MIGRATE=false`` as an operator meets them, in a child process, on SQLite
and on a real PostgreSQL: a database of the ``schema_version`` era is reported behind, upgraded once, then at head;
a bot told not to migrate refuses a database behind the head with one line and exit code 2."""

from __future__ import annotations

import pytest

from bot.store import SqlStore
from tests.unit import legacy_schema
from tests.unit.test_cli import datastory

BEHIND = ("datastory: the database schema is at 0005 and this code needs 0011 (head); run `datastory migrate` "
          "(or start with DATASTORY_MIGRATE=true)")


async def _old_database(url: str, upto: int = 5) -> None:
    await legacy_schema.build_database(url, upto=upto)


async def test_migrate_reports_upgrades_and_checks(db_url: str) -> None:
    await _old_database(db_url)
    env = {"DATASTORY_DATABASE_URL": db_url}
    check = datastory("migrate", "--check", env=env)
    assert (check.returncode, check.stdout) == (1, "database at 0005, behind head 0011; run `datastory migrate`\n")
    upgrade = datastory("migrate", env=env)
    assert (upgrade.returncode, upgrade.stdout) == (0, "upgraded 0005 -> 0011\n")
    assert "schema revision applied revision=0006" in upgrade.stderr and "Traceback" not in upgrade.stderr
    again = datastory("migrate", env=env)
    assert (again.returncode, again.stdout) == (0, "database at 0011 (head)\n")
    assert datastory("migrate", "--check", env=env).returncode == 0


async def test_migrate_creates_an_empty_database(db_url: str) -> None:
    result = datastory("migrate", env={"DATASTORY_DATABASE_URL": db_url})
    assert (result.returncode, result.stdout) == (0, "upgraded base -> 0011\n")
    store = SqlStore(url=db_url, migrate=False)
    assert (await store.schema_state()).at_head
    await store.close()


def test_migrate_says_when_the_database_cannot_be_reached() -> None:
    result = datastory("migrate", "--check",
                       env={"DATASTORY_DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/none"})
    assert result.returncode == 2
    assert result.stderr.startswith("datastory migrate --check: could not migrate the database: ")
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", ["--http", "socket"])
async def test_run_refuses_a_database_behind_head_when_told_not_to_migrate(db_url: str, mode: str) -> None:
    await _old_database(db_url)
    env = {"DATASTORY_DATABASE_URL": db_url, "DATASTORY_MIGRATE": "false", "SLACK_BOT_TOKEN": "xoxb-1",
           "SLACK_SIGNING_SECRET": "s", "OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
           "SLACK_API_URL": "http://127.0.0.1:9/api/"}
    if mode == "socket":
        env["SLACK_APP_TOKEN"] = "xapp-1"
    result = datastory("run", *(["--http", "--port", "0"] if mode == "--http" else []), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == BEHIND
    assert "Traceback" not in result.stderr
    assert "Unclosed" not in result.stderr  # everything bootstrap had opened (the Slack session) was closed
    store = SqlStore(url=db_url, migrate=False)
    assert (await store.schema_state()).current == "0005"  # nothing was changed
    await store.close()
