"""Files shared in Slack: ``message`` events of subtype ``file_share`` start an analysis; ``file_shared`` is acked.

``file_shared`` carries only a file id and no thread, and every share the bot can see also arrives as a
``message``/``file_share`` (which has the thread), so ``file_shared`` is acknowledged and left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.deps import Deps
from handlers.events import is_from_a_bot, to_incoming

logger = logging.getLogger(__name__)


class FileHandlers:
    """Listeners for shared files."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_file_share(self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        """A message with files: hand it to the intake."""
        if is_from_a_bot(event, context):
            return
        outcome = await self._deps.intake.on_message(to_incoming(event, body, context))
        logger.info("file_share channel=%s ts=%s outcome=%s", event.get("channel"), event.get("ts"), outcome)

    async def on_file_shared(self, event: dict[str, Any]) -> None:
        """Acknowledged only: the matching ``message``/``file_share`` event does the work."""


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the file listeners."""
    handlers = FileHandlers(deps)
    app.event({"type": "message", "subtype": "file_share"})(handlers.on_file_share)
    app.event("file_shared")(handlers.on_file_shared)
