"""Builders of realistic Slack Events API payloads, and ``SlackSender``, which POSTs them to the bot, signed like Slack.

Shapes follow ``/work/shared/reference/slack.md`` (§1.3 envelope, §3.1 ``file_share``, §3.2 ``file_shared``, §3.6 bot
messages and edits, §7 slash commands and ``app_mention``). The event builders return the *inner* event;
wrap it with :func:`envelope` for an ``event_callback`` body (HTTP) or a Socket Mode ``events_api`` payload.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy

__all__ = [
    "SignedReply",
    "SlackSender",
    "app_mention",
    "app_uninstalled",
    "block_actions",
    "bot_message",
    "envelope",
    "file_access_stub",
    "file_share_message",
    "file_shared",
    "fresh_event_id",
    "fresh_ts",
    "message",
    "message_changed",
    "message_deleted",
    "rich_text_blocks",
    "signature",
    "signed_headers",
    "slash_command",
    "tokens_revoked",
    "url_verification",
]

_ts_lock = threading.Lock()
_last_ts_us = 0
_event_ids = itertools.count(1)


def fresh_ts() -> str:
    """A unique, increasing Slack-style ``secs.micros`` timestamp (shared by the builders and FakeSlack)."""
    global _last_ts_us
    with _ts_lock:
        _last_ts_us = max(time.time_ns() // 1000, _last_ts_us + 1)
        value = _last_ts_us
    return f"{value // 1_000_000}.{value % 1_000_000:06d}"


def fresh_event_id() -> str:
    """A unique ``Ev...`` event id."""
    return f"Ev{next(_event_ids):04d}{uuid.uuid4().hex[:8].upper()}"


def rich_text_blocks(text: str) -> list[dict[str, Any]]:
    """The ``blocks`` Slack's client attaches to a user message with ``text``."""
    if not text:
        return []
    return [{
        "type": "rich_text", "block_id": uuid.uuid4().hex[:5],
        "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
    }]


def _thread_fields(event: dict[str, Any], thread_ts: str | None, parent_user_id: str | None) -> None:
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
        if parent_user_id is not None:
            event["parent_user_id"] = parent_user_id


def message(
    channel: str, user: str, text: str, *, ts: str | None = None, thread_ts: str | None = None,
    parent_user_id: str | None = None, channel_type: str = "channel", team: str = "T1",
) -> dict[str, Any]:
    """A plain user ``message`` (top level, or a reply when ``thread_ts`` is set)."""
    ts = ts or fresh_ts()
    event: dict[str, Any] = {
        "type": "message", "user": user, "text": text, "ts": ts, "event_ts": ts, "team": team,
        "client_msg_id": str(uuid.uuid4()), "blocks": rich_text_blocks(text),
        "channel": channel, "channel_type": channel_type,
    }
    _thread_fields(event, thread_ts, parent_user_id)
    return event


def file_share_message(
    channel: str, user: str, files: list[dict[str, Any]], text: str = "", ts: str | None = None,
    thread_ts: str | None = None, channel_type: str = "channel", *, parent_user_id: str | None = None,
    team: str = "T1",
) -> dict[str, Any]:
    """A ``message``/``file_share`` as sent when a user drops files (``files`` from ``FakeSlack.add_file``)."""
    event = message(channel, user, text, ts=ts, thread_ts=thread_ts, parent_user_id=parent_user_id,
                    channel_type=channel_type, team=team)
    event.update({"subtype": "file_share", "files": [dict(f) for f in files], "upload": False,
                  "display_as_bot": False})
    return event


