"""Interactivity: the Cancel button of a digest (``block_actions`` with ``action_id`` ``digest_cancel``), and the
buttons of an answer: "Show code" and 👍 / 👎 (:mod:`bot.answers`; their value is the turn's id), the story
angle buttons (``story_angle_N``), each a question asked in the thread by the person who clicked, and the Stop
button of a status reply while its turn analyses (``turn_stop``; like ``stop`` typed in the thread).

The button sits on the confirmation in the thread and on each line of ``/datastory digests`` (an ephemeral
message). Acknowledged at once; the digest is cancelled by :class:`bot.digests.Digests`, then the message that
carried the button says so: a channel message is updated with ``chat.update``, an ephemeral one is replaced
through the ``response_url``. The person who clicked is checked first (:class:`bot.access.Access`), and only the
digest's owner or an admin may cancel it; a refusal is told only to the person who clicked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.access import Person
from bot.answers import Clicked
from bot.deps import Deps
from bot.digests import CANCEL_ACTION
from bot.intake import IncomingMessage
from bot.slack_text import finalise
from bot.turns.native import BAD_ACTION, FEEDBACK_ACTION, GOOD_ACTION, SHOW_CODE_ACTION
from bot.turns.stopping import STOP_ACTION
from handlers.events import installation_team


@dataclass(frozen=True, slots=True)
class _Click:
    """A button click by someone the access rules let in: the button's value, who, in which team and channel, and
    the message that carried it (``container``)."""

    value: str
    user: str
    team: str
    channel: str
    container: dict[str, Any]


def _id(value: Any) -> str:
    return str(value.get("id") or "") if isinstance(value, dict) else ""


class ActionHandlers:
    """Listeners for buttons."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def _allowed_click(self, body: dict[str, Any], context: AsyncBoltContext,
                             respond: AsyncRespond) -> _Click | None:
        """Who clicked which button where, or None (after telling them) when they may not use the bot."""
        actions = body.get("actions") or [{}]
        value = str(actions[0].get("value") or "") if isinstance(actions[0], dict) else ""
        container = body.get("container") if isinstance(body.get("container"), dict) else {}
        channel = _id(body.get("channel")) or str((container or {}).get("channel_id") or "")
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        user_team = str((user or {}).get("team_id") or "")
        team = installation_team(context, _id(body.get("team")) or user_team)
        refusal = await self._deps.access.refusal(Person(user=_id(user), channel=channel, home_team=team,
                                                         user_team=user_team))
        if refusal:
            await respond(text=finalise(refusal), response_type="ephemeral", replace_original=False)
            return None
        return _Click(value=value, user=_id(user), team=team, channel=channel, container=container or {})

    async def _clicked(self, body: dict[str, Any], context: AsyncBoltContext,
                       respond: AsyncRespond) -> Clicked | None:
        """Who clicked which answer's button, or None (after telling them) when they may not use the bot."""
        click = await self._allowed_click(body, context, respond)
        return None if click is None else Clicked(turn_id=click.value, user=click.user, channel=click.channel)

    async def on_show_code(
        self, ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """Post the code that ran for the answer, in its thread."""
        await ack()
        click = await self._clicked(body, context, respond)
        if click is None:
            return
        note = await self._deps.answers.show_code(click)
        if note:
            await respond(text=finalise(note), response_type="ephemeral", replace_original=False)

    async def on_feedback(
        self, ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """Keep the person's 👍 or 👎 on the answer; thank them (only they see it)."""
        await ack()
        click = await self._clicked(body, context, respond)
        if click is None:
            return
        actions = body.get("actions") or [{}]
        action = str(actions[0].get("action_id") or "") if isinstance(actions[0], dict) else ""
        if action == FEEDBACK_ACTION:  # Slack's feedback buttons: the value is "good:<turn>" or "bad:<turn>"
            vote, _, turn_id = click.turn_id.partition(":")
            click = Clicked(turn_id=turn_id, user=click.user, channel=click.channel)
        else:
            vote = "good" if action == GOOD_ACTION else "bad"
        if vote not in ("good", "bad") or not click.turn_id:
            return
        thanks = await self._deps.answers.vote(click, vote)
        await respond(text=finalise(thanks), response_type="ephemeral", replace_original=False)

    async def on_stop(
        self, ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """The Stop button of a status reply: stop its turn (the thread is told who stopped it)."""
        await ack()
        click = await self._allowed_click(body, context, respond)
        if click is None:
            return
        note = await self._deps.intake.stop_turn(click.value, by=click.user)
        if note:
            await respond(text=finalise(note), response_type="ephemeral", replace_original=False)

    async def on_digest_cancel(
        self, ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """Cancel the digest named by the button's value and show it on the message."""
        await ack()
        click = await self._allowed_click(body, context, respond)
        if click is None:
            return
        digest_id, container, channel = click.value, click.container, click.channel
        result = await self._deps.digests.cancel(digest_id, by=click.user, team=click.team, channel=channel)
        message_ts = str(container.get("message_ts") or "")
        if not result.cancelled:
            await respond(text=finalise(result.text), response_type="ephemeral", replace_original=False)
        elif container.get("is_ephemeral") or not message_ts:
            await respond(text=finalise(result.text), replace_original=True)
            await self._deps.digests.retire_confirmation(result)
        else:
            await self._deps.digests.show_cancelled(channel=channel, ts=message_ts, cancellation=result)


    async def on_story_angle(self, ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """Ask for the clicked story angle's full story in the thread, as the person who clicked (the same
        container: the data frames are still in memory)."""
        await ack()
        actions = body.get("actions") or [{}]
        action = actions[0] if isinstance(actions[0], dict) else {}
        try:
            angle = json.loads(str(action.get("value") or "{}"))
            title, line = str(angle.get("t") or "").strip(), str(angle.get("l") or "").strip()
        except (ValueError, AttributeError):
            return
        container = body.get("container") if isinstance(body.get("container"), dict) else {}
        message = body.get("message") if isinstance(body.get("message"), dict) else {}
        thread_ts = str((container or {}).get("thread_ts") or (message or {}).get("thread_ts") or "")
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        user_team = str((user or {}).get("team_id") or "")
        if not title or not thread_ts:
            return
        question = (f"Tell the full story of this angle, with charts: {title}" + (f" ({line})" if line else "")
                    + ". Use the data already loaded.")
        self._deps.intake.receive(IncomingMessage(
            team=installation_team(context, _id(body.get("team")) or user_team),
            channel=_id(body.get("channel")) or str((container or {}).get("channel_id") or ""), user=_id(user),
            ts=str(action.get("action_ts") or ""), text=question, thread_ts=thread_ts, user_team=user_team))


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the button listeners."""
    handlers = ActionHandlers(deps)
    app.action(CANCEL_ACTION)(handlers.on_digest_cancel)
    app.action(STOP_ACTION)(handlers.on_stop)
    app.action(SHOW_CODE_ACTION)(handlers.on_show_code)
    app.action(GOOD_ACTION)(handlers.on_feedback)
    app.action(BAD_ACTION)(handlers.on_feedback)
    app.action(FEEDBACK_ACTION)(handlers.on_feedback)
    app.action(re.compile(r"^story_angle_\d$"))(handlers.on_story_angle)
