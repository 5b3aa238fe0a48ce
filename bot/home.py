"""The App Home tab: a person's recent analyses, their digests, and a short guide (``views.publish``).

Published when the person opens the tab (``app_home_opened``, :mod:`handlers.home`). Recent analyses are the
person's latest questions across the workspace's most recently active threads, each with a link to its thread;
digests are the ones they own. Everything shown comes from the store; text from people (questions, labels) is
cut to one line and finalised at the gateway like every other text.

Limits (https://docs.slack.dev/reference/block-kit/blocks): a Home tab holds at most 100 blocks; a section's text
is at most 3,000 characters.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from bot.poster import Poster, SlackError
from bot.slack_text import channel_link, one_line
from bot.store.base import Store, TurnRecord

logger = logging.getLogger(__name__)

RECENT = 10
THREADS_LOOKED_AT = 50
GUIDE = ("*How to use datastory*\n"
         "• Drop a CSV, TSV, Excel or JSON file in a channel I'm in (or here in a DM): I read it in a sandbox and "
         "answer in its thread with a narrative, charts and tables.\n"
         "• Ask follow-up questions in the thread; the data stays loaded.\n"
         "• On an answer: *Show code* posts the Python that ran; 👍 / 👎 tell us whether it helped.\n"
         "• `@datastory digest every monday 09:00: <question>` in a thread schedules a digest.\n"
         "• `/datastory help | status | reset | digests`.")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


class Home:
    """Builds and publishes each person's Home tab."""

    def __init__(self, *, store: Store, poster: Poster) -> None:
        self._store = store
        self._poster = poster

    async def recent_turns(self, *, team: str, user: str) -> list[TurnRecord]:
        """The person's latest questions, newest first."""
        threads = sorted(await self._store.list_threads(team=team), key=lambda t: -t.last_active_at)
        turns: list[TurnRecord] = []
        for thread in threads[:THREADS_LOOKED_AT]:
            turns += [t for t in await self._store.list_turns(thread.key) if t.user == user]
        return sorted(turns, key=lambda t: -t.created_at)[:RECENT]

    async def view(self, *, team: str, user: str) -> dict[str, Any]:
        """The Home tab view for ``user``."""
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": "datastory"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Your recent analyses*"}},
        ]
        turns = await self.recent_turns(team=team, user=user)
        for turn in turns:
            link = await self._link(turn)
            question = one_line(turn.question or "first look at the data", limit=150)
            state = {"done": "answered", "failed": "failed"}.get(turn.status, turn.status)
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                           f"• {question} — {state}, {_when(turn.created_at)}" + (f" · {link}" if link else "")}})
        if not turns:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                           "None yet: drop a CSV in a channel I'm in, or here in a DM."}]})
        blocks.append({"type": "divider"})
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Your digests*"}})
        digests = [d for d in await self._store.list_digests(team=team) if d.owner == user and d.status == "active"]
        for d in digests[:20]:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                           f"• {one_line(d.label or d.question, limit=150)} — `{d.cron}` ({d.tz}), next "
                           f"{_when(d.next_run_at)} in {channel_link(d.key.channel)} (id `{d.id}`)"}})
        if not digests:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "No digests scheduled."}]})
        blocks += [{"type": "divider"}, {"type": "section", "text": {"type": "mrkdwn", "text": GUIDE}}]
        return {"type": "home", "blocks": blocks[:100]}

    async def _link(self, turn: TurnRecord) -> str:
        try:
            return await self._poster.permalink(channel=turn.key.channel, ts=turn.key.thread_ts)
        except SlackError:
            return ""

    async def publish(self, *, team: str, user: str) -> None:
        """Publish ``user``'s Home tab (a failure is logged: the tab keeps its last view)."""
        await self._publish(user, await self.view(team=team, user=user))

    async def publish_text(self, *, user: str, text: str) -> None:
        """A Home tab that says only ``text`` (an access refusal)."""
        await self._publish(user, {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                                                                                          "text": text}}]})

    async def _publish(self, user: str, view: dict[str, Any]) -> None:
        try:
            await self._poster.publish_home(user=user, view=view)
        except SlackError as exc:
            logger.warning("home tab not published user=%s error=%s", user, exc.code)
