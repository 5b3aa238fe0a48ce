"""``GET /metrics`` kept private: a bearer token (``DATASTORY_METRICS_TOKEN``), a listener of its own
(``DATASTORY_METRICS_BIND``), or both; ``/healthz`` and Slack's endpoint are unaffected."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from pydantic import ValidationError

from bot.config import Settings
from tests.e2e.conftest import Harness

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(url: str, token: str | None = None) -> tuple[int, str, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.text(), resp.headers.get("WWW-Authenticate", "")


async def test_a_metrics_token_is_needed_when_set(harness: Harness) -> None:
    bot = await harness.start(metrics_token="s3cret-metrics")
    status, body, challenge = await get(bot.url + "/metrics")
    assert status == 401 and challenge.startswith("Bearer") and "datastory_ready" not in body
    assert (await get(bot.url + "/metrics", "wrong"))[0] == 401
    status, body, _ = await get(bot.url + "/metrics", "s3cret-metrics")
    assert status == 200 and "datastory_ready 1" in body
    assert (await get(bot.url + "/healthz"))[0] == 200


async def test_metrics_bound_to_their_own_listener_are_not_served_on_the_public_one(harness: Harness) -> None:
    port = free_port()
    bot = await harness.start(metrics_bind=f"127.0.0.1:{port}", metrics_token="t")
    assert (await get(bot.url + "/metrics", "t"))[0] == 404
    status, body, _ = await get(f"http://127.0.0.1:{port}/metrics", "t")
    assert status == 200 and "datastory_turns_running 0" in body
    assert (await get(f"http://127.0.0.1:{port}/metrics"))[0] == 401  # the token still applies there
    assert (await get(bot.url + "/healthz"))[0] == 200


def test_a_bind_address_must_be_host_and_port() -> None:
    for wrong in ("9464", "localhost", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(ValidationError, match="DATASTORY_METRICS_BIND must be HOST:PORT"):
            Settings(_env_file=None, metrics_bind=wrong)  # type: ignore[call-arg]
    assert Settings(_env_file=None, metrics_bind="[::1]:9464").metrics_address == ("::1", 9464)  # type: ignore[call-arg]
