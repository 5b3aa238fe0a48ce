"""The ``datastory`` command as a user meets it: version, help with examples, what ``run`` still needs, and
``datastory try`` failing with one line (the traceback only at DEBUG). Runs the installed entry point in a child
process where the output is what a terminal would show."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from bot import __version__
from bot.cli import amain, parser

ROOT = Path(__file__).resolve().parents[2]


def datastory(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``datastory ARGS`` in a child process with only ``env`` set (plus PATH and HOME): no .env is read."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], env={**base, **(env or {})},
                          cwd=cwd or tempfile.mkdtemp(), capture_output=True, text=True, timeout=timeout)


def subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand's parser by its full name: ``run``, ``digest run-due``..."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found[child.prog.removeprefix("datastory ")] = child
                found.update(subparsers(child))
    return found


def test_version_is_the_package_version() -> None:
    result = datastory("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"datastory {__version__}" == f"datastory {version('datastory')}"
    assert "version" not in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # one source of truth


def test_no_command_prints_the_help() -> None:
    result = datastory()
    assert result.returncode == 0
    assert result.stdout.startswith("usage: datastory")
    for command in ("run", "try", "sweep", "digest", "migrate", "doctor"):
        assert f"    {command} " in result.stdout
    assert "examples:" in result.stdout


def test_every_command_and_option_has_help_and_an_example() -> None:
    commands = subparsers(parser())
    assert {"run", "try", "sweep", "digest", "digest list", "digest run-due", "migrate", "doctor"} <= commands.keys()
    for name, command in commands.items():
        assert command.description, name
        assert "examples:\n  " in (command.epilog or "") and f"datastory {name}" in (command.epilog or ""), name
        for action in command._actions:
            if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                assert action.help and len(action.help) > 10, (name, action.dest)


def test_run_lists_every_missing_setting_of_http_mode_at_once() -> None:
    result = datastory("run", "--http")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("datastory run: HTTP mode") and "3 more settings" in lines[0]
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "OPENAI_API_KEY"]
    assert "DATASTORY_SANDBOX=local" in result.stderr and "Traceback" not in result.stderr


def test_socket_mode_does_not_ask_for_the_signing_secret() -> None:
    result = datastory("run", env={"SLACK_APP_TOKEN": "xapp-1-test", "DATASTORY_SANDBOX": "local"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "datastory run: Socket Mode (SLACK_APP_TOKEN is set) needs 1 more setting (environment or .env):",
        "  SLACK_BOT_TOKEN: Bot token (xoxb-...) of the Slack app",
    ]
    assert "xapp-1-test" not in result.stderr


async def test_run_with_nothing_set_is_http_mode_and_says_socket_mode_is_the_other_way(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.config import Settings

    code = await amain(["run"], settings=Settings(_env_file=None, sandbox="local"))  # type: ignore[call-arg]
    err = capsys.readouterr().err
    assert code == 2
    assert "SLACK_SIGNING_SECRET" in err and "or set SLACK_APP_TOKEN to connect over Socket Mode" in err
    assert "OPENAI_API_KEY" not in err  # the local sandbox needs no key


def test_try_refuses_a_file_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7")
    result = datastory("try", str(tmp_path / "report.pdf"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("datastory: report.pdf: .pdf is not a type I read; I read .csv")


def test_a_setup_problem_is_one_line_and_the_traceback_comes_at_debug(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "sandboxes"
    not_a_dir.write_text("a file where the sandbox directory should be")
    args = ("try", str(ROOT / "examples" / "sales.csv"), "--out", str(tmp_path / "out"))
    result = datastory(*args, env={"DATASTORY_LOCAL_DIR": str(not_a_dir)}, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("datastory try: ")
    assert str(not_a_dir) in result.stderr and "Traceback" not in result.stderr + result.stdout
    debug = datastory(*args, env={"DATASTORY_LOCAL_DIR": str(not_a_dir), "DATASTORY_LOG_LEVEL": "DEBUG"},
                      cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_file_the_inspector_refuses_ends_the_try_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_bytes(b"\x00\x01\x02\x03 not a table")
    result = datastory("try", str(tmp_path / "data.csv"), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    assert "binary data" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]  # no database or stray file left here
