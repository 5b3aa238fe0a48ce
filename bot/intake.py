"""What the bot does with a message: start a turn, explain a refusal, offer help, or ignore it.

Handlers translate Slack events (``message``, ``file_share``, ``app_mention``) into :class:`IncomingMessage`
and call :meth:`Intake.on_message`; every rule about which messages start work lives here, Slack-independent.
A thread message that starts with ``digest`` schedules a digest (:class:`bot.digests.Digests`) instead of
asking a question.
The same post can arrive as several events (``message`` and ``app_mention``; Slack retries): one dedupe key per
``(team, channel, ts)`` makes exactly one of them act, across restarts too, because the key is stored.
A message event reaches the intake after it was stored in the inbox (:mod:`bot.inbox`); handling it marks it
done there, and a replica that died before doing so has it replayed by another one.
A message that would start something is first checked by :class:`bot.access.Access` (allowlists, other
organisations); a refusal is told to its author alone, once per post.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from bot.access import Access, Person
from bot.admission import Admission, Refusal
from bot.clock import Clock
from bot.costs import over_budget
from bot.digests import NO_DATA_TEXT, Digests, is_digest_command
from bot.files import rejection_reason
from bot.logs import bind
from bot.metrics import Metrics
from bot.poster import Poster, SlackError, SlackFile
from bot.store.base import FileRecord, NewTurn, Store, ThreadKey
from bot.tasks import TaskTracker, TrackerClosed
from bot.turns import TurnWorker

logger = logging.getLogger(__name__)

Outcome = Literal["turn", "duplicate", "rejected", "refused", "busy", "reset", "stop", "help", "digest", "ignored"]
Action = Literal["files", "question", "history", "reset", "stop", "digest", "help"]

RESET_WORDS = frozenset({"reset", "start over", "restart"})
STOP_WORDS = frozenset({"stop", "cancel"})
NOTHING_TO_STOP = "Nothing is running in this thread right now."
RESET_TEXT = ("Fresh start: I deleted this thread's workspace. Your files are kept; the next question loads them "
              "into a new one.")
HELP_TEXT = (
    "Drop a CSV (or several) in a channel I'm in, or in a DM with me, and I'll analyse it in a thread: "
    "a short narrative and charts. Reply in that thread to ask follow-up questions about the same data, "
    "for example: _which region grew fastest last quarter?_"
)
NO_DATA_IN_THREAD_TEXT = (
    "I don't see a CSV, TSV, Excel or JSON file in this thread. Drop one here and mention me again with your "
    "question, for example: _@datastory what drives revenue?_"
)
THREAD_UNREADABLE_TEXT = (
    "I couldn't read this thread's earlier messages (Slack refused: `{code}`). Drop the file here again and "
    "mention me with your question."
)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A user's post, as the core needs it."""

    team: str
    channel: str
    user: str
    ts: str
    text: str
    thread_ts: str | None = None
    """The root of the thread the post is in; ``None`` for a top-level post."""
    files: tuple[SlackFile, ...] = ()
    bot_user_id: str = ""
    """The bot's own user id (to recognise and strip mentions)."""
    is_retry: bool = False
    """Slack is redelivering this event (``X-Slack-Retry-Num`` > 0): it may have been handled long ago."""
    user_team: str = ""
    """The author's own team as the event says it (``user_team``/``team``); another organisation's in a shared
    channel. Empty when the event does not say."""
    event_id: str = ""
    """Slack's id of the event when it is in the inbox (:mod:`bot.inbox`): handling it marks it done there."""
    replayed: bool = False
    """Replayed from the inbox: the replica that acknowledged it may have died anywhere in its handling."""

    @property
    def person(self) -> Person:
        """The author, for the access checks (``team`` is the workspace the bot is installed in)."""
        return Person(user=self.user, channel=self.channel, home_team=self.team, user_team=self.user_team)

    @property
    def mentions_bot(self) -> bool:
        """True when the text mentions the bot."""
        return bool(self.bot_user_id) and f"<@{self.bot_user_id}>" in self.text

    @property
    def question(self) -> str:
        """The text without mentions of the bot, trimmed."""
        text = self.text.replace(f"<@{self.bot_user_id}>", " ") if self.bot_user_id else self.text
        return re.sub(r"\s+", " ", text).strip()

    @property
    def key(self) -> ThreadKey:
        """The thread this post belongs to (its own thread when top-level)."""
        return ThreadKey(self.team, self.channel, self.thread_ts or self.ts)

    @property
    def dedupe_key(self) -> str:
        """One key per post, whichever events carry it."""
        return f"msg:{self.team}:{self.channel}:{self.ts}"


