"""The Slack gateway: :class:`bot.poster.Poster` over ``slack_sdk``'s ``AsyncWebClient`` and an aiohttp session.

This and :mod:`bot.slack_stream` (its streaming calls, a mixin) are the only core modules that import
``slack_sdk``. Every text it sends (messages, updates, ephemerals, the
``mrkdwn`` of blocks, upload comments) goes through :func:`bot.slack_text.finalise` here, the last step before
Slack, with ``link_names`` off; file names and titles of uploads are made one clean line without angle brackets. Web
API failures become :class:`bot.poster.SlackError` (with Slack's error code). File downloads are
:mod:`bot.slack_download`'s (the token only to Slack's hosts).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from yarl import URL

from bot.config import Settings
from bot.poster import (
    PART_EVENT,
    BeforeShare,
    PartTag,
    SlackError,
    SlackFile,
    ThreadMessage,
    Upload,
    UserInfo,
)
from bot.slack_download import SlackDownloads
from bot.slack_pace import SlackPace, retry_handlers
from bot.slack_stream import StreamCalls
from bot.slack_text import finalise, finalise_blocks, one_line

logger = logging.getLogger(__name__)

__all__ = ["SlackGateway"]

THREAD_PAGE_SIZE = 200
THREAD_PAGES = 5
"""A thread read for its files stops after this many pages (1,000 messages)."""
_ANGLES = str.maketrans("<>", "‹›")
_BENIGN = frozenset({"already_reacted", "no_reaction"})
"""Error codes the gateway treats as success (not counted as errors)."""


def _thread_message(m: dict[str, Any]) -> ThreadMessage:
    """A ``conversations.replies`` message as the bot reads it back."""
    meta = m.get("metadata") or {}
    payload = meta.get("event_payload") or {} if meta.get("event_type") == PART_EVENT else {}
    tag = PartTag(turn=str(payload["turn"]), part=str(payload["part"])) \
        if isinstance(payload, dict) and "turn" in payload and "part" in payload else None
    files = [f for f in m.get("files") or [] if isinstance(f, dict)]
    names = tuple(str(f.get("name") or "") for f in files)
    blocks = tuple(str(b["block_id"]) for b in m.get("blocks") or [] if isinstance(b, dict) and b.get("block_id"))
    return ThreadMessage(ts=str(m.get("ts", "")), user=str(m.get("user", "")), tag=tag, file_names=names,
                         file_ids=tuple(str(f.get("id") or "") for f in files), block_ids=blocks)


def _file_title(name: str) -> str:
    """A name the code in the sandbox chose, as an upload's file name and title: one clean line, no angle brackets."""
    return one_line(name, limit=200).translate(_ANGLES)


