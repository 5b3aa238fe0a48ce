"""The digest job: runs the scheduled digests that are due, each once, on one replica.

One pass (``run_once(now)``), for every active digest whose next run is at or before ``now``:

1. **Claim** the run in the store with a conditional update (``claim_digest``): of several replicas exactly one
   wins, and ``next_run_at`` moves to the schedule's first slot after ``now``, so runs missed while the bot was
   down collapse into this one.
2. **Hash** the newest version of each of the thread's files, streamed from Slack (SHA-256, constant memory, no
   container). With "skip when unchanged" (the default) and the same hash as the last run, the channel gets one
   line, "No new data since ...", and nothing else happens: no container, no model cost.
3. Otherwise **run** the saved question with the turn worker's batch mode (:class:`bot.jobs.batch.BatchRunner`)
   in a fresh container named ``{prefix}digest-{id}-{YYYYmmddHHMM}`` with the short ``DATASTORY_BATCH_TTL_MINUTES``
   idle TTL, deleted as soon as the run ends (a crash leaves an orphan the sweeper removes), and **post** a
   top-level message in the channel: the narrative, the charts, and a link to the source thread.
   With ``DATASTORY_DAILY_BUDGET_USD`` set, a run is skipped (one line in the channel, no container) while its
   owner's or its channel's spending today has reached the budget; what a run costs counts against both.
   Before anything runs, the owner must still be allowed (:class:`bot.access.Access`: the allowlists, other
   organisations): when not, the digest pauses and the owner alone is told why.
4. A **failure** is told to the owner in the source thread, with the reason and a reference; after
   :data:`MAX_FAILURES` in a row the digest pauses itself and says so.

A run is claimed before it starts, so a crash in the middle loses that run rather than repeating it (at most once).
``dry_run`` lists what is due without claiming or running anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.access import Access, Person
from bot.config import Settings
from bot.costs import over_budget
from bot.digests import at
from bot.errors import describe, new_ref
from bot.files import FilesRefused, refusals_text
from bot.formatting import narrative, split_message
from bot.jobs.batch import BatchOutcome, BatchRunner
from bot.poster import Poster, SlackError
from bot.schedules import Schedule, utc
from bot.slack_text import mention
from bot.store.base import DigestRecord, FileRecord, Store
from bot.turns import TurnWorker, newest_versions

logger = logging.getLogger(__name__)

MAX_FAILURES = 3
"""Failures in a row after which a digest pauses itself."""
CONCURRENCY = 4
"""Digests run at once in one pass (each also takes a worker slot)."""


@dataclass(slots=True)
class DigestReport:
    """What one pass did (or, in a dry run, would do)."""

    ran: list[str] = field(default_factory=list)
    """Digests that ran and posted."""
    skipped_unchanged: list[str] = field(default_factory=list)
    """Digests whose data had not changed: one line posted, nothing run."""
    skipped_budget: list[str] = field(default_factory=list)
    """Digests whose owner or channel had used up the daily budget: one line posted, nothing run."""
    failed: list[str] = field(default_factory=list)
    """Digests whose run failed (the owner was told in the thread); paused ones included."""
    paused: list[str] = field(default_factory=list)
    """Digests paused by this pass after :data:`MAX_FAILURES` failures in a row."""
    would_run: list[str] = field(default_factory=list)
    """Digests due (dry run only)."""
    taken: list[str] = field(default_factory=list)
    """Due digests another runner claimed first."""
    refused: list[str] = field(default_factory=list)
    """Digests whose owner is no longer allowed (paused, the owner told)."""
    dry_run: bool = False

    def summary(self) -> str:
        """One line for logs and the CLI."""
        if self.dry_run:
            return f"would run {len(self.would_run)} digest(s)"
        return (f"ran {len(self.ran)}, skipped {len(self.skipped_unchanged)} unchanged, {len(self.failed)} failed "
                f"({len(self.paused)} paused), {len(self.skipped_budget)} over budget, {len(self.taken)} taken by "
                "another runner" + (f", {len(self.refused)} refused" if self.refused else ""))


def batch_name(prefix: str, digest_id: str, now: float) -> str:
    """``{prefix}digest-{id}-{YYYYmmddHHMM}`` (UTC): our prefix, so the sweeper owns a leftover."""
    return f"{prefix}digest-{digest_id}-{utc(now):%Y%m%d%H%M}"


class DigestJob:
    """Runs due digests; see the module docstring."""

    def __init__(
        self, *, store: Store, poster: Poster, worker: TurnWorker, prefix: str, batch_ttl_minutes: int,
        concurrency: int = CONCURRENCY, daily_budget_usd: float | None = None, access: Access | None = None,
    ) -> None:
        self._access = access
        self._budget = daily_budget_usd
        self._store = store
        self._poster = poster
        self._batch = BatchRunner(worker.parts)
        self._prefix = prefix
        self._ttl = batch_ttl_minutes
        self._gate = asyncio.Semaphore(concurrency)

    async def run_once(self, now: float, *, dry_run: bool = False) -> DigestReport:
        """Run every digest due at the instant ``now`` (Unix seconds), once each."""
        report = DigestReport(dry_run=dry_run)
        due = await self._store.due_digests(now)
        if dry_run:
            report.would_run = [d.id for d in due]
            return report
        await asyncio.gather(*(self._claim_and_run(d, now, report) for d in due))
        if due:
            logger.info("digests: %s", report.summary())
        return report

    async def _claim_and_run(self, d: DigestRecord, now: float, report: DigestReport) -> None:
        try:
            next_run = Schedule(cron=d.cron, tz=d.tz, label=d.label).next_run(after=now)
        except Exception as exc:  # a schedule the store holds but croniter no longer reads
            logger.error("digest schedule unreadable digest=%s error=%s", d.id, type(exc).__name__)
            await self._store.finish_digest_run(d.id, now=now, outcome="failed: unreadable schedule",
                                                content_hash=None, data_changed_at=None, failures=d.failures + 1,
                                                status="paused")
            report.failed.append(d.id)
            report.paused.append(d.id)
            return
        if not await self._store.claim_digest(d.id, due_at=d.next_run_at, next_run_at=next_run, now=now):
            report.taken.append(d.id)
            return
        async with self._gate:
            await self._run(d, now, report)

    async def _run(self, d: DigestRecord, now: float, report: DigestReport) -> None:
        if self._access is not None and (refusal := await self._access.refusal(
                Person(user=d.owner, channel=d.key.channel, home_team=d.key.team))):
            await self._refuse(d, now, refusal, report)
            return
        try:
            files = newest_versions(await self._store.list_files(d.key), loaded_only=False)
            if not files:
                raise FilesRefused([])
            content_hash = await self.content_hash(files)
            if d.skip_unchanged and d.last_hash is not None and content_hash == d.last_hash:
                await self._post_unchanged(d)
                await self._store.finish_digest_run(d.id, now=now, outcome="skipped: no new data", content_hash=None,
                                                    data_changed_at=None, failures=0, status="active")
                report.skipped_unchanged.append(d.id)
                logger.info("digest skipped, data unchanged digest=%s", d.id)
                return
            if self._budget is not None and (refusal := await over_budget(
                    self._store, user=d.owner, channel=d.key.channel, budget=self._budget, now=now,
                    user_is=f"of {mention(d.owner)}")):
                await self._poster.post(channel=d.key.channel, thread_ts=None,
                                        text=f":money_with_wings: Digest `{d.id}` ({d.label}) did not run: {refusal}")
                await self._store.finish_digest_run(d.id, now=now, outcome="skipped: over budget", content_hash=None,
                                                    data_changed_at=None, failures=0, status="active")
                report.skipped_budget.append(d.id)
                logger.info("digest skipped, daily budget used up digest=%s", d.id)
                return
            outcome = await self._batch.run(files, d.question, name=batch_name(self._prefix, d.id, now),
                                            idle_minutes=self._ttl)
            await self._post_digest(d, outcome)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail(d, now, exc, report)
            return
        await self._store.finish_digest_run(
            d.id, now=now, outcome="ran", content_hash=content_hash,
            data_changed_at=now if content_hash != d.last_hash else None, failures=0, status="active",
            cost_usd=outcome.cost_usd,
        )
        report.ran.append(d.id)
        logger.info("digest ran digest=%s channel=%s files=%d charts=%d seconds=%.1f", d.id, d.key.channel,
                    len(outcome.loaded), len(outcome.uploads), outcome.elapsed)

    async def content_hash(self, files: Sequence[FileRecord]) -> str:
        """SHA-256 over each file's name and content hash, streamed from Slack chunk by chunk (constant memory)."""
        total = hashlib.sha256()
        for f in sorted(files, key=lambda f: (f.name, f.slack_file_id)):
            one = hashlib.sha256()
            async for chunk in self._poster.download(f.download_url):
                one.update(chunk)
            total.update(f"{f.name}\0{one.hexdigest()}\n".encode())
        return total.hexdigest()

    async def _post_unchanged(self, d: DigestRecord) -> None:
        since = d.last_data_at or d.last_run_at or d.created_at
        await self._poster.post(channel=d.key.channel, thread_ts=None,
                                text=f":zzz: No new data since {at(since, d.tz)} for digest `{d.id}` ({d.label}).")

    async def _post_digest(self, d: DigestRecord, outcome: BatchOutcome) -> None:
        """The narrative (split when long) as top-level messages, then the charts, in the digest's channel."""
        channel = d.key.channel
        parts = [f":newspaper: *Digest* `{d.id}` · {d.label}\n" + "\n".join(">" + line for line in
                                                                           d.question.splitlines()),
                 await asyncio.to_thread(narrative, outcome.result.text), outcome.not_attached]
        if outcome.refused:
            parts.append(refusals_text(list(outcome.refused)))
        link = await self._link(d)
        source = f"Source thread ({link})" if link else ""
        parts.append(" · ".join(p for p in (source, outcome.footer) if p))
        for part in split_message("\n\n".join(p for p in parts if p)):
            await self._poster.post(channel=channel, thread_ts=None, text=part)
        if outcome.uploads:
            await self._poster.upload_files(channel=channel, thread_ts=None, files=outcome.uploads)

    async def _link(self, d: DigestRecord) -> str:
        try:
            return await self._poster.permalink(channel=d.key.channel, ts=d.key.thread_ts)
        except SlackError as exc:
            logger.warning("no permalink for the digest's thread digest=%s error=%s", d.id, exc.code)
            return ""

    async def _refuse(self, d: DigestRecord, now: float, refusal: str, report: DigestReport) -> None:
        """The owner may no longer use the bot: pause the digest and tell the owner alone."""
        logger.info("digest paused, owner not allowed digest=%s owner=%s", d.id, d.owner)
        try:
            await self._poster.post_ephemeral(channel=d.key.channel, user=d.owner, thread_ts=d.key.thread_ts,
                                              text=f":double_vertical_bar: Digest `{d.id}` ({d.label}) is paused: "
                                                   f"{refusal}")
        except SlackError as exc:
            logger.warning("digest refusal not told digest=%s error=%s", d.id, exc.code)
        await self._store.finish_digest_run(d.id, now=now, outcome="paused: owner not allowed", content_hash=None,
                                            data_changed_at=None, failures=d.failures, status="paused")
        report.refused.append(d.id)
        report.paused.append(d.id)

    async def _fail(self, d: DigestRecord, now: float, exc: Exception, report: DigestReport) -> None:
        failures = d.failures + 1
        paused = failures >= MAX_FAILURES
        ref = new_ref()
        logger.error("digest failed digest=%s thread=%s ref=%s failures=%d error=%s", d.id, d.key, ref, failures,
                     type(exc).__name__, exc_info=exc)
        text = f":warning: {mention(d.owner)} Digest `{d.id}` ({d.label}) failed: {describe(exc)} (ref `{ref}`)"
        if paused:
            text += (f"\n:double_vertical_bar: Digest `{d.id}` is paused after {MAX_FAILURES} failures in a row; "
                     "fix the cause and schedule it again.")
        try:
            await self._poster.post(channel=d.key.channel, thread_ts=d.key.thread_ts, text=text)
        except SlackError as post_exc:
            logger.warning("digest failure not told digest=%s error=%s", d.id, post_exc.code)
        await self._store.finish_digest_run(d.id, now=now, outcome=f"failed: {type(exc).__name__} ref={ref}",
                                            content_hash=None, data_changed_at=None, failures=failures,
                                            status="paused" if paused else "active")
        report.failed.append(d.id)
        if paused:
            report.paused.append(d.id)


def build_digest_job(
    settings: Settings, *, store: Store, poster: Poster, worker: TurnWorker, access: Access | None = None
) -> DigestJob:
    """The digest job for this deployment's prefix, batch TTL, budget and access rules."""
    return DigestJob(store=store, poster=poster, worker=worker, prefix=settings.container_prefix,
                     batch_ttl_minutes=settings.batch_ttl_minutes, daily_budget_usd=settings.daily_budget_usd,
                     access=access)
