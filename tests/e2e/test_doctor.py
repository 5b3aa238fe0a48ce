"""``datastory doctor`` against the emulators: what works, what is missing, what to fix."""

from __future__ import annotations

import pytest

from bot import cli
from bot.doctor import REQUIRED_SCOPES
from bot.store import SqlStore
from tests.e2e.conftest import Harness
from tests.unit import legacy_schema
from tests.unit.test_manifest import manifest

pytestmark = pytest.mark.e2e


def test_the_doctor_knows_the_scopes_the_manifest_asks_for() -> None:
    assert set(manifest()["oauth_config"]["scopes"]["bot"]) == REQUIRED_SCOPES


async def test_a_healthy_deployment_passes(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code = await cli.amain(["doctor"], settings=harness.settings())
    out = capsys.readouterr().out
    assert code == 0, out
    assert "✓ Slack: signed in as @datastory in Test Workspace, every scope present; HTTP mode" in out
    assert "✓ OpenAI:" in out and "✓ Sandbox: hosted containers" in out
    assert "xoxb-" not in out and "sk-" not in out
    # the doctor creates no database: it says where `datastory run` will, and leaves it to it
    database = harness.tmp / "bot.db"
    assert f"✓ Database: SQLite file {database} does not exist yet; `datastory run` creates it" in out
    assert not database.exists()
    bot = await harness.start()
    await bot.shutdown()
    assert await cli.amain(["doctor"], settings=harness.settings()) == 0
    assert "✓ Database: sqlite answers; schema at 0011 (head); 0 thread(s)" in capsys.readouterr().out


async def test_the_doctor_reports_a_schema_behind_and_migrates_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    database = harness.tmp / "old.db"
    await legacy_schema.build_database(f"sqlite:///{database}", upto=5)
    old = SqlStore(url=f"sqlite:///{database}", migrate=False)
    settings = harness.settings(database_url=f"sqlite:///{database}")
    assert await cli.amain(["doctor"], settings=settings) == 0
    assert ("✓ Database: sqlite answers; schema at 0005, behind head 0011: `datastory run` upgrades it at start "
            "(or run `datastory migrate`)") in capsys.readouterr().out
    assert await cli.amain(["doctor"], settings=harness.settings(database_url=f"sqlite:///{database}",
                                                                  migrate=False)) == 1
    assert ("✗ Database: sqlite answers; schema at 0005, behind head 0011, and DATASTORY_MIGRATE=false: run "
            "`datastory migrate`") in capsys.readouterr().out
    assert (await old.schema_state()).current == "0005"  # untouched
    await old.close()


async def test_a_database_that_cannot_be_created_fails(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = harness.tmp / "not-a-dir"
    blocker.write_text("")
    settings = harness.settings(database_url=f"sqlite:///{blocker}/bot.db")
    assert await cli.amain(["doctor"], settings=settings) == 1
    assert f"✗ Database: SQLite file {blocker}/bot.db cannot be created" in capsys.readouterr().out


async def test_no_key_for_the_hosted_sandbox_suggests_the_local_one(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli.amain(["doctor"], settings=harness.settings(openai_api_key=None)) == 1
    out = capsys.readouterr().out
    assert "✗ OpenAI: OPENAI_API_KEY is not set (the hosted sandbox needs it)" in out
    assert "DATASTORY_SANDBOX=local" in out and "`datastory try FILE`" in out
    assert "– Sandbox: not checked: it needs OpenAI, which failed above" in out
    assert "✓ Sandbox" not in out


async def test_a_sandbox_that_depends_on_a_failed_check_is_never_passed(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli.amain(["doctor"], settings=harness.settings(openai_api_key="sk-wrong-key-123")) == 1
    out = capsys.readouterr().out
    assert f"✗ OpenAI: {harness.openai.base_url} answered HTTP 401" in out
    assert "– Sandbox: not checked: it needs OpenAI, which failed above" in out


async def test_http_mode_without_a_signing_secret_is_named(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli.amain(["doctor"], settings=harness.settings(slack_signing_secret=None)) == 1
    assert "would serve HTTP mode, which needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN" in capsys.readouterr().out


async def test_a_bad_token_and_a_missing_scope_are_named(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli.amain(["doctor"], settings=harness.settings(slack_bot_token="xoxb-wrong")) == 1
    assert "✗ Slack: auth.test answered `invalid_auth`: check SLACK_BOT_TOKEN" in capsys.readouterr().out
    harness.slack.scopes = ",".join(sorted(REQUIRED_SCOPES - {"files:read", "users:read"}))
    assert await cli.amain(["doctor"], settings=harness.settings()) == 1
    assert "lacks the scopes files:read, users:read" in capsys.readouterr().out


async def test_no_keys_and_the_local_sandbox(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    settings = harness.settings(slack_bot_token=None, openai_api_key=None, sandbox="local")
    code = await cli.amain(["doctor"], settings=settings)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "– Slack: SLACK_BOT_TOKEN is not set" in out
    assert "– OpenAI: OPENAI_API_KEY is not set (the local sandbox uses the offline analyst)" in out
    assert "✓ Sandbox: local kernels run code; mode: strict (" in out and "network: isolated" in out
