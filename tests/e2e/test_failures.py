"""Bad input and failures get a clear answer in the thread; expired containers are rebuilt transparently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from bot.demo.recorder import Recorder
from tests.e2e.conftest import CHANNEL, Harness, no_work_at
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, default_script

pytestmark = pytest.mark.e2e


async def test_unsupported_files_are_explained_and_no_container_is_created(harness: Harness) -> None:
    bot = await harness.start(max_file_mb=1)
    slack = harness.slack
    pdf = slack.add_file(name="report.pdf", content=b"%PDF-1.7", mimetype="application/pdf", filetype="pdf")
    drive = slack.add_file(name="drive.csv", content=b"", mode="external")
    big = slack.add_file(name="big.csv", content=b"a,b\n1,2\n", size=3 * 1024 * 1024)
    event = slack.post_as_user(channel=CHANNEL, user="U1", files=[pdf, drive, big])
    await bot.send(event)
    await bot.shutdown()
    [post] = slack.recorder.calls("chat.postMessage")
    text = post.params["text"]
    assert post.params["thread_ts"] == event["ts"]
    assert text.startswith("I can't analyse these files:")
    assert "`report.pdf`: `.pdf` is not a type I read; I read `.csv`" in text
    assert "`drive.csv`: it is an external file" in text
    assert "`big.csv`: it is 3.0 MB, over the limit of 1.0 MB (`DATASTORY_MAX_FILE_MB`)" in text
    assert no_work_at(harness.openai) and slack.downloads == []


async def test_mixed_files_analyse_the_good_one_and_name_the_rest(harness: Harness) -> None:
    bot = await harness.start()
    slack = harness.slack
    good = slack.add_file(name="sales.csv", content=b"a,b\n1,2\n")
    bad = slack.add_file(name="logo.png", content=b"\x89PNG", mimetype="image/png", filetype="png")
    event = slack.post_as_user(channel=CHANNEL, user="U1", files=[good, bad])
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])
    assert any(m.text.startswith("I'm skipping this file:\n• `logo.png`") for m in thread if m.is_bot)
    [container] = harness.openai.live_containers()
    assert [f.original_name for f in container.user_files()] == ["sales.csv"]


async def test_the_sign_in_page_instead_of_the_file_is_explained(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv", accessible=False)
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])
    status = harness.status_of(CHANNEL, event["ts"])
    assert status is not None and status.text.startswith(
        ":warning: I can't analyse `sales.csv`: Slack served its sign-in page instead of the file, so the app "
        "lacks the `files:read` scope or the file is not shared in a conversation I'm in. (ref `")
    assert harness.openai.containers == {}
    assert harness.slack.reactions[(CHANNEL, event["ts"])] == {"warning"}
    assert not any("Summary" in m.text for m in thread)


@pytest.fixture
async def foreign_host() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder()

    async def anything(request: web.Request) -> web.Response:
        await recorder.record(request, await request.read())
        return web.Response(text="a,b\n1,2\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", recorder
    await runner.cleanup()


async def test_the_token_never_goes_to_a_host_outside_slack(harness: Harness,
                                                             foreign_host: tuple[str, Recorder]) -> None:
    url, recorder = foreign_host
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    event["files"][0]["url_private_download"] = f"{url}/steal/sales.csv"
    event["files"][0]["url_private"] = f"{url}/steal/sales.csv"
    await bot.send(event)
    await harness.wait_done(event["ts"])
    status = harness.status_of(CHANNEL, event["ts"])
    assert status is not None and "hosted outside Slack" in status.text
    assert recorder.requests == []


async def test_a_failed_model_run_is_explained(harness: Harness) -> None:
    harness.openai.script = lambda ctx: ScriptedTurn(status="failed", error_message="The model is overloaded.")
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    status = harness.status_of(CHANNEL, event["ts"])
    assert status is not None and status.text.startswith(":warning: The model could not finish the analysis")
    assert "(ref `" in status.text


async def test_a_long_answer_is_split_into_several_messages(harness: Harness) -> None:
    long_text = "\n\n".join(f"**Finding {i}.** " + "The revenue of this region moved a lot. " * 20 for i in range(12))
    harness.openai.script = lambda ctx: ScriptedTurn(code="print(1)", text=long_text)
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])
    parts = [m.text for m in thread if m.is_bot and "Finding" in m.text]
    assert len(parts) >= 3
    assert all(len(p) <= 4000 for p in parts)
    assert parts[0].startswith("*Finding 0.*") and "*Finding 11.*" in parts[-1]


async def test_an_expired_container_is_rebuilt_and_the_question_answered(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    ts = event["ts"]
    await bot.send(event)
    await harness.wait_done(ts)
    [old] = harness.openai.live_containers()
    harness.openai.expire(old.id)

    await bot.send(harness.reply_event("which region grew fastest?", ts))
    thread = await harness.wait_done(ts, turns=2)

    new = [c for c in harness.openai.live_containers() if c.id != old.id and c.status == "running"]
    assert len(new) == 1
    assert new[0].name == old.name
    assert [f.original_name for f in new[0].user_files()] == ["sales.csv"]
    answer = [m.text for m in thread if m.is_bot and "which region grew fastest?" in m.text]
    assert len(answer) == 1
    assert answer[0].startswith("_The workspace had expired; I reloaded `sales.csv`._")
    last = list(harness.openai.responses.values())[-1]
    assert last.previous_response_id is None and last.container_id == new[0].id
    sent = str(last.request["input"])  # the fresh chain carries a summary of the thread so far
    assert "Turn 1. Question:" in sent and "Summary of sales.csv" in sent and "pd.read_csv" in sent


def first_held(release: asyncio.Event, seen: list[str]) -> Callable[[ResponseContext], Awaitable[ScriptedTurn]]:
    """A model that notes each question in ``seen`` and holds the first answer until ``release``."""

    async def script(ctx: ResponseContext) -> ScriptedTurn:
        seen.append(ctx.question)
        if len(seen) == 1:
            await release.wait()
        return default_script(ctx)

    return script


async def test_one_turn_per_thread_at_a_time_in_order(harness: Harness) -> None:
    release = asyncio.Event()
    seen: list[str] = []
    harness.openai.script = first_held(release, seen)
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    ts = event["ts"]
    await bot.send(event)
    await harness.wait_for(lambda: seen)
    await bot.send(harness.reply_event("second question", ts))
    await harness.wait_for(lambda: any("Queued behind 1 earlier" in m.text  # stored before the third arrives
                                       for m in harness.slack.thread(CHANNEL, ts) if m.is_bot))
    await bot.send(harness.reply_event("third question", ts))
    await harness.wait_for(lambda: any("Queued behind 2 earlier" in m.text
                                       for m in harness.slack.thread(CHANNEL, ts) if m.is_bot))
    release.set()
    await harness.wait_done(ts, turns=3)
    assert seen[1:] == ["second question", "third question"]


async def test_a_question_stored_before_an_earlier_one_is_told_its_new_place(harness: Harness) -> None:
    release = asyncio.Event()
    seen: list[str] = []
    harness.openai.script = first_held(release, seen)
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    ts = event["ts"]
    await bot.send(event)
    await harness.wait_for(lambda: seen)
    second, third = harness.reply_event("second question", ts), harness.reply_event("third question", ts)
    await bot.send(third)  # the later reply reaches the bot first (another replica, Slack's delivery order)

    def says(message_ts: str, text: str) -> bool:
        return any(m.is_bot and text in m.text for m in harness.slack.thread(CHANNEL, ts)
                   if m.ts == status_of[message_ts])

    status_of: dict[str, str] = {}

    def queued() -> bool:
        for turn in harness.slack.thread(CHANNEL, ts):
            if turn.is_bot and turn.text.startswith(":hourglass:"):
                status_of.setdefault("third", turn.ts)
        return "third" in status_of

    await harness.wait_for(queued)
    assert says("third", "Queued behind 1 earlier question in")
    await bot.send(second)
    await harness.wait_for(lambda: says("third", "Queued behind 2 earlier questions"))
    replies = [m.text for m in harness.slack.thread(CHANNEL, ts) if m.is_bot and m.text.startswith(":hourglass:")]
    assert sorted(t.split(" earlier")[0] for t in replies) == [":hourglass: Queued behind 1",
                                                               ":hourglass: Queued behind 2"]
    release.set()
    await harness.wait_done(ts, turns=3)
    assert seen[1:] == ["second question", "third question"]
