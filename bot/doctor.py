"""``datastory doctor``: checks the deployment end to end and says what to fix.

Each check talks to the real thing: Slack (``auth.test``, and the token's scopes against what the bot needs),
the OpenAI or compatible endpoint (a one-item container list), the database (open, migrate, ping), and the
sandbox (the local backend runs ``print(1 + 1)`` in a kernel and reports its isolation). A check that is not
configured says which variable would enable it; a failing one says what failed; a check that needs one that did
not pass is skipped, never shown as passed. The doctor changes nothing: a SQLite file that does not exist yet is
not created (``datastory run`` creates it). Secrets are never printed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
from openai import APIConnectionError, APIStatusError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.backends import openai_client
from bot.bootstrap import Services, bootstrap
from bot.config import Settings
from bot.poster import SlackError
from bot.sandbox.base import SandboxSetupError
from bot.slack_gateway import SlackGateway
from bot.store.revisions import SchemaState

REQUIRED_SCOPES = frozenset({
    "app_mentions:read", "assistant:write", "channels:history", "channels:join", "groups:history", "im:history",
    "mpim:history",
    "files:read", "files:write", "chat:write", "reactions:read", "reactions:write", "commands", "users:read",
})
"""The bot scopes ``manifest.yml`` asks for (a test keeps the two equal)."""

Verdict = Literal["ok", "failed", "skipped"]
MARK = {"ok": "✓", "failed": "✗", "skipped": "–"}


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the doctor's report."""

    name: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        """``✓ Slack: …``."""
        return f"{MARK[self.verdict]} {self.name}: {self.detail}"


async def check_slack(settings: Settings) -> Check:
    """The bot token works, and has every scope the bot needs."""
    if settings.slack_bot_token is None:
        return Check("Slack", "skipped", "SLACK_BOT_TOKEN is not set (the bot cannot talk to Slack)")
    async with aiohttp.ClientSession() as session:
        gateway = SlackGateway.for_token(token=settings.slack_bot_token.get_secret_value(),
                                         api_url=settings.slack_api_url, session=session)
        try:
            user, team, scopes = await gateway.identity()
        except SlackError as exc:
            return Check("Slack", "failed", f"auth.test answered `{exc.code}`: check SLACK_BOT_TOKEN and "
                                            f"SLACK_API_URL ({settings.slack_api_url})")
        finally:
            await gateway.close()
    missing = sorted(REQUIRED_SCOPES - scopes)
    if missing:
        return Check("Slack", "failed", f"signed in as @{user} in {team}, but the token lacks the scopes "
                                        f"{', '.join(missing)}: add them (manifest.yml) and reinstall the app")
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        return Check("Slack", "failed", f"signed in as @{user} in {team}, every scope present; but `datastory run` "
                                        "would serve HTTP mode, which needs SLACK_SIGNING_SECRET (or set "
                                        "SLACK_APP_TOKEN to connect over Socket Mode)")
    mode = "Socket Mode (SLACK_APP_TOKEN set)" if settings.slack_app_token else "HTTP mode"
    return Check("Slack", "ok", f"signed in as @{user} in {team}, every scope present; {mode}")


async def check_openai(settings: Settings) -> Check:
    """The endpoint answers with this key."""
    client = openai_client(settings)
    where = settings.openai_base_url or "the OpenAI API"
    if client is None:
        if settings.sandbox == "openai":
            return Check("OpenAI", "failed", "OPENAI_API_KEY is not set (the hosted sandbox needs it): set it, or "
                                             "run without a key on this machine with DATASTORY_SANDBOX=local; "
                                             "`datastory try FILE` analyses a file offline right now")
        return Check("OpenAI", "skipped", "OPENAI_API_KEY is not set (the local sandbox uses the offline analyst): "
                                          "set it to answer questions with a model")
    try:
        page = await client.with_options(max_retries=0, timeout=15).containers.list(limit=1)
        return Check("OpenAI", "ok", f"{where} answered; model {settings.model}; {len(page.data)} container(s) "
                                     "on the first page")
    except APIStatusError as exc:
        return Check("OpenAI", "failed", f"{where} answered HTTP {exc.status_code}: check OPENAI_API_KEY "
                                         "and OPENAI_BASE_URL")
    except APIConnectionError:
        return Check("OpenAI", "failed", f"{where} could not be reached: check OPENAI_BASE_URL and the network")
    finally:
        await client.close()


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for another database or an in-memory one)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


