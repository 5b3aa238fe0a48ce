"""The bot's Prometheus metrics: one :class:`Metrics` (one registry) per app, built in the composition root.

Nothing here is module-level state: ``bot.app`` builds a :class:`Metrics`, hands it to the intake, the worker, the
Slack gateway and the OpenAI client, and serves :meth:`Metrics.render` at ``GET /metrics``. Objects built without
one (tests, ``datastory try``) get a private registry that nobody scrapes. Call sites stay one line: the methods
below say what happened (``turn_finished``, ``container_created``) and the metric families stay private to this
module.

Families (``_total`` for counters; labels in brackets): events received [type], deduplicated, ignored
[reason]; intake messages [outcome]; turns [outcome], turn duration, first feedback, queue depth and queue wait;
lease renewals lost, turns resumed, turn attempts exhausted, leader;
containers created [backend], rebuilt, swept [reason], open; OpenAI errors [kind], Slack errors [kind]; cost in
USD [source], tokens [direction]; digests [outcome]; ready, turns running, background tasks. The README lists them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar, Token

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

FEEDBACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TURN_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
WAIT_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 600.0)

_RECEIVED_AT: ContextVar[float | None] = ContextVar("datastory_received_at", default=None)
"""When the message being handled reached the bot (monotonic seconds); set around the intake's task creation."""


def http_error_kind(status: int) -> str:
    """The ``kind`` label of a failed HTTP answer."""
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    return "client_error"


