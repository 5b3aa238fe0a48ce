"""The operator commands of ``datastory`` that a person or a cron job runs against the store: ``sweep``,
``digest list``, ``digest run-due`` and ``migrate``. Each prints its report on stdout, one line per failure on
stderr, and returns the exit code (``bot.cli`` parses the arguments and dispatches here)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from bot.backends import ConfigurationError
from bot.bootstrap import Services, bootstrap
from bot.config import Settings
from bot.store import SqlStore


async def sweep(settings: Settings, *, idle_minutes: int | None, dry_run: bool) -> int:
    """``datastory sweep``: one sweep now; the report on stdout; 0 when it ran (even with failed deletions)."""
    if settings.sandbox == "local":
        print("Local kernels live inside the running bot (`datastory run`), whose sweeper runs every "
              f"{settings.sweep_interval_seconds:.0f} s; there is nothing to sweep from another process.")
        return 0
    services: Services | None = None
    try:
        services = await bootstrap(settings, slack=False, idle_minutes=idle_minutes)
        report = await services.require_sweeper().run_once(time.time(), dry_run=dry_run)
    except Exception as exc:  # the sweep could not run at all: say why, fail the cron job
        print(f"datastory sweep: could not sweep: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if services is not None:
            await services.aclose()
    print(report.summary())
    for title, ids in (("idle", report.deleted_idle), ("orphaned", report.deleted_orphans),
                       ("expired", report.deleted_expired), ("busy, skipped", report.skipped_busy),
                       ("errors", report.errors)):
        for item in ids:
            print(f"  {title}: {item}")
    return 0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> float:
    """ISO-8601 (``2025-06-16T09:00:00Z``, ``2025-06-16T09:00+02:00``; naive means UTC) as Unix seconds."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def digest_list(settings: Settings) -> int:
    """``datastory digest list``: one line per digest that is not cancelled."""
    services: Services | None = None
    try:
        services = await bootstrap(settings, sandbox=False, slack=False)
        digests = await services.store.list_digests()
    except Exception as exc:
        print(f"datastory digest list: could not read the store: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if services is not None:
            await services.aclose()
    if not digests:
        print("no digests")
        return 0
    print("id	channel	schedule	tz	next run	status	last outcome")
    for d in digests:
        last = f"{d.last_outcome} at {_iso(d.last_run_at)}" if d.last_outcome and d.last_run_at else "never ran"
        print(f"{d.id}	{d.key.channel}	{d.label} ({d.cron})	{d.tz}	{_iso(d.next_run_at)}	{d.status}	{last}")
    return 0


async def digest_run_due(settings: Settings, *, now: str | None, dry_run: bool) -> int:
    """``datastory digest run-due``: one pass of the digest job at ``now``; the report on stdout."""
    try:
        instant = time.time() if now is None else parse_instant(now)
    except ValueError:
        print(f"datastory digest run-due: --now {now!r} is not an ISO-8601 time (e.g. 2025-06-16T09:00:00Z)",
              file=sys.stderr)
        return 2
    if settings.slack_bot_token is None:
        print("datastory digest run-due: SLACK_BOT_TOKEN is not set: digests read the threads' files from Slack and "
              "post there", file=sys.stderr)
        return 2
    try:
        services = await bootstrap(settings, open_store=False)
    except ConfigurationError as exc:
        print(f"datastory digest run-due: {exc}", file=sys.stderr)
        return 2
    try:
        await services.store.open()
        if not dry_run:  # a dry run claims and runs nothing: no sandbox to warm
            await services.require_backends().start()
        report = await services.require_digest_job().run_once(instant, dry_run=dry_run)
    except Exception as exc:  # the pass could not run at all: say why, fail the cron job
        print(f"datastory digest run-due: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        await services.aclose()
    print(f"at {_iso(instant)}: {report.summary()}")
    for title, ids in (("would run", report.would_run), ("ran", report.ran),
                       ("skipped, no new data", report.skipped_unchanged),
                       ("skipped, daily budget used up", report.skipped_budget), ("failed", report.failed),
                       ("paused", report.paused), ("taken by another runner", report.taken)):
        for item in ids:
            print(f"  {title}: {item}")
    return 0


async def migrate(settings: Settings, *, check: bool) -> int:
    """``datastory migrate``: bring the database to this code's head revision (``--check``: only say where it is).

    Exit codes: 0 at head (or upgraded to it), 1 behind (``--check``) or newer than this code, 2 when the database
    cannot be reached or a revision failed (the database is left as it was: one transaction).
    """
    store = SqlStore(url=settings.database_url, migrate=False)
    name = "datastory migrate" + " --check" * check
    try:
        found = await store.schema_state()
        if found.newer:
            print(f"database at {found.current}, newer than this code's head {found.head}; upgrade datastory",
                  file=sys.stderr)
            return 1
        if found.at_head:
            print(f"database at {found.head} (head)")
            return 0
        if check:
            print(f"database at {found.current or 'base (empty)'}, behind head {found.head}; run `datastory migrate`")
            return 1
        before, after = await store.migrate()
    except Exception as exc:  # unreachable server, failed revision: one line, never the URL
        print(f"{name}: could not migrate the database: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    print(f"upgraded {before.current or 'base'} -> {after}")
    return 0
