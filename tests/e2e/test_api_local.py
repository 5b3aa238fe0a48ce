"""The HTTP API end to end on the local sandbox and the offline analyst: upload → analyze → refine → download."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from pathlib import Path

import pytest
from aiohttp import web

from bot import cli
from bot.api.app import open_api_app
from bot.jobs.sweeper import build_sweeper
from tests.e2e.api_harness import SALES_CSV, RunningApi, create_key, local_settings, running

pytestmark = pytest.mark.e2e


async def test_upload_analyze_refine_download_offline(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    key = await create_key(settings)
    async with running(settings) as api:
        status, session = await api.upload(key, ("sales.csv", SALES_CSV))
        assert status == 201, session
        [f] = session["files"]
        assert (f["name"], f["rows"], f["columns"]) == ("sales.csv", 36, 4)
        assert f["dtypes"]["revenue"] in ("integer", "number", "int", "float")
        sid = session["session_id"]
        status, analysis, _ = await api.call("POST", f"/v1/sessions/{sid}/analyze", key)
        assert status == 200, analysis
        angles = analysis["angles"]
        assert len(angles) >= 2
        assert any("revenue" in a["title"] for a in angles), angles
        status, story, _ = await api.call("POST", f"/v1/sessions/{sid}/refine", key, json={"angle_id": angles[0]["id"]})
        assert status == 200, story
        assert "revenue" in story["narrative"] and story["code"]
        assert story["charts"], story
        status, png, headers = await api.call("GET", story["charts"][0]["url"], key)
        assert status == 200 and png.startswith(b"\x89PNG")
        assert headers["Content-Type"] == "image/png"
        status, shown, _ = await api.call("GET", f"/v1/sessions/{sid}", key)
        assert [t["kind"] for t in shown["turns"]] == ["analyze", "refine"]
        assert all(t["status"] == "done" for t in shown["turns"])
    listed = io.StringIO()
    with contextlib.redirect_stdout(listed):
        assert await cli.amain(["api-key", "list"], settings=settings) == 0
    [header, row] = listed.getvalue().splitlines()
    assert header == "id\tname\tcreated\tlast used\trevoked"
    key_id, name, _, last_used, revoked = row.split("\t")
    assert key.startswith(f"ds_{key_id}_") and name == "tests" and last_used.startswith("20") and revoked == "-"


async def test_refine_after_the_sweeper_took_the_workspace_rebuilds_it(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    key = await create_key(settings)
    app = await open_api_app(settings)
    runner = web.AppRunner(app.web, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    api = RunningApi(url=f"http://{host}:{port}", settings=settings, stop=asyncio.Event(),
                     task=asyncio.create_task(asyncio.sleep(0)))
    try:
        _, session = await api.upload(key, ("sales.csv", SALES_CSV))
        sid = session["session_id"]
        status, analysis, _ = await api.call("POST", f"/v1/sessions/{sid}/analyze", key)
        assert status == 200, analysis
        [thread] = [t for t in await app.store.list_threads() if t.key.thread_ts == sid]
        assert thread.source == "api" and thread.container_id
        sweeper = build_sweeper(settings, store=app.store, sandbox=app.services.require_backends().sandbox)
        report = await sweeper.run_once(time.time() + 3 * 3600)  # idle for hours: swept like a Slack thread
        assert thread.container_id in report.deleted_idle
        assert thread.container_id not in {c.id for c in await app.services.require_backends().sandbox.list_containers(
            prefix=settings.container_prefix)}
        status, story, _ = await api.call("POST", f"/v1/sessions/{sid}/refine", key,
                                          json={"angle_id": analysis["angles"][0]["id"]})
        assert status == 200, story
        assert story["charts"] and "revenue" in story["narrative"]
        [rebuilt] = [t for t in await app.store.list_threads() if t.key.thread_ts == sid]
        assert rebuilt.container_id and rebuilt.container_id != thread.container_id
    finally:
        await api.http.close()
        await runner.cleanup()
