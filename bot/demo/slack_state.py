"""The state of an emulated Slack workspace and the value types its parts share (see :mod:`bot.demo.fake_slack`).

:class:`SlackState` holds what every part of the emulator reads and writes (messages, hosted files, reactions,
injected faults, the request recorder) plus the checks Web API methods share; the Web API, file hosting and
Socket Mode parts are mixins over it, assembled into :class:`bot.demo.fake_slack.FakeSlack`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.demo.block_rules import block_errors
from bot.demo.recorder import RecordedRequest, Recorder

SIGN_IN_PAGE = """<!DOCTYPE html>
<html lang="en-US">
<head><meta charset="utf-8"><title>Slack</title></head>
<body class="signin"><div id="page"><h1>Sign in to Slack</h1>
<p>We suggest using the email address you use at work.</p>
<form id="signin_form" action="/signin" method="post"><input type="email" name="email"></form></div></body>
</html>
"""

DEFAULT_SCOPES = ("app_mentions:read,assistant:write,channels:history,channels:join,groups:history,im:history,"
                  "mpim:history,chat:write,files:read,files:write,reactions:read,reactions:write,commands,users:read")
AGENT_STATUSES = ("active", "processing", "suspended", "closed")
"""What ``agents.sessions.setStatus`` accepts."""

Json = dict[str, Any]
Handler = Callable[[RecordedRequest], Awaitable[Json]]


class ApiError(Exception):
    """A logical Web API error: HTTP 200 ``{"ok": false, "error": code}``."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass(slots=True)
class StreamState:
    """A message streamed with ``chat.startStream``: who it streams to, its chunks, and whether it still streams."""

    started_at: float
    """``time.monotonic()`` of ``chat.startStream`` (a stream ends by itself after a few minutes)."""
    recipient_user_id: str | None
    recipient_team_id: str | None
    task_display_mode: str
    open: bool = True
    chunks: list[Json] = field(default_factory=list)
    """Every chunk received, in order (``markdown_text`` arguments as ``markdown_text`` chunks)."""
    calls: list[tuple[str, float]] = field(default_factory=list)
    """``(method, time.perf_counter())`` of each start, append and stop."""


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
    metadata: Json | None = None
    """``{"event_type": ..., "event_payload": {...}}`` given to ``chat.postMessage``; ``conversations.replies``
    returns it with ``include_all_metadata``."""
    stream: StreamState | None = None
    """How the message was streamed (``chat.startStream``), when it was."""

    @property
    def is_bot(self) -> bool:
        """Posted by a bot."""
        return self.bot_id is not None

    def to_api(self, *, team_id: str, app_id: str, metadata: bool = False) -> Json:
        """The message object of Web API answers (with its metadata when ``metadata``)."""
        out: Json = {"type": "message", "text": self.text, "user": self.user, "ts": self.ts, "team": team_id}
        if metadata and self.metadata is not None:
            out["metadata"] = self.metadata
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
class HostedFile:
    """A file the workspace serves: its object (``files.info``) and its bytes (in memory or on disk)."""

    payload: Json
    content: bytes | Path
    accessible: bool = True
    deleted: bool = False


@dataclass(slots=True)
class PendingUpload:
    """An upload URL handed out by ``files.getUploadURLExternal``, with the bytes once they were POSTed."""

    file_id: str
    filename: str
    length: int
    content: bytes | None = None


@dataclass(slots=True)
class Fault:
    """One injected failure (see :meth:`SlackState.fail_next`)."""

    error: str
    status: int
    retry_after: float | None
    body: str | None
    content_type: str | None
    headers: dict[str, str]


def ts_key(ts: str) -> tuple[int, int]:
    """A sort key for Slack ``secs.micros`` timestamps."""
    secs, _, micros = ts.partition(".")
    try:
        return int(secs), int(micros.ljust(6, "0")[:6] or 0)
    except ValueError:
        return 0, 0


def filetype_of(name: str) -> str:
    """Slack's ``filetype`` for a file name (``csv``, ``text``, ``png``…)."""
    ext = Path(name).suffix.lower().lstrip(".")
    return {"txt": "text", "jpg": "jpg", "jpeg": "jpg", "md": "markdown"}.get(ext, ext or "binary")


