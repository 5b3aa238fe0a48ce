"""What the code wrote, end to end: attached within the caps (files per answer, bytes per file, bytes per answer),
the rest named in the answer with the reason, CSV formulas defused, and the event loop free while that happens."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.conftest import Harness
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, bar_chart_png

pytestmark = pytest.mark.e2e

KB = 1024


def many_outputs(ctx: ResponseContext) -> ScriptedTurn:
    rows = b"".join(b"r%d,%d\n" % (i, i) for i in range(60_000))  # about 700 KB
    files = [("a.csv", b"name,value\n=1+1,2\n" + rows), ("b.csv", b"name,value\n" + rows),
             ("huge.bin", b"\0" * (51 * 1024 * KB))]
    files += [(f"c{i}.png", bar_chart_png([1, 2, i])) for i in range(10)]
    return ScriptedTurn(code="print('done')", text="Here are the tables and charts.", files=files, cite_files=False)


async def test_outputs_past_the_caps_are_named_in_the_answer_and_csv_formulas_are_defused(harness: Harness) -> None:
    harness.openai.script = many_outputs
    bot = await harness.start(max_output_mb=1)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    items = await harness.wait_done(event["ts"], timeout=60)
    [answer] = [m for m in items if m.is_bot and m.text.startswith("Here are the tables")]
    assert ("_Not attached: `b.csv` (740.0 KB, past the 1.0 MB one answer attaches (`DATASTORY_MAX_OUTPUT_MB`)); "
            "`c9.png` (only 10 files are attached to one answer); `huge.bin` (51.0 MB, over the 50.0 MB limit per "
            "file)._") in answer.text
    names = [u.name for u in harness.slack.uploads]
    assert names == ["a.csv", *(f"c{i}.png" for i in range(9))]
    [table] = [u for u in harness.slack.uploads if u.name == "a.csv"]
    assert table.content.startswith(b"name,value\n'=1+1,2\nr0,0\n")
    done = next(m.text for m in items if m.is_bot and m.text.startswith(":white_check_mark:"))
    assert "(10 files attached)" in done


CLEAN = b"name,when,value\n" + b"".join(b"r%d,2025-01-02,-%d.5\n" % (i, i) for i in range(900_000))
RISKY = CLEAN + b"x,2025-01-03,=HYPERLINK(\"http://evil\")\n"


def big_csv_outputs(ctx: ResponseContext) -> ScriptedTurn:
    """Two CSVs of about 25 MB (built once, so the emulator sharing the loop does no heavy work here)."""
    return ScriptedTurn(code="print('done')", text="Tables.", files=[("clean.csv", CLEAN), ("risky.csv", RISKY)],
                        cite_files=False)


async def test_defusing_large_csv_outputs_leaves_the_event_loop_free(harness: Harness) -> None:
    harness.openai.script = big_csv_outputs
    bot = await harness.start()
    lateness: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:  # the bot runs in this event loop: a blocked loop shows here
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lateness.append(time.perf_counter() - started - 0.01)

    ticker = asyncio.create_task(tick())
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"], timeout=120)
    stop.set()
    await ticker
    [clean, risky] = sorted(harness.slack.uploads, key=lambda u: u.name)
    assert clean.content.endswith(b"r899999,2025-01-02,-899999.5\n") and b"'" not in clean.content
    assert risky.content.endswith(b"x,2025-01-03,\"'=HYPERLINK(\"\"http://evil\"\")\"\n")
    assert max(lateness) < 0.5, max(lateness)  # neutralising ~25 MB holds the loop for seconds when done on it
