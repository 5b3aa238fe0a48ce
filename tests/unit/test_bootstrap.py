"""The composition root: ``bootstrap`` builds each part once, ``aclose`` closes what it opened in reverse order,
and a start-up that fails half-way (a database behind the head with ``DATASTORY_MIGRATE=false``, a missing token)
leaves nothing open: no "Unclosed client session" from aiohttp."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.backends import ConfigurationError
from bot.bootstrap import bootstrap
from bot.config import Settings
from bot.store.revisions import SchemaNotAtHead
from tests.unit import legacy_schema


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": "xoxb-1", "slack_signing_secret": "s", "openai_api_key": "sk-1",
        "openai_base_url": "http://127.0.0.1:9/v1", "slack_api_url": "http://127.0.0.1:9/api/",
        "database_url": f"sqlite:///{tmp_path / 'bot.db'}",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


HEARD: list[str] = []


@pytest.fixture(autouse=True)
async def listen_to_the_loop() -> AsyncIterator[None]:
    """Record what the loop's exception handler hears during the test (aiohttp reports leaked sessions there)."""
    HEARD.clear()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: HEARD.append(str(context.get("message"))))
    yield
    loop.set_exception_handler(None)


def unclosed_reports() -> list[str]:
    gc.collect()
    return [m for m in HEARD if "Unclosed" in m]


async def test_everything_is_built_once_and_closed_in_reverse_order(tmp_path: Path) -> None:
    services = await bootstrap(settings(tmp_path))
    worker, poster, job = services.require_worker(), services.require_poster(), services.require_digest_job()
    assert services.require_sweeper() is services.sweeper and services.access is not None
    assert job is services.digest_job and worker is services.worker and poster is services.poster
    session = services.slack_session
    assert session is not None and not session.closed and await services.store.ping()
    await services.aclose()
    assert session.closed and not await services.store.ping()
    await services.aclose()  # idempotent
    assert unclosed_reports() == []


async def test_parts_not_asked_for_are_not_built(tmp_path: Path) -> None:
    services = await bootstrap(settings(tmp_path, slack_bot_token=None), slack=False, sandbox=False)
    try:
        assert (services.backends, services.poster, services.worker, services.slack_session) == (None, None, None,
                                                                                                 None)
        with pytest.raises(RuntimeError, match="the turn worker"):
            services.require_worker()
        assert await services.store.list_digests() == []
    finally:
        await services.aclose()


async def refusal(settings: Settings) -> str:
    """Why ``bootstrap`` refused (the exception and its frames are dropped, so only leaks stay referenced)."""
    try:
        await bootstrap(settings)
    except (SchemaNotAtHead, ConfigurationError) as exc:
        return str(exc)
    raise AssertionError("bootstrap did not refuse")


async def test_a_start_refused_half_way_leaves_nothing_open(tmp_path: Path) -> None:
    behind = settings(tmp_path, migrate=False)
    await legacy_schema.build_database(behind.database_url, upto=4)
    # the Slack session and the backends were built before the store refused
    assert "schema is at 0004" in await refusal(behind)
    assert unclosed_reports() == []
