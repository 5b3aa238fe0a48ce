"""The Slack app manifest asks for exactly what the bot uses (listeners: ``tests/e2e/test_delivery.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCOPES = {"app_mentions:read", "assistant:write", "channels:history", "channels:join", "groups:history", "im:history",
          "mpim:history",
          "files:read", "files:write", "chat:write", "reactions:read", "reactions:write", "commands", "users:read"}
EVENTS = {"agent_session_stopped", "app_home_opened", "app_mention", "file_shared", "message.channels",
          "message.groups", "message.im",
          "message.mpim", "reaction_added", "app_uninstalled", "tokens_revoked"}


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    return data


def test_scopes_and_events_are_exactly_what_the_bot_needs() -> None:
    m = manifest()
    assert set(m["oauth_config"]["scopes"]["bot"]) == SCOPES
    assert set(m["settings"]["event_subscriptions"]["bot_events"]) == EVENTS
    assert m["settings"]["socket_mode_enabled"] is True
    assert [c["command"] for c in m["features"]["slash_commands"]] == ["/datastory"]
    assert m["features"]["app_home"]["messages_tab_enabled"] is True  # DMs with the bot
    assert m["features"]["app_home"]["home_tab_enabled"] is True  # recent analyses, digests, a guide


def test_interactivity_is_on_for_the_buttons_and_the_one_message_shortcut() -> None:
    m = manifest()
    assert m["settings"]["interactivity"] == {"is_enabled": True}
    assert m["features"]["shortcuts"] == [{"name": "Analyze with datastory", "type": "message",
                                           "callback_id": "analyze_with_datastory",
                                           "description": "Analyse the files of this message in its thread"}]
    assert "workflow_steps" not in m["features"]
