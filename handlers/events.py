"""Translation of Slack event payloads into the core's :class:`bot.intake.IncomingMessage`."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.intake import IncomingMessage
from bot.poster import SlackFile


def is_retry(request: AsyncBoltRequest) -> bool:
    """Slack is redelivering: ``X-Slack-Retry-Num`` over HTTP; Bolt makes the same header from Socket Mode's
    ``retry_attempt``, including ``0`` for a first delivery, hence the comparison."""
    values = request.headers.get("x-slack-retry-num") or ["0"]
    try:
        return int(values[0]) > 0
    except ValueError:
        return True


def to_incoming(
    event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
) -> IncomingMessage:
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
        is_retry=is_retry(request),
    )


def is_from_a_bot(event: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Messages of bots (ours included, whatever Bolt's self-event filter saw) never start work."""
    return bool(event.get("bot_id")) or (bool(context.bot_user_id) and event.get("user") == context.bot_user_id)
