"""The README keeps its promises: every setting documented, the two set-up commands present."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table() -> None:
    for name in Settings.model_fields:
        env = Settings.env_name(name)
        assert f"| `{env}` |" in README, env


def test_the_two_commands_are_there() -> None:
    assert 'pip install . && datastory try examples/sales.csv' in README
    assert 'pip install -e ".[test]" && pytest' in README
    assert (Path(__file__).resolve().parents[2] / "examples" / "sales.csv").is_file()
