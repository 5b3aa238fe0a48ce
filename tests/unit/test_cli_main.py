"""The console script's own entry point (on uvloop), end to end through the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main


def test_main_runs_a_command_on_the_real_loop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATASTORY_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert main(["digest", "list"]) == 0
    assert (tmp_path / "cli.db").exists()


def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATASTORY_IDLE_MINUTES", "soon")
    assert main(["digest", "list"]) == 2
    assert capsys.readouterr().err.startswith("datastory: DATASTORY_IDLE_MINUTES: Input should be a valid integer")


def test_ecosystem_variables_are_named_as_such(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLACK_API_URL", "slack.example/api")
    assert main(["digest", "list"]) == 2
    assert capsys.readouterr().err.startswith("datastory: SLACK_API_URL: Value error, SLACK_API_URL must be")
