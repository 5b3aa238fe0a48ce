"""The local sandbox as an operator meets it: ``strict`` refuses to start with the cause and the fix, ``doctor``
shows the isolation (or why kernels cannot run), and a kernel that cannot start is a setup problem in the thread,
never a provider outage."""

from __future__ import annotations

import asyncio

import pytest

from bot import cli
from tests.e2e.conftest import CHANNEL, Harness

pytestmark = pytest.mark.e2e

NO_UNSHARE = "/nonexistent"
"""A PATH without util-linux's ``unshare``: no namespaces of any kind."""


async def test_run_refuses_to_start_when_strict_isolation_is_out_of_reach(
    harness: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", NO_UNSHARE)
    settings = harness.settings(sandbox="local", openai_api_key=None, local_pool_size=0)
    argv = ["run", "--http", "--host", "127.0.0.1", "--port", "0"]
    code = await asyncio.wait_for(cli.amain(argv, settings=settings, stop=asyncio.Event()), 60)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "DATASTORY_LOCAL_ISOLATION=strict" in err
    assert "the `unshare` command is missing (fix: install util-linux)" in err
    assert "set DATASTORY_LOCAL_ISOLATION=relaxed" in err
    assert "rate limit" not in err and "outage" not in err and "Traceback" not in err


async def test_doctor_names_why_local_kernels_cannot_run(
    harness: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", NO_UNSHARE)
    settings = harness.settings(slack_bot_token=None, openai_api_key=None, sandbox="local")
    assert await cli.amain(["doctor"], settings=settings) == 1
    out = capsys.readouterr().out
    assert "✗ Sandbox: local kernels cannot run here (isolation strict): The local sandbox cannot give every" in out
    assert "install util-linux" in out


async def test_doctor_shows_relaxed_isolation_and_what_strict_would_need(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = harness.settings(slack_bot_token=None, openai_api_key=None, sandbox="local", local_isolation="relaxed")
    assert await cli.amain(["doctor"], settings=settings) == 0
    out = capsys.readouterr().out
    assert "✓ Sandbox: local kernels run code; mode: relaxed (DATASTORY_LOCAL_ISOLATION=relaxed, " in out
    assert "missing for strict: " in out


async def test_a_kernel_that_cannot_start_is_a_setup_problem_in_the_thread(harness: Harness) -> None:
    # 256 MB of address space cannot hold pandas and matplotlib: the kernel's warm-up fails on every start.
    bot = await harness.start(sandbox="local", openai_api_key=None, local_pool_size=0, local_memory_mb=256)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"], timeout=60)
    status = harness.status_of(CHANNEL, event["ts"])
    assert status is not None
    assert status.text.startswith(":warning: The code sandbox cannot run on the bot's machine: a local setup "
                                  "problem, not an outage. The local kernel did not start: "), status.text
    assert "Fix: raise DATASTORY_LOCAL_MEMORY_MB" in status.text
    assert "rate limit" not in status.text


async def test_the_bots_own_files_are_private(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    await bot.shutdown()
    for path in harness.tmp.glob("bot.db*"):
        assert path.stat().st_mode & 0o777 == 0o600, path
