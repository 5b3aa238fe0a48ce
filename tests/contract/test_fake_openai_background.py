"""FakeOpenAI background responses, through the real SDK with strict response validation: queued at once, polled,
streamed and resumed, cancelled while running (the container and its files kept), and the refused cancels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import openai
import pytest
from openai import AsyncOpenAI

from tests.emulators.fake_openai import FakeOpenAI, ResponseContext, ScriptedTurn, default_script

KEY = "sk-test-background"
CSV = b"region,month,revenue\nNorth,2024-01,100\nSouth,2024-01,80\n"


@pytest.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def client(oai: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=oai.base_url, api_key=KEY, _strict_response_validation=True,
                           max_retries=0) as c:
        yield c


async def _container(client: AsyncOpenAI) -> str:
    c = await client.containers.create(name="bg", expires_after={"anchor": "last_active_at", "minutes": 20})
    await client.containers.files.create(c.id, file=("sales.csv", CSV, "text/csv"))
    return c.id


def _held(oai: FakeOpenAI) -> tuple[asyncio.Event, asyncio.Event]:
    """Make the script wait for ``release`` (a long analysis), signalling ``started``."""
    started, release = asyncio.Event(), asyncio.Event()

    async def script(ctx: ResponseContext) -> ScriptedTurn:
        started.set()
        await release.wait()
        return default_script(ctx)

    oai.script = script  # type: ignore[assignment]
    return started, release


async def test_a_background_response_is_queued_then_polled_to_completion(oai: FakeOpenAI,
                                                                        client: AsyncOpenAI) -> None:
    cid = await _container(client)
    started, release = _held(oai)
    tools = [{"type": "code_interpreter", "container": cid}]
    created = await client.responses.create(model="gpt-4.1", input="Question: q", tools=tools,  # type: ignore[arg-type]
                                            background=True, include=["code_interpreter_call.outputs"])
    assert (created.status, created.background, created.output) == ("queued", True, [])
    await asyncio.wait_for(started.wait(), 5)
    assert (await client.responses.retrieve(created.id)).status == "in_progress"
    release.set()
    for _ in range(100):
        done = await client.responses.retrieve(created.id, include=["code_interpreter_call.outputs"])
        if done.status == "completed":
            break
        await asyncio.sleep(0.02)
    assert done.status == "completed" and done.background is True and "Summary of sales.csv" in done.output_text
    [call] = [item for item in done.output if item.type == "code_interpreter_call"]
    assert call.outputs == []  # background mode returns no outputs, even with the include


async def test_a_background_stream_has_the_queued_events_and_resumes_after_a_sequence_number(
        oai: FakeOpenAI, client: AsyncOpenAI) -> None:
    cid = await _container(client)
    stream = await client.responses.create(model="gpt-4.1", input="Question: q", background=True, stream=True,
                                           tools=[{"type": "code_interpreter", "container": cid}])
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert events[0].response.status == "queued" and events[0].response.background is True  # type: ignore[union-attr]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    resumed = await client.responses.retrieve(events[0].response.id, stream=True,  # type: ignore[union-attr]
                                              starting_after=2)
    again = [event async for event in resumed]
    assert [e.sequence_number for e in again] == list(range(3, len(events)))
    assert again[-1].type == "response.completed"


async def test_cancelling_a_running_background_response_stops_it_and_keeps_the_container(
        oai: FakeOpenAI, client: AsyncOpenAI) -> None:
    cid = await _container(client)
    started, _release = _held(oai)
    stream = await client.responses.create(model="gpt-4.1", input="Question: q", background=True, stream=True,
                                           tools=[{"type": "code_interpreter", "container": cid}])
    seen: list[str] = []

    async def follow() -> None:
        async for event in stream:
            seen.append(event.type)

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(started.wait(), 5)
    rid = next(iter(oai.background))
    cancelled = await client.responses.cancel(rid)
    assert (cancelled.id, cancelled.status) == (rid, "cancelled")
    await asyncio.wait_for(follower, 5)  # the followed stream ends, without a terminal event
    assert seen == ["response.created", "response.queued", "response.in_progress"]
    assert (await client.responses.retrieve(rid)).status == "cancelled"
    assert (await client.responses.cancel(rid)).status == "cancelled"  # a second cancel changes nothing
    assert oai.cancelled == [rid]
    container = await client.containers.retrieve(cid)
    assert container.status == "running"
    names = [f.path.rsplit("/", 1)[-1] async for f in client.containers.files.list(cid)]
    assert any(name.endswith("sales.csv") for name in names)


async def test_cancel_is_refused_for_finished_foreground_and_unknown_responses(oai: FakeOpenAI,
                                                                              client: AsyncOpenAI) -> None:
    cid = await _container(client)
    tools = [{"type": "code_interpreter", "container": cid}]
    stream = await client.responses.create(model="gpt-4.1", input="Question: q", background=True, stream=True,
                                           tools=tools)  # type: ignore[arg-type]
    finished = [event async for event in stream][-1].response  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as done:
        await client.responses.cancel(finished.id)
    assert done.value.body["message"] == "Cannot cancel a completed response."  # type: ignore[index]
    foreground = await client.responses.create(model="gpt-4.1", input="x", tools=tools)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        await client.responses.cancel(foreground.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.cancel("resp_nope")
    with pytest.raises(openai.BadRequestError):
        await client.responses.retrieve(foreground.id, stream=True)
