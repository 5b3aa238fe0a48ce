"""The API's commands: ``datastory api`` (serve the API alone), ``datastory api-key create|list|revoke`` and
``datastory mcp`` (the MCP server, :mod:`bot.api.mcp`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import web

from bot.api.app import open_api_app
from bot.api.keys import make_key
from bot.api.service import ApiStore
from bot.backends import ConfigurationError
from bot.config import Settings
from bot.store import make_store
from bot.store.revisions import SchemaNotAtHead


def add_parsers(sub: Any, make: Callable[..., argparse.ArgumentParser]) -> None:
    """``api``, ``api-key`` and ``mcp`` on the ``datastory`` parser (``make`` is its subcommand helper)."""
    api = make(sub, "api", "serve only the HTTP API (/v1/…): no Slack settings needed",
               "  datastory api --port 8080\n  DATASTORY_SANDBOX=local datastory api   # offline analyst, no keys")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    keys = make(sub, "api-key", "API keys: create (printed once), list, revoke",
                "  datastory api-key create notebooks\n  datastory api-key list\n"
                "  datastory api-key revoke 3f2a9c01b7de")
    ksub = keys.add_subparsers(dest="key_command", metavar="SUBCOMMAND", required=True)
    create = make(ksub, "create", "make a key and print it once (only its hash is stored)",
                  "  datastory api-key create notebooks")
    create.add_argument("name", help="what the key is for")
    make(ksub, "list", "print every key: id, name, created, last used (to the minute), revoked",
         "  datastory api-key list")
    revoke = make(ksub, "revoke", "revoke a key (every server refuses it within 5 s)",
                  "  datastory api-key revoke 3f2a9c01b7de")
    revoke.add_argument("id", help="the key's id (the 12 hex digits after ds_)")
    mcp = make(sub, "mcp", "the API's operations as an MCP server: streamable HTTP at /mcp, or --stdio",
               "  datastory mcp --port 8765\n  DATASTORY_API_KEY=ds_… datastory mcp --stdio")
    mcp.add_argument("--stdio", action="store_true", help="speak MCP on stdin/stdout (acts as DATASTORY_API_KEY)")
    mcp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    mcp.add_argument("--port", type=int, default=8765, help="port of the MCP endpoint (default 8765)")
    mcp.add_argument("--api-port", type=int, default=8080, help="port of the HTTP API served beside it (default 8080)")


def _iso(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def api_key_command(settings: Settings, args: argparse.Namespace) -> int:
    """``datastory api-key …``."""
    store = cast(ApiStore, make_store(settings.database_url, migrate=settings.migrate))
    try:
        try:
            await store.open()
        except SchemaNotAtHead as exc:
            print(f"datastory api-key: {exc}", file=sys.stderr)
            return 2
        if args.key_command == "create":
            new = make_key(args.name, now=time.time())
            await store.add_api_key(new.record)
            print(new.key)
            print(f"datastory: key {new.record.id} ({args.name}) created; it is shown only now, keep it secret.",
                  file=sys.stderr)
            return 0
        if args.key_command == "list":
            rows = await store.list_api_keys()
            print("id\tname\tcreated\tlast used\trevoked")
            for r in rows:
                print(f"{r.id}\t{r.name}\t{_iso(r.created_at)}\t{_iso(r.last_used_at)}\t{_iso(r.revoked_at)}")
            return 0
        if await store.revoke_api_key(args.id, now=time.time()):
            print(f"key {args.id} revoked")
            return 0
        print(f"datastory api-key revoke: no live key {args.id}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def serve_api(settings: Settings, *, host: str, port: int, ready: Callable[[str], None] | None,
                    stop: asyncio.Event) -> int:
    """``datastory api``: the API alone until ``stop``."""
    try:
        app = await open_api_app(settings)
        runner = web.AppRunner(app.web, handle_signals=False, access_log=None)
        await runner.setup()
    except (ConfigurationError, SchemaNotAtHead) as exc:
        print(f"datastory api: {exc}", file=sys.stderr)
        return 2
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    url = f"http://{bound_host}:{bound_port}"
    print(f"datastory api: serving {url}/v1/ (OpenAPI at {url}/v1/openapi.json)", file=sys.stderr)
    if ready:
        ready(url)
    await stop.wait()
    await runner.cleanup()
    return 0
