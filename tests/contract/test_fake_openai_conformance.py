"""FakeOpenAI conformance: the real SDK with strict response validation accepts every answer of the emulator."""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from tests.emulators.fake_openai import FakeOpenAI, ManualClock, MultipartScanner, ResponseContext, ScriptedTurn

KEY = "sk-test-conformance"
CSV = b"region,month,revenue\nNorth,2024-01,100\nSouth,2024-01,80\nNorth,2024-02,120\n"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def oai(clock: ManualClock) -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY, clock=clock) as fake:
        yield fake


@pytest.fixture
async def client(oai: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=oai.base_url, api_key=KEY, _strict_response_validation=True,
                           max_retries=0) as c:
        yield c


async def _container_with_csv(client: AsyncOpenAI) -> tuple[str, str]:
    c = await client.containers.create(name="conf-1", expires_after={"anchor": "last_active_at", "minutes": 20})
    f = await client.containers.files.create(c.id, file=("sales.csv", CSV, "text/csv"))
    return c.id, f.id


def _png_ok(data: bytes) -> bool:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + payload) != crc:
            return False
        if kind == b"IDAT":
            idat += payload
        pos += 12 + length
    width, height = struct.unpack(">II", data[16:24])
    return bool(len(zlib.decompress(idat)) == height * (1 + width * 3))


# ------------------------------------------------------------------------------------------------ containers


async def test_container_create_retrieve_delete(client: AsyncOpenAI, oai: FakeOpenAI, clock: ManualClock) -> None:
    created = await client.containers.create(name="conf-a", expires_after={"anchor": "last_active_at", "minutes": 5},
                                             memory_limit="4g")
    assert re.fullmatch(r"cntr_[0-9a-f]{48}", created.id)
    assert created.object == "container" and created.status == "running" and created.name == "conf-a"
    assert created.expires_after is not None and created.expires_after.minutes == 5
    assert created.memory_limit == "4g" and created.created_at == int(clock())
    sent = oai.recorder.calls("/v1/containers")[-1].json
    assert sent == {"name": "conf-a", "expires_after": {"anchor": "last_active_at", "minutes": 5}, "memory_limit": "4g"}

    clock.advance(60)
    got = await client.containers.retrieve(created.id)
    assert got.last_active_at == int(clock())  # retrieve refreshes last_active_at

    raw = await client.containers.with_raw_response.delete(created.id)
    assert json.loads(raw.http_response.content) == {"id": created.id, "object": "container.deleted", "deleted": True}
    assert raw.headers["x-request-id"].startswith("req_")
    with pytest.raises(openai.NotFoundError) as err:
        await client.containers.retrieve(created.id)
    assert str(err.value) == f"Error code: 404 - Container with id '{created.id}' not found."
    assert err.value.body == {"message": f"Container with id '{created.id}' not found.",
                              "type": "invalid_request_error", "param": None, "code": None}
    with pytest.raises(openai.NotFoundError):
        await client.containers.delete(created.id)


async def test_container_defaults_and_validation(client: AsyncOpenAI) -> None:
    default = await client.containers.create(name="conf-default")
    assert default.expires_after is not None
    assert (default.expires_after.anchor, default.expires_after.minutes) == ("last_active_at", 20)
    assert default.memory_limit == "1g"
    with pytest.raises(openai.BadRequestError) as err:
        await client.containers.create(name="x", expires_after={"anchor": "last_active_at", "minutes": 21})
    assert err.value.code == "integer_above_max_value"
    with pytest.raises(openai.BadRequestError) as err:
        bad_anchor: Any = {"anchor": "created_at", "minutes": 5}
        await client.containers.create(name="x", expires_after=bad_anchor)
    assert err.value.code == "invalid_value" and err.value.param == "expires_after.anchor"


async def test_container_list_paginates_over_100(client: AsyncOpenAI, oai: FakeOpenAI, clock: ManualClock) -> None:
    ids = []
    for i in range(105):
        ids.append((await client.containers.create(name=f"page-{i % 3}")).id)
        if i % 10 == 0:
            clock.advance(1)
    before = len(oai.recorder.calls("/v1/containers"))
    listed = [c.id async for c in client.containers.list(limit=100)]
    assert listed == ids[::-1]  # default order desc
    assert len(oai.recorder.calls("/v1/containers")) - before == 2
    assert [c.id async for c in client.containers.list(limit=7, order="asc")] == ids
    first = await client.containers.list(limit=100)
    assert first.has_more is True and len(first.data) == 100
    assert first.model_extra is not None and first.model_extra["first_id"] == ids[-1]
    second = await client.containers.list(limit=100, after=first.data[-1].id)
    assert second.has_more is False and [c.id for c in second.data] == ids[:5][::-1]
    named = [c.name async for c in client.containers.list(name="page-1", limit=10)]
    assert named == ["page-1"] * 35
    with pytest.raises(openai.BadRequestError):
        await client.containers.list(limit=101)
    await client.containers.delete(ids[0])
    assert ids[0] not in [c.id async for c in client.containers.list(limit=100)]


