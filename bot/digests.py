"""Scheduled digests, the Slack-independent rules: schedule one from a thread, list a channel's, cancel one.

A digest is created by a message in a thread that has data, ``@datastory digest <schedule>: <question>``
(:func:`bot.schedules.parse_digest_command`, read in the author's time zone from ``users.info``). The thread gets
a confirmation with the next three runs in that zone and a Cancel button (``action_id`` :data:`CANCEL_ACTION`,
value the digest id), or, for a schedule that cannot be read, the parser's message with examples. The slash
command lists and cancels (``/datastory digests``, ``/datastory digest cancel ID``). Running digests when they
are due is :mod:`bot.jobs.digests`.

The handlers only translate Slack payloads into calls on :class:`Digests`; the texts and Block Kit blocks are
built here and returned as :class:`Reply` values.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.access import ADMIN_HINT, Access
from bot.clock import Clock
from bot.poster import Poster, SlackError
from bot.schedules import EXAMPLES, ScheduleError, check_zone, parse_digest_command
from bot.slack_text import channel_link, mention
from bot.store.base import DigestRecord, Store, ThreadKey

logger = logging.getLogger(__name__)

CANCEL_ACTION = "digest_cancel"
"""``action_id`` of every Cancel button of a digest; its ``value`` is the digest id."""
NEXT_RUNS_SHOWN = 3
MAX_LISTED = 40
"""Digests shown with a button in ``/datastory digests`` (Slack allows 50 blocks in a message)."""
DIGEST_WORD = re.compile(r"^\s*digest\b", re.I)
DIGEST_ID = re.compile(r"^d[0-9a-f]{6}$")
USAGE = ("Write it as `digest <schedule>: <question>` in a thread that has data, for example "
         f"`@datastory digest every monday 09:00: summarise revenue by region`. Schedules: {EXAMPLES}.")
NO_DATA_TEXT = ("A digest re-runs a thread's analysis on a schedule, so it needs a thread with data: share a CSV "
                "first, then reply in its thread `@datastory digest every monday 09:00: <question>`.")


@dataclass(frozen=True, slots=True)
class Reply:
    """A message to show: mrkdwn text (also the notification fallback) and optional Block Kit blocks."""

    text: str
    blocks: list[dict[str, object]] | None = None


@dataclass(frozen=True, slots=True)
class Cancellation:
    """The result of a cancel request: whether the digest is now cancelled, and what to tell."""

    cancelled: bool
    text: str
    digest: DigestRecord | None = None
    now: bool = False
    """This request cancelled it (not an earlier one)."""


def is_digest_command(question: str) -> bool:
    """Whether a thread message (mention stripped) asks for a digest: it starts with the word ``digest``."""
    return bool(DIGEST_WORD.match(question))


def new_digest_id() -> str:
    """``d`` and six hex digits: short enough to type in ``/datastory digest cancel ID``."""
    return "d" + secrets.token_hex(3)


def when(moment: datetime) -> str:
    """``Mon 30 Nov 09:00 EST``: an aware moment in its own zone."""
    return f"{moment:%a} {moment.day} {moment:%b %H:%M %Z}"


def at(ts: float, tz: str) -> str:
    """Unix seconds shown in the IANA zone ``tz`` (UTC when unknown), as :func:`when`."""
    return when(datetime.fromtimestamp(ts, ZoneInfo(check_zone(tz))))


def _section(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def cancel_button(digest_id: str) -> dict[str, object]:
    """The Cancel button of a digest."""
    return {
        "type": "button", "action_id": CANCEL_ACTION, "value": digest_id, "style": "danger",
        "text": {"type": "plain_text", "text": "Cancel"},
        "confirm": {
            "title": {"type": "plain_text", "text": "Cancel this digest?"},
            "text": {"type": "mrkdwn", "text": f"Digest `{digest_id}` will not run again."},
            "confirm": {"type": "plain_text", "text": "Cancel it"},
            "deny": {"type": "plain_text", "text": "Keep it"},
        },
    }


def _quote(question: str) -> str:
    return "\n".join(">" + line for line in question.splitlines() or [""])


class Digests:
    """Creating, listing and cancelling digests; used by the intake, the slash command and the Cancel button."""

    def __init__(self, *, store: Store, poster: Poster, clock: Clock, access: Access) -> None:
        self._access = access
        self._store = store
        self._poster = poster
        self._clock = clock

    async def create(self, *, key: ThreadKey, user: str, text: str) -> Reply:
        """Schedule ``text`` (``digest <schedule>: <question>``) for the thread ``key``, in ``user``'s time zone;
        the reply confirms it (next runs, Cancel button) or explains, with examples, what could not be read."""
        tz = await self._poster.user_tz(user)
        try:
            parsed = parse_digest_command(text, tz=tz)
        except ScheduleError as exc:
            return Reply(f":calendar: {exc}")
        if parsed is None:
            return Reply(f":calendar: {USAGE}")
        schedule, question = parsed.schedule, parsed.question
        now = self._clock.now()
        digest = DigestRecord(
            id=await self._new_id(), key=key, owner=user, question=question, cron=schedule.cron, tz=schedule.tz,
            label=schedule.label, created_at=now, next_run_at=schedule.next_run(now),
            skip_unchanged=parsed.skip_unchanged,
        )
        await self._store.add_digest(digest)
        logger.info("digest scheduled digest=%s thread=%s cron=%s tz=%s", digest.id, key, schedule.cron, schedule.tz)
        runs = ", ".join(when(moment) for moment in schedule.next_runs(now, NEXT_RUNS_SHOWN))
        confirmation = (
            f":calendar: Digest `{digest.id}` scheduled {schedule.label} ({schedule.tz}):\n{_quote(question)}\n"
            f"Next runs: {runs}.\n"
            "Each run analyses the newest version of this thread's files in a fresh workspace and posts to the "
            "channel; " + ("when the data has not changed it posts one line instead (write `digest always …` to "
                           "get the full digest every time)." if parsed.skip_unchanged
                           else "it posts the full digest even when the data has not changed.")
        )
        blocks: list[dict[str, object]] = [
            _section(confirmation),
            {"type": "actions", "block_id": f"digest-{digest.id}", "elements": [cancel_button(digest.id)]},
        ]
        return Reply(confirmation, blocks)

    async def _new_id(self) -> str:
        for _ in range(5):
            digest_id = new_digest_id()
            if await self._store.get_digest(digest_id) is None:
                return digest_id
        raise RuntimeError("could not find a free digest id")  # pragma: no cover (16M ids)

    async def list_channel(self, *, team: str, channel: str) -> Reply:
        """``/datastory digests``: the channel's digests with next run, owner and a Cancel button each."""
        digests = await self._store.list_digests(team=team, channel=channel)
        if not digests:
            return Reply("No digests in this channel. " + USAGE)
        lines = [self._line(d) for d in digests]
        blocks: list[dict[str, object]] = [_section(f"*Digests in this channel* ({len(digests)}):")]
        for d, line in zip(digests[:MAX_LISTED], lines, strict=False):
            blocks.append({**_section(line), "accessory": cancel_button(d.id)})
        if len(digests) > MAX_LISTED:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
                f"…and {len(digests) - MAX_LISTED} more; cancel them with `/datastory digest cancel ID`.")}]})
        return Reply("Digests in this channel:\n" + "\n".join(lines), blocks)

    @staticmethod
    def _line(d: DigestRecord) -> str:
        state = " *paused*" if d.status == "paused" else ""
        question = d.question if len(d.question) <= 120 else d.question[:119] + "…"
        return (f"`{d.id}`{state} {d.label} ({d.tz}), next {at(d.next_run_at, d.tz)}, owner {mention(d.owner)}: "
                f"{question}")

    async def cancel(self, digest_id: str, *, by: str, team: str, channel: str) -> Cancellation:
        """Cancel a digest of this channel: its owner may, and an admin (:meth:`bot.access.Access.is_admin`) may
        cancel anyone's."""
        digest_id = digest_id.strip().strip("`").lower()
        digest = await self._store.get_digest(digest_id) if DIGEST_ID.match(digest_id) else None
        if digest is None or digest.key.team != team:
            return Cancellation(False, f"There is no digest `{digest_id}`. `/datastory digests` lists this "
                                       "channel's digests.")
        if digest.key.channel != channel:
            return Cancellation(False, f"Digest `{digest.id}` belongs to {channel_link(digest.key.channel)}; cancel "
                                       "it there.", digest)
        if by != digest.owner and not await self._access.is_admin(by):
            return Cancellation(False, f"Digest `{digest.id}` is {mention(digest.owner)}'s: only its owner or "
                                       f"{ADMIN_HINT} can cancel it.", digest)
        if digest.status == "cancelled":
            return Cancellation(True, f"Digest `{digest.id}` ({digest.label}) was already cancelled.", digest)
        if not await self._store.cancel_digest(digest.id):
            return Cancellation(True, f"Digest `{digest.id}` ({digest.label}) was already cancelled.", digest)
        logger.info("digest cancelled digest=%s by=%s", digest.id, by)
        return Cancellation(True, f":no_entry_sign: Digest `{digest.id}` ({digest.label}) was cancelled by "
                                  f"{mention(by)}.", digest, now=True)

    async def show_cancelled(self, *, channel: str, ts: str, cancellation: Cancellation) -> None:
        """Replace the message that carried the Cancel button: the question, and who cancelled (no button)."""
        text = cancellation.text
        if cancellation.digest is not None:
            text = f"{cancellation.text}\n{_quote(cancellation.digest.question)}"
        try:
            await self._poster.update(channel=channel, ts=ts, text=text, blocks=[_section(text)])
        except SlackError as exc:
            logger.warning("cancelled digest message not updated channel=%s error=%s", channel, exc.code)

    async def retire_confirmation(self, cancellation: Cancellation) -> None:
        """After a cancel from elsewhere (the command, the channel's listing), the confirmation posted in the thread
        when the digest was scheduled loses its Cancel button and says who cancelled it."""
        digest = cancellation.digest
        if digest is None or not cancellation.now:
            return
        channel, block_id = digest.key.channel, f"digest-{digest.id}"
        try:
            messages = await self._poster.thread_messages(channel=channel, thread_ts=digest.key.thread_ts)
        except SlackError as exc:
            logger.warning("digest confirmation not found channel=%s error=%s", channel, exc.code)
            return
        for message in messages:
            if block_id in message.block_ids:
                await self.show_cancelled(channel=channel, ts=message.ts, cancellation=cancellation)
