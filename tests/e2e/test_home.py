"""The App Home tab: opening it publishes the person's recent analyses (with links to their threads), their
digests and a short guide, with ``views.publish``; someone the bot may not serve sees only why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.access import USER_REFUSAL
from bot.demo import slack_events as ev
from tests.e2e.conftest import CHANNEL, USER, Harness

pytestmark = pytest.mark.e2e


def texts(view: dict[str, Any]) -> list[str]:
    return [str((b.get("text") or {}).get("text") or "") for b in view["blocks"]] + [
        str(e.get("text") or "") for b in view["blocks"] for e in b.get("elements") or []]


async def test_home_tab_lists_recent_analyses_digests_and_a_guide(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv", text="which region sells most?")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    other = harness.file_event("other.csv", user="U2")
    await bot.send(other)
    await harness.wait_done(other["ts"])

    assert (await bot.send(ev.app_home_opened(USER))).status == 200
    await harness.wait_for(lambda: USER in harness.slack.home_views)
    [call] = harness.slack.recorder.calls("views.publish")
    assert call.params["user_id"] == USER
    view = json.loads(call.params["view"]) if isinstance(call.params["view"], str) else call.params["view"]
    assert view == harness.slack.home_views[USER] and view["type"] == "home"
    shown = texts(view)
    assert shown[0] == "datastory" and "*Your recent analyses*" in shown
    [recent] = [t for t in shown if t.startswith("• which region sells most?")]
    assert "answered" in recent and harness.slack.permalink(CHANNEL, event["ts"]) in recent
    assert not any("other.csv" in t for t in shown)  # only the person's own questions
    assert "No digests scheduled." in shown and any(t.startswith("*How to use datastory*") for t in shown)

    assert (await bot.send(ev.app_home_opened(USER, tab="messages"))).status == 200
    assert (await bot.send(ev.app_home_opened("U2"))).status == 200
    await harness.wait_for(lambda: "U2" in harness.slack.home_views)
    assert len(harness.slack.recorder.calls("views.publish")) == 2  # the Messages tab needs no view


async def test_someone_off_the_allowlist_sees_only_why(harness: Harness) -> None:
    bot = await harness.start(allowed_users=[USER])
    assert (await bot.send(ev.app_home_opened("U9"))).status == 200
    await harness.wait_for(lambda: "U9" in harness.slack.home_views)
    [only] = harness.slack.home_views["U9"]["blocks"]
    assert only["text"]["text"] == USER_REFUSAL
