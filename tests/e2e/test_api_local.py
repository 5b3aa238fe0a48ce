"""The HTTP API end to end on the local sandbox and the offline analyst: upload → analyze → refine → download."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.api_harness import SALES_CSV, create_key, local_settings, running

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
