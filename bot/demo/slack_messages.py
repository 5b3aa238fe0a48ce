"""The emulator's Web API methods about messages, reactions and users (``chat.*``, ``reactions.*``,
``conversations.replies``, ``users.info``, ``auth.test``), as Slack answers them (``reference/slack.md``)."""

from __future__ import annotations

import base64
import json
import time

from bot.demo.block_rules import block_errors
from bot.demo.recorder import RecordedRequest
from bot.demo.slack_events import agent_session_stopped, fresh_ts
from bot.demo.slack_state import AGENT_STATUSES, ApiError, FakeMessage, Json, SlackState, ts_key


class MessagesApi(SlackState):
    """``chat.*``, ``reactions.*``, ``conversations.replies``, ``users.info`` and ``auth.test``."""

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

    def permalink(self, channel: str, ts: str) -> str:
        """The permalink ``chat.getPermalink`` gives for a message (a reply links with its thread)."""
        link = f"https://test-workspace.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        msg = self.find_message(channel, ts)
        if msg is not None and msg.thread_ts and msg.thread_ts != ts:
            link += f"?thread_ts={msg.thread_ts}&cid={channel}"
        return link

    async def _auth_test(self, rec: RecordedRequest) -> Json:
        return {"url": "https://test-workspace.slack.com/", "team": self.team_name, "user": "datastory",
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    async def _chat_delete(self, rec: RecordedRequest) -> Json:
        """``chat.delete``: a bot token deletes the bot's own messages only."""
        p = rec.params
        channel = self._check_channel(p.get("channel"))
        msg = self.find_message(channel, str(p.get("ts", "")))
        if msg is None:
            raise ApiError("message_not_found")
        if msg.user != self.bot_user_id:
            raise ApiError("cant_delete_message")
        self.messages.remove(msg)
        self.deleted_messages.append(msg)
        return {"channel": channel, "ts": msg.ts}

    async def _files_delete(self, rec: RecordedRequest) -> Json:
        """``files.delete``: a bot token deletes the files the bot uploaded; they leave the messages sharing them
        (a file message left with nothing to show goes too)."""
        file_id = str(rec.params.get("file") or "")
        hosted = self._files.get(file_id)
        if hosted is None or hosted.deleted:
            raise ApiError("file_not_found")
        if hosted.payload.get("user") != self.bot_user_id:
            raise ApiError("cant_delete_file")
        hosted.deleted = True
        for msg in list(self.messages):
            if any(f.get("id") == file_id for f in msg.files):
                msg.files = [f for f in msg.files if f.get("id") != file_id]
                if not msg.files and not msg.text:
                    self.messages.remove(msg)
        return {}

    async def _views_publish(self, rec: RecordedRequest) -> Json:
        """``views.publish``: a person's Home tab (``view`` as a JSON string or object; at most 100 blocks)."""
        p = rec.params
        user = str(p.get("user_id") or "")
        view = p.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError as exc:
                raise ApiError("invalid_arguments") from exc
        if not user or not isinstance(view, dict) or view.get("type") != "home":
            raise ApiError("invalid_arguments")
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or len(blocks) > 100:
            raise ApiError("invalid_blocks", errors=["must be an array of at most 100 blocks [json-pointer:/view]"])
        errors = block_errors(blocks)
        if errors:
            raise ApiError("invalid_blocks", errors=errors)
        self.home_views[user] = view
        return {"view": {"id": f"V{len(self.home_views):08d}", "team_id": self.team_id, "type": "home",
                         "blocks": blocks, "hash": fresh_ts()}}

    async def _chat_post_message(self, rec: RecordedRequest) -> Json:
        p = rec.params
        channel = self._check_channel(p.get("channel"))
        text, blocks = self._check_text(p)
        thread_ts = str(p["thread_ts"]) if p.get("thread_ts") else None
        msg = FakeMessage(channel=channel, ts=fresh_ts(), user=self.bot_user_id, text=text, thread_ts=thread_ts,
                          bot_id=self.bot_id, blocks=blocks, unfurl_links=p.get("unfurl_links"),
                          unfurl_media=p.get("unfurl_media"), link_names=p.get("link_names"),
                          metadata=_metadata(p.get("metadata")))
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
        stream = msg.stream
        if stream is not None and stream.open and time.monotonic() - stream.started_at < self.stream_lifetime:
            raise ApiError("streaming_state_conflict")  # still the streaming API's (secondary source)
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

    async def _conversations_join(self, rec: RecordedRequest) -> Json:
        """``conversations.join`` (scope ``channels:join``): the bot joins a public channel; a private one, a DM or
        a group DM answers ``method_not_supported_for_channel_type``; joining again is ``ok`` with the warning
        ``already_in_channel``."""
        granted = [s for s in self.scopes.split(",") if s]
        if "channels:join" not in granted:
            raise ApiError("missing_scope", needed="channels:join", provided=",".join(granted))
        channel = str(rec.params.get("channel") or "")
        if not channel or channel in self.missing_channels:
            raise ApiError("channel_not_found")
        if channel in self.private_channels or channel.startswith(("D", "G")):
            raise ApiError("method_not_supported_for_channel_type")
        was_member = channel not in self.non_member_channels
        self.non_member_channels.discard(channel)
        info = {"id": channel, "name": channel.lower(), "is_channel": True, "is_group": False, "is_im": False,
                "is_mpim": False, "is_private": False, "is_archived": False, "is_general": False,
                "is_member": True, "created": 1700000000, "creator": "U0"}
        out: Json = {"channel": info}
        if was_member:
            out.update(warning="already_in_channel", response_metadata={"warnings": ["already_in_channel"]})
        return out

    async def _agents_sessions_set_status(self, rec: RecordedRequest) -> Json:
        """``agents.sessions.setStatus`` (docs.slack.dev/reference/methods/agents.sessions.setStatus): a bot token
        bearing ``chat:write`` of an app declared as an agent (which adds ``assistant:write``; the refusal of an app
        that is not one is not documented: ``missing_scope`` here) sets the thread's session status, creating the
        session on first use; ``status`` is one of :data:`~bot.demo.slack_state.AGENT_STATUSES`, ``title`` at most
        200 characters. Slack shows its native Stop button while ``processing``, and warns
        ``missing_agent_session_stopped_event_subscription`` while the app does not subscribe to
        ``agent_session_stopped`` (docs.slack.dev/reference/events/agent_session_stopped)."""
        granted = self.scopes.split(",")
        for scope in ("chat:write", "assistant:write"):
            if scope not in granted:
                raise ApiError("missing_scope", needed=scope, provided=self.scopes)
        p = rec.params
        status = str(p.get("status") or "")
        if status not in AGENT_STATUSES or len(str(p.get("title") or "")) > 200:
            raise ApiError("invalid_arguments")
        channel = self._check_channel(p.get("channel_id"))
        thread_ts = str(p.get("thread_ts") or "")
        if not any(m.channel == channel and m.ts == thread_ts for m in self.messages):
            raise ApiError("thread_not_found")
        self.agent_sessions[(channel, thread_ts)] = status
        self.agent_statuses.append((channel, thread_ts, status))
        out: Json = {"status": status}
        if not self.agent_stop_subscribed:
            warning = "missing_agent_session_stopped_event_subscription"
            out.update(warning=warning, response_metadata={"warnings": [warning]})
        return out

    def stop_agent_session(self, channel: str, thread_ts: str, user: str) -> Json:
        """A person clicks Slack's Stop button on the thread's session: the ``agent_session_stopped`` event to
        deliver. The button exists only while the session is ``processing``; the status does not change by
        itself (the app moves it on)."""
        if self.agent_sessions.get((channel, thread_ts)) != "processing":
            raise AssertionError(f"no Stop button: the session is {self.agent_sessions.get((channel, thread_ts))}")
        return agent_session_stopped(channel, thread_ts, user)

    async def _conversations_replies(self, rec: RecordedRequest) -> Json:
        p = rec.params
        channel = self._check_channel(p.get("channel"))
        root = str(p.get("ts", ""))
        if not root:
            raise ApiError("invalid_arguments")
        msgs = [m for m in self.messages if m.channel == channel and (m.ts == root or m.thread_ts == root)]
        if not msgs:
            raise ApiError("thread_not_found")
        msgs.sort(key=lambda m: ts_key(m.ts))
        replies = [m for m in msgs if m.ts != root]
        start = 0
        if p.get("cursor"):
            try:
                start = int(base64.b64decode(str(p["cursor"])).decode().removeprefix("next_ts:"))
            except ValueError as exc:
                raise ApiError("invalid_cursor") from exc
        limit = min(int(p.get("limit") or self.replies_page_size), self.replies_page_size)  # "fewer may be returned"
        page = msgs[start:start + limit]
        out = []
        with_metadata = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        for m in page:
            item = m.to_api(team_id=self.team_id, app_id=self.app_id, metadata=with_metadata)
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


def _metadata(value: object) -> Json | None:
    """``chat.postMessage``'s ``metadata``: an object (JSON body) or its JSON text (form or query string) with a
    string ``event_type`` and an object ``event_payload``; anything else is ``invalid_metadata_format``."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ApiError("invalid_metadata_format") from exc
    if not (isinstance(value, dict) and isinstance(value.get("event_type"), str) and value["event_type"]
            and isinstance(value.get("event_payload"), dict)):
        raise ApiError("invalid_metadata_format")
    return {"event_type": value["event_type"], "event_payload": value["event_payload"]}
