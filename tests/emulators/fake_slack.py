"""FakeSlack: a Slack emulator (Web API, file hosting, files_upload_v2 upload URLs, Socket Mode) on loopback HTTP.

Built from ``/work/shared/reference/slack.md``: Web API calls merge query string, form body and JSON body (the async
SDK sends most params as a query string even on POST), need ``Authorization: Bearer <token>``, and answer HTTP 200
``{"ok": false, "error": ...}`` for logical errors (``unknown_method`` included). Private file URLs serve the bytes
only to the bot token and otherwise a 200 ``text/html`` sign-in page, as real Slack does. Every request is recorded
with :class:`tests.emulators.recorder.Recorder`.

Usage::

    async with FakeSlack(bot_token="xoxb-test") as slack:
        f = slack.add_file(name="sales.csv", content=b"a,b\\n1,2\\n", user="U1")
        ...
        await slack.recorder.wait_for(lambda: slack.thread("C1", ts))
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import mimetypes
import secrets
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web

from tests.emulators.mrkdwn import live_sequences
from tests.emulators.pacing import LinkPacer
from tests.emulators.recorder import RecordedRequest, Recorder
from tests.emulators.slack_events import file_share_message, fresh_ts
from tests.emulators.slack_events import message as message_event

__all__ = ["Download", "FakeMessage", "FakeSlack", "ThreadItem", "UploadedFile"]

SIGN_IN_PAGE = """<!DOCTYPE html>
<html lang="en-US">
<head><meta charset="utf-8"><title>Slack</title></head>
<body class="signin"><div id="page"><h1>Sign in to Slack</h1>
<p>We suggest using the email address you use at work.</p>
<form id="signin_form" action="/signin" method="post"><input type="email" name="email"></form></div></body>
</html>
"""

DEFAULT_SCOPES = ("app_mentions:read,channels:history,groups:history,im:history,mpim:history,chat:write,"
                  "files:read,files:write,reactions:write,commands,users:read")

Json = dict[str, Any]
Handler = Callable[[RecordedRequest], Awaitable[Json]]


class ApiError(Exception):
    """A logical Web API error: HTTP 200 ``{"ok": false, "error": code}``."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass(frozen=True, slots=True)
class ThreadItem:
    """One message as a user sees it in a thread (latest text after ``chat.update``)."""

    ts: str
    user: str
    text: str
    files: list[dict[str, Any]]
    """File objects shared with the message; uploads by the bot also carry ``bytes`` (the uploaded content)."""
    is_bot: bool
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    edited: bool = False


