"""How Slack reads a message's text: the control sequences in it that are live (mentions, links), for assertions.

Slack parses ``<…>`` in message text (and in ``mrkdwn`` text objects): ``<!channel>``, ``<!here>``,
``<!everyone>``, ``<!subteam^ID>``, ``<!date^…>``, ``<@U…>``, ``<#C…>``, ``<url>`` and ``<url|label>``; it decodes
only ``&amp;``, ``&lt;`` and ``&gt;`` for display, so an escaped ``&lt;!here&gt;`` is text. With ``link_names``,
it also links the plain words ``@channel``, ``@here`` and ``@everyone``.

The model here is deliberately more suspicious than Slack: before looking for ``<…>`` it drops invisible
characters (zero-width, bidi controls, soft hyphens) and decodes every other HTML entity (``&#60;``, ``&#x3C;``,
``&LT;``), so a bot that relies on Slack not doing so fails a test instead of a workspace.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

__all__ = ["block_texts", "live_sequences"]

_SEQUENCE = re.compile(r"<([^<>]+)>")
_PLAIN_BROADCAST = re.compile(r"(?<![\w&])@(channel|here|everyone)\b", re.IGNORECASE)
_KEPT_ENTITIES = {"&amp;": "\ue101", "&lt;": "\ue102", "&gt;": "\ue103"}


def _suspicious_decode(text: str) -> str:
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf" and ch != "\u00ad")
    for entity, stand_in in _KEPT_ENTITIES.items():
        visible = visible.replace(entity, stand_in)
    decoded = html.unescape(visible)
    for entity, stand_in in _KEPT_ENTITIES.items():
        decoded = decoded.replace(stand_in, entity)
    return decoded


def block_texts(value: Any) -> list[str]:
    """The texts of every text object in Block Kit ``value``."""
    if isinstance(value, list):
        return [t for v in value for t in block_texts(v)]
    if not isinstance(value, dict):
        return []
    own = [str(value["text"])] if value.get("type") in ("mrkdwn", "plain_text") and value.get("text") else []
    return own + [t for k, v in value.items() if k != "text" or not own for t in block_texts(v)]


def live_sequences(text: str, *, link_names: bool = False) -> list[str]:
    """Every control sequence of ``text`` Slack would act on (or might, see the module docstring), in order."""
    decoded = _suspicious_decode(text)
    found = [match.group(0) for match in _SEQUENCE.finditer(decoded)]
    if link_names:
        found += [match.group(0) for match in _PLAIN_BROADCAST.finditer(decoded)]
    return found
