"""The emulator's Socket Mode: ``apps.connections.open`` hands out a one-time WebSocket URL; envelopes are sent
on the newest connection and wait for the client's ack, redelivered on timeout as Slack does."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiohttp import WSMsgType, web

from bot.demo.recorder import RecordedRequest
from bot.demo.slack_state import Json, SlackState


class SocketMode(SlackState):
    """Socket Mode connections, envelopes and acks."""

    async def _connections_open(self, rec: RecordedRequest) -> Json:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"}

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
