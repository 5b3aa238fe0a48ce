"""The message shortcut "Analyze with datastory" (``message_action``, ``callback_id`` ``analyze_with_datastory``).

On any message with a data file, it analyses that message's files in the message's thread, as if they had been
shared where the bot listens (:meth:`bot.intake.Intake.on_message`, the person who clicked being the asker, so
the access rules and budgets are theirs). Acknowledged at once; what concerns only the person who clicked (no
file, already analysed, refused) is told to them alone through the ``response_url``. In a channel the bot is not
in, it joins first when the channel is public and its scopes allow (``channels:join``); otherwise the person is told
how to invite it.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.deps import Deps
from bot.intake import IncomingMessage
from bot.poster import SlackFile
from bot.slack_text import finalise
from handlers.events import installation_team

CALLBACK_ID = "analyze_with_datastory"
NO_FILE = "That message has no file I can analyse: share a CSV, TSV, Excel or JSON file and try again."
ALREADY = "I have already analysed that message: the answer is in its thread."
NOT_IN_CHANNEL = ("I'm not in this channel, so I can't answer here. Invite me with `/invite @datastory` and try "
                  "again.")


def _id(value: Any) -> str:
    return str(value.get("id") or "") if isinstance(value, dict) else ""


class ShortcutHandlers:
    """Listener for the message shortcut."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_analyze(
        self, ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """Analyse the message's files in its thread."""
        await ack()
        message = body.get("message") if isinstance(body.get("message"), dict) else {}
        files = tuple(SlackFile.from_payload(f) for f in (message or {}).get("files") or [] if isinstance(f, dict))
        if not files:
            await respond(text=finalise(NO_FILE), response_type="ephemeral", replace_original=False)
            return
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        user_team = str((user or {}).get("team_id") or "")
        thread_ts = str((message or {}).get("thread_ts") or "") or None
        ts = str((message or {}).get("ts") or body.get("message_ts") or "")
        msg = IncomingMessage(
            team=installation_team(context, _id(body.get("team")) or user_team), channel=_id(body.get("channel")),
            user=_id(user), ts=ts, text="", thread_ts=thread_ts if thread_ts != ts else None, files=files,
            bot_user_id=str(context.bot_user_id or ""), user_team=user_team,
        )
        if not await self._deps.intake.ensure_member(msg):
            await respond(text=finalise(NOT_IN_CHANNEL), response_type="ephemeral", replace_original=False)
            return
        outcome = await self._deps.intake.on_message(msg)
        if outcome == "duplicate":
            await respond(text=finalise(ALREADY), response_type="ephemeral", replace_original=False)


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the message shortcut."""
    app.shortcut(CALLBACK_ID)(ShortcutHandlers(deps).on_analyze)
