"""The ``datastory`` command: run the bot (HTTP or Socket Mode) and the operator commands of DESIGN.md §2.

``amain`` is the testable entry point: tests run ``datastory run --http`` in-process with it, passing the
settings, a ``ready`` callback that receives the bound URL, and a ``stop`` event instead of a signal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from aiohttp import web
from pydantic import ValidationError

from bot import __version__, commands
from bot.api.commands import add_parsers as add_api_parsers
from bot.app import BotApp, open_app, start_socket_mode
from bot.backends import ConfigurationError
from bot.config import Settings
from bot.files import FileRejected
from bot.logs import configure_logging
from bot.metrics_guard import extra_listener
from bot.sandbox.base import SandboxError
from bot.store.revisions import SchemaNotAtHead

logger = logging.getLogger(__name__)


def _sub(sub: Any, name: str, help: str, examples: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with examples."""
    return cast(argparse.ArgumentParser, sub.add_parser(
        name, help=help, description=description or help, epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ))


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand; each has help text and examples (``datastory COMMAND --help``)."""
    p = argparse.ArgumentParser(
        prog="datastory", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A Slack bot that turns a CSV dropped into Slack into an analysis: a narrative and charts in the "
                    "thread. Settings come from the environment and .env (see the README).",
        epilog="examples:\n"
               "  datastory try examples/sales.csv --out datastory-out   # offline, no Slack, no keys\n"
               "  datastory doctor                                       # check the settings end to end\n"
               "  datastory run --http --port 3000                       # serve Slack's Events API\n"
               "  datastory migrate                                      # upgrade the database schema\n"
               "run `datastory COMMAND --help` for the options and examples of each command.",
    )
    p.add_argument("--version", action="version", version=f"datastory {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = _sub(sub, "run", "run the bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP (Events API)",
               "  SLACK_BOT_TOKEN=xoxb-… SLACK_APP_TOKEN=xapp-… OPENAI_API_KEY=sk-… datastory run\n"
               "  datastory run --http --host 0.0.0.0 --port 3000\n"
               "  datastory run --port 9090   # Socket Mode, with /healthz and /metrics on port 9090")
    run.add_argument("--http", action="store_true",
                     help="serve the Events API, slash commands and interactivity at POST /slack/events, with "
                          "GET /healthz and GET /metrics (the default when SLACK_APP_TOKEN is not set)")
    run.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    run.add_argument("--port", type=int, default=None,
                     help="HTTP port (default 3000 in HTTP mode; in Socket Mode, serve /healthz and /metrics on it)")
    tr = _sub(sub, "try", "analyse local files in a console thread: local sandbox, no Slack, no keys needed",
              "  datastory try examples/sales.csv\n"
              "  datastory try examples/sales.csv examples/web_traffic.csv --question 'which channel grew?'\n"
              "  datastory try data.csv --out /tmp/report")
    tr.add_argument("files", nargs="+", metavar="FILE", help="CSV, TSV, Excel or JSON files to analyse together")
    tr.add_argument("--question", default=None,
                    help="what to ask (default: a general analysis; questions need OPENAI_API_KEY for a model)")
    tr.add_argument("--out", default="datastory-out", metavar="DIR",
                    help="where the answer (answer.md) and the charts are written (default datastory-out)")
    sw = _sub(sub, "sweep", "delete idle and orphaned containers once and print a report (for cron)",
              "  datastory sweep\n  datastory sweep --dry-run\n  datastory sweep --idle-minutes 60")
    sw.add_argument("--idle-minutes", type=int, default=None, metavar="N",
                    help="idle time after which a thread's container goes (default DATASTORY_IDLE_MINUTES)")
    sw.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")
    dg = _sub(sub, "digest", "scheduled digests: list them, or run the ones due (for cron)",
              "  datastory digest list\n  datastory digest run-due\n"
              "  datastory digest run-due --now 2025-06-16T09:00:00Z --dry-run")
    dsub = dg.add_subparsers(dest="digest_command", metavar="SUBCOMMAND", required=True)
    _sub(dsub, "list", "print every digest: id, channel, schedule, time zone, next run, status, last outcome",
         "  datastory digest list")
    due = _sub(dsub, "run-due", "run the digests due at an instant (default now), once, and print the report",
               "  datastory digest run-due\n  datastory digest run-due --now 2025-06-16T09:00:00Z --dry-run")
    due.add_argument("--now", default=None, metavar="ISO-8601",
                     help="the instant, ISO-8601 (2025-06-16T09:00:00Z); naive means UTC")
    due.add_argument("--dry-run", action="store_true", help="list what would run; claim and run nothing")
    mg = _sub(sub, "migrate", "bring the database schema to this release's head revision (Alembic), or check it",
              "  datastory migrate            # upgrade; prints `upgraded 0005 -> 0010` or `database at 0010 (head)`\n"
              "  datastory migrate --check    # exit 0 at head, 1 behind (e.g. before starting with "
              "DATASTORY_MIGRATE=false)")
    mg.add_argument("--check", action="store_true", help="change nothing: exit 0 at head, 1 behind, 2 unreachable")
    _sub(sub, "doctor", "check tokens and scopes, the OpenAI endpoint, the database and the sandbox; say what to fix",
         "  datastory doctor\n  DATASTORY_SANDBOX=local datastory doctor")
    demo = _sub(sub, "demo", "the real bot against a built-in Slack emulator, in your browser; no Slack, no keys",
                "  datastory demo\n  datastory demo --port 8080 --open\n  datastory demo --port 0   # a free port")
    demo.add_argument("--port", type=int, default=8000, help="port of the page (default 8000; 0 picks a free one)")
    demo.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; the page has no "
                      "authentication, so anything but loopback is a deliberate choice)")
    demo.add_argument("--open", action="store_true", help="open the page in the default browser")
    add_api_parsers(sub, _sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (on uvloop where it is installed: less loop overhead per event)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS only
        return asyncio.run(amain(argv))
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(amain(argv))
    except KeyboardInterrupt:
        print("datastory: interrupted", file=sys.stderr)
        return 130


async def amain(
    argv: Sequence[str] | None = None, *, settings: Settings | None = None,
    ready: Callable[[str], None] | None = None, stop: asyncio.Event | None = None,
) -> int:
    """Run one ``datastory`` command; returns the exit code."""
    cli = parser()
    args = cli.parse_args(argv)
    if args.command is None:
        cli.print_help()
        return 0
    try:
        settings = settings or Settings()
    except ValidationError as exc:
        for err in exc.errors():
            where = Settings.env_name(str(err["loc"][0])) if err["loc"] else "the settings"
            print(f"datastory: {where}: {err['msg']}", file=sys.stderr)
        return 2
    if args.command in ("try", "doctor", "demo"):
        return await _console_command(settings, args, ready=ready, stop=stop)
    if args.command in ("api", "api-key", "mcp"):
        return await _api_command(settings, args, ready=ready, stop=stop)
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "sweep":
        return await commands.sweep(settings, idle_minutes=args.idle_minutes, dry_run=args.dry_run)
    if args.command == "digest":
        if args.digest_command == "list":
            return await commands.digest_list(settings)
        return await commands.digest_run_due(settings, now=args.now, dry_run=args.dry_run)
    if args.command == "migrate":
        return await commands.migrate(settings, check=args.check)
    http = args.http or settings.slack_app_token is None
    if missing := settings.missing_for_slack(socket_mode=not http):
        print(missing_settings_text(settings, missing, http=http), file=sys.stderr)
        return 2
    stop = stop or _stop_on_signals()
    try:
        if http:
            return await _run_http(settings, host=args.host, port=3000 if args.port is None else args.port,
                                   ready=ready, stop=stop)
        return await _run_socket(settings, port=args.port, host=args.host, ready=ready, stop=stop)
    except (ConfigurationError, SchemaNotAtHead) as exc:
        print(f"datastory: {exc}", file=sys.stderr)
        return 2


async def _console_command(settings: Settings, args: argparse.Namespace, *, ready: Callable[[str], None] | None,
                           stop: asyncio.Event | None) -> int:
    """The commands a person watches in a terminal: ``try`` and ``demo`` log only warnings at the default level
    (their progress is their output), ``doctor`` prints its checks."""
    if args.command == "doctor":
        from bot.doctor import run_checks

        checks = await run_checks(settings)
        for check in checks:
            print(check.line())
        return 1 if any(c.verdict == "failed" for c in checks) else 0
    configure_logging("WARNING" if settings.log_level.upper() == "INFO" else settings.log_level, settings.log_format)
    if args.command == "try":
        return await _try(settings, args)
    from bot.demo.runner import run_demo

    return await run_demo(settings, host=args.host, port=args.port, open_browser=args.open, ready=ready,
                          stop=stop or _stop_on_signals())


async def _api_command(settings: Settings, args: argparse.Namespace, *, ready: Callable[[str], None] | None,
                       stop: asyncio.Event | None) -> int:
    """``api``, ``api-key`` and ``mcp``: no Slack settings needed."""
    from bot.api.commands import api_key_command, serve_api

    configure_logging(settings.log_level if args.command != "mcp" or not args.stdio else "WARNING",
                      settings.log_format)
    if args.command == "api-key":
        return await api_key_command(settings, args)
    if args.command == "api":
        return await serve_api(settings, host=args.host, port=args.port, ready=ready, stop=stop or _stop_on_signals())
    from bot.api.mcp import serve_mcp

    return await serve_mcp(settings, stdio=args.stdio, host=args.host, port=args.port, api_port=args.api_port,
                           ready=ready, stop=stop or _stop_on_signals())


ALTERNATIVES = {
    "SLACK_SIGNING_SECRET": "or set SLACK_APP_TOKEN to connect over Socket Mode instead",
    "OPENAI_API_KEY": "or set DATASTORY_SANDBOX=local to run the analysis on this machine",
}


def missing_settings_text(settings: Settings, missing: list[str], *, http: bool) -> str:
    """Every setting ``datastory run`` still needs in its mode, at once, each with what it is."""
    fields = {Settings.env_name(name): info for name, info in Settings.model_fields.items()}
    mode = "HTTP mode (Events API at POST /slack/events)" if http else "Socket Mode (SLACK_APP_TOKEN is set)"
    lines = [f"datastory run: {mode} needs {len(missing)} more setting{'s' * (len(missing) > 1)} "
             "(environment or .env):"]
    for env in missing:
        what = (fields[env].description or "").rstrip(".") if env in fields else ""
        extra = f"; {ALTERNATIVES[env]}" if env in ALTERNATIVES else ""
        lines.append(f"  {env}: {what}{extra}")
    return "\n".join(lines)


async def _try(settings: Settings, args: argparse.Namespace) -> int:
    """``datastory try``: whatever goes wrong is one line and a non-zero exit; the traceback only at DEBUG."""
    from bot.tryout import run_try

    try:
        return await run_try(settings, [Path(f) for f in args.files], question=args.question,
                             out_dir=Path(args.out))
    except Exception as exc:
        logger.debug("datastory try failed", exc_info=exc)
        print(f"datastory try: {failure_line(exc)}", file=sys.stderr)
        return 1


def failure_line(exc: BaseException) -> str:
    """One line for a command that failed: the message of an error we raise on purpose (it says the cause and
    the fix), the OS's words for a file problem, and the type otherwise."""
    if isinstance(exc, ConfigurationError | SandboxError | FileRejected):
        return str(exc)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    return (f"unexpected {type(exc).__name__}: {exc} (run with DATASTORY_LOG_LEVEL=DEBUG to see the traceback, "
            "and please report it)")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(bot: BotApp, *, host: str, port: int) -> tuple[web.AppRunner, str]:
    # a request still being handled at shutdown gets the grace period too (then it is cancelled)
    runner = web.AppRunner(bot.web, handle_signals=False, access_log=None,
                           shutdown_timeout=bot.settings.shutdown_grace_seconds)
    try:
        await runner.setup()  # runs the app's start-up (sandbox warmed, unfinished turns resumed)
    except BaseException:
        await bot.services.aclose()  # the start-up closed what it started; this closes what was built before it
        raise
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        if (metrics := extra_listener(runner, bot.settings)) is not None:  # DATASTORY_METRICS_BIND
            await metrics.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, f"http://{bound_host}:{bound_port}"


