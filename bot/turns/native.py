"""The Slack-native parts of an answer: its buttons, and Slack's own charts and tables built from the specs.

- The last narrative message carries the answer's buttons (:func:`answer_blocks`): Slack's feedback buttons
  (👍 / 👎, plain buttons where the context actions block is refused) and "Show code" (when code ran), each
  carrying the turn's id (:mod:`handlers.actions`). Its text is also the message's ``text`` (notifications,
  screen readers).
- After the narrative come the native messages (:func:`native_messages`): the charts whose data fits Slack's data
  visualization block, at most :data:`bot.native_blocks.CHARTS_PER_MESSAGE` per message, then each result table
  in a data table block (its first rows; the caption says when the whole table is attached as CSV), then the
  story angles the model offered (up to three buttons; a click asks for that angle's full story in the thread).
- The PNGs (and CSVs) are uploaded into the thread in every case, after these: a native chart never replaces its
  picture. When Slack answers ``invalid_blocks`` (a workspace without the block, a limit we read wrong), a
  two-chart message is tried one chart at a time, then left out, the PNG alone remaining; a refused table is
  posted as text (a monospace excerpt); refused buttons leave the narrative as plain text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.analysts.narrative import format_number
from bot.formatting import split_message
from bot.native_blocks import (
    ANGLES_SUFFIX,
    CHART_SUFFIX,
    CHARTS_PER_MESSAGE,
    TABLE_CHARS_MAX,
    TABLE_SUFFIX,
    ChartSpec,
    TableSpec,
    angle_blocks,
    chart_block,
    parse_angles,
    table_block,
)
from bot.poster import Poster, SlackError
from bot.store.base import ThreadKey

logger = logging.getLogger(__name__)

SHOW_CODE_ACTION = "show_code"
GOOD_ACTION = "feedback_good"
BAD_ACTION = "feedback_bad"
FEEDBACK_ACTION = "feedback"
SECTION_CHARS = 3000
"""A section block's text is at most 3,000 characters (https://docs.slack.dev/reference/block-kit/blocks/section-block)."""
REFUSED = ("invalid_blocks", "invalid_blocks_format")
TEXT_TABLE_ROWS = 15


def _sections(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": part}}
            for part in split_message(text, limit=SECTION_CHARS)]


def answer_actions(*, turn_id: str, has_code: bool) -> list[dict[str, Any]]:
    """The answer's buttons: Slack's feedback buttons in a context actions block
    (https://docs.slack.dev/reference/block-kit/blocks/context-actions-block; values ``good:<turn>`` and
    ``bad:<turn>``), then "Show code"."""
    feedback = {"type": "context_actions", "block_id": f"feedback-{turn_id}"[:255], "elements": [{
        "type": "feedback_buttons", "action_id": FEEDBACK_ACTION,
        "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": f"good:{turn_id}",
                            "accessibility_label": "This answer helped"},
        "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": f"bad:{turn_id}",
                            "accessibility_label": "This answer did not help"}}]}
    blocks: list[dict[str, Any]] = [feedback]
    if has_code:
        blocks.append({"type": "actions", "block_id": f"answer-{turn_id}"[:255], "elements": [
            {"type": "button", "action_id": SHOW_CODE_ACTION, "value": turn_id,
             "text": {"type": "plain_text", "text": "Show code"}}]})
    return blocks


def classic_actions(*, turn_id: str, has_code: bool) -> list[dict[str, Any]]:
    """The same with plain buttons only (a Slack that refuses the context actions block)."""
    buttons: list[dict[str, Any]] = []
    if has_code:
        buttons.append({"type": "button", "action_id": SHOW_CODE_ACTION, "value": turn_id,
                        "text": {"type": "plain_text", "text": "Show code"}})
    buttons += [
        {"type": "button", "action_id": GOOD_ACTION, "value": turn_id,
         "text": {"type": "plain_text", "text": "👍", "emoji": True}},
        {"type": "button", "action_id": BAD_ACTION, "value": turn_id,
         "text": {"type": "plain_text", "text": "👎", "emoji": True}},
    ]
    return [{"type": "actions", "block_id": f"answer-{turn_id}"[:255], "elements": buttons}]


def answer_blocks(text: str, *, turn_id: str, has_code: bool) -> list[dict[str, Any]]:
    """The last narrative message as blocks: its text in sections, then :func:`answer_actions`."""
    return [*_sections(text), *answer_actions(turn_id=turn_id, has_code=has_code)]


def classic_answer_blocks(text: str, *, turn_id: str, has_code: bool) -> list[dict[str, Any]]:
    """The same with plain buttons only (:func:`classic_actions`)."""
    return [*_sections(text), *classic_actions(turn_id=turn_id, has_code=has_code)]


@dataclass(frozen=True, slots=True)
class NativeMessage:
    """One message of Slack-native blocks, its fallback text, and what to post instead when Slack refuses it."""

    kind: str
    """``chart`` or ``table``."""
    text: str
    blocks: list[dict[str, Any]]
    parts: tuple[NativeMessage, ...] = field(default=())
    """Tried one by one when the whole is refused (two charts in one message)."""
    fallback: str = ""
    """Text posted when the blocks are refused (a table's excerpt); empty: nothing (the PNG is in the thread)."""


