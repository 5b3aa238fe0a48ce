"""Streamed answers: time from the model's first token to the first text in Slack, and the fallback's update rate
(not a test; prints numbers).

The bot (``datastory run --http``, in this process), FakeSlack and FakeOpenAI share one event loop and one clock
(``time.perf_counter``). FakeOpenAI writes each answer at a fixed pace (``--token-chars`` characters every
``--token-interval`` seconds) and notes when it wrote the first text delta; FakeSlack notes when each Web API call
arrived. Each turn's answer starts with a marker (``Q<n>x``), so its first text in Slack is the first call that
carries it (``chat.startStream``/``appendStream`` chunks, or a ``chat.postMessage``/``chat.update`` text).

Three modes, ``--turns`` turns each (``--concurrency`` threads at a time), same run:

- ``stream``: ``DATASTORY_STREAM_ANSWERS=true`` → first token → first text in Slack, p50/p99 (goal p99 ≤ 1 s);
- ``fallback``: the same with FakeSlack refusing ``chat.startStream`` → the answer posted, then ``chat.update``:
  first-text latency and, per message, the most updates in any one-second window (goal ≤ 1) and the shortest gap;
- ``baseline``: not streamed (the answer posted when the analysis is over): first token → the answer in Slack.

Ratios are printed against the baseline. ``--engine chat`` drives the ``chat_tools`` analyst instead (the local
sandbox, FakeOpenAI's streamed chat completions: a ``run_python`` call, then the answer). Run:
``python bench/stream.py [--turns 50] [--concurrency 10] [--engine responses|chat]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot import cli  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.demo.fake_slack import FakeSlack  # noqa: E402
from bot.demo.recorder import RecordedRequest  # noqa: E402
from bot.demo.slack_events import SlackSender, envelope  # noqa: E402
from tests.emulators.fake_openai import (  # noqa: E402
    ChatReply,
    FakeOpenAI,
    ResponseContext,
    ScriptedTurn,
    default_chat_script,
    default_script,
    message_text,
)

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
CSV = b"region,month,revenue\n" + b"".join(f"R{i % 4},2025-{i % 12 + 1:02d},{i * 7}\n".encode() for i in range(60))
TEXT_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream", "chat.postMessage", "chat.update")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def answer(marker: str) -> str:
    paragraphs = [f"{marker}: revenue rose in every region. " + " ".join(f"detail{j}" for j in range(30))]
    paragraphs += [f"Finding {i}: " + " ".join(f"w{j}" for j in range(25)) for i in range(4)]
    return "\n\n".join(paragraphs)


def texts_of(r: RecordedRequest) -> str:
    p = r.params
    chunks = p.get("chunks") or []
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    return " ".join([str(p.get("text") or ""), str(p.get("markdown_text") or ""),
                     *(str(c.get("text") or "") for c in chunks if isinstance(c, dict))])


def chat_script(body: dict[str, Any]) -> ChatReply:
    """The chat model: runs code first (FakeOpenAI's default), then answers with the turn's marker."""
    messages = body["messages"]
    if messages[-1]["role"] == "user":
        return default_chat_script(body)
    question = next(message_text(m) for m in reversed(messages) if m["role"] == "user")
    return ChatReply(text=answer(question[question.rfind("Question:") + len("Question:"):].split()[0]))


def first_tokens(oai: FakeOpenAI) -> dict[str, float]:
    """Marker → when the model wrote the first text of that turn's answer (a response or a chat completion)."""
    first: dict[str, float] = {}
    for rid, record in oai.responses.items():
        text = "".join(p["text"] for i in record.body["output"] if i["type"] == "message" for p in i["content"])
        if rid in oai.first_text_at:
            first[text.split(":")[0]] = oai.first_text_at[rid]
    for _, completion in oai.chat_completions:
        text = completion["choices"][0]["message"]["content"] or ""
        if completion["id"] in oai.first_text_at and text.startswith("Q"):
            first[text.split(":")[0]] = oai.first_text_at[completion["id"]]
    return first


async def run_mode(mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    async with FakeSlack(bot_token=TOKEN) as slack, FakeOpenAI(api_key="sk-bench") as oai:
        oai.token_interval, oai.token_chars = args.token_interval, args.token_chars
        if mode == "fallback":
            slack.refuse_streaming = "feature_not_enabled"

        def script(ctx: ResponseContext) -> ScriptedTurn:
            turn = default_script(ctx)
            marker = ctx.question.split()[0] if ctx.question else "Q?x"
            return ScriptedTurn(code=turn.code, files=turn.files, logs=turn.logs, text=answer(marker))

        oai.script, oai.chat_script = script, chat_script
        local = {"sandbox": "local", "local_isolation": "relaxed", "local_dir": str(tmp / f"{mode}-kernels")} \
            if args.engine == "chat" else {}
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, slack_bot_token=TOKEN, slack_signing_secret=SECRET, slack_api_url=slack.api_url,
            openai_api_key="sk-bench", openai_base_url=oai.base_url, database_url=f"sqlite:///{tmp / f'{mode}.db'}",
            stream_answers=mode != "baseline", max_concurrent_turns=args.concurrency, shutdown_grace_seconds=5.0,
            log_level="WARNING", **local)
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(cli.amain(["run", "--http", "--host", "127.0.0.1", "--port", "0"],
                                             settings=settings, ready=ready.set_result, stop=stop))
        url = await asyncio.wait_for(ready, 30)
        sender = SlackSender(url + "/slack/events", SECRET)
        markers: dict[str, str] = {}
        numbers = itertools.count()

        async def one() -> None:
            n = next(numbers)
            marker = f"Q{n}x"
            user = f"U{n + 100}"  # one person per thread: the bot's per-person limits do not queue them
            f = slack.add_file(name="sales.csv", content=CSV, user=user)
            event = slack.post_as_user(channel="C1", user=user, text=f"{marker} what changed?", files=[f])
            markers[marker] = event["ts"]
            await sender.send_event(envelope(event))

            def done() -> bool:
                return any(m.is_bot and m.text.startswith((":white_check_mark:", ":warning:"))
                           for m in slack.thread("C1", event["ts"]))

            try:
                await slack.recorder.wait_for(done, timeout=120)
            except TimeoutError:
                shown = [(m.text[:60], m.stream is not None) for m in slack.thread("C1", event["ts"]) if m.is_bot]
                print(f"{mode}: {marker} not answered in 120 s: {shown}", file=sys.stderr)

        for start in range(0, args.turns, args.concurrency):
            await asyncio.gather(*(one() for _ in range(min(args.concurrency, args.turns - start))))
        stop.set()
        await asyncio.wait_for(task, 30)
        await sender.close()

        first_token = first_tokens(oai)
        requests = [r for r in slack.recorder.requests if r.path.rsplit("/", 1)[-1] in TEXT_METHODS]
        latencies = []
        for marker in markers:
            arrived = next((r.received_at for r in requests if f"{marker}:" in texts_of(r)), None)
            if arrived is not None and marker in first_token:
                latencies.append(arrived - first_token[marker])
        result: dict[str, Any] = {"mode": mode, "turns": len(latencies), "latencies": latencies}
        if mode == "fallback":
            result["updates"] = fallback_rates(slack, requests)
        return result


def fallback_rates(slack: FakeSlack, requests: list[RecordedRequest]) -> dict[str, float]:
    """Per streamed-part message: the most writes (post + updates) in any one-second window, the shortest gap."""
    by_part = {(m.metadata["event_payload"].get("turn"), m.metadata["event_payload"].get("part")): m.ts
               for m in slack.messages if m.is_bot and m.metadata}
    posted: dict[str, float] = {}
    for r in requests:
        if r.path.endswith("chat.postMessage") and "stream:" in str(r.params.get("metadata")):
            meta = r.params["metadata"]
            payload = (json.loads(meta) if isinstance(meta, str) else meta)["event_payload"]
            posted[by_part[(payload["turn"], payload["part"])]] = r.received_at
    worst = 0
    gaps: list[float] = []
    counts: list[int] = []
    for ts, at in posted.items():
        times = [at, *(r.received_at for r in requests if r.path.endswith("chat.update") and r.params.get("ts") == ts)]
        counts.append(len(times) - 1)
        gaps += [b - a for a, b in itertools.pairwise(times)]
        for i, t in enumerate(times):
            worst = max(worst, sum(1 for u in times[i:] if u - t < 1.0))
    return {"messages": len(posted), "max_writes_in_1s": worst, "min_gap_s": min(gaps) if gaps else float("nan"),
            "updates_per_message_mean": statistics.mean(counts) if counts else 0.0}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--token-interval", type=float, default=0.02, help="seconds between text deltas")
    parser.add_argument("--token-chars", type=int, default=4, help="characters per text delta")
    parser.add_argument("--engine", choices=("responses", "chat"), default="responses",
                        help="the analyst: the Responses API (hosted sandbox) or chat_tools (local sandbox)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = {mode: await run_mode(mode, args, Path(folder)) for mode in ("baseline", "stream", "fallback")}
    base = results["baseline"]["latencies"]
    print(f"engine {args.engine}; turns per mode: {args.turns} ({args.concurrency} at a time); the model writes "
          f"{args.token_chars} "
          f"characters every {args.token_interval * 1000:.0f} ms")
    print(f"{'mode':<10} {'n':>3} {'p50 (s)':>9} {'p99 (s)':>9} {'p50 ratio':>10} {'p99 ratio':>10}")
    for mode, r in results.items():
        lat = r["latencies"]
        print(f"{mode:<10} {len(lat):>3} {pct(lat, 50):>9.3f} {pct(lat, 99):>9.3f} "
              f"{pct(lat, 50) / pct(base, 50):>10.3f} {pct(lat, 99) / pct(base, 99):>10.3f}")
    updates = results["fallback"]["updates"]
    print(f"fallback: {updates['messages']} messages, {updates['updates_per_message_mean']:.1f} updates each on "
          f"average, at most {updates['max_writes_in_1s']} write(s) per message in any 1 s window, shortest gap "
          f"{updates['min_gap_s']:.3f} s")


if __name__ == "__main__":
    asyncio.run(main())
