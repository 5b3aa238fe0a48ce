"""A first look that is right on real data: every file of the corpus (:mod:`tests.corpus.build`) goes through the
real turn worker, the way ``datastory try`` runs it (the console poster, the stream inspection, the real local
sandbox with a warm pool of kernels, the offline analyst), in one process; a sample also goes through the real
``datastory try`` command.

Each file gives a narrative that names its real columns and at least one valid PNG, or a one-line refusal with
the expected reason; never a traceback (neither on the console nor in the log); the input file is unchanged.
The pass rate and the median and 95th-percentile time per file are printed (``-s``) and written to
``corpus-times.json`` in the test's temporary directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import pytest_asyncio
from PIL import Image

from bot.backends import Backends, build_backends
from bot.clock import SystemClock
from bot.config import Settings
from bot.console import ConsolePoster
from bot.files import inspect_head
from bot.store import make_store
from bot.store.base import FileRecord, NewTurn, Store, ThreadKey
from bot.tasks import TaskTracker
from bot.tryout import check_paths
from bot.turns import TurnWorker, worker_config
from tests.corpus.build import Case, hard_cases, real_files

pytestmark = [pytest.mark.corpus]

MIN_FILES = 100


@dataclass(slots=True)
class Outcome:
    case: Case
    seconds: float
    status: str
    answer: str
    pngs: list[Path]
    console: str


@dataclass(slots=True)
class Bench:
    settings: Settings
    backends: Backends
    store: Store
    tracker: TaskTracker
    out: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bench(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bench]:
    root = tmp_path_factory.mktemp("corpus-run")
    # kernels work under the default DATASTORY_LOCAL_DIR, as for `datastory try` (their users can reach it)
    settings = Settings(_env_file=None, openai_api_key=None, sandbox="local",  # type: ignore[call-arg]
                        local_pool_size=2)
    backends = build_backends(settings, sandbox="local", pool_size=2)
    store = make_store(f"sqlite:///{root / 'corpus.db'}")
    await store.open()
    await backends.start()
    tracker = TaskTracker()
    try:
        yield Bench(settings=settings, backends=backends, store=store, tracker=tracker, out=root / "out")
    finally:
        await tracker.close(grace=0)
        await backends.close()
        await store.close()


async def run_one(bench: Bench, case: Case, index: int) -> Outcome:
    """One console thread for one file, as ``datastory try`` runs it, sharing the sandbox and the store."""
    [file], problems = check_paths([case.path], max_bytes=bench.settings.max_file_bytes)
    assert not problems
    out_dir = bench.out / f"{index:03d}"
    console = io.StringIO()
    poster = ConsolePoster(out_dir=out_dir, allowed=[case.path], out=console, err=console)
    worker = TurnWorker(store=bench.store, sandbox=bench.backends.sandbox, analyst=bench.backends.analyst,
                        poster=poster, clock=SystemClock(), tracker=bench.tracker,
                        config=worker_config(bench.settings, "local", max_concurrent_turns=1))
    key = ThreadKey("console", "corpus", f"{index}.{uuid.uuid4().int % 10**6:06d}")
    now = time.time()
    turn = NewTurn(id=uuid.uuid4().hex, key=key, message_ts=key.thread_ts, user="you", question="", created_at=now,
                   files=(FileRecord(key=key, slack_file_id=file.id, name=file.name, size=file.size,
                                     mimetype=file.mimetype, filetype=file.filetype,
                                     download_url=file.url_private_download, message_ts=key.thread_ts, user="you",
                                     created_at=now),))
    started = time.perf_counter()
    await worker.submit(turn, dedupe_keys=(f"corpus:{turn.id}",))
    assert await bench.tracker.join(timeout=180), f"{case.path.name}: the turn did not end"
    seconds = time.perf_counter() - started
    poster.finish()
    return Outcome(case=case, seconds=seconds, status=poster.status, answer="\n".join(poster.answer),
                   pngs=[p for p in poster.written if p.suffix == ".png"], console=console.getvalue())


def real_columns(case: Case) -> list[str]:
    """The columns pandas reads with the options the inspection decides (for packaged files)."""
    data = case.path.read_bytes()
    profile = inspect_head(data[:256 * 1024], name=case.path.name, size=len(data),
                           complete=len(data) <= 256 * 1024)
    reader, kwargs = profile.options.pandas()
    frame = getattr(pd, reader)(case.path, **kwargs)
    return [str(c).strip() for c in frame.columns if str(c).strip() and not str(c).startswith("Unnamed")]


def problems_of(outcome: Outcome) -> list[str]:
    case, problems = outcome.case, []
    if "Traceback" in outcome.console or "Traceback" in outcome.answer:
        problems.append("a traceback was printed")
    if case.refusal:
        expected = f"⚠️ I can't analyse `{case.path.name}`: {case.refusal}."
        if not outcome.status.startswith(expected) or outcome.answer or outcome.pngs:
            problems.append(f"expected the refusal {expected!r}, got {outcome.status!r}")
        return problems
    if not outcome.status.startswith("✅ Done"):
        return [*problems, f"not analysed: {outcome.status!r}"]
    if "I could not read this file" in outcome.answer:
        problems.append("the profile could not read the file")
    names = list(case.columns) or real_columns(case)
    wanted = names if case.columns else names[:40]
    if case.columns and not all(n in outcome.answer for n in wanted):
        problems.append(f"the narrative lacks {[n for n in wanted if n not in outcome.answer]}")
    if not case.columns and not any(n in outcome.answer for n in wanted):
        problems.append(f"the narrative names none of the columns {wanted[:6]}")
    if not outcome.pngs:
        problems.append("no chart")
    for png in outcome.pngs:
        with Image.open(png) as image:
            image.verify()
            if image.format != "PNG" or image.size[0] < 300:
                problems.append(f"{png.name} is not a proper PNG")
    return problems


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@pytest.mark.asyncio(loop_scope="module")
async def test_every_real_file_gets_a_narrative_and_charts_or_one_clear_line(
    bench: Bench, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture,
) -> None:
    cases = real_files() + hard_cases(tmp_path_factory.mktemp("hard"))
    assert len(cases) >= MIN_FILES, f"only {len(cases)} files: are the test extras installed?"
    before = {c.path: hashlib.sha256(c.path.read_bytes()).hexdigest() for c in cases}
    outcomes: list[Outcome] = []
    with caplog.at_level(logging.INFO):
        for index, case in enumerate(cases):
            outcomes.append(await run_one(bench, case, index))
    failures = {o.case.path.name: problems_of(o) for o in outcomes}
    failures = {name: p for name, p in failures.items() if p}
    times = [o.seconds for o in outcomes]
    summary: dict[str, Any] = {
        "files": len(outcomes), "passed": len(outcomes) - len(failures), "median_s": statistics.median(times),
        "p95_s": percentile(times, 0.95), "max_s": max(times),
        "slowest": sorted(((round(o.seconds, 2), o.case.path.name) for o in outcomes), reverse=True)[:5],
        "failures": failures,
    }
    (bench.out.parent / "corpus-times.json").write_text(json.dumps(summary, indent=1))
    print(f"\ncorpus: {summary['passed']}/{summary['files']} passed, median {summary['median_s']:.2f} s, "
          f"p95 {summary['p95_s']:.2f} s, max {summary['max_s']:.2f} s; slowest {summary['slowest']}")
    assert not failures, json.dumps(failures, indent=1, ensure_ascii=False)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == digest for p, digest in before.items())
    traced = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not traced, [r.getMessage() for r in traced]
    refused = [r for r in caplog.records if r.getMessage().startswith("turn refused its files")]
    assert len(refused) == sum(1 for c in cases if c.refusal) and all(r.levelno == logging.INFO for r in refused)
    assert summary["p95_s"] < 30, summary  # the goal is 10 s; a shared CI machine gets slack, not a free pass


SAMPLE = ("grades.csv", "cities_cp1251.csv", "empty.csv")


def test_the_try_command_on_a_sample(tmp_path: Path) -> None:
    cases = {c.path.name: c for c in hard_cases(tmp_path / "in")}
    penguins = next(c for c in real_files() if c.path.name == "penguins.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATASTORY_", "SLACK_"))}
    for case in [penguins, *(cases[name] for name in SAMPLE)]:
        out = tmp_path / "out" / case.path.name
        command = [str(Path(sys.executable).parent / "datastory"), "try", str(case.path), "--out", str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        if case.refusal:
            assert done.returncode != 0 and f"I can't analyse `{case.path.name}`: {case.refusal}." in done.stderr
            assert sum("I can't analyse" in line for line in done.stderr.splitlines()) == 1
            continue
        assert done.returncode == 0, done.stderr
        pngs = sorted(out.glob("*.png"))
        assert pngs and (out / "answer.md").is_file()
        names = case.columns or ("body_mass_g", "species")
        assert all(n in done.stdout for n in names), done.stdout
