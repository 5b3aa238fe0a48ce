"""Turning the model's Markdown into Slack messages: mrkdwn conversion, long-answer splitting, status texts.

Conversion is done by ``slackify-markdown`` (markdown-it based) with a renderer of our own for the parts where its
output would let the model's text act in Slack: every text, code span and code block is escaped completely (the
library lets ``<@…>``, ``<#…>`` and ``<!…>`` through, and markdown-it has already turned ``&lt;`` back into ``<``),
and a link is written as ``label (https://…)`` or as the bare URL, so what a reader sees is where it goes; links
to other schemes show their target as code and are not links. Three things are prepared before it runs: ``<`` is
hidden from the converter (the model's ``<…>`` is text, never an autolink or HTML), ``sandbox:/mnt/data/...`` links
become plain file names (the files are attached to the thread), and Markdown tables are fenced as code, since
Slack cannot render tables. This is not the safety net: :func:`bot.slack_text.finalise` escapes every text again
at the last step before Slack.
"""

from __future__ import annotations

import html
import re
from typing import Any

from markdown_it.token import Token
from slackify_markdown.slackify import SlackifyMarkdown

from bot.slack_text import one_line

SLACK_TEXT_LIMIT = 3900
"""Slack rejects messages around 4,000 characters (``msg_too_long``); stay under it with room for a footer."""
ANSWER_CHARS = 40_000
"""The longest narrative posted (about ten messages); a longer one is cut, and says so."""
NO_NARRATIVE = "_The analysis produced no narrative._"

_SANDBOX_LINK = re.compile(r"!?\[([^\]]*)\]\(sandbox:[^)]*\)")
_BARE_SANDBOX = re.compile(r"sandbox:/mnt/data/([\w.\-]*[\w\-])")
_BULLET = re.compile(r"^(\s*)•\s+", re.MULTILINE)
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LT = "\ue000"  # a private-use character stands in for "<" while the converter runs


def unlink_sandbox(markdown: str) -> str:
    """``sandbox:`` links (files in the container, attached to the thread instead) as the file's name in code."""
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


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _is_web(url: str) -> bool:
    return url.lower().startswith(("https://", "http://"))


def _shown_link(label: str, url: str) -> str:
    """What follows a link's label: `` (url)`` for the web, `` (`target`)`` as code for other schemes, nothing when
    the label already is the URL."""
    if label.strip() == url:
        return ""
    return f" ({_escape(url)})" if _is_web(url) else f" (`{_escape(url)}`)"


class _SafeRenderer(SlackifyMarkdown):  # type: ignore[misc]  # the library has no type hints
    """slackify-markdown's renderer with every text escaped and links shown as ``label (url)``."""

    def text(self, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        return _escape(tokens[idx].content)

    def code_inline(self, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        return f"`{_escape(tokens[idx].content)}`"

    def fence(self, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        content = re.sub(r"^#!.*?\n", "", tokens[idx].content)
        return f"```\n{_escape(content)}```\n"

    code_block = fence

    def link_open(self, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        return ""

    def link_close(self, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        start = max(i for i in range(idx) if tokens[i].type == "link_open")
        label = "".join(t.content for t in tokens[start + 1:idx] if t.type in ("text", "code_inline"))
        return _shown_link(label, str(tokens[start].attrs.get("href", "")))

    def image(self, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
        alt = tokens[idx].content or str(tokens[idx].attrs.get("title", ""))
        return _escape(alt) + _shown_link(alt, str(tokens[idx].attrs.get("src", "")))


def to_mrkdwn(markdown: str) -> str:
    """Convert the model's Markdown into Slack mrkdwn (escaped, links shown, tables fenced, sandbox links unlinked)."""
    if not markdown.strip():
        return ""
    prepared = _fence_tables(unlink_sandbox(markdown)).replace(_LT, "").replace("<", _LT)
    converted: str = _SafeRenderer(prepared).slackify()
    return _BULLET.sub(r"\1• ", converted.replace(_LT, "&lt;")).strip()


def narrative(markdown: str) -> str:
    """The model's answer as it is posted: cut at :data:`ANSWER_CHARS` (saying so), converted with
    :func:`to_mrkdwn`, a placeholder when empty. CPU work on a long answer: the callers run it in a thread."""
    cut = len(markdown) > ANSWER_CHARS
    text = to_mrkdwn(markdown[:ANSWER_CHARS]) or NO_NARRATIVE
    return text + (f"\n\n_(The answer was cut at {ANSWER_CHARS:,} characters.)_" if cut else "")


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
    quoted = [f"`{one_line(n)}`" for n in names]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def seconds(value: float) -> str:
    """``12.34`` → ``12.3 s``; ``75`` → ``1 min 15 s``."""
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes} min {secs} s"
