"""Interactivity: the Cancel button of a digest (``block_actions`` with ``action_id`` ``digest_cancel``).

The button sits on the confirmation in the thread and on each line of ``/datastory digests`` (an ephemeral
message). Acknowledged at once; the digest is cancelled by :class:`bot.digests.Digests`, then the message that
carried the button says so: a channel message is updated with ``chat.update``, an ephemeral one is replaced
through the ``response_url``. The person who clicked is checked first (:class:`bot.access.Access`), and only the
digest's owner or an admin may cancel it; a refusal is told only to the person who clicked.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.access import Person
from bot.deps import Deps
from bot.digests import CANCEL_ACTION
from bot.slack_text import finalise
from handlers.events import installation_team


def _id(value: Any) -> str:
    return str(value.get("id") or "") if isinstance(value, dict) else ""


class ActionHandlers:
    """Listeners for buttons."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_digest_cancel(
        self, ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """Cancel the digest named by the button's value and show it on the message."""
        await ack()
        actions = body.get("actions") or [{}]
        digest_id = str(actions[0].get("value") or "") if isinstance(actions[0], dict) else ""
        container = body.get("container") if isinstance(body.get("container"), dict) else {}
        channel = _id(body.get("channel")) or str((container or {}).get("channel_id") or "")
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        user_team = str((user or {}).get("team_id") or "")
        team = installation_team(context, _id(body.get("team")) or user_team)
        refusal = await self._deps.access.refusal(Person(user=_id(user), channel=channel, home_team=team,
                                                         user_team=user_team))
        if refusal:
            await respond(text=finalise(refusal), response_type="ephemeral", replace_original=False)
            return
        result = await self._deps.digests.cancel(digest_id, by=_id(user), team=team, channel=channel)
        message_ts = str((container or {}).get("message_ts") or "")
        if not result.cancelled:
            await respond(text=finalise(result.text), response_type="ephemeral", replace_original=False)
        elif (container or {}).get("is_ephemeral") or not message_ts:
            await respond(text=finalise(result.text), replace_original=True)
        else:
            await self._deps.digests.show_cancelled(channel=channel, ts=message_ts, cancellation=result)


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the button listeners."""
    app.action(CANCEL_ACTION)(ActionHandlers(deps).on_digest_cancel)
