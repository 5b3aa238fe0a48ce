"""The emulator's text streaming methods: ``chat.startStream``, ``chat.appendStream`` and ``chat.stopStream``.

As Slack documents them (docs.slack.dev/reference/methods/chat.startStream, .appendStream, .stopStream) and as
people who called them report (secondary sources, marked so):

- ``chat.startStream`` takes ``channel`` and, outside a DM, both ``recipient_user_id`` and ``recipient_team_id``
  (``missing_recipient_user_id`` / ``missing_recipient_team_id`` otherwise; the codes are secondary);
  ``thread_ts`` ("streamed messages should always be replies"); ``task_display_mode`` ``timeline`` (default) or
  ``plan``; ``markdown_text`` and/or ``chunks``. Answers ``{"channel", "ts"}``.
- ``chat.appendStream`` / ``chat.stopStream`` take ``channel`` and ``ts``; a message that is not streaming (never
  was, already stopped, or older than the stream's lifetime, about five minutes: secondary) answers
  ``message_not_in_streaming_state``; another app's message ``message_not_owned_by_app``. ``stopStream`` also takes
  ``blocks`` (rendered at the bottom of the message) and ``metadata``; the stopped message's ``blocks`` are then its
  text as a block (a ``markdown`` block here; people report a ``rich_text`` block from Slack) and those blocks.
  The message's limits (at most two data visualization blocks, 50 blocks...: :mod:`bot.demo.block_rules`) hold
  for all of it: the ``blocks`` chunks streamed before and the blocks at the stop. ``chat.startStream`` takes no
  ``metadata`` (neither Slack's reference nor slack_sdk's ``chat_startStream`` has it).
- ``markdown_text`` is limited to 12,000 characters per call (``msg_too_long``; per chunk, not cumulative:
  secondary). Chunks are ``markdown_text`` (``text``), ``task_update`` (``id``, ``title``, ``status`` one of
  ``pending``, ``in_progress``, ``complete``, ``error``), ``plan_update`` (``title``) and ``blocks``; anything
  else is ``invalid_chunks``.
- ``chat.update`` of a message that is still streaming answers ``streaming_state_conflict`` (secondary).

``refuse_streaming`` (:class:`bot.demo.slack_state.SlackState`) makes ``chat.startStream`` answer an error (a
workspace or surface where the app may not stream), so the bot's fallback (``chat.postMessage`` then
``chat.update``) can be tested.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bot.demo.block_rules import block_errors
from bot.demo.recorder import RecordedRequest
from bot.demo.slack_events import fresh_ts
from bot.demo.slack_messages import _metadata
from bot.demo.slack_state import ApiError, FakeMessage, Json, SlackState, StreamState

MARKDOWN_CHARS = 12_000
"""``markdown_text`` limit per call and per chunk."""
TASK_STATUSES = frozenset({"pending", "in_progress", "complete", "error"})
DISPLAY_MODES = frozenset({"timeline", "plan"})


def _chunks(params: Json) -> list[Json]:
    """The call's ``chunks`` (JSON text or a list), checked, with ``markdown_text`` as a first chunk."""
    out: list[Json] = []
    text = params.get("markdown_text")
    if text:
        if len(str(text)) > MARKDOWN_CHARS:
            raise ApiError("msg_too_long")
        out.append({"type": "markdown_text", "text": str(text)})
    raw = params.get("chunks")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ApiError("invalid_chunks") from exc
    if raw is None:
        return out
    if not isinstance(raw, list):
        raise ApiError("invalid_chunks")
    for chunk in raw:
        out.append(_chunk(chunk))
    return out


def _chunk(chunk: Any) -> Json:
    kind = chunk.get("type") if isinstance(chunk, dict) else None
    if kind == "markdown_text" and isinstance(chunk.get("text"), str):
        if len(chunk["text"]) > MARKDOWN_CHARS:
            raise ApiError("msg_too_long")
        return dict(chunk)
    if kind == "task_update" and all(isinstance(chunk.get(k), str) and chunk[k] for k in ("id", "title")) \
            and chunk.get("status") in TASK_STATUSES:
        return dict(chunk)
    if kind == "plan_update" and isinstance(chunk.get("title"), str) and chunk["title"]:
        return dict(chunk)
    if kind == "blocks" and isinstance(chunk.get("blocks"), list) and not block_errors(chunk["blocks"]):
        return dict(chunk)
    raise ApiError("invalid_chunks")


