"""Replicas on one PostgreSQL: throughput of 1 versus 3 replicas, and the extra latency per turn of PostgreSQL
versus SQLite (not a test; prints numbers).

FakeOpenAI runs in its own processes (``tests.emulators.serve openai --latency S``): one whose every model response
takes 2 s (the throughput workload) and one that answers at once (the latency comparison, so the model does not
drown the store's share). FakeSlack and the load generator share this process. Each replica is a
``datastory run --http`` process (``tests/replicas.py``) with the default ``DATASTORY_MAX_CONCURRENT_TURNS`` (8).

1. Throughput: ``--threads`` new threads (a CSV each, so each is a full turn: download, container, upload, the
   model's 2 s, the chart) sent at once, round robin over the replicas; questions answered per second from the first
   send to the last answer, for 1 replica, then 3 (each run on a fresh PostgreSQL database). Printed: both, and the
   ratio against the 1-replica baseline of the same run (goal ≥ 2.5×).
2. Latency: one replica on SQLite and one on PostgreSQL, ``--turns`` questions each, one at a time, alternating;
   per turn the time from sending the event to the ✅ status. Printed: medians, p90, and PostgreSQL minus SQLite
   (goal < 20 ms).

Run: ``python bench/replicas.py [--threads 144] [--turns 25]`` (PostgreSQL from ``DATASTORY_TEST_DATABASE_URL``, by
default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.demo.fake_slack import FakeSlack  # noqa: E402
from bot.demo.slack_events import envelope  # noqa: E402
from tests.postgres import temporary_database  # noqa: E402
from tests.replicas import Replica, replica_env, start_replica  # noqa: E402

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
KEY = "sk-bench"
CSV = b"region,month,revenue\n" + b"".join(f"R{i % 4},2025-{i % 12 + 1:02d},{i * 7}\n".encode() for i in range(200))
SETTINGS = {"max_turns_per_user": 1000, "max_turns_per_channel": 1000, "max_queued_turns": 1000,
            "log_level": "WARNING"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``; 0.0 where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_openai(latency: float) -> tuple[subprocess.Popen[str], str]:
    """FakeOpenAI in its own process; returns it and its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.emulators.serve", "openai", "--key", KEY,
                             "--latency", str(latency)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def done(slack: FakeSlack, channel: str, ts: str) -> bool:
    return any(m.is_bot and m.text.startswith(":white_check_mark:") for m in slack.thread(channel, ts))


def answered(slack: FakeSlack, channel: str) -> set[str]:
    """The threads of ``channel`` whose status reply says done (one pass over FakeSlack's messages)."""
    return {m.thread_ts for m in slack.messages if m.channel == channel and m.is_bot and m.thread_ts
            and m.text.startswith(":white_check_mark:")}


async def throughput(slack: FakeSlack, openai_url: str, openai_pid: int, replicas: int, threads: int,
                     work: Path) -> float:
    """Questions per second answered by ``replicas`` replicas on a fresh PostgreSQL database; prints the CPU each
    side used per question (the replicas, this process with FakeSlack, FakeOpenAI) and the machine's load."""
    channel = f"CT{replicas}"
    async with temporary_database("datastory_bench") as db, AsyncExitStack() as stack:
        env = replica_env(slack_api_url=slack.api_url, openai_base_url=openai_url, database_url=db,
                          signing_secret=SECRET, bot_token=TOKEN, openai_key=KEY, **SETTINGS)
        running = await asyncio.gather(*(start_replica(f"t{replicas}-{i}", env, work, SECRET)
                                         for i in range(replicas)))
        for r in running:
            stack.push_async_callback(r.stop)
        events = []
        for i in range(threads):
            f = slack.add_file(name="sales.csv", content=CSV, user=f"U{i}")
            events.append(slack.post_as_user(channel=channel, user=f"U{i}", text=f"question {i}?", files=[f]))
        pids = [r.proc.pid for r in running]
        before = ([cpu_seconds(p) for p in pids], time.process_time(), cpu_seconds(openai_pid))
        started = time.perf_counter()
        await asyncio.gather(*(running[i % replicas].sender.send_event(envelope(e)) for i, e in enumerate(events)))
        pending = {e["ts"] for e in events}
        while pending:  # checked every 20 ms, not at every request FakeSlack answers (it shares this process)
            await asyncio.sleep(0.02)
            pending -= answered(slack, channel)
        elapsed = time.perf_counter() - started
        bots = sum(cpu_seconds(p) for p in pids) - sum(before[0])
        here, model = time.process_time() - before[1], cpu_seconds(openai_pid) - before[2]
        print(f"  {replicas} replica(s): CPU per question: replicas {bots / threads * 1000:.0f} ms, FakeSlack and the"
              f" load generator {here / threads * 1000:.0f} ms, FakeOpenAI {model / threads * 1000:.0f} ms;"
              f" CPU busy {(bots + here + model) / elapsed:.2f} of {os.cpu_count()} cores;"
              f" load average {os.getloadavg()[0]:.2f}")
        return threads / elapsed