async def test_expired_container(client: AsyncOpenAI, oai: FakeOpenAI, clock: ManualClock) -> None:
    cid, fid = await _container_with_csv(client)
    clock.advance(20 * 60 + 1)
    assert (await client.containers.retrieve(cid)).status == "expired"
    assert [c.status async for c in client.containers.list()] == ["expired"]
    for call in (
        client.containers.files.create(cid, file=("b.csv", b"a\n1\n")),
        client.containers.files.list(cid),
        client.containers.files.content.retrieve(fid, container_id=cid),
        client.responses.create(model="gpt-4.1", input="hi", tools=[{"type": "code_interpreter", "container": cid}]),
    ):
        with pytest.raises(openai.BadRequestError) as err:
            await call
        assert str(err.value) == "Error code: 400 - Container is expired."
    other = await client.containers.create(name="other")
    oai.expire(other.id)
    assert (await client.containers.retrieve(other.id)).status == "expired"
    await client.containers.delete(other.id)  # deleting an expired container works


# ------------------------------------------------------------------------------------------------ files


async def test_files_crud(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    cid, fid = await _container_with_csv(client)
    upload = oai.recorder.calls("/files")[-1]
    assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    got = await client.containers.files.retrieve(fid, container_id=cid)
    assert re.fullmatch(r"cfile_[0-9a-f]{32}", got.id)
    assert re.fullmatch(r"/mnt/data/[0-9a-f]{32}-sales\.csv", got.path)
    assert (got.bytes, got.source, got.container_id, got.object) == (len(CSV), "user", cid, "container.file")
    assert oai.containers[cid].files[fid].data == CSV
    content = await client.containers.files.content.retrieve(fid, container_id=cid)
    assert content.content == CSV
    second = await client.containers.files.create(cid, file=("sales.csv", b"x\n"))
    assert second.path != got.path  # same name, a fresh 32-hex prefix
    listed = [f.id async for f in client.containers.files.list(cid, limit=1)]
    assert listed == [second.id, fid]
    await client.containers.files.delete(fid, container_id=cid)
    with pytest.raises(openai.NotFoundError) as err:
        await client.containers.files.retrieve(fid, container_id=cid)
    assert str(err.value) == f"Error code: 404 - File {fid} not found on container {cid}."
    with pytest.raises(openai.BadRequestError):
        await client.containers.files.create(cid, file_id="file-abc")


def _form(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    """A multipart body as the SDK's encoder frames it (preamble-free, CRLF line breaks)."""
    out = b""
    for name, payload in parts:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.csv"\r\n'
                f"Content-Type: text/csv\r\n\r\n").encode() + payload + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 13, 64, 1 << 20])
def test_multipart_scanner_any_chunking(step: int) -> None:
    boundary = "a1b2c3"
    # payloads that hold almost-delimiters, line breaks at the edges, and one that is empty
    tricky = b"\r\n--a1b2c\r\n-a1b2c3x\r\n" * 3 + b"\r\n"
    parts = [("purpose", b"assistants"), ("file", tricky + CSV * 5 + b"\r\n--"), ("empty", b"")]
    body = _form(boundary, parts)
    scanner = MultipartScanner(boundary.encode())
    for at in range(0, len(body), step):
        scanner.feed(body[at : at + step])
    got = scanner.finish()
    assert [(info["name"], info["filename"], info["content-type"], b"".join(data)) for info, data in got] == [
        (name, f"{name}.csv", "text/csv", payload) for name, payload in parts]


async def test_upload_with_a_broken_body_is_a_400(oai: FakeOpenAI, client: AsyncOpenAI) -> None:
    cid = (await client.containers.create(name="broken")).id
    url = f"{oai.base_url}/containers/{cid}/files"
    good = _form("zz", [("file", CSV)])
    bodies = [(good[:-8], "multipart/form-data; boundary=zz"),  # cut before the closing delimiter
              (good, "multipart/form-data"),  # no boundary
              (_form("zz", [("other", CSV)]), "multipart/form-data; boundary=zz")]  # no part named file
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
        for body, ctype in bodies:
            async with http.post(url, data=body, headers={"Content-Type": ctype}) as resp:
                assert resp.status == 400, (ctype, await resp.text())
                assert (await resp.json())["error"]["type"] == "invalid_request_error"
        async with http.post(url, data=good, headers={"Content-Type": "multipart/form-data; boundary=zz"}) as resp:
            assert resp.status == 200
    assert [f.data for f in oai.containers[cid].files.values()] == [CSV]
    assert oai.recorder.calls("/files")[-1].body == good