async def check_database(settings: Settings) -> Check:
    """The database answers and its schema revision is known (nothing is migrated); a SQLite file that does not
    exist yet is left uncreated (its directory must be writable)."""
    path = _sqlite_file(settings.database_url)
    if path is not None and not path.exists():
        parent = path.parent.resolve()
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return Check("Database", "ok", f"SQLite file {path} does not exist yet; `datastory run` creates it "
                                           f"({parent} is writable)")
        return Check("Database", "failed", f"SQLite file {path} cannot be created: {parent} is not a writable "
                                           "directory; set DATASTORY_DATABASE_URL to a writable path")
    services: Services | None = None
    try:
        services = await bootstrap(settings, migrate=False, open_store=False, sandbox=False, slack=False)
        store = services.store
        found = await store.schema_state()  # reads only: the doctor changes nothing
        if not await store.ping():
            return Check("Database", "failed", "opened but does not answer queries")
        threads = len(await store.list_threads()) if found.at_head else None
    except Exception as exc:  # any driver error: say which kind, never the URL (it may hold a password)
        return Check("Database", "failed", f"cannot open DATASTORY_DATABASE_URL: {type(exc).__name__}")
    finally:
        if services is not None:
            await services.aclose()
    return _schema_check(settings, found, threads)


def _schema_check(settings: Settings, found: SchemaState, threads: int | None) -> Check:
    """The verdict on the schema revision: at head; behind (fine when `run` migrates it); newer than this code."""
    kind = settings.database_url.split("://")[0]
    if found.at_head:
        return Check("Database", "ok", f"{kind} answers; schema at {found.head} (head); {threads} thread(s)")
    if found.newer:
        return Check("Database", "ok", f"{kind} answers; schema at {found.current}, newer than this release's "
                                       f"head {found.head} (a newer release migrated it)")
    at = found.current or "base (empty)"
    if settings.migrate:
        return Check("Database", "ok", f"{kind} answers; schema at {at}, behind head {found.head}: "
                                       "`datastory run` upgrades it at start (or run `datastory migrate`)")
    return Check("Database", "failed", f"{kind} answers; schema at {at}, behind head {found.head}, and "
                                       "DATASTORY_MIGRATE=false: run `datastory migrate`")


async def check_sandbox(settings: Settings) -> Check:
    """Hosted containers are checked with OpenAI; the local backend starts a kernel, runs code in it and reports
    its isolation (``strict`` or ``relaxed``, and what is in force), or why it cannot start and the fix."""
    if settings.sandbox == "openai":
        return Check("Sandbox", "ok", f"hosted containers (memory {settings.container_memory}, idle TTL "
                                      f"{settings.container_idle_minutes} min), checked with OpenAI above")
    from bot.sandbox.local import LocalSandbox

    services = await bootstrap(settings, open_store=False, slack=False, sandbox_kind="local", pool_size=0)
    sandbox = services.require_backends().sandbox
    assert isinstance(sandbox, LocalSandbox)
    try:
        info = await sandbox.create(name=f"{settings.container_prefix}doctor", idle_minutes=1)
        result = await sandbox.execute(info.id, "print(1 + 1)", timeout=60)
        await sandbox.delete(info.id)
    except SandboxSetupError as exc:
        return Check("Sandbox", "failed", f"local kernels cannot run here (isolation {settings.local_isolation}): "
                                          f"{exc}")
    except Exception as exc:
        return Check("Sandbox", "failed", f"the local kernel did not run code: {type(exc).__name__}: {exc}")
    finally:
        report = sandbox.isolation_report()
        await services.aclose()
    if result.stdout.strip() != "2":
        return Check("Sandbox", "failed", f"the local kernel ran code wrongly: {result.error or result.stdout!r}")
    return Check("Sandbox", "ok", "local kernels run code; " + "; ".join(report))


def blocked(name: str, needs: Check) -> Check | None:
    """``name`` cannot be checked, as ``needs`` did not pass: a skipped line that says so (never a ✓)."""
    if needs.verdict == "ok":
        return None
    why = "failed" if needs.verdict == "failed" else "was skipped"
    return Check(name, "skipped", f"not checked: it needs {needs.name}, which {why} above")


async def run_checks(settings: Settings) -> list[Check]:
    """Every check, in order; the hosted sandbox is checked through OpenAI, so only once OpenAI passed."""
    openai = await check_openai(settings)
    hosted_blocked = blocked("Sandbox", openai) if settings.sandbox == "openai" else None
    return [await check_slack(settings), openai, await check_database(settings),
            hosted_blocked or await check_sandbox(settings)]