class StreamsApi(SlackState):
    """``chat.startStream``, ``chat.appendStream`` and ``chat.stopStream`` (see the module docstring)."""

    def streamed_messages(self) -> list[FakeMessage]:
        """The messages the bot streamed, in order."""
        return [m for m in self.messages if m.stream is not None]

    def _apply(self, msg: FakeMessage, chunks: list[Json], method: str) -> None:
        stream = msg.stream
        assert stream is not None
        stream.chunks += chunks
        stream.calls.append((method, time.perf_counter()))
        msg.text += "".join(str(c["text"]) for c in chunks if c["type"] == "markdown_text")

    def _streaming(self, params: Json) -> FakeMessage:
        channel = self._check_channel(params.get("channel"))
        ts = str(params.get("ts") or "")
        if not ts:
            raise ApiError("invalid_arguments")
        msg = self.find_message(channel, ts)
        if msg is None:
            raise ApiError("message_not_found")
        if msg.user != self.bot_user_id:
            raise ApiError("message_not_owned_by_app")
        stream = msg.stream
        if stream is not None and stream.open and time.monotonic() - stream.started_at > self.stream_lifetime:
            stream.open = False
        if stream is None or not stream.open:
            raise ApiError("message_not_in_streaming_state")
        return msg

    async def _chat_start_stream(self, rec: RecordedRequest) -> Json:
        p = rec.params
        channel = self._check_channel(p.get("channel"))
        if self.refuse_streaming:
            raise ApiError(self.refuse_streaming)
        user, team = p.get("recipient_user_id") or None, p.get("recipient_team_id") or None
        if not channel.startswith("D"):
            if not user:
                raise ApiError("missing_recipient_user_id")
            if not team:
                raise ApiError("missing_recipient_team_id")
        mode = str(p.get("task_display_mode") or "timeline")
        if mode not in DISPLAY_MODES:
            raise ApiError("invalid_arguments")
        chunks = _chunks(p)
        msg = FakeMessage(channel=channel, ts=fresh_ts(), user=self.bot_user_id, text="",
                          thread_ts=str(p["thread_ts"]) if p.get("thread_ts") else None, bot_id=self.bot_id,
                          stream=StreamState(started_at=time.monotonic(), recipient_user_id=user,
                                             recipient_team_id=team, task_display_mode=mode))
        self._apply(msg, chunks, "chat.startStream")
        self.messages.append(msg)
        return {"channel": channel, "ts": msg.ts}

    async def _chat_append_stream(self, rec: RecordedRequest) -> Json:
        msg = self._streaming(rec.params)
        chunks = _chunks(rec.params)
        if not chunks:
            raise ApiError("no_text")
        self._apply(msg, chunks, "chat.appendStream")
        return {"channel": msg.channel, "ts": msg.ts}

    async def _chat_stop_stream(self, rec: RecordedRequest) -> Json:
        p = rec.params
        msg = self._streaming(p)
        chunks = _chunks(p)
        blocks = self._blocks_of(p)
        streamed = [b for c in [*msg.stream.chunks, *chunks] if c["type"] == "blocks" for b in c["blocks"]] \
            if msg.stream is not None else []
        self._check_blocks([*streamed, *(blocks or [])] if streamed else blocks)  # the message's limits, all of it
        metadata = p.get("metadata")
        if metadata:
            msg.metadata = _metadata(metadata)
        self._apply(msg, chunks, "chat.stopStream")
        assert msg.stream is not None
        msg.stream.open = False
        body = [{"type": "markdown", "text": msg.text}] if msg.text else []
        msg.blocks = [*body, *(blocks or [])] or None  # the streamed text, then the blocks "at the bottom"
        return {"channel": msg.channel, "ts": msg.ts,
                "message": msg.to_api(team_id=self.team_id, app_id=self.app_id)}
