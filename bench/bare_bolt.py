"""The baseline of ``bench/ack.py``: a bare Bolt app with one no-op listener, served like the bot (aiohttp).

Run by the benchmark as its own process: ``python bench/bare_bolt.py --port P --api-url URL --secret S --token T``.
"""

from __future__ import annotations

import argparse

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def make_app(*, api_url: str, secret: str, token: str) -> web.Application:
    """Bolt with one no-op ``message`` listener behind the same aiohttp adapter the bot uses."""
    bolt = AsyncApp(client=AsyncWebClient(token=token, base_url=api_url), signing_secret=secret,
                    raise_error_for_unhandled_request=False)

    async def noop() -> None:
        return None

    bolt.event("message")(noop)

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    web.run_app(make_app(api_url=args.api_url, secret=args.secret, token=args.token), host="127.0.0.1",
                port=args.port, access_log=None, print=None)