class Hold:
    """Calls of one method held until :meth:`release` (see :meth:`SlackState.hold`)."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        """Set when the first held call arrived."""
        self.released = asyncio.Event()
        self.arrivals = 0

    def release(self) -> None:
        """Let the held calls (and every later one) through."""
        self.released.set()


class SlackState:
    """Everything the parts of the emulator share: identities, messages, files, faults and the recorder."""

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
        self.deleted_messages: list[FakeMessage] = []
        """Messages removed with ``chat.delete``, in order."""
        self.home_views: dict[str, Json] = {}
        """Each person's Home tab as last published (``views.publish``)."""
        self.refused_blocks: frozenset[str] = frozenset()
        """Block types this workspace answers ``invalid_blocks`` for (a Slack that does not know them yet)."""
        self.replies_page_size = replies_page_size
        self.refuse_streaming: str | None = None
        """When set, ``chat.startStream`` answers this error code (streaming not available here)."""
        self.stream_lifetime = 300.0
        """Seconds a stream stays open after ``chat.startStream`` (secondary sources measured about 306)."""
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
        """Channels that answer ``not_in_channel`` (the bot is not a member) until ``conversations.join``."""
        self.private_channels: set[str] = set()
        """Private channels: ``conversations.join`` answers ``method_not_supported_for_channel_type``."""
        self.agent_sessions: dict[tuple[str, str], str] = {}
        """``(channel, thread_ts)`` → the agent session's status (``agents.sessions.setStatus``)."""
        self.agent_statuses: list[tuple[str, str, str]] = []
        """Every ``(channel, thread_ts, status)`` set, in order."""
        self.agent_stop_subscribed = True
        """The app subscribes to ``agent_session_stopped``; when False, ``agents.sessions.setStatus`` answers with
        Slack's ``missing_agent_session_stopped_event_subscription`` warning (no Stop button for the user)."""
        self.users: dict[str, Json] = {}
        self.socket_sent: list[Json] = []
        self.socket_acks: list[Json] = []
        self.socket_connects = 0
        self.link_rate: float | None = None
        """When set, hosted files on disk are served at this many bytes per second (a network link)."""
        self._files: dict[str, HostedFile] = {}
        self._pending_uploads: dict[str, PendingUpload] = {}
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[Json]] = {}
        self._ids = 0
        self.port = 0
        self._holds: dict[str, Hold] = {}

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL to give to ``AsyncWebClient(base_url=...)``."""
        return f"{self.base_url}/api/"

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:04d}{secrets.token_hex(3).upper()}"

    def find_message(self, channel: str, ts: str | None) -> FakeMessage | None:
        """The message ``ts`` in ``channel``."""
        for msg in reversed(self.messages):  # the newest first: what a bot edits is mostly recent
            if msg.channel == channel and msg.ts == ts:
                return msg
        return None

    def hold(self, method: str) -> Hold:
        """Hold the next calls of ``method`` (a Web API method) until :meth:`Hold.release`: each is recorded and
        then waits, so a test can act (kill the caller) while a request is in flight. Released calls complete."""
        held = self._holds[method] = Hold()
        return held

    async def _wait_if_held(self, method: str) -> None:
        held = self._holds.get(method)
        if held is not None and not held.released.is_set():
            held.arrivals += 1
            held.arrived.set()
            await held.released.wait()

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
            self._faults[method].append(Fault(code, status, retry_after, body, content_type, dict(headers or {})))

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

    def _check_channel(self, value: Any) -> str:
        channel = str(value or "")
        if not channel or channel in self.missing_channels:
            raise ApiError("channel_not_found")
        if channel in self.non_member_channels:
            raise ApiError("not_in_channel")
        return channel

    def _check_text(self, params: Json) -> tuple[str, list[dict[str, Any]] | None]:
        text = params.get("text") or params.get("markdown_text") or ""
        blocks = self._blocks_of(params)
        if not text and not blocks and not params.get("attachments"):
            raise ApiError("no_text")
        if len(str(text)) > self.max_text_chars:
            raise ApiError("msg_too_long")
        self._check_blocks(blocks)
        return str(text), blocks

    @staticmethod
    def _blocks_of(params: Json) -> list[dict[str, Any]] | None:
        """The ``blocks`` parameter, a list (JSON-encoded in a form post), or ``invalid_blocks_format``."""
        blocks = params.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError as exc:
                raise ApiError("invalid_blocks_format") from exc
        if blocks is not None and not isinstance(blocks, list):
            raise ApiError("invalid_blocks_format")
        return blocks

    def _check_blocks(self, blocks: list[dict[str, Any]] | None) -> None:
        """Slack's limits on a message's blocks: how many, and what each may hold."""
        if blocks is not None and len(blocks) > self.max_blocks:
            raise ApiError("invalid_blocks", errors=[f"must be less than {self.max_blocks + 1} items"])
        errors = block_errors(blocks, refused=self.refused_blocks) if blocks else []
        if errors:
            raise ApiError("invalid_blocks", errors=errors)
