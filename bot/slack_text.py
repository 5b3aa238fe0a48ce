"""The last step before Slack: every text the bot posts is escaped here, and only mentions the bot made render live.

Slack reads ``<…>`` in a message as a control sequence: ``<!channel>``, ``<!here>``, ``<!everyone>``,
``<!subteam^…>``, ``<@U…>``, ``<#C…>`` and masked links ``<url|label>``. What the bot posts comes from a model that
read data anyone could write, from file and column names and from people's questions, so :func:`finalise` runs on
every text the bot sends (the Slack gateway calls it on each message, update, ephemeral, block and upload comment;
the handlers on each slash-command and button answer), after every conversion, and makes sure none of it can form
one:

* characters that hide what Slack will read are removed: control characters other than newline and tab, format
  characters (zero-width spaces and joiners, bidirectional overrides, tag characters), private-use characters and
  lone surrogates; line and paragraph separators become newlines;
* every ``<`` becomes ``&lt;`` and every ``>`` ``&gt;`` (a quote line still renders: Slack writes ``&gt;`` itself),
  and every ``&`` that does not start ``&amp;``, ``&lt;`` or ``&gt;`` becomes ``&amp;``. Slack decodes only those
  three entities, so ``&#60;!here&#62;`` stays text, and text escaped once is not escaped twice.

A mention the bot adds itself (the asker, a digest's owner, a channel) is never written as ``<@U…>``: it is made
with :func:`mention` or :func:`channel_link`, which return a token signed with a key random to this process, and
:func:`finalise` renders a token as the live sequence only when its signature holds. Text from anywhere else (a
model, a file, a question) cannot forge one, whatever it contains.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from typing import Any

__all__ = ["channel_link", "clean", "finalise", "finalise_blocks", "mention", "one_line"]

_KEY = secrets.token_bytes(32)
"""Signs the mention tokens of this process; never leaves it."""
_OPEN, _SEP, _CLOSE = "\uf8f0", "\uf8f1", "\uf8f2"  # private use: removed from any text that is not a token
_TAG_CHARS = 24
_TOKEN = re.compile(f"{_OPEN}([@#][A-Z0-9]{{2,24}}){_SEP}([0-9a-f]{{{_TAG_CHARS}}}){_CLOSE}")
_USER_ID = re.compile(r"[UW][A-Z0-9]{1,23}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{1,23}")
_LONE_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt);)")
_ASCII_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
_ZWJ = "\u200d"
_KEEP_FORMAT_AFTER = frozenset({"So", "Sk", "Mn"})
"""A zero-width joiner is kept only inside an emoji sequence (after a symbol, a skin tone or a variation selector)."""


def _sign(target: str) -> str:
    return hmac.new(_KEY, target.encode(), hashlib.sha256).hexdigest()[:_TAG_CHARS]


def _token(target: str) -> str:
    return f"{_OPEN}{target}{_SEP}{_sign(target)}{_CLOSE}"


def mention(user: str) -> str:
    """A live ``<@U…>`` for a user id the bot itself puts in a message (an id that is not one stays text)."""
    return _token("@" + user) if _USER_ID.fullmatch(user) else user


def channel_link(channel: str) -> str:
    """A live ``<#C…>`` for a channel id the bot itself puts in a message."""
    return _token("#" + channel) if _CHANNEL_ID.fullmatch(channel) else channel


def clean(text: str) -> str:
    """``text`` without the characters that hide what a reader sees (see the module docstring); ``\\r\\n`` → ``\\n``."""
    text = text.replace("\r\n", "\n")
    if text.isascii():
        return _ASCII_CONTROLS.sub("", text)
    out: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc":
            if ch in "\n\t":
                out.append(ch)
        elif category in ("Zl", "Zp"):
            out.append("\n")
        elif category == "Cf":
            if ch == _ZWJ and out and unicodedata.category(out[-1]) in _KEEP_FORMAT_AFTER:
                out.append(ch)
        elif category not in ("Co", "Cs"):
            out.append(ch)
    return "".join(out)


def one_line(text: str, *, limit: int = 120) -> str:
    """A name for one line of a message or prompt (a file name, a column): cleaned, whitespace runs (newlines
    included) made one space, backticks made quotes (so it stays inside a code span), cut at ``limit``."""
    flat = " ".join(clean(text).replace("`", "'").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _escape(text: str) -> str:
    return _LONE_AMPERSAND.sub("&amp;", clean(text)).replace("<", "&lt;").replace(">", "&gt;")


def finalise(text: str) -> str:
    """The text to send to Slack: everything escaped, the bot's own signed mentions made live."""
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        out.append(_escape(text[pos:match.start()]))
        target, tag = match.groups()
        out.append(f"<{target}>" if hmac.compare_digest(tag, _sign(target)) else _escape(target))
        pos = match.end()
    out.append(_escape(text[pos:]))
    return "".join(out)


def finalise_blocks(blocks: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Block Kit blocks with every ``mrkdwn`` text finalised and every ``plain_text`` (and data table cell text,
    ``raw_text``/``raw_number``) cleaned (a copy)."""
    if blocks is None:
        return None
    return [_finalise_value(block) for block in blocks]


def _finalise_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_finalise_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _finalise_value(v) for k, v in value.items()}
    if isinstance(out.get("text"), str) and out.get("type") == "mrkdwn":
        out["text"] = finalise(out["text"])
    elif isinstance(out.get("text"), str) and out.get("type") in ("plain_text", "raw_text", "raw_number"):
        out["text"] = clean(_TOKEN.sub(lambda m: m.group(1), out["text"]))
    return out
