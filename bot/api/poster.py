"""The :class:`~bot.poster.Poster` port for API sessions: the turn worker runs an API session's turn exactly as a
Slack thread's, and this poster is its "Slack": downloads come from the session's stored uploads, the status
reply is kept (its last text is the honest failure line a failed turn ends with), reactions and posts go nowhere
(the answer itself reaches the API through the worker's result hook, raw, before it would be posted).

:class:`RoutingPoster` lets one worker serve Slack threads and API sessions in one process (``datastory run
--http`` with ``DATASTORY_API_ENABLED=true``): API channels start with :data:`API_CHANNEL_PREFIX`, which no Slack
channel id does.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence

from bot.api.storage import URL_SCHEME, SessionFiles
from bot.poster import (
    BeforeShare,
    ForeignFileHost,
    PartTag,
    Poster,
    SlackFile,
    StreamPoster,
    ThreadMessage,
    Upload,
    UserInfo,
)

API_CHANNEL_PREFIX = "api-"
KEPT_STATUSES = 10_000


class ApiPoster:
    """What the worker "posts" in API sessions: kept in memory until the API reads it."""

    def __init__(self, *, files: SessionFiles) -> None:
        self._files = files
        self._ts = itertools.count(1)
        self._thread_of: OrderedDict[str, str] = OrderedDict()
        """Message ts → the thread (``thread_ts``) it was posted in."""
        self._last: OrderedDict[str, str] = OrderedDict()
        """Thread → the last text posted or updated there."""

    def last_text(self, thread_ts: str) -> str:
        """The last status or reply of a session's thread (empty when none)."""
        return self._last.get(thread_ts, "")

    def _keep(self, thread_ts: str, text: str) -> None:
        self._last[thread_ts] = text
        self._last.move_to_end(thread_ts)
        while len(self._last) > KEPT_STATUSES:
            self._last.popitem(last=False)

    async def react(self, *, channel: str, ts: str, name: str) -> None:
        """No reactions in an API session."""

    async def unreact(self, *, channel: str, ts: str, name: str) -> None:
        """No reactions in an API session."""

    async def post(
        self, *, channel: str, thread_ts: str | None, text: str, blocks: list[dict[str, object]] | None = None,
        tag: PartTag | None = None,
    ) -> str:
        """Keep the text as the thread's last; returns a new ts."""
        ts = f"{next(self._ts)}.000000"
        if thread_ts:
            self._thread_of[ts] = thread_ts
            while len(self._thread_of) > KEPT_STATUSES:
                self._thread_of.popitem(last=False)
            self._keep(thread_ts, text)
        return ts

    async def thread_messages(self, *, channel: str, thread_ts: str) -> list[ThreadMessage]:
        """Nothing to read back: the ledger in the store knows what a session's turn "posted"."""
        return []

    async def post_ephemeral(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """Kept like a post."""
        if thread_ts:
            self._keep(thread_ts, text)

    async def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, object]] | None = None
    ) -> None:
        """Keep the new text as its thread's last."""
        if (thread_ts := self._thread_of.get(ts)) is not None:
            self._keep(thread_ts, text)

    async def upload_files(
        self, *, channel: str, thread_ts: str | None, files: Sequence[Upload], comment: str | None = None,
        before_share: BeforeShare | None = None,
    ) -> list[str]:
        """Nothing: the result hook stored the files already."""
        if before_share is not None:
            await before_share([])
        return []

    async def delete_message(self, *, channel: str, ts: str) -> None:
        """Nothing was posted to delete."""

    async def delete_file(self, file_id: str) -> None:
        """Nothing was uploaded to delete."""

    async def publish_home(self, *, user: str, view: dict[str, object]) -> None:
        """A session has no Home tab."""

    async def ensure_member(self, *, channel: str, ts: str) -> bool:
        """A session is always there."""
        return True

    async def set_agent_status(self, *, channel: str, thread_ts: str, status: str) -> None:
        """A session has no Slack agent session."""

    async def file_info(self, file_id: str) -> SlackFile:
        """API files are not Slack files."""
        raise ForeignFileHost("not_supported", method="files.info")

    async def thread_files(self, *, channel: str, thread_ts: str) -> list[SlackFile]:
        """A session has no Slack thread to read."""
        return []

    async def permalink(self, *, channel: str, ts: str) -> str:
        """No links."""
        return ""

    async def user_tz(self, user: str) -> str:
        """UTC."""
        return "UTC"

    async def user_info(self, user: str) -> UserInfo | None:
        """The key, of no team."""
        return UserInfo(id=user, team="")

    async def download(self, url: str) -> AsyncIterator[bytes]:
        """Stream a session's uploaded file; any other URL is refused."""
        path = self._files.path_of_url(url)
        if path is None or not path.is_file():
            raise ForeignFileHost("not_a_session_file", method="download")
        async for chunk in self._files.read(path):
            yield chunk

    def streams(self, channel: str) -> None:
        """API sessions do not stream (a turn's answer is read whole)."""
        return None

    async def close(self) -> None:
        """Nothing to close."""


