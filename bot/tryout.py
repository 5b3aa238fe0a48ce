"""``datastory try``: one console thread on embedded defaults, no Slack needed.

The same turn worker that serves Slack runs here, with the local kernel sandbox, the offline analyst (or
``chat_tools`` when a model is configured), a SQLite store in a temporary directory, and
:class:`~bot.console.ConsolePoster` in place of Slack: progress on stderr, the narrative on stdout, the answer and
the charts written to ``--out``.
"""

from __future__ import annotations

import logging
import mimetypes
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bot.backends import ConfigurationError
from bot.bootstrap import Services, bootstrap
from bot.config import Settings
from bot.console import ConsolePoster
from bot.files import rejection_reason
from bot.poster import SlackFile
from bot.sandbox.base import SandboxBackend
from bot.store.base import FileRecord, NewTurn, ThreadKey

logger = logging.getLogger(__name__)


def _as_slack_file(path: Path) -> SlackFile:
    return SlackFile(id=f"local-{uuid.uuid4().hex[:12]}", name=path.name, title=path.name,
                     mimetype=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                     filetype=path.suffix.lstrip(".").lower(), size=path.stat().st_size, mode="hosted",
                     url_private_download=path.resolve().as_uri(), user="you")


def isolation_note(sandbox: SandboxBackend) -> str:
    """The one line ``try`` prints when it chose relaxed isolation itself."""
    from bot.sandbox.local import LocalSandbox

    isolation = sandbox.isolation if isinstance(sandbox, LocalSandbox) else None
    what = isolation.summary() if isolation is not None else "as the machine allows"
    return (f"datastory: sandbox isolation relaxed (the default for `try`; DATASTORY_LOCAL_ISOLATION=strict "
            f"requires more): {what}")


def check_paths(paths: list[Path], *, max_bytes: int) -> tuple[list[SlackFile], list[str]]:
    """The files that can be analysed, and a line for each that cannot (missing, wrong type, too large)."""
    accepted: list[SlackFile] = []
    problems: list[str] = []
    for path in paths:
        if not path.is_file():
            problems.append(f"{path}: no such file")
            continue
        file = _as_slack_file(path)
        reason = rejection_reason(file, max_bytes=max_bytes)
        if reason is None:
            accepted.append(file)
        else:
            problems.append(f"{path.name}: {reason.replace('`', '')}")
    return accepted, problems


async def run_try(settings: Settings, paths: list[Path], *, question: str | None, out_dir: Path) -> int:
    """Analyse ``paths`` in one console thread; returns the exit code (0 answered, 1 failed, 2 bad input)."""
    accepted, problems = check_paths(paths, max_bytes=settings.max_file_bytes)
    poster = ConsolePoster(out_dir=out_dir, allowed=[Path(f.url_private_download.removeprefix("file://"))
                                                     for f in accepted])
    for line in problems:
        print(f"datastory: {line}", file=sys.stderr)
    if not accepted:
        return 2
    with tempfile.TemporaryDirectory(prefix="datastory-try-") as tmp:
        # kernels work under DATASTORY_LOCAL_DIR (default: a shared temp dir their unprivileged user can reach);
        # the user's own file on the user's own machine: relaxed isolation unless DATASTORY_LOCAL_ISOLATION is set
        chosen = "local_isolation" in settings.model_fields_set
        try:
            services = await bootstrap(
                settings, database_url=f"sqlite:///{Path(tmp) / 'try.db'}", migrate=True, sandbox_kind="local",
                pool_size=0, isolation=settings.local_isolation if chosen else "relaxed", poster=poster,
                max_concurrent_turns=1)
        except ConfigurationError as exc:
            print(f"datastory: {exc}", file=sys.stderr)
            return 2
        try:
            code = await _run_turn(services, accepted, question=question, note=not chosen)
        finally:
            await services.aclose()
    if code != 2:  # the sandbox could not start: nothing to show
        poster.finish()
    return code


async def _run_turn(services: Services, accepted: list[SlackFile], *, question: str | None, note: bool) -> int:
    """Warm the local sandbox, run the one turn, wait for it; 0 when it is done, 2 when the sandbox cannot run."""
    backends, worker, store = services.require_backends(), services.require_worker(), services.store
    key = ThreadKey("console", "try", f"{time.time():.6f}")
    now = services.clock.now()
    turn = NewTurn(
        id=uuid.uuid4().hex, key=key, message_ts=key.thread_ts, user="you", question=question or "",
        files=tuple(FileRecord(key=key, slack_file_id=f.id, name=f.name, size=f.size, mimetype=f.mimetype,
                               filetype=f.filetype, download_url=f.url_private_download,
                               message_ts=key.thread_ts, user="you", created_at=now) for f in accepted),
        created_at=now,
    )
    try:
        await backends.start()
    except ConfigurationError as exc:
        print(f"datastory: {exc}", file=sys.stderr)
        return 2
    if note:
        print(isolation_note(backends.sandbox), file=sys.stderr)
    await worker.submit(turn, dedupe_keys=(f"try:{turn.id}",))
    await services.tracker.join()
    record = await store.get_turn(turn.id)
    return 0 if record is not None and record.status == "done" else 1
