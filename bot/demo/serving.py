"""Listening with an aiohttp runner on a port (``0``: any free one) and learning which port it got."""

from __future__ import annotations

from aiohttp import web


async def listen(runner: web.AppRunner, host: str, port: int = 0) -> int:
    """Start a TCP site of ``runner`` (already set up) on ``host:port``; returns the bound port."""
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None and getattr(server, "sockets", None)
    return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
