"""The HTTP API beside ``/slack/events`` (``DATASTORY_API_ENABLED=true``) against FakeOpenAI: the hosted-container
path, expiry and rebuild, ownership, refusals before any container, serialised refinements, async turns and
cancellation, limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.e2e.api_harness import SALES_CSV, RunningApi, create_key
from tests.e2e.conftest import Harness, no_work_at
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, default_script

pytestmark = pytest.mark.e2e

ANGLES = {"angles": [{"id": "x", "title": "Revenue grows every month", "summary": "North leads with 30%."},
                     {"id": "y", "title": "Units follow revenue", "summary": "r = 0.9"}]}


def angles_script(ctx: ResponseContext) -> ScriptedTurn:
    """The model: JSON angles for the analyze prompt, the default analyst otherwise."""
    if "story angles" in ctx.question:
        return ScriptedTurn(code="df.describe()", text="```json\n" + json.dumps(ANGLES) + "\n```")
    return default_script(ctx)


async def start_api(harness: Harness, **overrides: Any) -> tuple[RunningApi, str]:
    """``datastory run --http`` with the API enabled, and a key."""
    values = {"api_enabled": True, "api_data_dir": str(harness.tmp / "api-files"), **overrides}
    key = await create_key(harness.settings(**values))
    bot = await harness.start(**values)
    harness.openai.script = angles_script
    return RunningApi(url=bot.url, settings=bot.settings, stop=bot.stop, task=bot.task), key


@pytest.fixture
async def api_and_key(harness: Harness) -> AsyncIterator[tuple[RunningApi, str]]:
    api, key = await start_api(harness)
    yield api, key
    await api.http.close()


async def test_upload_analyze_refine_download_beside_slack(
    harness: Harness, api_and_key: tuple[RunningApi, str]
) -> None:
    api, key = api_and_key
    status, session = await api.upload(key, ("sales.csv", SALES_CSV))
    assert status == 201, session
    assert no_work_at(harness.openai)  # the container comes with the first analysis
    sid = session["session_id"]
    status, analysis, _ = await api.call("POST", f"/v1/sessions/{sid}/analyze", key)
    assert status == 200, analysis
    assert [a["title"] for a in analysis["angles"]] == ["Revenue grows every month", "Units follow revenue"]
    assert [a["id"] for a in analysis["angles"]] == ["a1", "a2"]
    [container] = harness.openai.live_containers()
    assert container.name.startswith("datastory-api-api-") and [f.original_name for f in container.user_files()] == [
        "sales.csv"]
    status, story, _ = await api.call("POST", f"/v1/sessions/{sid}/refine", key, json={"angle_id": "a1"})
    assert status == 200, story
    assert "Revenue grows every month" in story["narrative"] and "Summary of sales.csv" in story["narrative"]
    assert "pd.read_csv" in story["code"]
    [chart] = story["charts"]
    status, png, headers = await api.call("GET", chart["url"], key)
    assert status == 200 and png.startswith(b"\x89PNG") and len(png) == chart["size"]
    assert headers["Content-Type"] == "image/png" and "attachment" in headers["Content-Disposition"]
    assert harness.openai.live_containers() == [container]  # the same container, the chain continued
    # nothing of the session went to Slack
    assert not [r for r in harness.slack.recorder.requests if "api-" in json.dumps(r.body, default=str)]


async def test_refine_after_expiry_rebuilds_the_workspace(
    harness: Harness, api_and_key: tuple[RunningApi, str]
) -> None:
    api, key = api_and_key
    _, session = await api.upload(key, ("sales.csv", SALES_CSV))
    sid = session["session_id"]
    assert (await api.call("POST", f"/v1/sessions/{sid}/analyze", key))[0] == 200
    [first] = harness.openai.live_containers()
    harness.openai.expire(first.id)
    status, story, _ = await api.call("POST", f"/v1/sessions/{sid}/refine", key, json={"question": "Which region?"})
    assert status == 200, story
    assert "Question: Which region?" in story["narrative"]
    rebuilt = [c for c in harness.openai.live_containers() if c.id != first.id]
    assert len(rebuilt) == 1 and [f.original_name for f in rebuilt[0].user_files()] == ["sales.csv"]
    assert story["charts"]


async def test_a_key_sees_only_its_own_sessions(harness: Harness, api_and_key: tuple[RunningApi, str]) -> None:
    api, key = api_and_key
    other = await create_key(api.settings, "other")
    _, session = await api.upload(key, ("sales.csv", SALES_CSV))
    sid = session["session_id"]
    for method, path, body in (("GET", f"/v1/sessions/{sid}", None), ("POST", f"/v1/sessions/{sid}/analyze", None),
                               ("POST", f"/v1/sessions/{sid}/refine", {"question": "hi"}),
                               ("GET", f"/v1/sessions/{sid}/files/out123", None),
                               ("DELETE", f"/v1/sessions/{sid}", None),
                               ("GET", "/v1/sessions/s0000000000000000000a", None)):
        status, problem, headers = await api.call(method, path, other, json=body)
        assert (status, problem["code"]) == (404, "not_found"), (method, path, problem)
        assert headers["Content-Type"].startswith("application/problem+json")
    status, problem, _ = await api.call("GET", f"/v1/sessions/{sid}", "ds_000000000000_" + "A" * 43)
    assert (status, problem["code"]) == (401, "unauthorized")
    assert (await api.call("GET", f"/v1/sessions/{sid}", key))[0] == 200
    assert no_work_at(harness.openai)


async def test_oversized_and_unreadable_files_are_refused_before_any_container(harness: Harness) -> None:
    api, key = await start_api(harness, max_file_mb=1)
    try:
        big = b"a,b\n" + b"1,2\n" * 300_000  # 1.2 MB
        status, problem = await api.upload(key, ("big.csv", big))  # Content-Length over the limit: not read
        assert (status, problem["code"]) == (413, "file_too_large"), problem
        assert "over the limit of 1.0 MB" in problem["detail"]

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            boundary = b"--xyz\r\n"
            yield boundary + b'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
            for _ in range(40):
                yield b"1,2\n" * 10_000
            yield b"\r\n--xyz--\r\n"

        async with api.http.post(f"{api.url}/v1/sessions", data=chunked(), headers={
                **api.auth(key), "Content-Type": "multipart/form-data; boundary=xyz"}) as r:
            problem = await r.json(content_type=None)
            assert (r.status, problem["code"]) == (413, "file_too_large"), problem
        status, problem = await api.upload(key, ("report.pdf", b"%PDF-1.7"))
        assert (status, problem["code"]) == (415, "unsupported_type")
        assert problem["detail"].startswith("I can't analyse `report.pdf`: `.pdf` is not a type I read; I read")
        status, problem = await api.upload(key, ("photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8))
        assert (status, problem["code"]) == (422, "unreadable_table")
        assert problem["detail"] == "I can't analyse `photo.csv`: it is a PNG image, not a text table."
        status, problem = await api.upload(key, ("empty.csv", b""))
        assert (status, problem["code"]) == (422, "unreadable_table")
        assert no_work_at(harness.openai) and not harness.openai.containers
        assert not list((harness.tmp / "api-files").glob("*/in/*"))  # nothing refused was kept
    finally:
        await api.http.close()


async def test_concurrent_refinements_on_one_session_are_serialised(
    harness: Harness, api_and_key: tuple[RunningApi, str]
) -> None:
    api, key = api_and_key
    _, session = await api.upload(key, ("sales.csv", SALES_CSV))
    sid = session["session_id"]
    release = asyncio.Event()
    running: list[str] = []

    async def slow(ctx: ResponseContext) -> ScriptedTurn:
        running.append(ctx.question)
        await release.wait()
        return default_script(ctx)

    harness.openai.script = slow
    first = asyncio.create_task(api.call("POST", f"/v1/sessions/{sid}/refine", key, json={"question": "one"}))
    await harness.wait_for(lambda: running)
    results = await asyncio.gather(*(api.call("POST", f"/v1/sessions/{sid}/refine", key, json={"question": "two"})
                                     for _ in range(3)))
    for status, problem, headers in results:
        assert (status, problem["code"]) == (409, "session_busy")
        assert int(headers["Retry-After"]) >= 1
    release.set()
    status, story, _ = await first
    assert status == 200 and "Question: one" in story["narrative"]
    assert running == ["one"]  # the refused ones never reached the model
    status, story, _ = await api.call("POST", f"/v1/sessions/{sid}/refine", key, json={"question": "three"})
    assert status == 200 and "Turn 2 in this container" in story["narrative"]


async def test_respond_async_returns_a_status_url_and_can_be_cancelled(
    harness: Harness, api_and_key: tuple[RunningApi, str]
) -> None:
    api, key = api_and_key
    _, session = await api.upload(key, ("sales.csv", SALES_CSV))
    sid = session["session_id"]
    prefer = {"Prefer": "respond-async"}
    status, started, headers = await api.call("POST", f"/v1/sessions/{sid}/analyze", key, headers=prefer)
    assert status == 202 and headers["Location"] == started["turn"]["status_url"]
    assert headers["Preference-Applied"] == "respond-async"

    async def poll(url: str) -> dict[str, Any]:
        while True:
            _, doc, _ = await api.call("GET", url, key)
            if doc["turn"]["status"] not in ("queued", "running"):
                return dict(doc)
            await asyncio.sleep(0.05)

    done = await asyncio.wait_for(poll(headers["Location"]), 20)
    assert done["turn"]["status"] == "done" and done["result"]["angles"][0]["title"] == "Revenue grows every month"
    stuck = asyncio.Event()

    async def hang(ctx: ResponseContext) -> ScriptedTurn:
        stuck.set()
        await asyncio.sleep(60)
        return default_script(ctx)

    harness.openai.script = hang
    status, started, headers = await api.call("POST", f"/v1/sessions/{sid}/refine", key, headers=prefer,
                                              json={"question": "slow"})
    assert status == 202
    await asyncio.wait_for(stuck.wait(), 20)
    status, cancelled, _ = await api.call("DELETE", headers["Location"], key)
    assert status == 200 and cancelled["turn"]["status"] == "cancelled" and cancelled["result"] is None
    _, shown, _ = await api.call("GET", f"/v1/sessions/{sid}", key)
    assert [t["status"] for t in shown["turns"]] == ["done", "cancelled"]
    harness.openai.script = angles_script
    status, story, _ = await api.call("POST", f"/v1/sessions/{sid}/refine", key, json={"question": "again"})
    assert status == 200, story  # the session is free again


async def test_rate_limit_and_daily_budget_answer_429_with_retry_after(harness: Harness) -> None:
    api, key = await start_api(harness, api_rate_per_minute=3, daily_budget_usd=0.000001)
    try:
        _, session = await api.upload(key, ("sales.csv", SALES_CSV))
        sid = session["session_id"]
        assert (await api.call("POST", f"/v1/sessions/{sid}/analyze", key))[0] == 200  # spends tokens
        status, problem, headers = await api.call("POST", f"/v1/sessions/{sid}/refine", key, json={"question": "q"})
        assert (status, problem["code"]) == (429, "budget_exhausted"), problem
        assert 0 < int(headers["Retry-After"]) <= 86400
        status, problem, headers = await api.call("POST", f"/v1/sessions/{sid}/analyze", key)
        assert (status, problem["code"]) == (429, "rate_limited"), problem
        assert 0 < int(headers["Retry-After"]) <= 60
    finally:
        await api.http.close()


async def test_delete_removes_the_container_and_the_files(
    harness: Harness, api_and_key: tuple[RunningApi, str]
) -> None:
    api, key = api_and_key
    _, session = await api.upload(key, ("sales.csv", SALES_CSV))
    sid = session["session_id"]
    assert (await api.call("POST", f"/v1/sessions/{sid}/analyze", key))[0] == 200
    assert harness.openai.live_containers()
    status, _, _ = await api.call("DELETE", f"/v1/sessions/{sid}", key)
    assert status == 204
    assert not harness.openai.live_containers()
    assert not (harness.tmp / "api-files" / sid).exists()
    assert (await api.call("GET", f"/v1/sessions/{sid}", key))[0] == 404


async def test_openapi_document_is_served_without_a_key(api_and_key: tuple[RunningApi, str]) -> None:
    api, _ = api_and_key
    async with aiohttp.ClientSession() as http, http.get(f"{api.url}/v1/openapi.json") as r:
        doc = await r.json()
    assert r.status == 200 and doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) >= {"/v1/sessions", "/v1/sessions/{session_id}/refine"}
    assert "RefineOut" in doc["components"]["schemas"]