# ------------------------------------------------------------------------------------------------ responses


async def test_response_non_streaming(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    cid, _ = await _container_with_csv(client)
    tools: list[openai.types.responses.ToolParam] = [{"type": "code_interpreter", "container": cid}]
    plain = await client.responses.create(model="gpt-4.1", input="Question: how much revenue?", tools=tools)
    assert re.fullmatch(r"resp_[0-9a-f]{48}", plain.id) and plain.status == "completed"
    call, message = plain.output
    assert call.type == "code_interpreter_call" and call.outputs is None and call.container_id == cid
    assert call.id.startswith("ci_") and call.code and "sales.csv" in call.code
    assert message.type == "message" and message.id.startswith("msg_")
    assert "**Summary of sales.csv** — 3 rows, columns: region, month, revenue" in plain.output_text
    assert "Question: how much revenue? Turn 1 in this container." in plain.output_text
    part = message.content[0]
    assert part.type == "output_text"
    (citation,) = part.annotations
    assert citation.type == "container_file_citation" and citation.container_id == cid
    assert (citation.start_index, citation.end_index, citation.filename) == (0, 0, f"{citation.file_id}.png")
    chart = oai.containers[cid].files[citation.file_id]
    assert chart.path == "/mnt/data/chart_1.png" and chart.source == "assistant" and _png_ok(chart.data)
    assert plain.usage is not None and plain.usage.input_tokens_details.cache_write_tokens == 0
    assert plain.tools[0].type == "code_interpreter"

    with_outputs = await client.responses.create(model="gpt-4.1", input="Question: again", tools=tools,
                                                 include=["code_interpreter_call.outputs"],
                                                 previous_response_id=plain.id)
    ci = with_outputs.output[0]
    assert ci.type == "code_interpreter_call" and ci.outputs and ci.outputs[0].type == "logs"
    assert with_outputs.previous_response_id == plain.id
    assert oai.chain_of(with_outputs.id) == [plain.id, with_outputs.id]
    assert oai.containers[cid].variables["questions"] == ["how much revenue?", "again"]

    again = await client.responses.retrieve(with_outputs.id, include=["code_interpreter_call.outputs"])
    assert again.output_text == with_outputs.output_text and again.output[0].outputs  # type: ignore[union-attr]
    assert (await client.responses.retrieve(with_outputs.id)).output[0].outputs is None  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as err:
        await client.responses.create(model="gpt-4.1", input="x", tools=tools, previous_response_id="resp_nope")
    assert err.value.param == "previous_response_id"


async def test_file_citation_spans_sandbox_link(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    cid, _ = await _container_with_csv(client)
    oai.script = lambda ctx: ScriptedTurn(code="df.to_csv('/mnt/data/out.csv')", text="Done: see the table.",
                                          files=[("out.csv", b"a,b\n1,2\n")])
    r = await client.responses.create(model="gpt-4.1", input="x",
                                      tools=[{"type": "code_interpreter", "container": cid}])
    message = r.output[1]
    assert message.type == "message"
    part = message.content[0]
    assert part.type == "output_text"
    (citation,) = part.annotations
    assert citation.type == "container_file_citation"
    assert part.text[citation.start_index : citation.end_index] == "sandbox:/mnt/data/out.csv"
    assert citation.filename == "out.csv"


async def test_response_streaming_raw(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    cid, _ = await _container_with_csv(client)
    stream = await client.responses.create(model="gpt-4.1", input="Question: q", stream=True,
                                           tools=[{"type": "code_interpreter", "container": cid}])
    events = [e async for e in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.code_interpreter_call.in_progress"]
    assert types[-1] == "response.completed"
    compact = [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]]
    assert compact == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.code_interpreter_call.in_progress", "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done", "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed", "response.output_item.done", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.annotation.added",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]
    ids = {e.response.id for e in events
           if e.type == "response.created" or e.type == "response.in_progress" or e.type == "response.completed"}
    assert len(ids) == 1
    created = events[0]
    assert created.type == "response.created" and created.response.status == "in_progress"
    assert created.response.usage is None and created.response.output == []

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{oai.base_url}/responses", headers={"Authorization": f"Bearer {KEY}"},
                             json={"model": "gpt-4.1", "input": "x", "stream": True,
                                   "tools": [{"type": "code_interpreter", "container": cid}]}) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            raw = await resp.text()
    assert "[DONE]" not in raw
    assert raw.startswith("event: response.created\ndata: {")


async def test_response_stream_helper(client: AsyncOpenAI) -> None:
    cid, _ = await _container_with_csv(client)
    async with client.responses.stream(model="gpt-4.1", input="Question: total?",
                                       tools=[{"type": "code_interpreter", "container": cid}],
                                       include=["code_interpreter_call.outputs"]) as stream:
        final = await stream.get_final_response()
    assert "Question: total? Turn 1" in final.output_text
    assert final.output[0].type == "code_interpreter_call" and final.output[0].outputs


async def test_failed_and_incomplete_streams(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    cid, _ = await _container_with_csv(client)
    tools: list[openai.types.responses.ToolParam] = [{"type": "code_interpreter", "container": cid}]

    def failing(ctx: ResponseContext) -> ScriptedTurn:
        return ScriptedTurn(code="1/0", status="failed", error_message="The model crashed.")

    oai.script = failing
    async with client.responses.stream(model="gpt-4.1", input="x", tools=tools) as stream:
        events = [e.type async for e in stream]
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            await stream.get_final_response()
    assert events[-1] == "response.failed"
    failed = await client.responses.create(model="gpt-4.1", input="x", tools=tools)
    assert failed.status == "failed" and failed.error is not None and failed.error.message == "The model crashed."

    oai.script = lambda ctx: ScriptedTurn(text="partial", status="incomplete")
    stream2 = await client.responses.create(model="gpt-4.1", input="x", tools=tools, stream=True)
    last = [e async for e in stream2][-1]
    assert last.type == "response.incomplete" and last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"


async def test_async_script_and_auto_container(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    async def script(ctx: ResponseContext) -> ScriptedTurn:
        assert ctx.container is not None
        return ScriptedTurn(code="print(1)", text=f"auto {ctx.container.name}")

    oai.script = script
    r = await client.responses.create(model="gpt-4.1", input="x",
                                      tools=[{"type": "code_interpreter", "container": {"type": "auto"}}])
    assert r.output_text == f"auto auto-{r.id}"


# ------------------------------------------------------------------------------------------------ errors


async def test_auth_and_unknown_routes(oai: FakeOpenAI) -> None:
    async with AsyncOpenAI(base_url=oai.base_url, api_key="sk-wrong-key-123456", max_retries=0,
                           _strict_response_validation=True) as bad:
        with pytest.raises(openai.AuthenticationError) as err:
            await bad.containers.list()
    assert err.value.code == "invalid_api_key"
    assert str(err.value).startswith("Error code: 401 - Incorrect API key provided: sk-")
    assert "wrong-key" not in str(err.value)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{oai.base_url}/containers") as resp:
            assert resp.status == 401
            assert "You didn't provide an API key" in (await resp.json())["error"]["message"]
        async with http.get(f"{oai.base_url}/models", headers={"Authorization": f"Bearer {KEY}"}) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["message"] == "Invalid URL (GET /v1/models)"
        async with http.put(f"{oai.base_url}/containers", headers={"Authorization": f"Bearer {KEY}"}) as resp:
            assert (await resp.json())["error"]["message"] == "Invalid URL (PUT /v1/containers)"


async def test_fault_injection_429(oai: FakeOpenAI, client: AsyncOpenAI) -> None:
    oai.fail_next("POST", "/v1/containers", status=429, headers={"retry-after": "0"})
    with pytest.raises(openai.RateLimitError) as err:
        await client.containers.create(name="x")
    assert err.value.code == "rate_limit_exceeded"
    assert "Rate limit reached" in str(err.value)

    oai.fail_next("POST", "/v1/containers", status=429, headers={"retry-after": "0"}, times=2)
    async with AsyncOpenAI(base_url=oai.base_url, api_key=KEY, max_retries=2,
                           _strict_response_validation=True) as retrying:
        created = await retrying.containers.create(name="after-retries")
    attempts = [r.headers["x-stainless-retry-count"] for r in oai.recorder.calls("/v1/containers")[-3:]]
    assert attempts == ["0", "1", "2"] and created.name == "after-retries"

    oai.fail_next("GET", "/v1/containers/*", status=503, body="overloaded")
    with pytest.raises(openai.InternalServerError, match="overloaded"):
        await client.containers.retrieve(created.id)
    assert (await client.containers.retrieve(created.id)).id == created.id
