"""``datastory mcp`` end to end with the official MCP client, over streamable HTTP and over stdio: upload → analyze
→ refine → get_file on the local sandbox and the offline analyst, with the same keys and sessions as the API; the
HTTP transport refuses a request without a live key (401 and ``WWW-Authenticate``), a key sees only its own
sessions, and the API's rate limit and daily budget apply to tool calls."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, ImageContent, TextContent

from bot import cli
from tests.e2e.api_harness import SALES_CSV, RunningApi, create_key, local_settings, running
from tests.e2e.conftest import Harness
from tests.e2e.test_api import angles_script

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
MCP_ARGV = ["mcp", "--host", "127.0.0.1", "--port", "0", "--api-port", "0"]
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def client(url: str, key: str | None, statuses: list[int] | None = None) -> Client:
    """The official client over streamable HTTP, sending ``key`` (none: no header); ``statuses`` collects the
    status of every HTTP response it gets."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"} if key else None)
    if statuses is not None:
        async def record(response: httpx2.Response) -> None:
            statuses.append(response.status_code)

        http.event_hooks["response"].append(record)
    return Client(streamable_http_client(url, http_client=http))


def refusal(result: CallToolResult) -> str:
    """The text of a tool error."""
    assert result.is_error, result
    [text] = result.content
    assert isinstance(text, TextContent)
    return text.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def beside(port: int) -> list[str]:
    """``datastory mcp`` with the HTTP API on ``port``."""
    return [*MCP_ARGV[:-1], str(port)]


async def api_call(server: RunningApi, port: int, method: str, path: str, key: str) -> tuple[int, Any, Any]:
    """A call to the HTTP API served beside the MCP endpoint."""
    async with server.http.request(method, f"http://127.0.0.1:{port}{path}",
                                   headers={"Authorization": f"Bearer {key}"}) as r:
        return r.status, await r.json(content_type=None), r.headers


def upload_args() -> dict[str, Any]:
    return {"files": [{"name": "sales.csv", "content": base64.b64encode(SALES_CSV).decode(), "encoding": "base64"}]}


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def flow(client: Client) -> None:
    """The seed product's flow through the tools."""
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools == {"upload_dataset", "analyze", "refine", "ask", "get_file"}
    session = data(await client.call_tool("upload_dataset", upload_args()))
    assert session["files"][0]["rows"] == 36
    sid = session["session_id"]
    angles = data(await client.call_tool("analyze", {"session_id": sid}))["angles"]
    assert any("revenue" in a["title"] for a in angles)
    story = data(await client.call_tool("refine", {"session_id": sid, "angle_id": angles[0]["id"]}))
    assert "revenue" in story["narrative"] and story["charts"]
    chart = await client.call_tool("get_file", {"session_id": sid, "file_id": story["charts"][0]["file_id"]})
    [image] = chart.content
    assert isinstance(image, ImageContent) and image.mime_type == "image/png"
    assert base64.b64decode(image.data).startswith(b"\x89PNG")
    answer = data(await client.call_tool("ask", {"session_id": sid, "question": "which region leads?"}))
    assert "OPENAI_API_KEY" in answer["narrative"]  # the offline analyst says what a question needs
    missing = await client.call_tool("analyze", {"session_id": "s" + "0" * 20})
    assert missing.is_error
    [text] = missing.content
    assert isinstance(text, TextContent) and "404 not_found: There is no such session" in text.text