class Metrics:
    """Every metric of one running bot, in its own registry (see the module docstring for the families)."""

    def __init__(self, *, registry: CollectorRegistry | None = None, process: bool = False) -> None:
        """``process``: also export the process's CPU, memory and file descriptors (the served app does)."""
        r = self.registry = registry or CollectorRegistry()
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self._received = Counter("datastory_events_received", "Slack requests dispatched to the app, by type.",
                                 ["type"], registry=r)
        self._deduplicated = Counter("datastory_events_deduplicated",
                                     "Messages whose post was already handled (Slack retries, one post as two "
                                     "events).", registry=r)
        self._ignored = Counter("datastory_events_ignored", "Events that needed no work, by reason.", ["reason"],
                                registry=r)
        self._messages = Counter("datastory_messages", "What the intake did with each message.", ["outcome"],
                                 registry=r)
        self._turns = Counter("datastory_turns", "Turns that ended, by outcome.", ["outcome"], registry=r)
        self._duration = Histogram("datastory_turn_duration_seconds", "From a turn's start to its end.",
                                   buckets=TURN_BUCKETS, registry=r)
        self._feedback = Histogram("datastory_first_feedback_seconds",
                                   "From a message's arrival to its first visible feedback (the reaction).",
                                   buckets=FEEDBACK_BUCKETS, registry=r)
        self._depth = Gauge("datastory_queue_depth", "Turns waiting in the store for their thread or a free slot "
                            "(every replica's), as of this replica's last claim.", registry=r)
        self._wait = Histogram("datastory_queue_wait_seconds", "How long turns waited from their message to their "
                               "first run.", buckets=WAIT_BUCKETS, registry=r)
        self._leases_lost = Counter("datastory_lease_renewals_lost", "Turns this replica stopped because its lease "
                                    "could not be renewed (another replica took them over).", registry=r)
        self._resumed = Counter("datastory_turns_resumed", "Turns run again after a run that did not end (a crash, "
                                "a lost lease, a shutdown).", registry=r)
        self._replayed = Counter("datastory_inbox_replayed", "Slack events replayed from the inbox: acknowledged by a "
                                 "replica that did not process them in time (it died, or was slow).", registry=r)
        self._exhausted = Counter("datastory_turn_attempts_exhausted", "Turns given a failure note after "
                                  "DATASTORY_MAX_ATTEMPTS runs that did not end.", registry=r)
        self._leader = Gauge("datastory_leader", "1 while this replica runs the periodic jobs (sweeper, digests, "
                             "retention).", registry=r)
        self._created = Counter("datastory_containers_created", "Containers (or local kernels) created.",
                                ["backend"], registry=r)
        self._rebuilt = Counter("datastory_containers_rebuilt", "Threads whose gone or expired container was "
                                "rebuilt.", registry=r)
        self._swept = Counter("datastory_containers_swept", "Containers the sweeper deleted, by reason.", ["reason"],
                              registry=r)
        self._open = Gauge("datastory_containers_open", "Threads holding a container, as of the last sweep.",
                           registry=r)
        self._openai_errors = Counter("datastory_openai_errors", "Failed OpenAI HTTP requests, by kind.", ["kind"],
                                      registry=r)
        self._slack_errors = Counter("datastory_slack_errors", "Failed Slack Web API calls, by Slack's error code.",
                                     ["kind"], registry=r)
        self._cost = Counter("datastory_cost_usd", "Estimated cost in USD (tokens and container sessions).",
                             ["source"], registry=r)
        self._tokens = Counter("datastory_tokens", "Model tokens used, by direction.", ["direction"], registry=r)
        self._digests = Counter("datastory_digests", "Digest runs, by outcome.", ["outcome"], registry=r)
        self._votes = Gauge("datastory_feedback_votes",
                            "People's latest 👍/👎 on answers, by vote (as stored; refreshed at each vote).",
                            ["vote"], registry=r)
        self._ready = Gauge("datastory_ready", "1 when the bot takes work.", registry=r)
        self._running = Gauge("datastory_turns_running", "Turns holding a worker slot.", registry=r)
        self._tasks = Gauge("datastory_background_tasks", "Tracked background tasks (handling, running or queued).",
                            registry=r)

    # ------------------------------------------------------------------ exposition

    content_type = CONTENT_TYPE_LATEST

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    def watch(self, *, ready: Callable[[], float], running: Callable[[], float], tasks: Callable[[], float]) -> None:
        """Gauges read at scrape time from the running app."""
        self._ready.set_function(ready)
        self._running.set_function(running)
        self._tasks.set_function(tasks)

    # ------------------------------------------------------------------ intake

    def event_received(self, kind: str) -> None:
        """A Slack request reached the app."""
        self._received.labels(type=kind or "unknown").inc()

    def event_ignored(self, reason: str) -> None:
        """An event that needs no work."""
        self._ignored.labels(reason=reason).inc()

    def message_handled(self, outcome: str) -> None:
        """The intake's outcome for one message (``duplicate`` and ``ignored`` also count as such events)."""
        self._messages.labels(outcome=outcome).inc()
        if outcome == "duplicate":
            self._deduplicated.inc()
        elif outcome == "ignored":
            self.event_ignored("no_work")

    @staticmethod
    def mark_received() -> Token[float | None]:
        """Stamp "now" as the arrival of the message whose handling starts here (tasks created before
        :meth:`unmark` inherit it); returns the token for :meth:`unmark`."""
        return _RECEIVED_AT.set(time.monotonic())

    @staticmethod
    def unmark(token: Token[float | None]) -> None:
        """Undo :meth:`mark_received` in the caller's context."""
        _RECEIVED_AT.reset(token)

    def first_feedback_shown(self) -> None:
        """The message got its first visible feedback; observed when its arrival was stamped."""
        received = _RECEIVED_AT.get()
        if received is not None:
            self._feedback.observe(time.monotonic() - received)

    # ------------------------------------------------------------------ turns

    def queue_waited(self, seconds: float) -> None:
        """A turn started its first run ``seconds`` after it was accepted."""
        self._wait.observe(max(seconds, 0.0))

    def queue_depth(self, turns: int) -> None:
        """Turns waiting in the store right now."""
        self._depth.set(turns)

    def lease_lost(self) -> None:
        """A turn's lease could not be renewed: this replica stopped working on it."""
        self._leases_lost.inc()

    def turn_resumed(self) -> None:
        """A turn is run again after a run that did not end."""
        self._resumed.inc()

    def inbox_replayed(self) -> None:
        """An acknowledged event was replayed from the inbox."""
        self._replayed.inc()

    def attempts_exhausted(self) -> None:
        """A turn got its failure note instead of one more run."""
        self._exhausted.inc()

    def leader(self, leading: bool) -> None:
        """Whether this replica runs the periodic jobs now."""
        self._leader.set(1 if leading else 0)

    def turn_finished(self, outcome: str, *, seconds: float, input_tokens: int = 0, output_tokens: int = 0,
                      cost_usd: float | None = None) -> None:
        """A turn ended."""
        self._turns.labels(outcome=outcome).inc()
        self._duration.observe(max(seconds, 0.0))
        self.spent("turn", input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost_usd)

    def spent(self, source: str, *, input_tokens: int = 0, output_tokens: int = 0,
              cost_usd: float | None = None) -> None:
        """Tokens and money a turn or a digest run used (an unknown cost adds nothing)."""
        self._tokens.labels(direction="input").inc(max(input_tokens, 0))
        self._tokens.labels(direction="output").inc(max(output_tokens, 0))
        if cost_usd:
            self._cost.labels(source=source).inc(cost_usd)

    # ------------------------------------------------------------------ containers

    def container_created(self, backend: str) -> None:
        """A container (or kernel) was created."""
        self._created.labels(backend=backend).inc()

    def container_rebuilt(self) -> None:
        """A thread's container was gone and is being rebuilt."""
        self._rebuilt.inc()

    def swept(self, *, idle: int, orphans: int, expired: int, open_now: int) -> None:
        """One sweep's deletions, and how many threads still hold a container."""
        for reason, n in (("idle", idle), ("orphan", orphans), ("expired", expired)):
            self._swept.labels(reason=reason).inc(n)
        self._open.set(open_now)

    # ------------------------------------------------------------------ providers

    def openai_error(self, kind: str) -> None:
        """An OpenAI request failed (see :func:`http_error_kind`, plus ``timeout`` and ``connection``)."""
        self._openai_errors.labels(kind=kind).inc()

    def slack_error(self, kind: str) -> None:
        """A Slack Web API call failed with this error code."""
        self._slack_errors.labels(kind=kind).inc()

    def feedback_votes(self, counts: dict[str, int]) -> None:
        """How many people's latest vote on an answer is each vote, as the store counts them."""
        for vote, count in counts.items():
            self._votes.labels(vote=vote).set(count)

    # ------------------------------------------------------------------ digests

    def digests_ran(self, **counts: int) -> None:
        """One digest pass: ``ran=2, failed=1, skipped_unchanged=0...``."""
        for outcome, n in counts.items():
            self._digests.labels(outcome=outcome).inc(n)