@dataclass(slots=True)
class FakeMessage:
    """A message the emulator knows about (posted by the bot, or seeded with ``add_message``/``post_as_user``)."""

    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    bot_id: str | None = None
    blocks: list[dict[str, Any]] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    """Earlier texts, oldest first (one entry per ``chat.update``)."""
    unfurl_links: Any = None
    unfurl_media: Any = None
    link_names: Any = None

    @property
    def is_bot(self) -> bool:
        """Posted by a bot."""
        return self.bot_id is not None

    def to_api(self, *, team_id: str, app_id: str) -> Json:
        """The message object of Web API answers."""
        out: Json = {"type": "message", "text": self.text, "user": self.user, "ts": self.ts, "team": team_id}
        if self.bot_id:
            out.update({"bot_id": self.bot_id, "app_id": app_id,
                        "bot_profile": {"id": self.bot_id, "app_id": app_id, "name": "datastory", "team_id": team_id,
                                        "deleted": False}})
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out["files"] = [{k: v for k, v in f.items() if k != "bytes"} for f in self.files]
            out["upload"] = self.is_bot
        if self.history:
            out["edited"] = {"user": self.user, "ts": self.ts}
        return out


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file the bot uploaded with files_upload_v2 and shared (or not) with ``files.completeUploadExternal``."""

    id: str
    name: str
    title: str
    content: bytes
    channel: str | None
    thread_ts: str | None
    initial_comment: str | None
    mimetype: str
    filetype: str


@dataclass(frozen=True, slots=True)
class Download:
    """One GET of a private file URL: who asked and what they got (``file`` or ``html``, or ``not_found``)."""

    file_id: str
    authorization: str | None
    served: str


@dataclass(slots=True)
class _HostedFile:
    payload: Json
    content: bytes | Path
    accessible: bool = True
    deleted: bool = False


@dataclass(slots=True)
class _PendingUpload:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None


@dataclass(slots=True)
class _Fault:
    error: str
    status: int
    retry_after: float | None
    body: str | None
    content_type: str | None
    headers: dict[str, str]


def _ts_key(ts: str) -> tuple[int, int]:
    secs, _, micros = ts.partition(".")
    try:
        return int(secs), int(micros.ljust(6, "0")[:6] or 0)
    except ValueError:
        return 0, 0


def _block_texts(value: Any) -> list[str]:
    """The texts of every text object in Block Kit ``value``."""
    if isinstance(value, list):
        return [t for v in value for t in _block_texts(v)]
    if not isinstance(value, dict):
        return []
    own = [str(value["text"])] if value.get("type") in ("mrkdwn", "plain_text") and value.get("text") else []
    return own + [t for k, v in value.items() if k != "text" or not own for t in _block_texts(v)]


def _filetype(name: str) -> str:
    ext = Path(name).suffix.lower().lstrip(".")
    return {"txt": "text", "jpg": "jpg", "jpeg": "jpg", "md": "markdown"}.get(ext, ext or "binary")


class FakeSlack:
    """An emulated Slack workspace on ``127.0.0.1:<random port>``: ``async with FakeSlack(...) as slack``."""

    def __init__(
        self, *, bot_token: str = "xoxb-test", app_token: str = "xapp-test", team_id: str = "T1",
        bot_user_id: str = "UBOT", bot_id: str = "BBOT", app_id: str = "A1", team_name: str = "Test Workspace",
        scopes: str = DEFAULT_SCOPES, max_text_chars: int = 4000, max_blocks: int = 50, replies_page_size: int = 100,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_name = team_name
        self.scopes = scopes
        self.max_text_chars = max_text_chars
        self.max_blocks = max_blocks
        self.replies_page_size = replies_page_size
        self.recorder = Recorder()
        self.messages: list[FakeMessage] = []
        self.ephemerals: list[Json] = []
        self.uploads: list[UploadedFile] = []
        self.reactions: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.downloads: list[Download] = []
        self.command_responses: list[Json] = []
        self.missing_channels: set[str] = set()
        """Channels that answer ``channel_not_found``."""
        self.non_member_channels: set[str] = set()
        """Channels that answer ``not_in_channel``."""
        self.users: dict[str, Json] = {}
        self.socket_sent: list[Json] = []
        self.socket_acks: list[Json] = []
        self.socket_connects = 0
        self.link_rate: float | None = None
        """When set, hosted files on disk are served at this many bytes per second (a network link)."""
        self._files: dict[str, _HostedFile] = {}
        self._pending_uploads: dict[str, _PendingUpload] = {}
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[Json]] = {}
        self._ids = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.add_user(bot_user_id, name="datastory", is_bot=True)
        self._methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "files.info": self._files_info,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "apps.connections.open": self._connections_open,
        }

    # ------------------------------------------------------------------ lifecycle

    def build_app(self) -> web.Application:
        """The aiohttp application (for use with ``TestServer`` when not using ``async with``)."""
        app = web.Application(client_max_size=1 << 31)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/v1/{upload_id}", self._upload)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._download)
        app.router.add_get("/files-pri/{team_file}/{name}", self._download)
        app.router.add_get("/link", self._link)
        app.router.add_get("/link/", self._link)
        app.router.add_post("/commands/{team}/{n}/{secret}", self._response_url)
        return app

    async def start(self) -> None:
        """Listen on a random loopback port."""
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and getattr(server, "sockets", None)
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Close sockets and stop listening."""
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        for fut in self._acks.values():
            fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL to give to ``AsyncWebClient(base_url=...)``."""
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------------ test-side state

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:04d}{secrets.token_hex(3).upper()}"

    def add_user(self, user_id: str, *, name: str | None = None, tz: str = "America/Los_Angeles",
                 tz_offset: int = -25200, is_bot: bool = False, real_name: str | None = None,
                 is_admin: bool = False, is_owner: bool = False, team_id: str | None = None) -> Json:
        """Register a user for ``users.info`` (unknown ``U``/``W`` ids get a default user in UTC).

        ``is_admin``/``is_owner``: a workspace admin or owner (``is_primary_owner`` goes with ``is_owner``).
        ``team_id``: another organisation's team for a Slack Connect member; their messages then carry it as
        ``user_team`` and ``team``, and ``users.info`` reports it.
        """
        name = name or user_id.lower()
        team = team_id or self.team_id
        user = {
            "id": user_id, "team_id": team, "name": name, "real_name": real_name or name.title(),
            "deleted": False, "is_bot": is_bot, "is_app_user": False, "tz": tz, "tz_label": tz, "tz_offset": tz_offset,
            "is_admin": is_admin or is_owner, "is_owner": is_owner, "is_primary_owner": is_owner,
            "is_restricted": False, "is_ultra_restricted": False,
            "profile": {"display_name": name, "real_name": real_name or name.title(), "team": team},
        }
        self.users[user_id] = user
        return user

    def add_file(
        self, *, name: str, content: bytes | Path, user: str = "U1", mimetype: str = "text/csv",
        filetype: str = "csv", mode: str = "hosted", title: str | None = None, file_id: str | None = None,
        size: int | None = None, accessible: bool = True,
    ) -> Json:
        """Host a file; returns its object as it appears in an event's ``files[]`` (and in ``files.info``).

        ``content`` may be a :class:`~pathlib.Path` (served from disk in chunks); ``size`` overrides the reported
        size; ``accessible=False`` serves the sign-in page even to the bot token (file not shared with the bot).
        """
        fid = file_id or self._new_id("F")
        real_size = content.stat().st_size if isinstance(content, Path) else len(content)
        payload = self._file_payload(fid, name=name, title=title or name, mimetype=mimetype, filetype=filetype,
                                     user=user, size=real_size if size is None else size, mode=mode)
        self._files[fid] = _HostedFile(payload=payload, content=content, accessible=accessible)
        return dict(payload)

    def _file_payload(self, fid: str, *, name: str, title: str, mimetype: str, filetype: str, user: str, size: int,
                      mode: str) -> Json:
        now = int(time.time())
        base = f"{self.base_url}/files-pri/{self.team_id}-{fid}"
        quoted = quote(name, safe="")  # Slack percent-encodes the name in its URLs
        return {
            "id": fid, "created": now, "timestamp": now, "name": name, "title": title, "mimetype": mimetype,
            "filetype": filetype, "pretty_type": filetype.upper(), "user": user, "user_team": self.team_id,
            "editable": False, "size": size, "mode": mode, "is_external": False, "external_type": "",
            "is_public": True, "public_url_shared": False, "display_as_bot": False, "username": "",
            "url_private": f"{base}/{quoted}", "url_private_download": f"{base}/download/{quoted}",
            "permalink": f"https://example.slack.com/files/{user}/{fid}/{quoted}", "has_rich_preview": False,
            "file_access": "visible",
        }

    def deny_file(self, file_id: str) -> None:
        """Serve the sign-in page for this file even with the bot token (not shared / no ``files:read``)."""
        self._files[file_id].accessible = False

    def delete_file(self, file_id: str) -> None:
        """``files.info`` answers ``file_deleted`` and downloads 404 from now on."""
        self._files[file_id].deleted = True

    def file_payload(self, file_id: str) -> Json:
        """The current file object of a hosted or uploaded file."""
        return dict(self._files[file_id].payload)

    def add_message(
        self, *, channel: str, user: str, text: str = "", ts: str | None = None, thread_ts: str | None = None,
        files: list[Json] | None = None, bot_id: str | None = None,
    ) -> FakeMessage:
        """Seed a message (a user's post) so it shows in ``thread()`` and ``conversations.replies``."""
        msg = FakeMessage(channel=channel, ts=ts or fresh_ts(), user=user, text=text, thread_ts=thread_ts,
                          bot_id=bot_id, files=[dict(f) for f in files or []])
        self.messages.append(msg)
        return msg

    def post_as_user(
        self, *, channel: str, user: str, text: str = "", files: list[Json] | None = None,
        thread_ts: str | None = None, channel_type: str = "channel",
    ) -> Json:
        """Seed a user's message and return the matching inner event (``file_share`` when ``files``), ready for
        ``slack_events.envelope``."""
        parent = self.find_message(channel, thread_ts) if thread_ts else None
        parent_user = parent.user if parent else None
        msg = self.add_message(channel=channel, user=user, text=text, thread_ts=thread_ts, files=files)
        team = str(self.users.get(user, {}).get("team_id") or self.team_id)  # the author's own team
        if files:
            event = file_share_message(channel, user, files, text=text, ts=msg.ts, thread_ts=thread_ts,
                                       channel_type=channel_type, parent_user_id=parent_user, team=team)
        else:
            event = message_event(channel, user, text, ts=msg.ts, thread_ts=thread_ts, parent_user_id=parent_user,
                                  channel_type=channel_type, team=team)
        event.update({"user_team": team, "source_team": team})
        return event

    def find_message(self, channel: str, ts: str | None) -> FakeMessage | None:
        """The message ``ts`` in ``channel``."""
        for msg in self.messages:
            if msg.channel == channel and msg.ts == ts:
                return msg
        return None

    def thread(self, channel: str, thread_ts: str) -> list[ThreadItem]:
        """What a user sees in the thread rooted at ``thread_ts``, in order (parent first when known)."""
        msgs = [m for m in self.messages if m.channel == channel and (m.ts == thread_ts or m.thread_ts == thread_ts)]
        msgs.sort(key=lambda m: _ts_key(m.ts))
        return [ThreadItem(ts=m.ts, user=m.user, text=m.text, files=[dict(f) for f in m.files], is_bot=m.is_bot,
                           blocks=m.blocks, thread_ts=m.thread_ts, edited=bool(m.history)) for m in msgs]

    def bot_messages(self, channel: str | None = None) -> list[FakeMessage]:
        """Messages the bot posted (optionally in one channel)."""
        return [m for m in self.messages if m.is_bot and (channel is None or m.channel == channel)]

    def received_texts(self) -> list[tuple[str, bool]]:
        """Every text the bot made Slack show, with whether ``link_names`` was on: messages (and each of their
        earlier versions), their ``mrkdwn``/``plain_text`` block texts, ephemerals, ``response_url`` answers,
        and the comments, titles and names of uploads."""
        out: list[tuple[str, bool]] = []

        def add(text: Any, link_names: Any, blocks: Any = None) -> None:
            names = str(link_names).lower() in ("1", "true")
            if text:
                out.append((str(text), names))
            out.extend((t, names) for t in _block_texts(blocks))

        for msg in self.bot_messages():
            for text in [*msg.history, msg.text]:
                add(text, msg.link_names)
            add("", msg.link_names, msg.blocks)
        for item in [*self.ephemerals, *self.command_responses]:
            add(item.get("text"), item.get("link_names"), item.get("blocks"))
        for upload in self.uploads:
            for text in (upload.initial_comment, upload.title, upload.name):
                add(text, False)
        return out

    def live_sequences(self) -> list[str]:
        """Every live control sequence (mention, broadcast, link) in what the bot made Slack show
        (:func:`tests.emulators.mrkdwn.live_sequences` over :meth:`received_texts`)."""
        return [seq for text, names in self.received_texts() for seq in live_sequences(text, link_names=names)]

    def new_response_url(self) -> str:
        """A slash-command ``response_url`` pointing at this emulator (POSTs land in ``command_responses``)."""
        return f"{self.base_url}/commands/{self.team_id}/{self._new_id('')}/{secrets.token_hex(8)}"

    def fail_next(
        self, method: str, *, error: str | None = None, status: int = 200, retry_after: float | None = None,
        times: int = 1, body: str | None = None, content_type: str | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail.

        ``method`` is a Web API method (``chat.postMessage``), ``upload`` (the upload URL) or ``download``
        (private file URLs). ``status=200`` gives ``{"ok":false,"error":error}``; ``status=429`` adds
        ``Retry-After`` and defaults ``error`` to ``ratelimited``; ``body`` replaces the body verbatim (e.g. a
        non-JSON answer); ``headers`` are added (e.g. ``{"Location": ...}`` with ``status=302``).
        """
        code = error or ("ratelimited" if status == 429 else "internal_error" if status >= 500 else "fatal_error")
        if status == 429 and retry_after is None:
            retry_after = 1
        for _ in range(times):
            self._faults[method].append(_Fault(code, status, retry_after, body, content_type, dict(headers or {})))

    def _fault_response(self, key: str) -> web.Response | None:
        queue = self._faults.get(key)
        if not queue:
            return None
        fault = queue.popleft()
        headers = {"x-slack-failure": fault.error, **fault.headers}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(int(fault.retry_after)) if float(fault.retry_after).is_integer() \
                else str(fault.retry_after)
        if fault.body is not None:
            return web.Response(status=fault.status, text=fault.body, headers=headers,
                                content_type=fault.content_type or "application/json")
        return web.json_response({"ok": False, "error": fault.error}, status=fault.status, headers=headers)

    # ------------------------------------------------------------------ Web API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = await self.recorder.record(request, body)
        method = request.match_info["method"]
        fault = self._fault_response(method)
        if fault is not None:
            return fault
        handler = self._methods.get(method)
        try:
            self._check_auth(rec, method)
            if handler is None:
                raise ApiError("unknown_method")
            result = await handler(rec)
        except ApiError as exc:
            return web.json_response({"ok": False, "error": exc.code, **exc.extra},
                                     headers={"x-slack-failure": exc.code})
        finally:
            await self.recorder.notify()
        headers = {"x-oauth-scopes": self.scopes, "x-accepted-oauth-scopes": ""} if method == "auth.test" else {}
        return web.json_response({"ok": True, **result}, headers=headers)

    def _check_auth(self, rec: RecordedRequest, method: str) -> None:
        header = rec.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else str(rec.params.get("token", ""))
        if not token:
            raise ApiError("not_authed")
        if method == "apps.connections.open":
            if token == self.bot_token:
                raise ApiError("not_allowed_token_type")
            if token != self.app_token:
                raise ApiError("invalid_auth")
            return
        if token == self.app_token:
            raise ApiError("not_allowed_token_type")
        if token != self.bot_token:
            raise ApiError("invalid_auth")

    def _check_channel(self, value: Any) -> str:
        channel = str(value or "")
        if not channel or channel in self.missing_channels:
            raise ApiError("channel_not_found")
        if channel in self.non_member_channels:
            raise ApiError("not_in_channel")
        return channel

    def _check_text(self, params: Json) -> tuple[str, list[dict[str, Any]] | None]:
        text = params.get("text") or params.get("markdown_text") or ""
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError as exc:
                raise ApiError("invalid_blocks_format") from exc
        if blocks is not None and not isinstance(blocks, list):
            raise ApiError("invalid_blocks_format")
        if not text and not blocks and not params.get("attachments"):
            raise ApiError("no_text")
        if len(str(text)) > self.max_text_chars:
            raise ApiError("msg_too_long")
        if blocks is not None and len(blocks) > self.max_blocks:
            raise ApiError("invalid_blocks", errors=[f"must be less than {self.max_blocks + 1} items"])
        return str(text), blocks

    async def _auth_test(self, rec: RecordedRequest) -> Json:
        return {"url": "https://test-workspace.slack.com/", "team": self.team_name, "user": "datastory",
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    async def _chat_post_message(self, rec: RecordedRequest) -> Json:
        p = rec.params
        channel = self._check_channel(p.get("channel"))
        text, blocks = self._check_text(p)
        thread_ts = str(p["thread_ts"]) if p.get("thread_ts") else None
        msg = FakeMessage(channel=channel, ts=fresh_ts(), user=self.bot_user_id, text=text, thread_ts=thread_ts,
                          bot_id=self.bot_id, blocks=blocks, unfurl_links=p.get("unfurl_links"),
                          unfurl_media=p.get("unfurl_media"), link_names=p.get("link_names"))
        self.messages.append(msg)
        return {"channel": channel, "ts": msg.ts, "message": msg.to_api(team_id=self.team_id, app_id=self.app_id)}

    async def _chat_update(self, rec: RecordedRequest) -> Json:
        p = rec.params
        channel = self._check_channel(p.get("channel"))
        msg = self.find_message(channel, str(p.get("ts", "")))
        if msg is None:
            raise ApiError("message_not_found")
        if msg.user != self.bot_user_id:
            raise ApiError("cant_update_message")
        text, blocks = self._check_text(p)
        msg.history.append(msg.text)
        msg.text = text
        msg.link_names = p.get("link_names")
        if blocks is not None:
            msg.blocks = blocks or None
        return {"channel": channel, "ts": msg.ts, "text": text,
                "message": msg.to_api(team_id=self.team_id, app_id=self.app_id)}

    async def _chat_post_ephemeral(self, rec: RecordedRequest) -> Json:
        p = rec.params
        channel = self._check_channel(p.get("channel"))
        if not p.get("user"):
            raise ApiError("user_not_found")
        text, blocks = self._check_text(p)
        ts = fresh_ts()
        self.ephemerals.append({"channel": channel, "user": str(p["user"]), "text": text, "blocks": blocks,
                                "thread_ts": p.get("thread_ts"), "message_ts": ts, "link_names": p.get("link_names")})
        return {"message_ts": ts}

    def permalink(self, channel: str, ts: str) -> str:
        """The permalink ``chat.getPermalink`` gives for a message (a reply links with its thread)."""
        link = f"https://test-workspace.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        msg = self.find_message(channel, ts)
        if msg is not None and msg.thread_ts and msg.thread_ts != ts:
            link += f"?thread_ts={msg.thread_ts}&cid={channel}"
        return link

    async def _chat_get_permalink(self, rec: RecordedRequest) -> Json:
        p = rec.params
        channel = self._check_channel(p.get("channel"))
        ts = str(p.get("message_ts") or "")
        if not ts:
            raise ApiError("invalid_arguments")
        if self.find_message(channel, ts) is None:
            raise ApiError("message_not_found")
        return {"channel": channel, "permalink": self.permalink(channel, ts)}

    def _reaction_target(self, p: Json) -> tuple[tuple[str, str], str]:
        if not p.get("timestamp") or not p.get("channel"):
            raise ApiError("no_item_specified")
        name = str(p.get("name", "")).strip(":")
        if not name:
            raise ApiError("invalid_name")
        return (self._check_channel(p["channel"]), str(p["timestamp"])), name

    async def _reactions_add(self, rec: RecordedRequest) -> Json:
        key, name = self._reaction_target(rec.params)
        if name in self.reactions[key]:
            raise ApiError("already_reacted")
        self.reactions[key].add(name)
        return {}

    async def _reactions_remove(self, rec: RecordedRequest) -> Json:
        key, name = self._reaction_target(rec.params)
        if name not in self.reactions.get(key, set()):
            raise ApiError("no_reaction")
        self.reactions[key].discard(name)
        return {}

    async def _conversations_replies(self, rec: RecordedRequest) -> Json:
        p = rec.params
        channel = self._check_channel(p.get("channel"))
        root = str(p.get("ts", ""))
        if not root:
            raise ApiError("invalid_arguments")
        msgs = [m for m in self.messages if m.channel == channel and (m.ts == root or m.thread_ts == root)]
        if not msgs:
            raise ApiError("thread_not_found")
        msgs.sort(key=lambda m: _ts_key(m.ts))
        replies = [m for m in msgs if m.ts != root]
        start = 0
        if p.get("cursor"):
            try:
                start = int(base64.b64decode(str(p["cursor"])).decode().removeprefix("next_ts:"))
            except ValueError as exc:
                raise ApiError("invalid_cursor") from exc
        limit = int(p.get("limit") or self.replies_page_size)
        page = msgs[start:start + limit]
        out = []
        for m in page:
            item = m.to_api(team_id=self.team_id, app_id=self.app_id)
            if m.ts == root:
                item.update({"thread_ts": root, "reply_count": len(replies),
                             "reply_users": sorted({r.user for r in replies}),
                             "reply_users_count": len({r.user for r in replies}),
                             "latest_reply": replies[-1].ts if replies else root})
            else:
                parent = self.find_message(channel, root)
                if parent is not None:
                    item["parent_user_id"] = parent.user
            out.append(item)
        has_more = start + limit < len(msgs)
        cursor = base64.b64encode(f"next_ts:{start + limit}".encode()).decode() if has_more else ""
        return {"messages": out, "has_more": has_more, "response_metadata": {"next_cursor": cursor}}

    async def _users_info(self, rec: RecordedRequest) -> Json:
        user_id = str(rec.params.get("user", ""))
        user = self.users.get(user_id)
        if user is None:
            if user_id[:1] not in ("U", "W"):
                raise ApiError("user_not_found")
            user = self.add_user(user_id, tz="UTC", tz_offset=0)
        return {"user": user}

    async def _files_info(self, rec: RecordedRequest) -> Json:
        hosted = self._files.get(str(rec.params.get("file", "")))
        if hosted is None:
            raise ApiError("file_not_found")
        if hosted.deleted:
            raise ApiError("file_deleted")
        return {"file": dict(hosted.payload), "comments": [], "response_metadata": {"next_cursor": ""}}

    async def _get_upload_url(self, rec: RecordedRequest) -> Json:
        p = rec.params
        filename = str(p.get("filename") or "")
        try:
            length = int(p.get("length") or 0)
        except ValueError as exc:
            raise ApiError("invalid_arguments") from exc
        if not filename or length <= 0:
            raise ApiError("missing_argument" if not filename or not p.get("length") else "invalid_arguments")
        upload_id = secrets.token_urlsafe(24)
        file_id = self._new_id("F")
        self._pending_uploads[upload_id] = _PendingUpload(file_id=file_id, filename=filename, length=length)
        return {"upload_url": f"{self.base_url}/upload/v1/{upload_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type", "")
        if content_type.startswith("multipart/"):
            reader = await request.multipart()
            data = b""
            async for part in reader:
                if getattr(part, "filename", None) or getattr(part, "name", None) == "file":
                    data = await part.read()  # type: ignore[union-attr]
                    break
        else:
            data = await request.read()
        await self.recorder.record(request, data)
        fault = self._fault_response("upload")
        if fault is not None:
            return fault
        pending = self._pending_uploads.get(request.match_info["upload_id"])
        if pending is None:
            return web.Response(status=404, text="upload_url_not_found", content_type="text/plain")
        if len(data) != pending.length:
            return web.Response(status=400, text=f"length mismatch: expected {pending.length}, got {len(data)}",
                                content_type="text/plain")
        pending.content = data
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _complete_upload(self, rec: RecordedRequest) -> Json:
        p = rec.params
        raw = p.get("files")
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise ApiError("invalid_arguments") from exc
        if not isinstance(items, list) or not items:
            raise ApiError("invalid_arguments")
        by_file_id = {u.file_id: (k, u) for k, u in self._pending_uploads.items()}
        channel = self._check_channel(p["channel_id"]) if p.get("channel_id") else None
        if channel is None and p.get("channels"):
            channel = self._check_channel(str(p["channels"]).split(",")[0])
        thread_ts = str(p["thread_ts"]) if p.get("thread_ts") else None
        comment = str(p["initial_comment"]) if p.get("initial_comment") else None
        done: list[tuple[Json, bytes]] = []
        for item in items:
            found = by_file_id.get(str(item.get("id")))
            if found is None or found[1].content is None:
                raise ApiError("file_not_found")
            upload_id, pending = found
            data = pending.content
            assert data is not None
            title = str(item.get("title") or pending.filename)
            mimetype = mimetypes.guess_type(pending.filename)[0] or "application/octet-stream"
            payload = self._file_payload(pending.file_id, name=pending.filename, title=title, mimetype=mimetype,
                                         filetype=_filetype(pending.filename), user=self.bot_user_id,
                                         size=len(data), mode="hosted")
            if channel:
                payload["channels"] = [channel]
                payload["shares"] = {"public": {channel: [{"ts": "", "thread_ts": thread_ts or "",
                                                           "channel_name": channel, "team_id": self.team_id}]}}
            self._files[pending.file_id] = _HostedFile(payload=payload, content=data)
            del self._pending_uploads[upload_id]
            self.uploads.append(UploadedFile(id=pending.file_id, name=pending.filename, title=title, content=data,
                                             channel=channel, thread_ts=thread_ts, initial_comment=comment,
                                             mimetype=mimetype, filetype=payload["filetype"]))
            done.append((payload, data))
        if channel:
            msg = FakeMessage(channel=channel, ts=fresh_ts(), user=self.bot_user_id, text=comment or "",
                              thread_ts=thread_ts, bot_id=self.bot_id,
                              files=[{**payload, "bytes": data} for payload, data in done])
            self.messages.append(msg)
            for payload, _ in done:
                payload["shares"]["public"][channel][0]["ts"] = msg.ts
        return {"files": [dict(payload) for payload, _ in done]}

    async def _connections_open(self, rec: RecordedRequest) -> Json:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"}

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = await self.recorder.record(request, body)
        self.command_responses.append({"path": request.path, **(rec.json if isinstance(rec.json, dict) else {})})
        await self.recorder.notify()
        return web.Response(text="ok", content_type="text/plain")

    # ------------------------------------------------------------------ file hosting

    async def _download(self, request: web.Request) -> web.StreamResponse:
        await self.recorder.record(request, b"")
        team, _, file_id = request.match_info["team_file"].partition("-")
        auth = request.headers.get("Authorization")
        fault = self._fault_response("download")
        if fault is not None:
            return fault
        hosted = self._files.get(file_id)
        if hosted is None or hosted.deleted or team != self.team_id:
            self.downloads.append(Download(file_id=file_id, authorization=auth, served="not_found"))
            await self.recorder.notify()
            return web.Response(status=404, text=SIGN_IN_PAGE, content_type="text/html")
        if auth != f"Bearer {self.bot_token}" or not hosted.accessible:
            self.downloads.append(Download(file_id=file_id, authorization=auth, served="html"))
            await self.recorder.notify()
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html")
        self.downloads.append(Download(file_id=file_id, authorization=auth, served="file"))
        await self.recorder.notify()
        mimetype = str(hosted.payload.get("mimetype") or "application/octet-stream")
        name = str(hosted.payload.get("name") or file_id)
        headers = {"Content-Type": mimetype}
        if "/download/" in request.path:
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
        if isinstance(hosted.content, Path) and self.link_rate:
            return await self._paced_file(request, hosted.content, headers, self.link_rate)
        if isinstance(hosted.content, Path):
            return web.FileResponse(hosted.content, chunk_size=1 << 20, headers=headers)
        return web.Response(body=hosted.content, headers=headers)

    @staticmethod
    async def _paced_file(request: web.Request, path: Path, headers: dict[str, str], rate: float
                          ) -> web.StreamResponse:
        response = web.StreamResponse(headers=headers)
        response.content_length = path.stat().st_size
        await response.prepare(request)
        pacer = LinkPacer(rate)
        with path.open("rb") as source:
            while chunk := source.read(1 << 18):
                await response.write(chunk)
                await pacer.take(len(chunk))
        await response.write_eof()
        return response

    # ------------------------------------------------------------------ Socket Mode

    async def _link(self, request: web.Request) -> web.StreamResponse:
        await self.recorder.record(request, b"")
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid ticket", content_type="text/plain")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connects += 1
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": len(self._sockets),
            "connection_info": {"app_id": self.app_id},
            "debug_info": {"host": "applink-fake", "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "build_number": 1, "approximate_connection_time": 3600},
        }))
        await self.recorder.notify()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    ack = json.loads(msg.data)
                except ValueError:
                    continue
                if not isinstance(ack, dict):
                    continue
                self.socket_acks.append(ack)
                fut = self._acks.pop(str(ack.get("envelope_id", "")), None)
                if fut is not None and not fut.done():
                    fut.set_result(ack)
                await self.recorder.notify()
        finally:
            self._sockets.remove(ws)
            await self.recorder.notify()
        return ws

    @property
    def socket_connected(self) -> bool:
        """At least one Socket Mode connection is open."""
        return any(not ws.closed for ws in self._sockets)

    async def wait_socket_connected(self, *, connects: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``connects`` connections have been made in total and one is open."""
        await self.recorder.wait_for(lambda: self.socket_connects >= connects and self.socket_connected,
                                     timeout=timeout)

    async def socket_send(
        self, payload: Json, type: str = "events_api", retry_attempt: int = 0, *, retry_reason: str = "",
        accepts_response_payload: bool | None = None, envelope_id: str | None = None, timeout: float = 3.0,
        redeliver: int = 0,
    ) -> Json:
        """Send an envelope on the newest connection and return the client's ack (``{"envelope_id", ...}``).

        Raises :class:`TimeoutError` when no ack arrives within ``timeout``, after ``redeliver`` redeliveries
        with ``retry_attempt + 1`` and ``retry_reason="timeout"``, as Slack does.
        """
        await self.wait_socket_connected(timeout=timeout)
        envelope_id = envelope_id or str(uuid.uuid4())
        env: Json = {"envelope_id": envelope_id, "payload": payload, "type": type,
                     "accepts_response_payload": (type != "events_api") if accepts_response_payload is None
                     else accepts_response_payload}
        if type == "events_api":
            env.update({"retry_attempt": retry_attempt, "retry_reason": retry_reason})
        fut: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = fut
        ws = next(w for w in reversed(self._sockets) if not w.closed)
        self.socket_sent.append(env)
        await ws.send_str(json.dumps(env))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            if redeliver > 0:
                self._acks.pop(envelope_id, None)
                return await self.socket_send(payload, type, retry_attempt + 1, retry_reason="timeout",
                                              accepts_response_payload=accepts_response_payload,
                                              envelope_id=envelope_id, timeout=timeout, redeliver=redeliver - 1)
            self._acks.pop(envelope_id, None)
            raise TimeoutError(f"no Socket Mode ack for envelope {envelope_id} within {timeout}s") from None

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` message on every open connection (clients reconnect)."""
        for ws in list(self._sockets):
            if not ws.closed:
                await ws.send_str(json.dumps({"type": "disconnect", "reason": reason,
                                              "debug_info": {"host": "wss-fake"}}))

    async def socket_close(self) -> None:
        """Close every connection from the server side."""
        for ws in list(self._sockets):
            await ws.close()