def _chart_text(spec: ChartSpec) -> str:
    """The chart's data in words, for notifications and screen readers."""
    values = spec.series[0][1] if spec.series else ()
    pairs = ", ".join(f"{c} {format_number(v)}" for c, v in zip(spec.categories, values, strict=False) if v is not None)
    return f"Chart: {spec.title}" + (f" ({pairs})" if pairs and len(spec.series) == 1 else "")


def _text_table(spec: TableSpec) -> str:
    rows = [spec.columns, *[tuple("" if v is None else format_number(v) if isinstance(v, float) else v for v in row)
                            for row in spec.rows[:TEXT_TABLE_ROWS]]]
    widths = [min(24, max(len(str(r[i])) for r in rows)) for i in range(len(spec.columns))]
    lines = ["  ".join(str(v)[:24].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    more = f"\n_First {TEXT_TABLE_ROWS} of {spec.total_rows:,} rows._" if spec.total_rows > TEXT_TABLE_ROWS else ""
    return f"*{spec.title}*\n```\n" + "\n".join(lines) + "\n```" + more


def native_messages(specs: Sequence[tuple[str, bytes]], *, pngs: Sequence[str]) -> list[NativeMessage]:
    """The native messages for a turn's specs: charts whose PNG is posted too and whose data fits, two per
    message, then one message per table, then the story angles (buttons)."""
    charts: list[NativeMessage] = []
    tables: list[NativeMessage] = []
    angles: list[NativeMessage] = []
    for name, data in specs:
        if name.endswith(ANGLES_SUFFIX) and not angles and (found := parse_angles(data)):
            angles.append(NativeMessage(kind="angles", text="Story angles: " + "; ".join(t for t, _ in found),
                                        blocks=angle_blocks(found)))
        if name.endswith(CHART_SUFFIX):
            spec = ChartSpec.parse(data)
            block = chart_block(spec, block_id=f"chart-{len(charts)}") if spec and spec.png in pngs else None
            if spec is not None and block is not None:
                charts.append(NativeMessage(kind="chart", text=_chart_text(spec)[:3000], blocks=[block]))
        elif name.endswith(TABLE_SUFFIX):
            table = TableSpec.parse(data)
            built = table_block(table, chars_left=TABLE_CHARS_MAX, block_id=f"table-{len(tables)}") if table else None
            if table is None or built is None:
                continue
            if built.shown_rows < table.total_rows:
                whole = f"; the whole table is attached as `{table.csv}`" if table.csv else ""
                built.block["caption"] = f"{table.title} (first {built.shown_rows:,} of {table.total_rows:,} rows" \
                    f"{whole})"[:200]
            tables.append(NativeMessage(kind="table", text=f"Table: {table.title}"[:3000], blocks=[built.block],
                                        fallback=_text_table(table)))
    grouped = [charts[i:i + CHARTS_PER_MESSAGE] for i in range(0, len(charts), CHARTS_PER_MESSAGE)]
    messages = [group[0] if len(group) == 1 else NativeMessage(
        kind="chart", text="\n".join(m.text for m in group), blocks=[b for m in group for b in m.blocks],
        parts=tuple(group)) for group in grouped]
    return messages + tables + angles


PostBlocks = Callable[[str, str, "list[dict[str, Any]] | None"], Awaitable[str]]
"""``post(part, text, blocks)`` → the message's ``ts``: posts one part of the answer (through the ledger, which
posts each part once)."""


async def post_native(post: PostBlocks, part: str, message: NativeMessage) -> list[str]:
    """Post one native message as ``part`` (or its charts one by one as ``part.N``, or its fallback text, when
    Slack refuses the blocks); returns the ``ts`` of what was posted."""
    try:
        return [await post(part, message.text, message.blocks)]
    except SlackError as exc:
        if exc.code not in REFUSED:
            raise
        logger.info("native blocks refused part=%s kind=%s error=%s", part, message.kind, exc.code)
    if message.parts:
        posted: list[str] = []
        for i, one in enumerate(message.parts):
            posted += await post_native(post, f"{part}.{i}", one)
        return posted
    if message.fallback:
        return [await post(part, message.fallback, None)]
    return []


async def post_last_part(post: PostBlocks, part: str, text: str, *, turn_id: str, has_code: bool) -> str:
    """The last narrative message with the answer's buttons: Slack's feedback buttons, else plain buttons, else
    plain text, as Slack accepts them."""
    for build in (answer_blocks, classic_answer_blocks):
        try:
            return await post(part, text, build(text, turn_id=turn_id, has_code=has_code))
        except SlackError as exc:
            if exc.code not in REFUSED:
                raise
            logger.info("answer buttons refused part=%s error=%s", part, exc.code)
    return await post(part, text, None)


def direct(poster: Poster, key: ThreadKey) -> PostBlocks:
    """A :data:`PostBlocks` that posts straight into the thread (no ledger)."""
    async def post(part: str, text: str, blocks: list[dict[str, Any]] | None) -> str:
        return await poster.post(channel=key.channel, thread_ts=key.thread_ts, text=text, blocks=blocks)
    return post
