"""The OpenAI client's HTTP layer with its failures counted: every request the SDK sends, retries included.

The SDK retries rate limits, 5xx and dropped connections before it raises, and the sandbox and the analysts each
translate what finally escapes; counting at the HTTP client sees every failed attempt once, whoever made the call
(containers, files, responses, chat completions), so a rising rate of 429s shows before turns start failing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
from openai import DefaultAsyncHttpxClient

from bot.metrics import http_error_kind


class CountingHttpClient(DefaultAsyncHttpxClient):
    """The SDK's default async HTTP client (its timeouts and connection limits) that reports each failure's kind:
    ``rate_limited``, ``server_error``, ``auth``, ``not_found``, ``client_error``, ``timeout`` or ``connection``."""

    def __init__(self, *, on_error: Callable[[str], None], **options: Any) -> None:
        super().__init__(**options)
        self._on_error = on_error

    async def send(self, request: httpx2.Request, **options: Any) -> httpx2.Response:
        """Send as the SDK asked; count what failed."""
        try:
            response = await super().send(request, **options)
        except httpx2.TimeoutException:
            self._on_error("timeout")
            raise
        except httpx2.TransportError:
            self._on_error("connection")
            raise
        if response.status_code >= 400:
            self._on_error(http_error_kind(response.status_code))
        return response
