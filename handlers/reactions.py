"""Reactions: a 🗑️ (``reaction_added`` with ``wastebasket``) on one of the bot's messages removes that answer.

Acknowledged at once (Bolt acks events before the listener runs); :meth:`bot.answers.Answers.remove` checks that
the message belongs to an answer and that the person who reacted asked it or is an admin, and tells anyone else
why nothing happened (only they see it). Other reactions, and reactions on other people's messages, are ignored.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.answers import REMOVE_REACTIONS
from bot.deps import Deps


class ReactionHandlers:
    """Listener for reactions."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_reaction_added(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Remove the answer a 🗑️ was put on."""
        item = event.get("item") if isinstance(event.get("item"), dict) else {}
        if event.get("reaction") not in REMOVE_REACTIONS or (item or {}).get("type") != "message":
            return
        if not context.bot_user_id or event.get("item_user") != context.bot_user_id:
            return
        await self._deps.answers.remove(channel=str((item or {}).get("channel") or ""),
                                        ts=str((item or {}).get("ts") or ""), user=str(event.get("user") or ""))


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the reaction listener."""
    app.event("reaction_added")(ReactionHandlers(deps).on_reaction_added)
