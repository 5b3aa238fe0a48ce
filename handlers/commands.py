"""The ``/datastory`` slash command: acknowledged at once with an answer only the caller sees."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.deps import Deps
from bot.intake import HELP_TEXT

COMMAND = "/datastory"


class CommandHandlers:
    """Listener for ``/datastory``."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """Answer ``/datastory [help]``; other subcommands are explained, not silently dropped."""
        words = str(command.get("text") or "").split()
        if not words or words[0].lower() == "help":
            await ack(text=f"{HELP_TEXT}\n\nCommands: `/datastory help`.")
            return
        await ack(text=f"I don't know `/datastory {words[0]}` yet. Try `/datastory help`.")


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the slash command."""
    app.command(COMMAND)(CommandHandlers(deps).on_command)
