"""``datastory doctor`` against the emulators: what works, what is missing, what to fix."""

from __future__ import annotations

import pytest

from bot import cli
from bot.doctor import REQUIRED_SCOPES
from tests.e2e.conftest import Harness
from tests.unit.test_manifest import manifest

pytestmark = pytest.mark.e2e


def test_the_doctor_knows_the_scopes_the_manifest_asks_for() -> None:
    assert set(manifest()["oauth_config"]["scopes"]["bot"]) == REQUIRED_SCOPES


async def test_a_healthy_deployment_passes(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    code = await cli.amain(["doctor"], settings=harness.settings())
    out = capsys.readouterr().out
    assert code == 0, out
    assert "✓ Slack: signed in as @datastory in Test Workspace, every scope present; HTTP mode" in out
    assert "✓ OpenAI:" in out and "✓ Database: sqlite answers" in out and "✓ Sandbox: hosted containers" in out
    assert "xoxb-" not in out and "sk-" not in out


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
