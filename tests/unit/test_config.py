"""Settings: environment names, defaults, validation messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config import Settings
from bot.store.base import ThreadKey
from bot.turns import container_name


def test_reads_ecosystem_and_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("DATASTORY_IDLE_MINUTES", "45")
    monkeypatch.setenv("DATASTORY_ALLOWED_CHANNELS", "C1, C2,")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.slack_bot_token is not None and s.slack_bot_token.get_secret_value() == "xoxb-1"
    assert s.slack_api_url == "http://127.0.0.1:9/api/"
    assert s.idle_minutes == 45 and s.container_idle_minutes == 20
    assert s.allowed_channels == ["C1", "C2"]
    assert "xoxb-1" not in repr(s)


def test_defaults_match_the_contract() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.slack_api_url == "https://slack.com/api/"
    assert s.sandbox == "openai"
    assert s.database_url == "sqlite:///./datastory.db"
    assert (s.idle_minutes, s.batch_ttl_minutes, s.container_prefix, s.max_file_mb) == (20, 5, "datastory-", 512)
    assert s.allowed_channels == [] and s.allowed_users == []


@pytest.mark.parametrize(("field", "value"), [("slack_api_url", "slack.com/api"), ("database_url", "mysql://x"),
                                              ("batch_ttl_minutes", 30), ("sandbox", "docker")])
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{field: value})  # type: ignore[call-arg]


def test_missing_for_slack_names_variables() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.missing_for_slack(socket_mode=True) == ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "OPENAI_API_KEY"]
    assert "SLACK_SIGNING_SECRET" in s.missing_for_slack(socket_mode=False)


def test_container_names_keep_the_prefix_and_a_bounded_length() -> None:
    key = ThreadKey("T1", "C1", "1700000000.000100")
    assert container_name("datastory-", key) == "datastory-T1-C1-1700000000.000100"
    long = container_name("datastory-", ThreadKey("T" * 40, "C" * 30, "1700000000.000100"))
    assert long.startswith("datastory-") and len(long) == 64
    assert long != container_name("datastory-", ThreadKey("T" * 40, "C" * 31, "1700000000.000100"))
