"""Turning the model's Markdown into Slack messages: mrkdwn conversion, long-answer splitting, status texts.

Conversion is done by ``slackify-markdown`` (markdown-it based; it escapes ``&``, ``<`` and ``>``, so text from
the model, except raw ``<...>`` HTML, which it passes through: so every ``<`` of the model's text is escaped
here, and the model can never form a ``<!channel>`` mention or a fake link). Three things are prepared before it
runs: ``<`` is hidden from the converter,
``sandbox:/mnt/data/...`` links become plain file names (the files are attached to the thread), and Markdown
tables are fenced as code, since Slack cannot render tables.
"""

from __future__ import annotations

import re

from slackify_markdown import slackify_markdown

SLACK_TEXT_LIMIT = 3900
"""Slack rejects messages around 4,000 characters (``msg_too_long``); stay under it with room for a footer."""

_SANDBOX_LINK = re.compile(r"!?\[([^\]]*)\]\(sandbox:[^)]*\)")
_BARE_SANDBOX = re.compile(r"sandbox:/mnt/data/([\w.\-]*[\w\-])")
_BULLET = re.compile(r"^(\s*)•\s+", re.MULTILINE)
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LT = "\ue000"  # a private-use character stands in for "<" while the converter runs


def _unlink_sandbox(markdown: str) -> str:
    def label(match: re.Match[str]) -> str:
        text = match.group(1).strip()
        return f"`{text}`" if text else "the attached file"

    return _BARE_SANDBOX.sub(r"`\1`", _SANDBOX_LINK.sub(label, markdown))


def _fence_tables(markdown: str) -> str:
    out: list[str] = []
    in_fence = False
    in_table = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        is_row = not in_fence and bool(_TABLE_ROW.match(line))
        if is_row and not in_table:
            out.append("```")
            in_table = True
        elif not is_row and in_table:
            out.append("```")
            in_table = False
        out.append(line)
    if in_table:
        out.append("```")
    return "\n".join(out)


def to_mrkdwn(markdown: str) -> str:
    """Convert the model's Markdown into Slack mrkdwn (escaped, tables fenced, sandbox links unlinked)."""
    if not markdown.strip():
        return ""
    prepared = _fence_tables(_unlink_sandbox(markdown)).replace(_LT, "").replace("<", _LT)
    converted: str = slackify_markdown(prepared)
    return _BULLET.sub(r"\1• ", converted.replace(_LT, "&lt;")).strip()


def split_message(text: str, *, limit: int = SLACK_TEXT_LIMIT) -> list[str]:
    """Split ``text`` into messages of at most ``limit`` characters.

    Cuts at paragraph breaks, then line breaks, then spaces, and only as a last resort inside a word. A code
    block that spans a cut is closed before it and reopened after it, so every part renders on its own.
    """
    if limit < 20:
        raise ValueError("limit too small")
    parts: list[str] = []
    rest = text.strip()
    reopen = ""
    while rest:
        rest = reopen + rest
        if len(rest) <= limit:
            parts.append(rest)
            break
        window = rest[: limit - 4]  # room for a closing fence
        cut = max(window.rfind("\n\n"), 0) or max(window.rfind("\n"), 0) or max(window.rfind(" "), 0)
        if cut < limit // 3:
            cut = len(window)
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n ")
        reopen = ""
        if head.count("```") % 2 == 1:
            head += "\n```"
            reopen = "```\n"
        parts.append(head)
    return [p for p in parts if p.strip()]


def human_size(size: int) -> str:
    """``1536`` → ``1.5 KB``."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


def names_list(names: list[str]) -> str:
    """``["a.csv", "b.csv", "c.csv"]`` → ``a.csv, b.csv and c.csv`` (each in backticks)."""
    quoted = [f"`{n}`" for n in names]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def seconds(value: float) -> str:
    """``12.34`` → ``12.3 s``; ``75`` → ``1 min 15 s``."""
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes} min {secs} s"
