"""``DATASTORY_LOG_FORMAT=json`` on a running bot: one object per line, ids from context, one summary line per
turn, and never a token, a key or the CSV's contents (at INFO and at DEBUG, SDK loggers included)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bot.logs import NOISY, bind, make_handler, redact, unbind
from tests.e2e.conftest import BOT_TOKEN, CHANNEL, OPENAI_KEY, SALES_CSV, SIGNING_SECRET, Harness

pytestmark = pytest.mark.e2e

CSV_ROWS = [line.decode() for line in SALES_CSV.splitlines()[1:]]


@contextmanager
def json_logs(level: int) -> Iterator[io.StringIO]:
    """The root logger writes JSON lines at ``level`` into the yielded buffer (SDK loggers too)."""
    out = io.StringIO()
    handler = make_handler("json", out)
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in NOISY}
    root.addHandler(handler)
    root.setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(level)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, old in saved[1].items():
            logging.getLogger(name).setLevel(old)


def records(out: io.StringIO) -> list[dict[str, Any]]:
    lines = out.getvalue().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


async def run_one_turn(harness: Harness, *, question: str = "") -> str:
    bot = await harness.start()
    event = harness.file_event("sales.csv", text=question)
    await bot.send(event)
    await harness.wait_done(event["ts"])
    await bot.shutdown()  # the turn's summary line is written before the bot stops
    return str(event["ts"])


async def test_json_lines_carry_the_ids_and_each_turn_ends_with_one_summary(harness: Harness) -> None:
    with json_logs(logging.INFO) as out:
        ts = await run_one_turn(harness)
    lines = records(out)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    turn_lines = [line for line in lines if line["logger"] == "bot.turns"]
    assert turn_lines and all(line.get("team") == "T1" and line.get("channel") == CHANNEL
                              and line.get("thread_ts") == ts and line.get("turn") for line in turn_lines)
    [summary] = [line for line in lines if line["message"].startswith("turn finished")]
    assert summary["outcome"] == "done" and summary["duration_s"] > 0
    assert summary["input_tokens"] > 0 and summary["output_tokens"] > 0 and summary["cost_usd"] > 0
    assert summary["turn"] == turn_lines[0]["turn"]
    handled = [line for line in lines if line["message"].startswith("message handled")]
    assert handled and handled[0]["thread_ts"] == ts and "turn" not in handled[0]  # the intake knows no turn yet


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
async def test_no_token_key_or_csv_content_reaches_the_log(harness: Harness, level: int) -> None:
    with json_logs(level) as out:
        await run_one_turn(harness, question="which region grew fastest?")
    text = out.getvalue()
    assert len(text.splitlines()) > (30 if level == logging.DEBUG else 5)  # the SDKs did log at DEBUG
    for secret in (BOT_TOKEN, OPENAI_KEY, SIGNING_SECRET):
        assert secret not in text
    for row in CSV_ROWS:
        assert row not in text


async def test_a_refused_file_is_logged_at_info_without_a_traceback(harness: Harness) -> None:
    with json_logs(logging.INFO) as out:
        bot = await harness.start()
        event = harness.file_event("sales.csv", accessible=False)
        await bot.send(event)
        await harness.wait_done(event["ts"])
        await bot.shutdown()
    lines = records(out)
    [failed] = [line for line in lines if line["message"].startswith("turn refused its files")]
    assert failed["level"] == "INFO" and "traceback" not in failed
    assert not [line for line in lines if line["level"] == "ERROR"]
    [summary] = [line for line in lines if line["message"].startswith("turn finished")]
    assert summary["outcome"] == "refused"


def test_redaction_is_the_last_guard() -> None:
    text = redact("token=xoxb-123-456-abc app=xapp-1-A0-xyz key=sk-proj-abcdefgh12 Authorization: Bearer abc.def")
    assert text == "token=[redacted] app=[redacted] key=[redacted] Authorization: Bearer [redacted]"
    assert redact("sk-learn and xoxo are words") == "sk-learn and xoxo are words"


def test_bound_ids_go_into_every_line_until_unbound() -> None:
    out = io.StringIO()
    logger = logging.getLogger("tests.logs")
    handler = make_handler("json", out)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        token = bind(team="T9", channel="C9")
        inner = bind(turn="abc", thread_ts=None)
        logger.info("inside")
        unbind(inner)
        logger.info("outside the turn")
        unbind(token)
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    inside, outside, after = (json.loads(line) for line in out.getvalue().splitlines())
    assert (inside["team"], inside["channel"], inside["turn"]) == ("T9", "C9", "abc") and "thread_ts" not in inside
    assert outside["team"] == "T9" and "turn" not in outside
    assert "team" not in after