def bot_message(
    channel: str, text: str, *, bot_user_id: str = "UBOT", bot_id: str = "BBOT", app_id: str = "A1",
    ts: str | None = None, thread_ts: str | None = None, parent_user_id: str | None = None,
    files: list[dict[str, Any]] | None = None, classic: bool = False, channel_type: str = "channel",
    team: str = "T1",
) -> dict[str, Any]:
    """A message posted by a bot: modern apps have ``bot_id`` + ``user`` and no subtype (``file_share`` with
    ``files``); ``classic=True`` gives the legacy ``subtype: bot_message`` without ``user``."""
    ts = ts or fresh_ts()
    event: dict[str, Any] = {
        "type": "message", "text": text, "ts": ts, "event_ts": ts, "team": team, "bot_id": bot_id,
        "app_id": app_id, "channel": channel, "channel_type": channel_type,
        "bot_profile": {"id": bot_id, "app_id": app_id, "name": "datastory", "deleted": False, "team_id": team},
    }
    if classic:
        event.update({"subtype": "bot_message", "username": "datastory"})
        event.pop("bot_profile")
    else:
        event["user"] = bot_user_id
        event["blocks"] = rich_text_blocks(text)
    if files:
        event.update({"subtype": "file_share", "files": [dict(f) for f in files], "upload": True,
                      "display_as_bot": False})
    _thread_fields(event, thread_ts, parent_user_id)
    return event


