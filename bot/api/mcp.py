"""Placeholder: the MCP server comes next."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.config import Settings


async def serve_mcp(settings: Settings, *, stdio: bool, host: str, port: int, ready: Callable[[str], None] | None,
                    stop: asyncio.Event) -> int:
    """Not yet."""
    return 2
