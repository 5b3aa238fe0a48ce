"""Hosted workspaces priced by the minute alive, with the provider's minimum (``/datastory status``)."""

from __future__ import annotations

import pytest

from bot.sandbox.base import ContainerInfo
from bot.status import alive_minutes, container_cost

DAY = 1_750_032_000.0  # a UTC midnight


def test_container_cost_is_by_the_minute_with_a_minimum() -> None:
    assert container_cost(2, session_usd=0.03, minimum_minutes=5) == pytest.approx(0.0075)  # 5 min of a 20-min session
    assert container_cost(20, session_usd=0.03, minimum_minutes=5) == pytest.approx(0.03)
    assert container_cost(47, session_usd=0.12, minimum_minutes=5) == pytest.approx(0.282)
    assert container_cost(0.5, session_usd=0.48, minimum_minutes=0) == pytest.approx(0.012)


def test_alive_minutes_counts_today_and_stops_at_expiry() -> None:
    running = ContainerInfo(id="c1", name="n", status="running", created_at=DAY + 600, last_active_at=DAY + 900)
    assert alive_minutes(running, now=DAY + 1800, since=DAY) == pytest.approx(20)
    overnight = ContainerInfo(id="c2", name="n", status="running", created_at=DAY - 3600, last_active_at=DAY)
    assert alive_minutes(overnight, now=DAY + 600, since=DAY) == pytest.approx(10)  # yesterday's hour not today's
    expired = ContainerInfo(id="c3", name="n", status="expired", created_at=DAY, last_active_at=DAY + 300)
    assert alive_minutes(expired, now=DAY + 7200, since=DAY) == pytest.approx(25)  # 5 min used + 20 idle
    never_used = ContainerInfo(id="c4", name="n", status="expired", created_at=DAY + 60)
    assert alive_minutes(never_used, now=DAY + 7200, since=DAY) == pytest.approx(20)
