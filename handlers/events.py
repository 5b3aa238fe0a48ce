"""Translation of Slack event payloads into the core's :class:`bot.intake.IncomingMessage`."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext

from bot.intake import IncomingMessage
from bot.poster import SlackFile


def to_incoming(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> IncomingMessage:
    """Build the core's view of a ``message``/``app_mention`` event."""
    files = tuple(SlackFile.from_payload(f) for f in event.get("files") or () if isinstance(f, dict))
    return IncomingMessage(
        team=str(body.get("team_id") or event.get("team") or context.team_id or ""),
        channel=str(event.get("channel") or ""),
        user=str(event.get("user") or ""),
        ts=str(event.get("ts") or ""),
        text=str(event.get("text") or ""),
        thread_ts=event.get("thread_ts"),
        files=files,
        bot_user_id=str(context.bot_user_id or ""),
    )


def is_from_a_bot(event: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Messages of bots (ours included, whatever Bolt's self-event filter saw) never start work."""
    return bool(event.get("bot_id")) or (bool(context.bot_user_id) and event.get("user") == context.bot_user_id)