class RoutingPoster:
    """One :class:`Poster` for a worker serving Slack threads and API sessions."""

    def __init__(self, *, slack: Poster, api: ApiPoster) -> None:
        self._slack = slack
        self._api = api

    def _by(self, channel: str) -> Poster:
        return self._api if channel.startswith(API_CHANNEL_PREFIX) else self._slack

    async def react(self, *, channel: str, ts: str, name: str) -> None:
        """Routed by channel."""
        await self._by(channel).react(channel=channel, ts=ts, name=name)

    async def unreact(self, *, channel: str, ts: str, name: str) -> None:
        """Routed by channel."""
        await self._by(channel).unreact(channel=channel, ts=ts, name=name)

    async def post(
        self, *, channel: str, thread_ts: str | None, text: str, blocks: list[dict[str, object]] | None = None,
        tag: PartTag | None = None,
    ) -> str:
        """Routed by channel."""
        return await self._by(channel).post(channel=channel, thread_ts=thread_ts, text=text, blocks=blocks, tag=tag)

    async def thread_messages(self, *, channel: str, thread_ts: str) -> list[ThreadMessage]:
        """Routed by channel."""
        return await self._by(channel).thread_messages(channel=channel, thread_ts=thread_ts)

    async def post_ephemeral(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """Routed by channel."""
        await self._by(channel).post_ephemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)

    async def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, object]] | None = None
    ) -> None:
        """Routed by channel."""
        await self._by(channel).update(channel=channel, ts=ts, text=text, blocks=blocks)

    async def upload_files(
        self, *, channel: str, thread_ts: str | None, files: Sequence[Upload], comment: str | None = None,
        before_share: BeforeShare | None = None,
    ) -> list[str]:
        """Routed by channel."""
        return await self._by(channel).upload_files(channel=channel, thread_ts=thread_ts, files=files,
                                                    comment=comment, before_share=before_share)

    async def delete_message(self, *, channel: str, ts: str) -> None:
        """Routed by channel."""
        await self._by(channel).delete_message(channel=channel, ts=ts)

    async def delete_file(self, file_id: str) -> None:
        """Slack's (API sessions upload nothing)."""
        await self._slack.delete_file(file_id)

    async def publish_home(self, *, user: str, view: dict[str, object]) -> None:
        """Slack's (a session has no Home tab)."""
        await self._slack.publish_home(user=user, view=view)

    async def ensure_member(self, *, channel: str, ts: str) -> bool:
        """Routed by channel."""
        return await self._by(channel).ensure_member(channel=channel, ts=ts)

    async def set_agent_status(self, *, channel: str, thread_ts: str, status: str) -> None:
        """Routed by channel."""
        await self._by(channel).set_agent_status(channel=channel, thread_ts=thread_ts, status=status)

    async def file_info(self, file_id: str) -> SlackFile:
        """Slack's."""
        return await self._slack.file_info(file_id)

    async def thread_files(self, *, channel: str, thread_ts: str) -> list[SlackFile]:
        """Routed by channel."""
        return await self._by(channel).thread_files(channel=channel, thread_ts=thread_ts)

    async def permalink(self, *, channel: str, ts: str) -> str:
        """Routed by channel."""
        return await self._by(channel).permalink(channel=channel, ts=ts)

    async def user_tz(self, user: str) -> str:
        """Slack's."""
        return await self._slack.user_tz(user)

    async def user_info(self, user: str) -> UserInfo | None:
        """Slack's."""
        return await self._slack.user_info(user)

    def download(self, url: str) -> AsyncIterator[bytes]:
        """A session's file from the API's storage, anything else from Slack."""
        return self._api.download(url) if url.startswith(URL_SCHEME) else self._slack.download(url)

    def streams(self, channel: str) -> StreamPoster | None:
        """Slack's streaming for Slack channels; none for API sessions."""
        return None if channel.startswith(API_CHANNEL_PREFIX) else self._slack.streams(channel)

    async def close(self) -> None:
        """Both."""
        await self._api.close()
        await self._slack.close()