class Intake:
    """Applies the rules of DESIGN.md §2 "what starts an analysis" to one message."""

    def __init__(
        self, *, store: Store, worker: TurnWorker, poster: Poster, clock: Clock, tracker: TaskTracker,
        max_file_bytes: int, access: Access, admission: Admission, daily_budget_usd: float | None = None,
        digests: Digests | None = None, metrics: Metrics | None = None,
    ) -> None:
        self._admission = admission
        self._metrics = metrics or Metrics()
        self._budget = daily_budget_usd
        self._digests = digests
        self._store = store
        self._tracker = tracker
        self._worker = worker
        self._poster = poster
        self._clock = clock
        self._max_file_bytes = max_file_bytes
        self._access = access
        self.handling: set[str] = set()
        """Inbox event ids this replica is handling now (:class:`bot.inbox.Inbox` renews their claims)."""

    def receive(self, msg: IncomingMessage) -> None:
        """Handle ``msg`` in a tracked background task (called right after Slack was acknowledged)."""
        received = self._metrics.mark_received()  # the task inherits the arrival time (first-feedback latency)
        try:
            self._tracker.spawn(self._handle(msg), name=f"intake-{msg.channel}-{msg.ts}", group=msg.team)
            if msg.event_id:
                self.handling.add(msg.event_id)
        except TrackerClosed:
            logger.warning("shutting down; message not handled (%s) channel=%s ts=%s",
                           "a replica replays it from the inbox" if msg.event_id else "lost", msg.channel, msg.ts)
        finally:
            self._metrics.unmark(received)

    async def _handle(self, msg: IncomingMessage) -> None:
        try:
            await self._handle_once(msg)
        finally:
            self.handling.discard(msg.event_id)

    async def _handle_once(self, msg: IncomingMessage) -> None:
        bind(team=msg.team, channel=msg.channel, thread_ts=msg.key.thread_ts)
        outcome = await self.on_message(msg)
        self._metrics.message_handled(outcome)
        if outcome != "ignored":
            logger.info("message handled channel=%s ts=%s outcome=%s", msg.channel, msg.ts, outcome)
        if msg.event_id and outcome != "turn":  # handled (a failure above leaves it to be replayed): done, its
            # words forgotten (a stored turn marked it done in the same transaction)
            try:
                await self._store.finish_inbox(msg.event_id, now=self._clock.now())
            except Exception as exc:
                logger.warning("inbox event not marked done; it will be replayed event_id=%s error=%s",
                               msg.event_id, type(exc).__name__)

    async def on_message(self, msg: IncomingMessage) -> Outcome:
        """Act on one message; returns what was done (for logs and tests). A replayed message whose post was acted
        on already (its dedupe key is stored) is a duplicate before any Slack call."""
        if msg.replayed and await self._store.claimed(msg.dedupe_key):
            return "duplicate"
        action = await self._action(msg)
        if action is None:
            return "ignored"
        if refusal := await self._access.refusal(msg.person):
            return await self._refuse(msg, refusal)
        if action == "files":
            return await self._on_files(msg)
        if action == "stop":
            return await self._stop(msg)
        if action == "reset":
            return await self._reset(msg)
        if action == "digest" and self._digests is not None:
            return await self._digest(msg, self._digests)
        if action == "question":
            return await self._submit(msg, ())
        if action == "history":
            return await self._from_history(msg)
        wants_digest = self._digests is not None and is_digest_command(msg.question)
        return await self._reply_once(msg, NO_DATA_TEXT if wants_digest else HELP_TEXT, outcome="help")

    async def _action(self, msg: IncomingMessage) -> Action | None:
        """What the message would start, before anyone's access is checked (None: it is not for the bot)."""
        if msg.files:
            return "files"
        if (msg.thread_ts is not None and self._access.channel_allowed(msg.channel)
                and await self._thread_has_data(msg.key)):
            if msg.question.lower().strip(" .!") in RESET_WORDS:
                return "reset"
            if msg.question.lower().strip(" .!") in STOP_WORDS:
                return "stop"
            if self._digests is not None and is_digest_command(msg.question):
                return "digest"
            return "question"
        if msg.thread_ts is not None and msg.mentions_bot and self._access.channel_allowed(msg.channel):
            return "history"  # a thread the bot has no data of: its files may have been shared before
        return "help" if msg.mentions_bot else None

    async def _refuse(self, msg: IncomingMessage, text: str) -> Outcome:
        """Tell the author alone why nothing happens (once per post)."""
        if not await self._store.claim(msg.dedupe_key, now=self._clock.now()):
            return "duplicate"
        logger.info("refused channel=%s user=%s ts=%s", msg.channel, msg.user, msg.ts)
        await self._tell_author(msg, text)
        return "refused"

    async def _tell_author(self, msg: IncomingMessage, text: str) -> None:
        try:
            await self._poster.post_ephemeral(channel=msg.channel, user=msg.user, thread_ts=msg.thread_ts or msg.ts,
                                              text=text)
        except SlackError as exc:
            logger.warning("refusal not delivered channel=%s error=%s", msg.channel, exc.code)

    async def _stop(self, msg: IncomingMessage) -> Outcome:
        """``stop`` in a thread: interrupt its running analysis (the worker tells the thread who stopped it); with
        nothing running, only the person who asked is told."""
        if not await self._store.claim(msg.dedupe_key, now=self._clock.now()):
            return "duplicate"
        if not await self._worker.stop(msg.key, by=msg.user):
            await self._tell_author(msg, NOTHING_TO_STOP)
        return "stop"

    async def stop_turn(self, turn_id: str, *, by: str) -> str | None:
        """The Stop button of a turn's status reply: stop the turn while it runs; otherwise what to tell ``by``."""
        turn = await self._store.get_turn(turn_id)
        if turn is None or turn.status != "running" or not await self._worker.stop(turn.key, by=by):
            return NOTHING_TO_STOP
        return None

    async def stop_session(self, team: str, channel: str, thread_ts: str, *, by: str) -> None:
        """Slack's Stop button (``agent_session_stopped``): stop the thread's analysis like ``stop`` typed there;
        with nothing running, the session only leaves ``processing``."""
        key = ThreadKey(team=team, channel=channel, thread_ts=thread_ts)
        if not await self._worker.stop(key, by=by):
            await self._worker.agent_sessions.set(key, "active")

    async def ensure_member(self, msg: IncomingMessage) -> bool:
        """Whether the bot is in the message's channel, joining it when it is public and the scopes allow."""
        return await self._poster.ensure_member(channel=msg.channel, ts=msg.ts)

    async def stop_channel(self, team: str, channel: str, *, by: str, everyone: bool) -> int:
        """``/datastory stop``: the analyses stopped in the channel (``by``'s own, or everyone's for an admin)."""
        return await self._worker.stop_in_channel(team, channel, by=by, everyone=everyone)

    async def _reset(self, msg: IncomingMessage) -> Outcome:
        if not await self._store.claim(msg.dedupe_key, now=self._clock.now()):
            return "duplicate"
        await self._worker.reset(msg.key, ts=msg.ts)
        await self._post(msg, RESET_TEXT)
        return "reset"

    async def _digest(self, msg: IncomingMessage, digests: Digests) -> Outcome:
        """``digest <schedule>: <question>`` in a thread with data: schedule it, or say why not (with examples)."""
        if not await self._store.claim(msg.dedupe_key, now=self._clock.now()):
            return "duplicate"
        reply = await digests.create(key=msg.key, user=msg.user, text=msg.question)
        await self._post(msg, reply.text, blocks=reply.blocks)
        return "digest"

    async def reset_channel(self, team: str, channel: str) -> int:
        """``/datastory reset``: reset every thread of the channel that has a workspace (each after the turns
        already asked in it); returns how many. Whether the caller may (an admin) is the caller's check."""
        threads = [t for t in await self._store.list_threads()
                   if t.key.team == team and t.key.channel == channel and t.container_id]
        now = f"{self._clock.now():.6f}"
        for thread in threads:
            await self._worker.reset(thread.key, ts=now)
        return len(threads)

    async def _thread_has_data(self, key: ThreadKey) -> bool:
        return await self._store.get_thread(key) is not None and bool(await self._store.list_files(key))

    async def _on_files(self, msg: IncomingMessage) -> Outcome:
        files = [await self._resolve(f) for f in msg.files]
        accepted = [f for f in files if rejection_reason(f, max_bytes=self._max_file_bytes) is None]
        refusals = [f"• `{f.name}`: {reason}" for f in files
                    if (reason := rejection_reason(f, max_bytes=self._max_file_bytes)) is not None]
        if not accepted:
            what = "this file" if len(files) == 1 else "these files"
            return await self._reply_once(msg, f"I can't analyse {what}:\n" + "\n".join(refusals), outcome="rejected")
        outcome = await self._submit(msg, tuple(accepted))
        if refusals and outcome == "turn":
            await self._post(msg, "I'm skipping " + ("this file" if len(refusals) == 1 else "these files")
                             + ":\n" + "\n".join(refusals))
        return outcome

    async def _from_history(self, msg: IncomingMessage) -> Outcome:
        """A mention in a thread the bot has no data of (its file was shared before the bot was invited or
        running): read the thread once, take the tabular files people shared in it, and answer the mention's
        question about them; with none, say how to start. The post's two events (``message`` and
        ``app_mention``) read the thread once between them; a replay reads it again (the replica that claimed the
        read may have died before storing the turn; the turn's own dedupe key keeps it to one answer)."""
        if not await self._store.claim(f"history:{msg.dedupe_key}", now=self._clock.now()) and not msg.replayed:
            return "duplicate"
        try:
            shared = await self._poster.thread_files(channel=msg.channel, thread_ts=msg.key.thread_ts)
        except SlackError as exc:
            logger.warning("thread not read channel=%s error=%s", msg.channel, exc.code)
            return await self._reply_once(msg, THREAD_UNREADABLE_TEXT.format(code=exc.code), outcome="help")
        unique = {f.id: f for f in shared if f.user != msg.bot_user_id}  # not the bot's own charts and tables
        files = [f for f in [await self._resolve(f) for f in unique.values()]
                 if rejection_reason(f, max_bytes=self._max_file_bytes) is None]
        if not files:
            return await self._reply_once(msg, NO_DATA_IN_THREAD_TEXT, outcome="help")
        logger.info("thread read for its files channel=%s files=%d", msg.channel, len(files))
        return await self._submit(msg, tuple(files))

    async def _resolve(self, file: SlackFile) -> SlackFile:
        """Slack Connect sends stubs (``mode: file_access``); ``files.info`` has the real metadata."""
        if file.mode != "file_access" and file.url_private_download:
            return file
        try:
            return await self._poster.file_info(file.id)
        except SlackError as exc:
            logger.warning("files.info failed file=%s error=%s", file.id, exc.code)
            return file

    async def _submit(self, msg: IncomingMessage, files: tuple[SlackFile, ...]) -> Outcome:
        """Store and start the turn. A first delivery gets its reaction while the store writes (the fastest
        feedback); a retry reacts only once the store said it is new, so an old answered message is left as is.
        The fairness caps are checked first, under the asker's admission lock (:mod:`bot.admission`)."""
        if self._budget is not None and (refusal := await over_budget(
                self._store, user=msg.user, channel=msg.channel, budget=self._budget, now=self._clock.now())):
            return await self._refuse(msg, refusal)
        async with self._admission.holding(msg.team, msg.user):
            if busy := await self._admission.refusal(team=msg.team, user=msg.user, channel=msg.channel):
                return await self._busy(msg, busy)
            if msg.is_retry:
                return await self._store_turn(msg, files, reacted=False)
            _, outcome = await asyncio.gather(self._acknowledge(msg), self._store_turn(msg, files, reacted=True))
            return outcome

    async def _busy(self, msg: IncomingMessage, busy: Refusal) -> Outcome:
        """Over a fairness cap: tell the asker alone (unless told moments ago); the message is not queued. A
        retry of a message that was queued is a duplicate, not a refusal."""
        if msg.is_retry and not await self._store.claim(msg.dedupe_key, now=self._clock.now()):
            return "duplicate"
        logger.info("not queued (%s cap) channel=%s user=%s ts=%s", busy.reason, msg.channel, msg.user, msg.ts)
        if busy.text is not None:
            await self._tell_author(msg, busy.text)
        return "busy"

    async def _acknowledge(self, msg: IncomingMessage) -> None:
        await self._worker.acknowledge(msg.channel, msg.ts)
        self._metrics.first_feedback_shown()

    async def _store_turn(self, msg: IncomingMessage, files: tuple[SlackFile, ...], *, reacted: bool) -> Outcome:
        now = self._clock.now()
        key = msg.key
        records = tuple(
            FileRecord(
                key=key, slack_file_id=f.id, name=f.name, size=f.size, mimetype=f.mimetype, filetype=f.filetype,
                download_url=f.url_private_download, message_ts=msg.ts, user=msg.user or f.user, created_at=now,
            )
            for f in files
        )
        turn = NewTurn(
            id=uuid.uuid4().hex, key=key, message_ts=msg.ts, user=msg.user, question=msg.question,
            files=records, created_at=now,
        )
        if not await self._worker.submit(turn, dedupe_keys=(msg.dedupe_key,), reacted=reacted,
                                         inbox_event=msg.event_id or None):
            return "duplicate"
        return "turn"

    async def _reply_once(self, msg: IncomingMessage, text: str, *, outcome: Outcome) -> Outcome:
        if not await self._store.claim(msg.dedupe_key, now=self._clock.now()):
            return "duplicate"
        await self._post(msg, text)
        return outcome

    async def _post(self, msg: IncomingMessage, text: str, *, blocks: list[dict[str, object]] | None = None) -> None:
        try:
            await self._poster.post(channel=msg.channel, thread_ts=msg.thread_ts or msg.ts, text=text, blocks=blocks)
        except SlackError as exc:
            logger.warning("reply failed channel=%s error=%s", msg.channel, exc.code)
