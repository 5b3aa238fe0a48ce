"""The model's Markdown as it arrives, cut into pieces that are safe to show now and to split between messages.

A streamed answer is shown while the model writes it, so text is released in pieces (:class:`ReleasedText`):

- prose up to its last space (a word is never cut), so the reader sees it at once;
- a line that may hold a link (``[``, ``sandbox:``) only when it is complete, so sandbox links can be rewritten as
  the posted answer rewrites them (:func:`bot.formatting.unlink_sandbox`);
- a table or a fenced code block only as a whole (when a line after it shows it ended), so a table is never shown
  half-drawn and a message can always end before it.

:func:`paragraph_cuts` gives the places a message may end: paragraph breaks outside tables and code blocks. A long
answer is split at the last of them that fits (:func:`fit`), never inside a table.
"""

from __future__ import annotations

import re

from bot.formatting import unlink_sandbox

_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_HOLD_PARTIAL = ("[", "sandbox:")
_BLOCK_START = ("|", "`", "~")


def safe_end(text: str, start: int = 0) -> int:
    """The end of what may be shown of ``text`` (from ``start``, a place outside any table or code block)."""
    pos = safe = start
    in_fence = in_table = False
    while (nl := text.find("\n", pos)) >= 0:
        line = text[pos:nl]
        if in_fence:
            if _FENCE.match(line):
                in_fence = False
                safe = nl + 1
        elif _TABLE_ROW.match(line):
            in_table = True
        else:
            if in_table:
                safe = pos  # the table ended before this line
                in_table = False
            if _FENCE.match(line):
                in_fence = True
            else:
                safe = nl + 1
        pos = nl + 1
    partial = text[pos:]
    stripped = partial.lstrip()
    if in_fence or not stripped:
        return safe
    if in_table:
        if stripped.startswith("|"):
            return safe
        safe = pos
    if stripped.startswith(_BLOCK_START) or any(h in partial for h in _HOLD_PARTIAL):
        return safe
    space = max(partial.rfind(" "), partial.rfind("\t"))
    return pos + space + 1 if space > 0 else safe


def paragraph_cuts(text: str) -> list[int]:
    """Where a message may end in ``text`` (which starts outside any block): after each blank line that is not
    inside a table or a fenced code block."""
    cuts: list[int] = []
    pos = 0
    in_fence = False
    previous_blank = False
    while (nl := text.find("\n", pos)) >= 0:
        line = text[pos:nl]
        if _FENCE.match(line):
            in_fence = not in_fence
        blank = not line.strip()
        if blank and not in_fence and not previous_blank:
            cuts.append(nl + 1)
        previous_blank = blank
        pos = nl + 1
    return cuts


def fit(piece: str, room: int) -> int:
    """How much of ``piece`` goes into a message with ``room`` characters left: all of it, else up to its last
    paragraph break that fits (0 when none does)."""
    if len(piece) <= room:
        return len(piece)
    fitting = [c for c in paragraph_cuts(piece) if c <= room]
    return fitting[-1] if fitting else 0


def fit_message(piece: str, shown: str, chars: int) -> int:
    """How much of ``piece`` goes into a message of at most ``chars`` characters that shows ``shown``:
    :func:`fit`, except that a message with nothing in it takes a paragraph longer than a message cut at its last
    line that fits, at worst anywhere (0: the message is full, go on in a new one)."""
    room = chars - len(shown)
    n = fit(piece, room)
    if n or not piece or shown:
        return n
    cut = piece.rfind("\n", 0, room)
    return cut + 1 if cut > 0 else room


class ReleasedText:
    """Text received in deltas and released in safe pieces (see the module docstring)."""

    def __init__(self) -> None:
        self._text = ""
        self._released = 0

    @property
    def received(self) -> str:
        """Everything received so far."""
        return self._text

    def add(self, delta: str) -> None:
        """More text from the model."""
        self._text += delta

    def take(self, *, final: bool = False) -> str:
        """The text that may be shown now and was not taken before (all of it when ``final``), sandbox links
        rewritten; leading whitespace of what follows goes with it (Slack may drop it at the start of a chunk)."""
        end = len(self._text) if final else safe_end(self._text, self._released)
        while end < len(self._text) and self._text[end] in " \t\n" and not final:
            end += 1
        if end <= self._released:
            return ""
        piece = self._text[self._released:end]
        self._released = end
        return unlink_sandbox(piece)
