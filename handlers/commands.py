"""The ``/datastory`` slash command: acknowledged at once with an answer only the caller sees.

``help``, ``status`` (:class:`bot.status.Status`; the channel's, since Slack gives a command no thread), ``reset``,
and the digest commands: ``digests`` lists the channel's digests (each with a Cancel button), ``digest cancel ID``
cancels one. The caller is checked first (:class:`bot.access.Access`: allowlists, other organisations; a refusal
is the acknowledgement), and a channel-wide ``reset`` needs an admin. The work is in :class:`bot.intake.Intake`
and :class:`bot.digests.Digests`; every answer is finalised for Slack here.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.access import ADMIN_HINT, Person
from bot.deps import Deps
from bot.intake import HELP_TEXT
from bot.slack_text import finalise, finalise_blocks, one_line
from handlers.events import installation_team

COMMAND = "/datastory"
COMMANDS_HELP = ("Commands: `/datastory help`; `/datastory stop` stops your running analyses in this channel "
                 "(an admin's: all of them; or reply `stop` in a thread); `/datastory status` shows this channel's "
                 "thread workspaces, their last activity and today's cost; `/datastory reset` deletes the "
                 "workspaces of this channel's threads (admins only; or reply `reset` in one thread to reset just "
                 "that one); `/datastory digests` lists this channel's scheduled digests and "
                 "`/datastory digest cancel ID` cancels one of yours (schedule one by replying in a thread with "
                 "data: `@datastory digest every monday 09:00: <question>`).")
RESET_REFUSAL = (f"Resetting every thread of a channel needs {ADMIN_HINT}. Reply `reset` in one of your threads to "
                 "reset just that one.")


class CommandHandlers:
    """Listener for ``/datastory``."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_command(
        self, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """Answer ``/datastory [help]``; other subcommands are explained, not silently dropped."""
        words = str(command.get("text") or "").split()
        team = str(command.get("team_id") or "")
        channel = str(command.get("channel_id") or "")
        user = str(command.get("user_id") or "")
        sub = words[0].lower() if words else "help"
        refusal = await self._deps.access.refusal(
            Person(user=user, channel=channel, home_team=installation_team(context, team)))
        if refusal:
            await ack(text=finalise(refusal))
            return
        if sub == "help":
            await ack(text=finalise(f"{HELP_TEXT}\n\n{COMMANDS_HELP}"))
            return
        if sub == "reset":
            await self._reset(ack, respond, team=team, channel=channel, user=user)
            return
        if sub == "stop":
            admin = await self._deps.access.is_admin(user)
            count = await self._deps.intake.stop_channel(team, channel, by=user, everyone=admin)
            whose = "" if admin else " of yours"
            await ack(text=finalise(f"Stopped {count} running analys{'es' if count != 1 else 'is'} in this channel."
                                    if count else f"Nothing{whose} is running in this channel right now."))
            return
        if sub == "status":
            await ack()
            await respond(text=finalise(await self._deps.status.channel_text(team=team, channel=channel)))
            return
        if sub == "digests" or (sub == "digest" and len(words) == 1):
            await ack()
            listing = await self._deps.digests.list_channel(team=team, channel=channel)
            await respond(text=finalise(listing.text), blocks=finalise_blocks(listing.blocks))
            return
        if sub == "digest" and words[1].lower() == "cancel" and len(words) == 3:
            await ack()
            result = await self._deps.digests.cancel(words[2], by=user, team=team, channel=channel)
            await respond(text=finalise(result.text))
            await self._deps.digests.retire_confirmation(result)
            return
        if sub == "digest":
            await ack(text=finalise("Use `/datastory digests` to list this channel's digests and `/datastory digest "
                                    "cancel ID` to cancel one."))
            return
        unknown = one_line(words[0], limit=40)
        await ack(text=finalise(f"I don't know `/datastory {unknown}` yet. Try `/datastory help`."))

    async def _reset(self, ack: AsyncAck, respond: AsyncRespond, *, team: str, channel: str, user: str) -> None:
        if not await self._deps.access.is_admin(user):
            await ack(text=finalise(RESET_REFUSAL))
            return
        await ack(text=finalise("Resetting the workspaces of this channel's threads…"))
        count = await self._deps.intake.reset_channel(team, channel)
        await respond(text=finalise(f"Reset {count} thread workspace{'s' * (count != 1)} in this channel. "
                                    "Files are kept; the next question in a thread starts a fresh workspace."))


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the slash command."""
    app.command(COMMAND)(CommandHandlers(deps).on_command)
