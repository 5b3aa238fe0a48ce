"""Slack's text streaming over ``slack_sdk``: :class:`bot.poster.StreamPoster` for the Slack gateway.

``chat.startStream`` / ``chat.appendStream`` / ``chat.stopStream`` (docs.slack.dev/reference/methods/chat.startStream
and its siblings): the reply goes into the thread, to the person who asked and their team (Slack requires both
outside a DM, ``missing_recipient_user_id`` / ``missing_recipient_team_id`` otherwise). Text goes as a
``markdown_text`` chunk (at most :data:`MARKDOWN_CHARS` per call), with the task and plan updates the caller gives;
``stopStream`` carries the blocks rendered at the bottom of the message (the answer's buttons) and the part tag
as message metadata. Every call takes the gateway's rate-aware path and every text goes through
:func:`bot.slack_text.finalise` (Slack decodes the same three entities in markdown). Failures are
:class:`bot.poster.SlackError` with Slack's code, for the caller to fall back on ``chat.postMessage`` +
``chat.update``.

This is the one other core module, besides the gateway, that imports ``slack_sdk``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.poster import PART_EVENT, Chunk, PartTag, SlackError, StreamTarget
from bot.slack_text import finalise, finalise_blocks

MARKDOWN_CHARS = 12_000
"""Slack's limit of ``markdown_text`` per call (and per ``markdown_text`` chunk)."""


class _Calls(Protocol):
    @property
    def client(self) -> AsyncWebClient: ...

    async def _call(self, method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse: ...


def _chunks(markdown_text: str, chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [dict(c) for c in chunks]
    if markdown_text:
        text = finalise(markdown_text)
        if len(text) > MARKDOWN_CHARS:
            raise SlackError("msg_too_long", method="chat.appendStream")
        out.append({"type": "markdown_text", "text": text})
    return out


class StreamCalls:
    """The streaming methods of :class:`bot.slack_gateway.SlackGateway` (a mixin over its client and call path)."""

    def streams(self, channel: str) -> StreamCalls:
        """The gateway streams in every Slack channel (Slack says where it will not, and the caller falls back)."""
        return self

    async def start_stream(self: _Calls, target: StreamTarget, *, markdown_text: str = "",
                           chunks: Sequence[Chunk] = ()) -> str:
        """``chat.startStream`` in the thread, to ``target``'s person and team; returns the message's ``ts``."""
        resp = await self._call("chat.startStream", self.client.chat_startStream(
            channel=target.channel, thread_ts=target.thread_ts, recipient_user_id=target.recipient_user,
            recipient_team_id=target.recipient_team, task_display_mode="plan",
            chunks=_chunks(markdown_text, chunks) or None,
        ))
        return str(resp["ts"])

    async def append_stream(self: _Calls, *, channel: str, ts: str, markdown_text: str = "",
                            chunks: Sequence[Chunk] = ()) -> None:
        """``chat.appendStream``: more text, task and plan updates."""
        await self._call("chat.appendStream", self.client.chat_appendStream(
            channel=channel, ts=ts, chunks=_chunks(markdown_text, chunks)))

    async def stop_stream(self: _Calls, *, channel: str, ts: str, markdown_text: str = "",
                          chunks: Sequence[Chunk] = (), blocks: list[dict[str, object]] | None = None,
                          tag: PartTag | None = None) -> None:
        """``chat.stopStream``: the last text and updates, ``blocks`` at the bottom, ``tag`` as metadata."""
        metadata = None if tag is None else {"event_type": PART_EVENT,
                                             "event_payload": {"turn": tag.turn, "part": tag.part}}
        await self._call("chat.stopStream", self.client.chat_stopStream(
            channel=channel, ts=ts, chunks=_chunks(markdown_text, chunks) or None,
            blocks=finalise_blocks(blocks), metadata=metadata))