async def one_turn(slack: FakeSlack, replica: Replica, channel: str, n: int) -> float:
    f = slack.add_file(name="sales.csv", content=CSV, user="U1")
    event = slack.post_as_user(channel=channel, user="U1", text=f"question {n}?", files=[f])
    started = time.perf_counter()
    await replica.sender.send_event(envelope(event))
    while not done(slack, channel, event["ts"]):
        await slack.recorder.next_change(timeout=1.0)
    return time.perf_counter() - started


async def latency(slack: FakeSlack, openai_url: str, turns: int, work: Path) -> tuple[list[float], list[float]]:
    """Seconds per turn (event to ✅) on SQLite and on PostgreSQL, one turn at a time, alternating."""
    async with temporary_database("datastory_bench") as db, AsyncExitStack() as stack:
        common = {"slack_api_url": slack.api_url, "openai_base_url": openai_url, "signing_secret": SECRET,
                  "bot_token": TOKEN, "openai_key": KEY}
        lite = await start_replica("sqlite", replica_env(database_url=f"sqlite:///{work / 'bench.db'}", **common,
                                                         **SETTINGS), work, SECRET)
        stack.push_async_callback(lite.stop)
        pg = await start_replica("postgres", replica_env(database_url=db, **common, **SETTINGS), work, SECRET)
        stack.push_async_callback(pg.stop)
        await one_turn(slack, lite, "CLW", 0)  # warm-up: connections, imports, the first container
        await one_turn(slack, pg, "CPW", 0)
        on_sqlite, on_postgres = [], []
        for n in range(turns):
            on_sqlite.append(await one_turn(slack, lite, "CL", n))
            on_postgres.append(await one_turn(slack, pg, "CP", n))
        return on_sqlite, on_postgres


async def main(threads: int, turns: int) -> None:
    slow, slow_url = start_openai(2.0)
    fast, fast_url = start_openai(0.0)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
            work = Path(tmp)
            async with FakeSlack(bot_token=TOKEN) as slack:
                one = await throughput(slack, slow_url, slow.pid, 1, threads, work)
                three = await throughput(slack, slow_url, slow.pid, 3, threads, work)
                print(f"throughput, {threads} questions, model 2 s per response:")
                print(f"  1 replica   {one:6.2f} questions/s (baseline)")
                print(f"  3 replicas  {three:6.2f} questions/s = {three / one:.2f}x the baseline (goal >= 2.5x)")
                lite, pg = await latency(slack, fast_url, turns, work)
                ms = 1000.0
                print(f"latency per turn, {turns} turns each, one at a time, model answering at once:")
                print(f"  SQLite      median {statistics.median(lite) * ms:6.1f} ms  p90 {pct(lite, 90) * ms:6.1f} ms"
                      " (baseline)")
                print(f"  PostgreSQL  median {statistics.median(pg) * ms:6.1f} ms  p90 {pct(pg, 90) * ms:6.1f} ms")
                extra = (statistics.median(pg) - statistics.median(lite)) * ms
                print(f"  PostgreSQL - SQLite: {extra:+.1f} ms per turn (goal < 20 ms)")
    finally:
        for proc in (slow, fast):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=144, help="questions (each in its own thread) per run")
    parser.add_argument("--turns", type=int, default=25, help="turns per store in the latency comparison")
    args = parser.parse_args()
    asyncio.run(main(args.threads, args.turns))
