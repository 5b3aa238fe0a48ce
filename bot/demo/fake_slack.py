"""FakeSlack: a Slack emulator (Web API, file hosting, files_upload_v2 upload URLs, Socket Mode) on loopback HTTP.

Built from ``/work/shared/reference/slack.md``: Web API calls merge query string, form body and JSON body (the async
SDK sends most params as a query string even on POST), need ``Authorization: Bearer <token>``, and answer HTTP 200
``{"ok": false, "error": ...}`` for logical errors (``unknown_method`` included). Private file URLs serve the bytes
only to the bot token and otherwise a 200 ``text/html`` sign-in page, as real Slack does. Every request is recorded
with :class:`bot.demo.recorder.Recorder`. The tests drive the bot through it, and ``datastory demo`` serves its page
from the same application (:mod:`bot.demo.page`). It needs neither slack_bolt nor slack_sdk.

The parts live in their own modules: :mod:`~bot.demo.slack_state` (shared state and values),
:mod:`~bot.demo.slack_messages` (``chat.*``, reactions, replies, users), :mod:`~bot.demo.slack_streams`
(``chat.startStream``/``appendStream``/``stopStream``), :mod:`~bot.demo.slack_files` (hosting and uploads) and
:mod:`~bot.demo.slack_socket` (Socket Mode).

Usage::

    async with FakeSlack(bot_token="xoxb-test") as slack:
        f = slack.add_file(name="sales.csv", content=b"a,b\\n1,2\\n", user="U1")
        ...
        await slack.recorder.wait_for(lambda: slack.thread("C1", ts))
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from aiohttp import web

from bot.demo.mrkdwn import block_texts, live_sequences
from bot.demo.recorder import RecordedRequest
from bot.demo.serving import listen
from bot.demo.slack_events import file_share_message, fresh_ts
from bot.demo.slack_events import message as message_event
from bot.demo.slack_files import FileHosting
from bot.demo.slack_messages import MessagesApi
from bot.demo.slack_socket import SocketMode
from bot.demo.slack_state import (
    DEFAULT_SCOPES,
    ApiError,
    Download,
    FakeMessage,
    Handler,
    Json,
    ThreadItem,
    UploadedFile,
    ts_key,
)
from bot.demo.slack_streams import StreamsApi

__all__ = ["Download", "FakeMessage", "FakeSlack", "ThreadItem", "UploadedFile"]


class FakeSlack(MessagesApi, StreamsApi, FileHosting, SocketMode):
    """An emulated Slack workspace on ``127.0.0.1:<random port>``: ``async with FakeSlack(...) as slack``."""

    def __init__(
        self, *, bot_token: str = "xoxb-test", app_token: str = "xapp-test", team_id: str = "T1",
        bot_user_id: str = "UBOT", bot_id: str = "BBOT", app_id: str = "A1", team_name: str = "Test Workspace",
        scopes: str = DEFAULT_SCOPES, max_text_chars: int = 4000, max_blocks: int = 50, replies_page_size: int = 100,
    ) -> None:
        super().__init__(bot_token=bot_token, app_token=app_token, team_id=team_id, bot_user_id=bot_user_id,
                         bot_id=bot_id, app_id=app_id, team_name=team_name, scopes=scopes,
                         max_text_chars=max_text_chars, max_blocks=max_blocks, replies_page_size=replies_page_size)
        self._runner: web.AppRunner | None = None
        self.add_user(bot_user_id, name="datastory", is_bot=True)
        self._methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.startStream": self._chat_start_stream,
            "chat.appendStream": self._chat_append_stream,
            "chat.stopStream": self._chat_stop_stream,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.publish": self._views_publish,
            "chat.delete": self._chat_delete,
            "files.delete": self._files_delete,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "conversations.replies": self._conversations_replies,
            "conversations.join": self._conversations_join,
            "agents.sessions.setStatus": self._agents_sessions_set_status,
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
        self.port = await listen(self._runner, "127.0.0.1")

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

    # ------------------------------------------------------------------ test-side state

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

    def thread(self, channel: str, thread_ts: str) -> list[ThreadItem]:
        """What a user sees in the thread rooted at ``thread_ts``, in order (parent first when known)."""
        msgs = [m for m in self.messages if m.channel == channel and (m.ts == thread_ts or m.thread_ts == thread_ts)]
        msgs.sort(key=lambda m: ts_key(m.ts))
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
            out.extend((t, names) for t in block_texts(blocks))

        for msg in self.bot_messages():
            for text in [*msg.history, msg.text]:
                add(text, msg.link_names)
            add("", msg.link_names, msg.blocks)
        for item in [*self.ephemerals, *self.command_responses]:
            add(item.get("text"), item.get("link_names"), item.get("blocks"))
        for upload in self.uploads:
            for shown in (upload.initial_comment, upload.title, upload.name):
                add(shown, False)
        return out

    def live_sequences(self) -> list[str]:
        """Every live control sequence (mention, broadcast, link) in what the bot made Slack show
        (:func:`bot.demo.mrkdwn.live_sequences` over :meth:`received_texts`)."""
        return [seq for text, names in self.received_texts() for seq in live_sequences(text, link_names=names)]

    def new_response_url(self) -> str:
        """A slash-command ``response_url`` pointing at this emulator (POSTs land in ``command_responses``)."""
        return f"{self.base_url}/commands/{self.team_id}/{self._new_id('')}/{secrets.token_hex(8)}"

    # ------------------------------------------------------------------ Web API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = await self.recorder.record(request, body)
        method = request.match_info["method"]
        fault = self._fault_response(method)
        if fault is not None:
            return fault
        handler = self._methods.get(method)
        await self._wait_if_held(method)
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

    async def _response_url(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec = await self.recorder.record(request, body)
        self.command_responses.append({"path": request.path, **(rec.json if isinstance(rec.json, dict) else {})})
        await self.recorder.notify()
        return web.Response(text="ok", content_type="text/plain")