class SlackGateway(StreamCalls):
    """Posts into threads and reads files, over a ``slack_sdk`` client built by the composition root."""

    def __init__(
        self, *, client: AsyncWebClient, token: str, api_url: str, session: aiohttp.ClientSession | None = None,
        connect_timeout: float = 15.0, read_timeout: float = 120.0, on_error: Callable[[str], None] | None = None,
        pace: SlackPace | None = None,
    ) -> None:
        self._pace = pace or SlackPace()
        """The one rate-aware path every Web API call takes (:mod:`bot.slack_pace`)."""
        self._on_error = on_error
        """Told the error code of every failed Web API call (the metrics)."""
        self._client = client
        self._downloads = SlackDownloads(
            token=token, api_url=URL(api_url), session=session,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout))

    @property
    def client(self) -> AsyncWebClient:
        """The Web API client (Bolt and Socket Mode use the same one)."""
        return self._client

    # ------------------------------------------------------------------ Web API

    async def _call(self, method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            async with self._pace.slot(method):
                return await call
        except SlackApiError as exc:
            code = str(exc.response.get("error") or f"http_{exc.response.status_code}")
            raise self._failure(code, method) from exc
        except SlackClientError as exc:
            raise self._failure("request_failed", method) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._failure("connection_error", method) from exc

    def _failure(self, code: str, method: str) -> SlackError:
        if self._on_error is not None and code not in _BENIGN:
            self._on_error(code)
        return SlackError(code, method=method)

    @classmethod
    def for_token(cls, *, token: str, api_url: str, session: aiohttp.ClientSession) -> SlackGateway:
        """A gateway with its own Web API client (for one-off commands such as ``datastory doctor``)."""
        client = AsyncWebClient(token=token, base_url=api_url, session=session)
        return cls(client=client, token=token, api_url=api_url, session=session)

    async def identity(self) -> tuple[str, str, frozenset[str]]:
        """``auth.test``: the bot's user name, the workspace name, and the token's scopes (``x-oauth-scopes``)."""
        resp = await self._call("auth.test", self._client.auth_test())
        header = next((v for k, v in resp.headers.items() if k.lower() == "x-oauth-scopes"), "")
        scopes = frozenset(s.strip() for s in str(header).split(",") if s.strip())
        return str(resp.get("user") or ""), str(resp.get("team") or ""), scopes

    async def react(self, *, channel: str, ts: str, name: str) -> None:
        """Add a reaction; one that is already there is fine."""
        try:
            await self._call("reactions.add", self._client.reactions_add(channel=channel, timestamp=ts, name=name))
        except SlackError as exc:
            if exc.code != "already_reacted":
                raise

    async def unreact(self, *, channel: str, ts: str, name: str) -> None:
        """Remove a reaction; one that is not there is fine."""
        try:
            await self._call("reactions.remove",
                             self._client.reactions_remove(channel=channel, timestamp=ts, name=name))
        except SlackError as exc:
            if exc.code != "no_reaction":
                raise

    async def post(
        self, *, channel: str, thread_ts: str | None, text: str, blocks: list[dict[str, object]] | None = None,
        tag: PartTag | None = None,
    ) -> str:
        """Post a message (in the thread when ``thread_ts`` is set), links not unfurled, ``tag`` as message
        metadata; returns its ``ts``."""
        metadata = None if tag is None else {"event_type": PART_EVENT,
                                             "event_payload": {"turn": tag.turn, "part": tag.part}}

        def send() -> Awaitable[AsyncSlackResponse]:
            return self._call("chat.postMessage", self._client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=finalise(text), blocks=finalise_blocks(blocks),
                unfurl_links=False, unfurl_media=False, link_names=False, metadata=metadata,
            ))

        try:
            resp = await send()
        except SlackError as exc:  # a public channel the bot is not in: join it where the scopes allow, once
            if exc.code != "not_in_channel" or not await self._join(channel):
                raise
            resp = await send()
        return str(resp["ts"])

    async def set_agent_status(self, *, channel: str, thread_ts: str, status: str) -> None:
        """``agents.sessions.setStatus`` for the thread's session (created on first use). Slack's warning that the
        app does not subscribe to ``agent_session_stopped`` (users get no Stop button) is logged."""
        resp = await self._call("agents.sessions.setStatus", self._client.agents_sessions_setStatus(
            channel_id=channel, thread_ts=thread_ts, status=status))
        if resp.get("warning") == "missing_agent_session_stopped_event_subscription":
            logger.warning("Slack shows no Stop button: subscribe the app to the agent_session_stopped event "
                           "(manifest.yml) channel=%s", channel)

    async def ensure_member(self, *, channel: str, ts: str) -> bool:
        """Read the message ``ts`` (``conversations.replies``, one message); ``not_in_channel`` → join when the
        channel is public and the token has ``channels:join``. Other failures are not a membership question."""
        try:
            await self._call("conversations.replies", self._client.conversations_replies(
                channel=channel, ts=ts, limit=1))
        except SlackError as exc:
            if exc.code == "not_in_channel":
                return await self._join(channel)
        return True

    async def _join(self, channel: str) -> bool:
        """``conversations.join``; False (logged) when the scope is missing or the channel is not public."""
        try:
            await self._call("conversations.join", self._client.conversations_join(channel=channel))
        except SlackError as exc:
            logger.info("cannot join channel=%s error=%s", channel, exc.code)
            return False
        logger.info("joined channel=%s", channel)
        return True

    async def thread_messages(self, *, channel: str, thread_ts: str) -> list[ThreadMessage]:
        """``conversations.replies`` with ``include_all_metadata``, every page."""
        out: list[ThreadMessage] = []
        cursor: str | None = None
        while True:
            resp = await self._call("conversations.replies", self._client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=200, cursor=cursor))
            for m in resp.get("messages") or []:
                out.append(_thread_message(m))
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not resp.get("has_more") or not cursor:
                return out

    async def post_ephemeral(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """A message only ``user`` sees (in the thread when ``thread_ts`` is set)."""
        await self._call("chat.postEphemeral", self._client.chat_postEphemeral(
            channel=channel, user=user, thread_ts=thread_ts, text=finalise(text), link_names=False,
        ))

    async def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, object]] | None = None
    ) -> None:
        """Replace the text (and blocks, when given) of a message the bot posted."""
        await self._call("chat.update", self._client.chat_update(
            channel=channel, ts=ts, text=finalise(text), blocks=finalise_blocks(blocks), link_names=False,
        ))

    async def upload_files(
        self, *, channel: str, thread_ts: str | None, files: Sequence[Upload], comment: str | None = None,
        before_share: BeforeShare | None = None,
    ) -> list[str]:
        """Upload files into the channel or thread in files_upload_v2's three steps (one share, one message): an
        upload URL and file id per file (``files.getUploadURLExternal``), the bytes to each URL, then
        ``files.completeUploadExternal``, which shares them. ``before_share`` is awaited with the file ids before
        that last step (a turn records them and checks its lease there); returns the ids."""
        if not files:
            return []
        pending: list[tuple[str, str, bytes, str]] = []
        for f in files:
            resp = await self._call("files.getUploadURLExternal", self._client.files_getUploadURLExternal(
                filename=_file_title(f.filename) or "file", length=len(f.data)))
            pending.append((str(resp.get("file_id") or ""), str(resp.get("upload_url") or ""), f.data,
                            _file_title(f.title or f.filename)))
        for _, url, data, _ in pending:
            await self._send_bytes(url, data)
        ids = [file_id for file_id, *_ in pending]
        if before_share is not None:
            await before_share(ids)
        await self._call("files.completeUploadExternal", self._client.files_completeUploadExternal(
            files=[{"id": file_id, "title": title} for file_id, _, _, title in pending], channel_id=channel,
            thread_ts=thread_ts, initial_comment=finalise(comment) if comment else None,
        ))
        logger.info("uploaded files channel=%s thread_ts=%s count=%d", channel, thread_ts, len(files))
        return ids

    async def _send_bytes(self, url: str, data: bytes) -> None:
        """POST a file's bytes to its upload URL as files_upload_v2 does (the client's own upload helper: no token,
        the client's session, timeout, proxy and retries)."""
        client = self._client
        try:
            result = await client._upload_file(url=url, data=data, logger=client._logger, timeout=client.timeout,
                                               proxy=client.proxy, ssl=client.ssl)
        except SlackClientError as exc:
            raise self._failure("request_failed", "files.upload") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._failure("connection_error", "files.upload") from exc
        if result.status != 200:
            raise self._failure(f"http_{result.status}", "files.upload")

    async def delete_message(self, *, channel: str, ts: str) -> None:
        """``chat.delete`` of the bot's own message; one already gone is fine."""
        try:
            await self._call("chat.delete", self._client.chat_delete(channel=channel, ts=ts))
        except SlackError as exc:
            if exc.code != "message_not_found":
                raise

    async def delete_file(self, file_id: str) -> None:
        """``files.delete`` of a file the bot uploaded; one already gone is fine."""
        try:
            await self._call("files.delete", self._client.files_delete(file=file_id))
        except SlackError as exc:
            if exc.code not in ("file_not_found", "file_deleted"):
                raise

    async def file_info(self, file_id: str) -> SlackFile:
        """``files.info`` for ``file_id``."""
        resp = await self._call("files.info", self._client.files_info(file=file_id))
        payload = resp.get("file")
        if not isinstance(payload, dict):
            raise SlackError("file_not_found", method="files.info")
        return SlackFile.from_payload(payload)

    async def thread_files(self, *, channel: str, thread_ts: str) -> list[SlackFile]:
        """Files of the thread's messages, oldest first: at most :data:`THREAD_PAGES` pages of
        :data:`THREAD_PAGE_SIZE` messages (``conversations.replies`` is rate-limited, down to one call a minute for
        apps outside the Marketplace, so a thread is read once, when the bot is first mentioned in it)."""
        found: list[SlackFile] = []
        cursor: str | None = None
        for _ in range(THREAD_PAGES):
            resp = await self._call("conversations.replies", self._client.conversations_replies(
                channel=channel, ts=thread_ts, limit=THREAD_PAGE_SIZE, cursor=cursor))
            for message in resp.get("messages") or []:
                if isinstance(message, dict):
                    found += [SlackFile.from_payload(f) for f in message.get("files") or [] if isinstance(f, dict)]
            cursor = str((resp.get("response_metadata") or {}).get("next_cursor") or "") or None
            if cursor is None:
                break
        return found

    async def permalink(self, *, channel: str, ts: str) -> str:
        """``chat.getPermalink`` for the message ``ts`` in ``channel``."""
        resp = await self._call("chat.getPermalink", self._client.chat_getPermalink(channel=channel, message_ts=ts))
        return str(resp.get("permalink") or "")

    async def publish_home(self, *, user: str, view: dict[str, object]) -> None:
        """``views.publish``: ``user``'s App Home tab (its blocks finalised like a message's)."""
        blocks = view.get("blocks")
        final = {**view, "blocks": finalise_blocks(blocks if isinstance(blocks, list) else [])}
        await self._call("views.publish", self._client.views_publish(user_id=user, view=final))

    async def user_tz(self, user: str) -> str:
        """The user's ``tz`` from ``users.info``; ``"UTC"`` when the call fails or the profile has none."""
        try:
            info = await self.user_info(user)
        except SlackError as exc:
            logger.warning("users.info failed, using UTC user=%s error=%s", user, exc.code)
            return "UTC"
        return info.tz if info is not None else "UTC"

    async def user_info(self, user: str) -> UserInfo | None:
        """``users.info``; None for ``user_not_found``, :class:`SlackError` for other failures."""
        try:
            resp = await self._call("users.info", self._client.users_info(user=user))
        except SlackError as exc:
            if exc.code == "user_not_found":
                return None
            raise
        profile = resp.get("user")
        return UserInfo.from_payload(profile) if isinstance(profile, dict) else None

    def download(self, url: str) -> AsyncIterator[bytes]:
        """Stream a private file's bytes with the bot token (:meth:`bot.slack_download.SlackDownloads.download`)."""
        return self._downloads.download(url)

    async def close(self) -> None:
        """Close the download session when the gateway created it (the Web API client is the caller's)."""
        await self._downloads.close()


def build_slack_client(
    settings: Settings, session: aiohttp.ClientSession, pace: SlackPace | None = None
) -> AsyncWebClient:
    """The one Web API client: Bolt's, the gateway's, Socket Mode's; rate limits (telling ``pace``, the gateway's
    rate-aware path, to hold the method's other calls too) and 5xx are retried.

    It gets a shared session: without one, slack_sdk opens a new connection for every call, which costs
    tens of milliseconds per reaction or status update under load.
    """
    if settings.slack_bot_token is None:
        raise ValueError("SLACK_BOT_TOKEN is not set")
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        session=session,
        retry_handlers=retry_handlers(pace or SlackPace()),
    )
