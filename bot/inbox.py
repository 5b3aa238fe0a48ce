"""The durable inbox: a Slack message is stored before Slack is acknowledged, so no acknowledged message is lost.

Slack does not send an acknowledged event again. Between the acknowledgement and the turn's row in the store, a
message lived only in the process that acknowledged it; a replica killed in that window lost it. Now the app's
Bolt middleware (:func:`bot.app.build_app`, after Bolt's signature check) calls :meth:`Inbox.admit` for every
message event the intake takes, and only then lets Bolt answer 200 (or ack over Socket Mode):

* the event is written to the store's inbox (:class:`bot.store.base.InboxStore`) keyed by Slack's event id, so a
  retry, or the copy another replica receives, is recognised there and acknowledged without being handled again;
* the intake handles it as before (:meth:`bot.intake.Intake.receive`) and marks it done, which blanks its words;
* the replica handling an event renews its claim every third of ``DATASTORY_INBOX_GRACE_SECONDS`` (a burst can
  keep the intake busy longer than that); an event whose claim ran out (the replica that acknowledged it died, or
  stopped before handling it) is claimed by one replica (:meth:`Inbox.replay_once`: every replica looks, at start
  and every third of the grace) and handed to the same intake, as a retry. The per-post dedupe keys of the intake
  and the store make the replay answer once, whatever the first replica managed to do before it died.

An event replayed :data:`MAX_REPLAYS` times without being done is given up (logged, marked done). What is stored
is ids, the words and file ids (never file contents); the words are never logged.
"""

from __future__ import annotations

import asyncio
import logging

from bot.clock import Clock
from bot.intake import IncomingMessage, Intake
from bot.metrics import Metrics
from bot.poster import SlackFile
from bot.store.base import InboxEntry, InboxStore

logger = logging.getLogger(__name__)

MAX_REPLAYS = 3
"""Replays of one event before it is given up (a message that breaks the intake every time)."""
BATCH = 20
"""Events one replica claims per look."""


def entry_of(msg: IncomingMessage, *, event_id: str, now: float) -> InboxEntry:
    """What the inbox keeps of a message: its ids, its words and its files' ids."""
    return InboxEntry(event_id=event_id, team=msg.team, channel=msg.channel, ts=msg.ts, user=msg.user,
                      text=msg.text, thread_ts=msg.thread_ts, file_ids=tuple(f.id for f in msg.files),
                      user_team=msg.user_team, bot_user_id=msg.bot_user_id, received_at=now)


def message_of(entry: InboxEntry) -> IncomingMessage:
    """The message of a replayed event: a retry (its reaction waits for the store to say it is new) whose files
    are Slack Connect-style stubs, resolved with ``files.info`` like any stub."""
    files = tuple(SlackFile.from_payload({"id": fid, "mode": "file_access", "user": entry.user})
                  for fid in entry.file_ids)
    return IncomingMessage(team=entry.team, channel=entry.channel, user=entry.user, ts=entry.ts, text=entry.text,
                           thread_ts=entry.thread_ts, files=files, bot_user_id=entry.bot_user_id, is_retry=True,
                           user_team=entry.user_team, event_id=entry.event_id, replayed=True)


class Inbox:
    """Stores events before they are acknowledged, and replays those a dead replica acknowledged."""

    def __init__(self, *, store: InboxStore, intake: Intake, clock: Clock, owner: str, grace: float,
                 metrics: Metrics | None = None) -> None:
        self._store = store
        self._intake = intake
        self._clock = clock
        self.owner = owner
        self.grace = grace
        self._metrics = metrics or Metrics()
        self._waiting: list[tuple[InboxEntry, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def admit(self, msg: IncomingMessage, *, event_id: str) -> bool:
        """Store the event before Slack is acknowledged; False when it was stored already (a retry or a copy: it
        is acknowledged and not handled again). Raises when the store fails: then Slack must not be acknowledged.

        Events that arrive while a write is in flight are stored together by the next one (a group commit: one
        transaction for a burst, not one each behind every other write of the store)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((entry_of(msg, event_id=event_id, now=self._clock.now()), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(), name="inbox-writer")
        return await done

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                added = await self._store.add_inbox_batch([entry for entry, _ in batch], owner=self.owner,
                                                          hold_until=self._clock.now() + self.grace)
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), new in zip(batch, added, strict=True):
                if not done.done():
                    done.set_result(new)

    async def replay_once(self, now: float) -> int:
        """Claim the events whose grace (or whose last replay's) ran out and hand them to the intake; returns how
        many were replayed."""
        replayed = 0
        for entry in await self._store.claim_inbox(owner=self.owner, now=now, lease_seconds=self.grace,
                                                   limit=BATCH):
            if entry.attempts > MAX_REPLAYS:
                logger.error("inbox event given up after %d replays event_id=%s channel=%s ts=%s", MAX_REPLAYS,
                             entry.event_id, entry.channel, entry.ts)
                await self._store.finish_inbox(entry.event_id, now=now)
                continue
            logger.info("replaying an acknowledged event event_id=%s channel=%s ts=%s attempt=%d", entry.event_id,
                        entry.channel, entry.ts, entry.attempts)
            self._metrics.inbox_replayed()
            self._intake.receive(message_of(entry))
            replayed += 1
        return replayed

    async def renew(self, now: float) -> int:
        """Keep the claims on the events the intake is handling here; returns how many."""
        return await self._store.renew_inbox(sorted(self._intake.handling), owner=self.owner, until=now + self.grace)

    async def poll_forever(self) -> None:
        """Every third of the grace until cancelled: renew the claims on what is being handled here, and replay what
        is due (at once at start: a start after a crash)."""
        while True:
            try:
                await self.renew(self._clock.now())
                await self.replay_once(self._clock.now())
            except Exception as exc:  # the database is away: look again later
                logger.warning("inbox replay failed error=%s", type(exc).__name__)
            await asyncio.sleep(max(self.grace / 3, 0.2))
