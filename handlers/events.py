"""Translation of Slack payloads into the core's values: :class:`bot.intake.IncomingMessage`, and the teams that
the access rules compare (the workspace the bot is installed in, and the one a person belongs to)."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.intake import IncomingMessage
from bot.poster import SlackFile

INBOX_EVENT = "inbox_event_id"
"""The context key under which the app's inbox middleware leaves the id of an event it stored."""


def is_retry(request: AsyncBoltRequest) -> bool:
    """Slack is redelivering: ``X-Slack-Retry-Num`` over HTTP; Bolt makes the same header from Socket Mode's
    ``retry_attempt``, including ``0`` for a first delivery, hence the comparison."""
    values = request.headers.get("x-slack-retry-num") or ["0"]
    try:
        return int(values[0]) > 0
    except ValueError:
        return True


def installation_team(context: AsyncBoltContext, fallback: str = "") -> str:
    """The workspace the bot is installed in: ``auth.test``'s team (Bolt's authorisation), else ``fallback``."""
    result = context.authorize_result
    return str((result.team_id if result is not None else None) or fallback or context.team_id or "")


def author_team(event: dict[str, Any]) -> str:
    """The author's own team as a message event says it: ``user_team`` (Slack Connect), else ``team``."""
    return str(event.get("user_team") or event.get("team") or "")


def to_incoming(
    event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
) -> IncomingMessage:
    """Build the core's view of a ``message``/``app_mention`` event."""
    files = tuple(SlackFile.from_payload(f) for f in event.get("files") or () if isinstance(f, dict))
    authorizations = body.get("authorizations") or [{}]
    delivered_to = authorizations[0].get("team_id") if isinstance(authorizations[0], dict) else None
    return IncomingMessage(
        team=str(body.get("team_id") or delivered_to or installation_team(context, str(event.get("team") or ""))),
        channel=str(event.get("channel") or ""),
        user=str(event.get("user") or ""),
        ts=str(event.get("ts") or ""),
        text=str(event.get("text") or ""),
        thread_ts=event.get("thread_ts"),
        files=files,
        bot_user_id=str(context.bot_user_id or ""),
        is_retry=is_retry(request),
        user_team=author_team(event),
        event_id=str(context.get(INBOX_EVENT) or ""),
    )


def goes_to_intake(event: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Whether a listener hands the event to the intake (what the inbox keeps): a person's message without a
    subtype (``handlers.threads``) or with ``file_share`` (``handlers.files``), or a mention without files
    (``handlers.mentions``; one with files is the ``file_share`` message's)."""
    if is_from_a_bot(event, context):
        return False
    if event.get("type") == "message":
        return "subtype" not in event or event.get("subtype") == "file_share"
    return event.get("type") == "app_mention" and not event.get("files")


def is_from_a_bot(event: dict[str, Any], context: AsyncBoltContext) -> bool:
    """Messages of bots (ours included, whatever Bolt's self-event filter saw) never start work."""
    return bool(event.get("bot_id")) or (bool(context.bot_user_id) and event.get("user") == context.bot_user_id)
