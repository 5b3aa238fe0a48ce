"""Ack latency and time to first feedback of the bot, against the emulators (not a test; prints numbers).

The bot runs as its own process (``datastory run --http``), and so does the baseline, a bare Bolt app with one
no-op listener (``bench/bare_bolt.py``), and FakeOpenAI (``tests.emulators.serve``); FakeSlack and the load
generator share this process, so the reaction's arrival is timed by the same clock that timed the send.

1. Ack latency, bot versus bare Bolt, same machine, same run, alternating: rounds of 50 concurrent signed
   ``message``/``file_share`` events (each a new thread, so the bot is really downloading, uploading and analysing
   in the background while it acks). Printed: p50/p99 and the ratio (goal ≤ 1.5×).
2. CSV event → first visible feedback (the reaction arriving at FakeSlack), p50/p99 over the same bursts and for
   single events sent one at a time (goal p99 < 250 ms).

``--adversarial``: before the rounds, the bot is also handed a CSV with 100,000 one-character columns and ten
questions whose code writes a 50 MB CSV each (FakeOpenAI's ``--big-output-mb 50``; the last row holds a formula,
so each is scanned and neutralised: the worst case). They are in flight while the rounds run (the report says how
many were still running when the measurement ended, and when they finished); the goals are the same.
``--adversarial-parts wide`` or ``outputs`` hands over only one of the two, to see which costs what.

Run: ``python bench/ack.py [--rounds 6] [--concurrency 50] [--adversarial [--adversarial-parts wide,outputs]]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.demo.fake_slack import FakeSlack  # noqa: E402
from bot.demo.slack_events import SlackSender, envelope  # noqa: E402

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
CSV = b"region,month,revenue\n" + b"".join(f"R{i % 4},2025-{i % 12 + 1:02d},{i * 7}\n".encode() for i in range(200))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def spawn(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """Start a server process and wait until its /healthz answers."""
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError((proc.stderr.read() if proc.stderr else b"").decode())
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


PEOPLE = itertools.count(1)
WIDE_COLUMNS = 100_000
WIDE = (b",".join(b"abcdefghij"[i % 10:i % 10 + 1] for i in range(WIDE_COLUMNS)) + b"\n"
        + b",".join(b"1" for _ in range(WIDE_COLUMNS)) + b"\n")
BIG_OUTPUTS = 10
BIG_OUTPUT_MB = 50


def file_events(slack: FakeSlack, n: int, *, content: bytes = CSV, name: str = "sales.csv",
                text: str = "") -> list[dict[str, Any]]:
    out = []
    for _ in range(n):  # a burst is many people: one user each (one person's flood is the fairness test's)
        user = f"U{next(PEOPLE)}"
        f = slack.add_file(name=name, content=content, user=user)
        out.append(envelope(slack.post_as_user(channel="C1", user=user, files=[f], text=text)))
    return out


def finished(slack: FakeSlack, roots: list[str]) -> dict[str, float]:
    """When each thread's turn ended (its status reply turned ✅ or ⚠️), by root ts."""
    ended: dict[str, float] = {}
    for rec in slack.recorder.calls("chat.update"):
        text = str(rec.params.get("text") or "")
        msg = slack.find_message(str(rec.params.get("channel")), str(rec.params.get("ts")))
        if msg is not None and msg.thread_ts in roots and text.startswith((":white_check_mark:", ":warning:")):
            ended.setdefault(msg.thread_ts, rec.received_at)
    return ended


async def adversary(bot: SlackSender, slack: FakeSlack, parts: set[str]) -> tuple[list[str], float]:
    """Hand the bot the wide CSV and/or the big-output questions (acked, then left to run); their root ts."""
    bodies = file_events(slack, 1, content=WIDE, name="wide.csv") if "wide" in parts else []
    if "outputs" in parts:
        bodies += file_events(slack, BIG_OUTPUTS, text="export everything as CSV BIG-OUTPUT")
    started = time.perf_counter()
    await burst(bot, bodies)
    return [b["event"]["ts"] for b in bodies], started


async def burst(sender: SlackSender, bodies: list[dict[str, Any]]) -> tuple[list[float], dict[str, float]]:
    """Send all bodies at once; returns the ack latencies and the send time per message ts."""
    sent: dict[str, float] = {}

    async def one(body: dict[str, Any]) -> float:
        sent[body["event"]["ts"]] = time.perf_counter()
        reply = await sender.send_event(body)
        assert reply.status == 200, reply.status
        return reply.elapsed

    return list(await asyncio.gather(*(one(b) for b in bodies))), sent


def feedback_latencies(slack: FakeSlack, sent: dict[str, float]) -> list[float]:
    first: dict[str, float] = {}
    for rec in slack.recorder.calls("reactions.add"):
        ts = str(rec.params.get("timestamp"))
        if ts in sent and ts not in first:
            first[ts] = rec.received_at - sent[ts]
    return [first[ts] for ts in sent if ts in first]


async def wait_feedback(slack: FakeSlack, sent: dict[str, float]) -> None:
    """Wait until every sent message got its reaction (checked on a timer, so waiting costs the emulator nothing)."""
    for _ in range(1200):
        if {str(r.params.get("timestamp")) for r in slack.recorder.calls("reactions.add")} >= sent.keys():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("reactions missing")


