"""``datastory mcp`` end to end with the official MCP client, over streamable HTTP and over stdio: upload → analyze
→ refine → get_file on the local sandbox and the offline analyst, with the same keys and sessions as the API."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import CallToolResult, ImageContent, TextContent

from tests.e2e.api_harness import SALES_CSV, create_key, local_settings, running

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def flow(client: Client) -> None:
    """The seed product's flow through the tools."""
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools == {"upload_dataset", "analyze", "refine", "ask", "get_file"}
    session = data(await client.call_tool("upload_dataset", {"files": [
        {"name": "sales.csv", "content": base64.b64encode(SALES_CSV).decode(), "encoding": "base64"}]}))
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
    argv = ["mcp", "--host", "127.0.0.1", "--port", "0", "--api-port", "0"]
    async with running(settings, argv) as server:
        assert server.url.endswith("/mcp")
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
        async with Client(streamable_http_client(server.url, http_client=http)) as client:
            await flow(client)
        anonymous = create_mcp_http_client()
        async with Client(streamable_http_client(server.url, http_client=anonymous)) as client:
            refused = await client.call_tool("analyze", {"session_id": "s" + "0" * 20})
            assert refused.is_error
            [text] = refused.content
            assert isinstance(text, TextContent) and "401 unauthorized: Send a live API key" in text.text


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