async def _run_http(
    settings: Settings, *, host: str, port: int, ready: Callable[[str], None] | None, stop: asyncio.Event
) -> int:
    bot = await open_app(settings, socket_mode=False)
    runner, url = await _serve(bot, host=host, port=port)
    logger.info("serving Slack events at %s/slack/events", url)
    if ready:
        ready(url)
    await stop.wait()
    logger.info("stopping: no new work; running turns get %.0f s", settings.shutdown_grace_seconds)
    await bot.quiesce()  # at once: the HTTP server's shutdown below first waits for the requests it is handling
    await runner.cleanup()
    return 0


async def _run_socket(
    settings: Settings, *, host: str, port: int | None, ready: Callable[[str], None] | None, stop: asyncio.Event
) -> int:
    bot = await open_app(settings, socket_mode=True)
    runner = None
    if port is not None:  # /healthz and /metrics next to Socket Mode
        runner, url = await _serve(bot, host=host, port=port)
    else:
        await bot.start()
        url = "socket-mode"
    try:
        close_socket = await start_socket_mode(bot)
    except BaseException:
        await (runner.cleanup() if runner is not None else bot.stop())
        raise
    logger.info("connected to Slack over Socket Mode")
    if ready:
        ready(url)
    await stop.wait()
    await close_socket()
    await bot.quiesce()
    if runner is not None:
        await runner.cleanup()
    else:
        await bot.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
