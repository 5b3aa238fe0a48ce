"""The ``/datastory`` slash command: acknowledged at once with an answer only the caller sees."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.deps import Deps
from bot.intake import HELP_TEXT

COMMAND = "/datastory"
COMMANDS_HELP = ("Commands: `/datastory help`; `/datastory reset` deletes the workspaces of this channel's threads "
                 "(or reply `reset` in one thread to reset just that one).")


class CommandHandlers:
    """Listener for ``/datastory``."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_command(self, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        """Answer ``/datastory [help]``; other subcommands are explained, not silently dropped."""
        words = str(command.get("text") or "").split()
        if not words or words[0].lower() == "help":
            await ack(text=f"{HELP_TEXT}\n\n{COMMANDS_HELP}")
            return
        if words[0].lower() == "reset":
            await ack(text="Resetting the workspaces of this channel's threads…")
            count = await self._deps.intake.reset_channel(str(command.get("team_id") or ""),
                                                          str(command.get("channel_id") or ""))
            await respond(text=f"Reset {count} thread workspace{'s' * (count != 1)} in this channel. "
                               "Files are kept; the next question in a thread starts a fresh workspace.")
            return
        await ack(text=f"I don't know `/datastory {words[0]}` yet. Try `/datastory help`.")


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the slash command."""
    app.command(COMMAND)(CommandHandlers(deps).on_command)