def app_mention(
    channel: str, user: str, text: str, *, ts: str | None = None, thread_ts: str | None = None,
    files: list[dict[str, Any]] | None = None, team: str = "T1",
) -> dict[str, Any]:
    """An ``app_mention`` (write the mention into ``text`` yourself: ``"<@UBOT> what is the trend?"``)."""
    ts = ts or fresh_ts()
    event: dict[str, Any] = {
        "type": "app_mention", "client_msg_id": str(uuid.uuid4()), "text": text, "user": user, "ts": ts,
        "team": team, "blocks": rich_text_blocks(text), "channel": channel, "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    if files:
        event["files"] = [dict(f) for f in files]
    return event


def message_action(
    callback_id: str, message: dict[str, Any], *, channel_id: str, user_id: str, response_url: str,
    team_id: str = "T1", api_app_id: str = "A1",
) -> dict[str, Any]:
    """A message shortcut (``message_action``) on ``message`` (a message event as the channel holds it)."""
    shown = {k: v for k, v in message.items() if k in ("type", "user", "text", "ts", "thread_ts", "files", "team")}
    return {
        "type": "message_action", "callback_id": callback_id, "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex}",
        "team": {"id": team_id, "domain": "example"}, "user": {"id": user_id, "username": "someone",
                                                               "team_id": team_id},
        "channel": {"id": channel_id, "name": "general"}, "message": shown, "message_ts": message["ts"],
        "response_url": response_url, "api_app_id": api_app_id, "token": "legacy-verification-token",
        "is_enterprise_install": False, "enterprise": None,
    }


def reaction_added(user: str, reaction: str, *, channel: str, ts: str, item_user: str) -> dict[str, Any]:
    """``reaction_added``: ``user`` reacted with ``reaction`` to the message ``ts`` written by ``item_user``."""
    return {"type": "reaction_added", "user": user, "reaction": reaction, "item_user": item_user,
            "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": fresh_ts()}


def app_home_opened(user: str, *, channel: str = "D0HOME", tab: str = "home") -> dict[str, Any]:
    """``app_home_opened``: ``user`` opened the app's ``home`` (or ``messages``) tab."""
    return {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab, "event_ts": fresh_ts()}


def agent_session_stopped(channel: str, thread_ts: str, user: str,
                          streaming_message_ts: list[str] | None = None) -> dict[str, Any]:
    """``agent_session_stopped``: ``user`` clicked Slack's Stop button on the thread's agent session;
    ``streaming_message_ts`` lists the app's streams Slack stopped (empty when none was active)."""
    return {"type": "agent_session_stopped", "channel": channel, "thread_ts": thread_ts, "user": user,
            "streaming_message_ts": list(streaming_message_ts or []), "event_ts": fresh_ts()}


def app_uninstalled() -> dict[str, Any]:
    """``app_uninstalled``: the app was removed from the workspace (the envelope's ``team_id`` says which)."""
    return {"type": "app_uninstalled", "event_ts": fresh_ts()}


def tokens_revoked(*, bot: list[str] | None = None, oauth: list[str] | None = None) -> dict[str, Any]:
    """``tokens_revoked``: user ids whose tokens were revoked, by kind (``bot`` for bot tokens)."""
    tokens: dict[str, list[str]] = {}
    if oauth is not None:
        tokens["oauth"] = oauth
    if bot is not None:
        tokens["bot"] = bot
    return {"type": "tokens_revoked", "tokens": tokens, "event_ts": fresh_ts()}


def file_shared(file_id: str, channel: str, user: str, *, event_ts: str | None = None) -> dict[str, Any]:
    """A ``file_shared`` event: only the file id (metadata comes from ``files.info``), no message ts."""
    return {
        "type": "file_shared", "file_id": file_id, "user_id": user, "file": {"id": file_id},
        "channel_id": channel, "event_ts": event_ts or fresh_ts(),
    }


def file_access_stub(file_id: str) -> dict[str, Any]:
    """The Slack Connect placeholder a ``files[]`` entry can be (call ``files.info`` for the real object)."""
    return {"id": file_id, "mode": "file_access", "file_access": "check_file_info", "created": 0, "timestamp": 0,
            "user": ""}


def message_changed(
    channel: str, ts: str, text: str, *, user: str, previous_text: str = "", thread_ts: str | None = None,
    event_ts: str | None = None, bot_id: str | None = None,
) -> dict[str, Any]:
    """A ``message_changed`` event for the message ``ts`` now reading ``text``."""
    now = event_ts or fresh_ts()
    inner: dict[str, Any] = {"type": "message", "text": text, "user": user, "ts": ts,
                             "edited": {"user": user, "ts": now}}
    previous: dict[str, Any] = {"type": "message", "text": previous_text, "user": user, "ts": ts}
    for part in (inner, previous):
        if thread_ts is not None:
            part["thread_ts"] = thread_ts
        if bot_id is not None:
            part["bot_id"] = bot_id
    return {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel, "ts": now,
            "event_ts": now, "channel_type": "channel", "message": inner, "previous_message": previous}


def message_deleted(
    channel: str, deleted_ts: str, *, user: str, previous_text: str = "", thread_ts: str | None = None,
    event_ts: str | None = None,
) -> dict[str, Any]:
    """A ``message_deleted`` event for the message ``deleted_ts``."""
    now = event_ts or fresh_ts()
    previous: dict[str, Any] = {"type": "message", "text": previous_text, "user": user, "ts": deleted_ts}
    if thread_ts is not None:
        previous["thread_ts"] = thread_ts
    return {"type": "message", "subtype": "message_deleted", "hidden": True, "deleted_ts": deleted_ts,
            "channel": channel, "ts": now, "event_ts": now, "channel_type": "channel",
            "previous_message": previous}


def envelope(
    event: dict[str, Any], team_id: str = "T1", event_id: str | None = None, *, api_app_id: str = "A1",
    bot_user_id: str = "UBOT", event_time: int | None = None, is_ext_shared_channel: bool = False,
) -> dict[str, Any]:
    """The ``event_callback`` body around ``event``, with the bot installation in ``authorizations``."""
    return {
        "token": "verification-token-unused", "team_id": team_id, "context_team_id": team_id,
        "context_enterprise_id": None, "api_app_id": api_app_id, "event": event, "type": "event_callback",
        "event_id": event_id or fresh_event_id(),
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": bot_user_id, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": is_ext_shared_channel, "event_context": f"4-{uuid.uuid4().hex[:16]}",
    }


def url_verification(challenge: str | None = None) -> dict[str, Any]:
    """The handshake body Slack sends when the Request URL is saved."""
    return {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge or uuid.uuid4().hex, "type": "url_verification"}


def slash_command(
    command: str, text: str, channel_id: str, user_id: str, response_url: str, *, team_id: str = "T1",
    api_app_id: str = "A1", channel_name: str = "general", user_name: str = "someone",
) -> dict[str, str]:
    """The form fields of a slash command (also the Socket Mode ``slash_commands`` payload)."""
    return {
        "token": "verification-token-unused", "team_id": team_id, "team_domain": "example",
        "channel_id": channel_id, "channel_name": channel_name, "user_id": user_id, "user_name": user_name,
        "command": command, "text": text, "api_app_id": api_app_id, "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex}",
    }


def block_actions(
    action_id: str, value: str, *, channel_id: str, user_id: str, message_ts: str, response_url: str,
    team_id: str = "T1", api_app_id: str = "A1", block_id: str = "b1", thread_ts: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` interactivity payload for a button click on message ``message_ts`` (in the thread
    ``thread_ts`` when given)."""
    payload: dict[str, Any] = {
        "type": "block_actions", "team": {"id": team_id, "domain": "example"},
        "user": {"id": user_id, "username": "someone", "team_id": team_id}, "api_app_id": api_app_id,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex}", "channel": {"id": channel_id, "name": "general"},
        "message": {"type": "message", "ts": message_ts, "text": ""}, "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": block_id, "value": value,
                     "action_ts": fresh_ts()}],
    }
    if thread_ts is not None:
        payload["container"]["thread_ts"] = thread_ts
        payload["message"]["thread_ts"] = thread_ts
    return payload


def signed_headers(signing_secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body``."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature(signing_secret, ts, body)}


def signature(signing_secret: str, timestamp: str, body: str) -> str:
    """Slack's request signature: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` under the signing secret
    (the contract tests check it against slack_sdk's ``SignatureVerifier`` and Slack's documented example)."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedReply:
    """What the bot answered to one signed POST."""

    status: int
    body: str
    elapsed: float
    headers: CIMultiDictProxy[str]

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


class SlackSender:
    """POSTs payloads to the bot's Request URL exactly as Slack does: signed, JSON for events, form for commands,
    ``payload=<json>`` for interactivity. Use as ``async with SlackSender(url, secret) as sender``."""

    def __init__(self, url: str, signing_secret: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SlackSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_event(self, payload: dict[str, Any], **options: Any) -> SignedReply:
        """POST an Events API body (``envelope(...)`` or ``url_verification(...)``) as JSON."""
        return await self.post(json.dumps(payload), "application/json", **options)

    async def send_command(self, fields: dict[str, str], **options: Any) -> SignedReply:
        """POST a slash command (``slash_command(...)``) form-encoded."""
        return await self.post(urlencode(fields), "application/x-www-form-urlencoded", **options)

    async def send_interactive(self, payload: dict[str, Any], **options: Any) -> SignedReply:
        """POST an interactivity payload as the form field ``payload``."""
        return await self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded",
                               **options)

    async def post(
        self, body: str, content_type: str, *, retry_num: int | None = None, retry_reason: str = "http_timeout",
        bad_signature: bool = False, timestamp: int | None = None, extra_headers: dict[str, str] | None = None,
    ) -> SignedReply:
        """POST ``body`` signed over exactly these bytes; ``retry_num`` adds Slack's retry headers,
        ``bad_signature`` signs with a wrong secret, ``timestamp`` forges the request time."""
        secret = self.signing_secret + "-wrong" if bad_signature else self.signing_secret
        headers = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
        headers.update(signed_headers(secret, body, timestamp=timestamp))
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        headers.update(extra_headers or {})
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        started = time.monotonic()
        async with self._session.post(self.url, data=body.encode("utf-8"), headers=headers,
                                      allow_redirects=False) as resp:
            text = await resp.text()
            return SignedReply(status=resp.status, body=text, elapsed=time.monotonic() - started,
                               headers=resp.headers)
