"""Turns: one question in one thread, from the first reaction to the answer and the charts.

The package's pieces, one concept each: :mod:`~bot.turns.queue` (claiming turns from the durable queue under
leases), :mod:`~bot.turns.feedback` (reactions and the status reply), :mod:`~bot.turns.workspace` (the thread's
container, created with the capacity back-off and rebuilt after expiry), :mod:`~bot.turns.loading` (files streamed
from Slack into the sandbox with inspection), :mod:`~bot.turns.collect` (what the code wrote),
:mod:`~bot.turns.ledger` (each part of an answer posted once) and :mod:`~bot.turns.worker` (the worker that runs a
turn). Batch runs (digests) reuse them from :mod:`bot.jobs.batch`.
"""

from bot.turns.collect import TurnOutcome
from bot.turns.config import UPLOAD_ATTEMPTS, WorkerConfig, container_name, thread_summary, worker_config
from bot.turns.feedback import DONE, FAILED, WORKING, StatusMessage
from bot.turns.loading import newest_versions
from bot.turns.queue import Dispatcher, Lease
from bot.turns.worker import Parts, TurnWorker

__all__ = [
    "DONE", "FAILED", "UPLOAD_ATTEMPTS", "WORKING", "Dispatcher", "Lease", "Parts", "StatusMessage", "TurnOutcome",
    "TurnWorker", "WorkerConfig", "container_name", "newest_versions", "thread_summary",
    "worker_config",
]
