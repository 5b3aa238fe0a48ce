"""Recording of every request an emulator receives, and waiting on conditions instead of sleeping."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy


@dataclass(slots=True)
class RecordedRequest:
    """One request as the emulator received it. ``params`` merges query string, form body and JSON body."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes
    params: dict[str, Any] = field(default_factory=dict)
    received_at: float = field(default_factory=time.perf_counter)
    """``time.perf_counter()`` when the request arrived (for latency measurements)."""

    @property
    def json(self) -> Any:
        """The body parsed as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def authorization(self) -> str | None:
        """The Authorization header, if any."""
        return self.headers.get("Authorization")

    def __repr__(self) -> str:  # never print tokens
        return f"RecordedRequest({self.method} {self.path} params={sorted(self.params)})"


class Recorder:
    """Keeps every request in arrival order and wakes waiters when a new one arrives."""

    def __init__(self, *, keep_body_bytes: int = 1 << 20) -> None:
        self.requests: list[RecordedRequest] = []
        self.keep_body_bytes = keep_body_bytes
        """How much of each body is kept."""
        self._changed = asyncio.Condition()

    async def record(self, request: web.Request, body: bytes) -> RecordedRequest:
        """Record ``request`` (its ``body`` already read, truncated past ``keep_body_bytes``)."""
        params: dict[str, Any] = dict(request.query)
        ctype = request.headers.get("Content-Type", "")
        if body and "application/x-www-form-urlencoded" in ctype:
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        elif body and "json" in ctype:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                params.update(parsed)
        kept = body if len(body) <= self.keep_body_bytes else body[: self.keep_body_bytes]
        rec = RecordedRequest(
            method=request.method, path=request.path, query=dict(request.query),
            headers=CIMultiDictProxy(CIMultiDict(request.headers)), body=kept, params=params,
        )
        self.requests.append(rec)
        await self.notify()
        return rec

    async def notify(self) -> None:
        """Wake every waiter (state changed)."""
        async with self._changed:
            self._changed.notify_all()

    async def next_change(self, *, timeout: float) -> bool:
        """Wait for the next notification (a request or a state change); False on timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                return False
        return True

    def find(self, predicate: Callable[[RecordedRequest], bool]) -> list[RecordedRequest]:
        """Every recorded request matching ``predicate``."""
        return [r for r in self.requests if predicate(r)]

    def calls(self, method_or_path: str) -> list[RecordedRequest]:
        """Requests whose path ends with ``method_or_path`` (``chat.postMessage`` or ``/v1/containers``)."""
        return [r for r in self.requests if r.path.endswith(method_or_path)]

    async def wait_for(self, condition: Callable[[], Any], *, timeout: float = 10.0) -> Any:
        """Wait until ``condition()`` is truthy (re-checked on every new request) and return its value."""

        async def _wait() -> Any:
            async with self._changed:
                while True:
                    value = condition()
                    if value:
                        return value
                    await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)
