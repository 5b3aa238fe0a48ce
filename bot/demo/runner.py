"""``datastory demo``: the real bot against the packaged Slack emulator, with a Slack-like page in the browser.

One aiohttp application (the emulator's, :class:`~bot.demo.fake_slack.FakeSlack`) serves Slack's Web API and files
to the bot on a loopback port and the page (:mod:`bot.demo.page`) on the address the person opens. The bot is the
one ``datastory run --http`` builds (:func:`bot.app.open_app` on :func:`bot.bootstrap.bootstrap`: the same Bolt app,
handlers, core and Web API calls), listening on its own loopback port for the events the page's actions become,
signed with a secret made up for this run. The local sandbox runs the code; the analyst is the offline one, or a
model when one is configured (``OPENAI_API_KEY``). The database lives in a temporary directory removed at exit.

Only loopback by default: another ``--host`` is taken as asked, with a warning that the page has no authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import sys
import tempfile
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TextIO

from aiohttp import web
from pydantic import SecretStr

from bot.app import EVENTS_PATH, open_app
from bot.backends import ConfigurationError
from bot.config import Settings
from bot.demo.fake_slack import FakeSlack
from bot.demo.page import mount
from bot.demo.serving import listen
from bot.demo.slack_events import SlackSender
from bot.demo.slack_state import Json
from bot.demo.workspace import DemoWorkspace

logger = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parent / "examples"
DEFAULT_PORT = 8000
TEAM_ID = "T0DEMO"
TEAM_NAME = "datastory demo"
SHUTDOWN_GRACE_SECONDS = 5.0


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def page_url(host: str, port: int) -> str:
    """The URL to open: a wildcard address is opened on loopback; IPv6 literals get brackets."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def examples() -> dict[str, Path]:
    """The example files shipped in the package, by name."""
    return {p.name: p for p in sorted(EXAMPLES.glob("*.csv"))}


def demo_sandbox(settings: Settings) -> Literal["openai", "local"]:
    """The local sandbox, unless the person set ``DATASTORY_SANDBOX`` themselves."""
    return settings.sandbox if "sandbox" in settings.model_fields_set else "local"


def demo_isolation(settings: Settings) -> Literal["strict", "relaxed"]:
    """Relaxed isolation of local kernels (your files, on your machine, on loopback, as ``datastory try``), unless
    the person set ``DATASTORY_LOCAL_ISOLATION`` themselves."""
    return settings.local_isolation if "local_isolation" in settings.model_fields_set else "relaxed"


def analyst_info(settings: Settings) -> Json:
    """What analyses the files in this demo, for the page's channel topic and the terminal."""
    sandbox = demo_sandbox(settings)
    if settings.openai_api_key is None:
        return {"analyst": "offline", "sandbox": sandbox,
                "topic": "No model is configured: each file gets an automatic first look (profile and charts). "
                         "Set OPENAI_API_KEY, or OPENAI_BASE_URL and DATASTORY_MODEL, to ask questions."}
    return {"analyst": settings.model, "sandbox": sandbox,
            "topic": f"{settings.model} analyses the files in the {sandbox} sandbox; ask follow-ups in the thread."}


def bot_settings(settings: Settings, *, slack: FakeSlack, signing_secret: str, database: Path) -> Settings:
    """The person's settings, pointed at the emulator: made-up Slack credentials, the local sandbox (unless
    ``DATASTORY_SANDBOX`` was set) with relaxed isolation (unless ``DATASTORY_LOCAL_ISOLATION`` was set), a database
    in the demo's temporary directory, no allowlists."""
    return settings.model_copy(update={
        "slack_bot_token": SecretStr(slack.bot_token), "slack_signing_secret": SecretStr(signing_secret),
        "slack_app_token": None, "slack_api_url": slack.api_url, "sandbox": demo_sandbox(settings),
        "local_isolation": demo_isolation(settings),
        "database_url": f"sqlite:///{database}", "allowed_channels": [], "allowed_users": [],
        "shutdown_grace_seconds": min(settings.shutdown_grace_seconds, SHUTDOWN_GRACE_SECONDS),
    })


async def run_demo(
    settings: Settings, *, host: str | None = None, port: int = DEFAULT_PORT, open_browser: bool = False,
    ready: Callable[[str], None] | None = None, stop: asyncio.Event, out: TextIO = sys.stdout,
) -> int:
    """Serve the demo until ``stop`` is set; returns the exit code (2 when it cannot start)."""
    host = host or "127.0.0.1"
    if not is_loopback(host):
        print(f"datastory demo: WARNING: listening on {host}, not loopback. The demo page has no authentication: "
              "anyone who can reach this address can post to the bot, run its analyses and open every file "
              "shared in it.", file=sys.stderr)
    signing_secret = secrets.token_hex(16)
    slack = FakeSlack(bot_token=f"xoxb-demo-{secrets.token_hex(12)}", app_token=f"xapp-demo-{secrets.token_hex(12)}",
                      team_id=TEAM_ID, team_name=TEAM_NAME)
    with tempfile.TemporaryDirectory(prefix="datastory-demo-") as tmp:
        uploads = Path(tmp) / "uploads"
        uploads.mkdir()
        workspace = DemoWorkspace(slack=slack, examples=examples())
        app = slack.build_app()
        info = analyst_info(settings)
        mount(app, workspace, info={"team": TEAM_NAME, **info}, uploads=uploads)
        page = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await page.setup()
        try:
            slack.port = await listen(page, "127.0.0.1", 0)
            url = page_url(host, await listen(page, host, port))
        except OSError as exc:
            await page.cleanup()
            print(f"datastory demo: cannot listen on {host}:{port}: {exc.strerror or exc}. Choose another port with "
                  "--port (0 picks a free one).", file=sys.stderr)
            return 2
        try:
            code = await _serve_bot(settings, slack=slack, workspace=workspace, signing_secret=signing_secret,
                                    database=Path(tmp) / "demo.db", url=url, info=info, open_browser=open_browser,
                                    ready=ready, stop=stop, out=out)
        finally:
            await page.cleanup()
    return code


async def _serve_bot(
    settings: Settings, *, slack: FakeSlack, workspace: DemoWorkspace, signing_secret: str, database: Path,
    url: str, info: Json, open_browser: bool, ready: Callable[[str], None] | None, stop: asyncio.Event, out: TextIO,
) -> int:
    try:
        bot = await open_app(bot_settings(settings, slack=slack, signing_secret=signing_secret, database=database))
    except ConfigurationError as exc:
        print(f"datastory demo: {exc}", file=sys.stderr)
        return 2
    runner = web.AppRunner(bot.web, handle_signals=False, access_log=None)
    await runner.setup()  # the bot starts: store opened, sandbox warmed
    try:
        bot_url = f"http://127.0.0.1:{await listen(runner, '127.0.0.1', 0)}"
        async with SlackSender(bot_url + EVENTS_PATH, signing_secret) as sender:
            workspace.connect(sender)
            print(f"datastory demo: open {url} (analyst: {info['analyst']}, sandbox: {info['sandbox']}; "
                  "Ctrl+C stops it)", file=out, flush=True)
            if ready is not None:
                ready(url)
            if open_browser:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(webbrowser.open, url)
            await stop.wait()
            workspace.connect(None)
    finally:
        await runner.cleanup()
    return 0