async def main(rounds: int, concurrency: int, adversarial: set[str]) -> None:
    big = ["--big-output-mb", str(BIG_OUTPUT_MB)] if "outputs" in adversarial else []
    oai = subprocess.Popen([sys.executable, "-m", "tests.emulators.serve", "openai", "--key", "sk-bench", *big],
                           cwd=ROOT, stdout=subprocess.PIPE)
    assert oai.stdout is not None
    oai_url = oai.stdout.readline().decode().strip()
    async with FakeSlack(bot_token=TOKEN) as slack:
        tmp = Path(tempfile.mkdtemp())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "DATASTORY_"))}
        env.update({"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.api_url,
                    "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": oai_url, "DATASTORY_LOG_LEVEL": "WARNING",
                    "DATASTORY_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
                    # every event of every burst is admitted: this measures an admitted question's path
                    "DATASTORY_MAX_TURNS_PER_CHANNEL": "100000", "DATASTORY_MAX_QUEUED_TURNS": "100000"})
        bot_port, base_port = free_port(), free_port()
        # BENCH_PROFILE=FILE runs the bot under cProfile (the benchmark's own switch, not a bot setting)
        profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
        procs = [
            await spawn([sys.executable, *profile, "-m", "bot.cli", "run", "--http", "--host", "127.0.0.1", "--port",
                         str(bot_port)], env, bot_port),
            await spawn([sys.executable, str(ROOT / "bench" / "bare_bolt.py"), "--port", str(base_port),
                         "--api-url", slack.api_url, "--secret", SECRET, "--token", TOKEN], env, base_port),
        ]
        bot = SlackSender(f"http://127.0.0.1:{bot_port}/slack/events", SECRET)
        base = SlackSender(f"http://127.0.0.1:{base_port}/slack/events", SECRET)
        try:
            for sender in (bot, base):  # warm up: Bolt's first request calls auth.test
                await burst(sender, file_events(slack, 2))
            hostile, hostile_started = await adversary(bot, slack, adversarial) if adversarial else ([], 0.0)
            bot_acks: list[float] = []
            base_acks: list[float] = []
            feedback: list[float] = []
            for _ in range(rounds):  # alternate, so both see the same machine state
                acks, _ = await burst(base, file_events(slack, concurrency))
                base_acks += acks
                acks, sent = await burst(bot, file_events(slack, concurrency))
                bot_acks += acks
                await wait_feedback(slack, sent)
                feedback += feedback_latencies(slack, sent)
            single: list[float] = []
            for body in file_events(slack, 20):
                _, sent = await burst(bot, [body])
                await wait_feedback(slack, sent)
                single += feedback_latencies(slack, sent)
            measured_until = time.perf_counter()
            still_running = len(hostile) - len([t for t, at in finished(slack, hostile).items() if at < measured_until])
            for _ in range(3000):  # the adversarial turns end (checked on a timer)
                if len(finished(slack, hostile)) == len(hostile):
                    break
                await asyncio.sleep(0.2)
            ends = finished(slack, hostile)
        finally:
            await bot.close()
            await base.close()
            for proc in [*procs, oai]:
                proc.terminate()
                proc.wait(60)
    ms = 1000.0
    print(f"ack latency, {rounds} rounds x {concurrency} concurrent signed file_share events (one process each)")
    for label, acks in (("bare Bolt (no-op listener):", base_acks), ("datastory run --http:      ", bot_acks)):
        print(f"  {label} p50 {pct(acks, 50) * ms:7.1f} ms   p99 {pct(acks, 99) * ms:7.1f} ms")
    print(f"  ratio bot/bare:             p50 {pct(bot_acks, 50) / pct(base_acks, 50):7.2f} x    "
          f"p99 {pct(bot_acks, 99) / pct(base_acks, 99):7.2f} x   (goal <= 1.5x)")
    print(f"first visible feedback (reaction received by FakeSlack), {len(feedback)} events in bursts of {concurrency}")
    print(f"  p50 {pct(feedback, 50) * ms:7.1f} ms   p99 {pct(feedback, 99) * ms:7.1f} ms   (goal p99 < 250 ms)")
    print(f"  one event at a time: p50 {pct(single, 50) * ms:7.1f} ms   p99 {pct(single, 99) * ms:7.1f} ms   "
          f"mean {statistics.mean(single) * ms:.1f} ms")
    if adversarial:
        wide = "wide" in adversarial
        print("adversarial load handed to the bot before the rounds: "
              + " and ".join(([f"a {len(WIDE) // 1024} KB CSV of {WIDE_COLUMNS:,} columns"] if wide else [])
                             + ([f"{BIG_OUTPUTS} questions writing a {BIG_OUTPUT_MB} MB CSV each"]
                                if "outputs" in adversarial else [])))
        print(f"  still running when the measurement ended: {still_running} of {len(hostile)}")
        wide_end = ends.get(hostile[0]) if wide else None
        big_ends = [at for ts, at in ends.items() if not wide or ts != hostile[0]]
        if wide:
            print(f"  wide CSV turn ended after {(wide_end - hostile_started) if wide_end else float('nan'):.1f} s")
        if "outputs" in adversarial:
            print(f"  big-output turns: {len(big_ends)} of {BIG_OUTPUTS} ended, the last after "
                  f"{(max(big_ends) - hostile_started) if big_ends else float('nan'):.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--adversarial", action="store_true",
                        help="also keep a 100,000-column CSV and ten 50 MB output CSVs in flight")
    parser.add_argument("--adversarial-parts", default="wide,outputs",
                        help="with --adversarial: wide, outputs, or both (comma-separated)")
    args = parser.parse_args()
    parts = {p.strip() for p in args.adversarial_parts.split(",") if p.strip()} if args.adversarial else set()
    if parts - {"wide", "outputs"}:
        parser.error("--adversarial-parts takes wide and/or outputs")
    asyncio.run(main(args.rounds, args.concurrency, parts))
