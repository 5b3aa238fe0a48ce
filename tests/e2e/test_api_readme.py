"""The README's API client example, verbatim, against ``datastory api`` (local sandbox, offline analyst)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.e2e.api_harness import create_key, local_settings, running

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def readme_client() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## HTTP API"):readme.index("### MCP server")]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return code


async def test_the_readme_client_runs_the_flow_and_saves_the_charts(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    key = await create_key(settings)
    work = tmp_path / "client"
    (work / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "sales.csv", work / "examples" / "sales.csv")
    async with running(settings) as api:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", readme_client(), cwd=work, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "DATASTORY_URL": api.url, "DATASTORY_KEY": key})
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()
        assert (await api.call("GET", "/v1/sessions/none", key))[0] == 404
    printed = out.decode()
    assert printed.startswith("288 rows\na1 ")
    charts = list(work.glob("*.png"))
    assert charts and all(p.read_bytes().startswith(b"\x89PNG") for p in charts)
    assert not list((tmp_path / "api-files").iterdir())  # the example deletes its session