async def test_mcp_over_streamable_http_beside_the_api(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    key = await create_key(settings)
    async with running(settings, MCP_ARGV) as server:
        assert server.url.endswith("/mcp")
        async with client(server.url, key) as mcp:
            await flow(mcp)


async def raw_initialize(server: RunningApi, headers: dict[str, str]) -> aiohttp.ClientResponse:
    """An MCP ``initialize`` POST without the SDK (the body is read)."""
    async with server.http.post(server.url, json=INITIALIZE, headers={**ACCEPT, **headers}) as r:
        await r.read()
        return r


async def test_mcp_over_http_needs_a_live_key_on_every_request(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    key = await create_key(settings)
    revoked = await create_key(settings, "revoked")
    with contextlib.redirect_stdout(io.StringIO()):
        assert await cli.amain(["api-key", "revoke", revoked[3:15]], settings=settings) == 0
    unknown = key[:16] + ("A" if key[16] != "A" else "B") + key[17:]  # a well-formed key with a wrong secret
    async with running(settings, MCP_ARGV) as server:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nonsense"},
                        {"Authorization": f"Bearer {unknown}"}, {"Authorization": f"Bearer {revoked}"},
                        {"Authorization": key}):  # the scheme is required
            r = await raw_initialize(server, headers)
            assert r.status == 401, headers
            assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"'), r.headers
            assert "mcp-session-id" not in r.headers  # refused before any MCP session exists
        r = await raw_initialize(server, {"Authorization": f"Bearer {key}"})
        assert r.status == 200 and r.headers["mcp-session-id"]
        # the official client: no key, a wrong key → 401, and it cannot connect
        for presented in (None, unknown, revoked):
            statuses: list[int] = []
            with pytest.raises(ExceptionGroup):  # the SDK raises the 401 as an MCPError in a task group
                async with client(server.url, presented, statuses) as mcp:
                    await mcp.list_tools()
            assert statuses and set(statuses) == {401}, (presented, statuses)
        statuses = []
        async with client(server.url, key, statuses) as mcp:
            assert len((await mcp.list_tools()).tools) == 5
        assert 401 not in statuses


async def test_mcp_key_sees_only_its_own_sessions(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    key_a, key_b = await create_key(settings, "a"), await create_key(settings, "b")
    port = free_port()
    async with running(settings, beside(port)) as server:
        async with client(server.url, key_a) as a, client(server.url, key_b) as b:
            sid = data(await a.call_tool("upload_dataset", upload_args()))["session_id"]
            for tool, args in (("analyze", {"session_id": sid}), ("refine", {"session_id": sid, "angle_id": "a1"}),
                               ("ask", {"session_id": sid, "question": "q"}),
                               ("get_file", {"session_id": sid, "file_id": "out0"})):
                text = refusal(await b.call_tool(tool, args))
                assert text.endswith(("404 not_found: There is no such session for this API key.",
                                      "404 not_found: There is no such file in this session.")), text
            assert data(await a.call_tool("analyze", {"session_id": sid}))["angles"]  # A's own: fine
        # nor is the same session visible through the HTTP API with B's key, while A's key sees it
        status, _, _ = await api_call(server, port, "GET", f"/v1/sessions/{sid}", key_b)
        assert status == 404
        status, shown, _ = await api_call(server, port, "GET", f"/v1/sessions/{sid}", key_a)
        assert status == 200 and [t["kind"] for t in shown["turns"]] == ["analyze"]
        # an MCP session opened with A's key cannot be used with B's (the SDK binds it to the key that opened it)
        opened = await raw_initialize(server, {"Authorization": f"Bearer {key_a}"})
        mcp_session = opened.headers["mcp-session-id"]
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
        async with server.http.post(server.url, data=json.dumps(listing), headers={
                **ACCEPT, "Authorization": f"Bearer {key_b}", "mcp-session-id": mcp_session,
                "mcp-protocol-version": "2025-06-18"}) as r:
            assert r.status == 404


async def test_mcp_tool_calls_count_against_the_keys_rate_limit_and_budget(harness: Harness) -> None:
    """Against FakeOpenAI (an analysis costs tokens): the budget and the rate limit answer as for the API."""
    values: dict[str, Any] = {"api_data_dir": str(harness.tmp / "api-files"), "api_rate_per_minute": 3,
                              "daily_budget_usd": 0.000001}
    settings = harness.settings(**values)
    key = await create_key(settings)
    harness.openai.script = angles_script
    port = free_port()
    async with running(settings, beside(port)) as server, client(server.url, key) as mcp:
        sid = data(await mcp.call_tool("upload_dataset", upload_args()))["session_id"]  # 1 call that starts work
        assert data(await mcp.call_tool("analyze", {"session_id": sid}))["angles"]  # 2: spends tokens
        text = refusal(await mcp.call_tool("ask", {"session_id": sid, "question": "q"}))  # 3
        assert "429 budget_exhausted" in text and "retry after" in text, text
        text = refusal(await mcp.call_tool("analyze", {"session_id": sid}))  # 4: over 3 a minute
        assert "429 rate_limited" in text and "retry after" in text, text
        # the same key's limits over the HTTP API beside it: one count
        status, problem, headers = await api_call(server, port, "POST", f"/v1/sessions/{sid}/analyze", key)
        assert (status, problem["code"]) == (429, "rate_limited") and int(headers["Retry-After"]) > 0


async def test_mcp_over_stdio(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    key = await create_key(settings)
    env = {"DATASTORY_SANDBOX": "local", "DATASTORY_LOCAL_ISOLATION": "relaxed", "DATASTORY_LOCAL_POOL_SIZE": "0",
           "DATASTORY_DATABASE_URL": settings.database_url, "DATASTORY_API_DATA_DIR": settings.api_data_dir,
           "DATASTORY_LOCAL_DIR": settings.local_dir, "DATASTORY_API_KEY": key,
           "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "bot.cli", "mcp", "--stdio"], env=env,
                                   cwd=str(tmp_path))
    async with Client(params) as client:
        await flow(client)


async def test_mcp_over_stdio_refuses_to_start_without_a_live_key(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    await create_key(settings)
    for key in ("", "ds_000000000000_" + "A" * 43):
        env = {"DATASTORY_SANDBOX": "local", "DATASTORY_LOCAL_ISOLATION": "relaxed",
               "DATASTORY_LOCAL_POOL_SIZE": "0", "DATASTORY_DATABASE_URL": settings.database_url,
               "DATASTORY_API_DATA_DIR": settings.api_data_dir, "DATASTORY_LOCAL_DIR": settings.local_dir,
               "DATASTORY_API_KEY": key, "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "mcp", "--stdio", env=env, cwd=str(tmp_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2, (out, err)
        assert out == b""  # nothing on the MCP channel
        assert b"DATASTORY_API_KEY must be a live API key" in err
