"""Story angles: the structured request behind the API's ``analyze`` and the offline engine's angles.

``analyze`` asks every engine the same :data:`ANGLES_QUESTION`: model engines answer it with code and a JSON
document (parsed leniently by :func:`parse_angles`); the offline engine profiles the data and derives the angles
from the profile's own findings (:func:`angles_from_report`: the trend, the categories that carry the measure,
the strongest relationship, the outliers, missing data). ``refine`` on an angle asks :func:`angle_question`,
which an engine answers like any question (the offline engine with its full first look).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_ANGLES = 6
ANGLES_QUESTION = (
    "Suggest the most interesting story angles in this data: look at the data with code first (shape, types, "
    "distributions, trends over time, groups, relationships, outliers), then reply with ONLY a JSON document, no "
    'other text: {"angles": [{"id": "a1", "title": "...", "summary": "..."}]}, 3 to 6 angles, each title a '
    "short headline and each summary one or two sentences quoting the numbers your code computed. Draw no chart."
)
"""The structured prompt of ``analyze``; the offline engine recognises it."""
ANGLE_PREFIX = "Tell the full story of this angle, with the charts and tables that show it: "
"""How :func:`angle_question` starts (the offline engine answers such a question with its full first look)."""


@dataclass(frozen=True, slots=True)
class Angle:
    """One story the data could tell."""

    id: str
    title: str
    summary: str


def is_angles_request(question: str) -> bool:
    """True for the ``analyze`` prompt."""
    return question.strip() == ANGLES_QUESTION


def is_angle_refinement(question: str) -> bool:
    """True for a question made by :func:`angle_question`."""
    return question.startswith(ANGLE_PREFIX)


def angle_question(angle: Angle) -> str:
    """The question ``refine`` asks for ``angle``."""
    return f"{ANGLE_PREFIX}{angle.title}. {angle.summary}"


def to_json(angles: list[Angle]) -> str:
    """The JSON document an engine answers :data:`ANGLES_QUESTION` with."""
    return json.dumps({"angles": [{"id": a.id, "title": a.title, "summary": a.summary} for a in angles]},
                      ensure_ascii=False)


def parse_angles(text: str) -> list[Angle]:
    """The angles of an answer to :data:`ANGLES_QUESTION`: the first JSON object with an ``angles`` list (in a code
    fence or not); ids are made ``a1``, ``a2``... in order whatever the model wrote. Empty when there is none."""
    for candidate in _json_candidates(text):
        try:
            doc = json.loads(candidate)
        except ValueError:
            continue
        items = doc.get("angles") if isinstance(doc, dict) else doc if isinstance(doc, list) else None
        if not isinstance(items, list):
            continue
        angles: list[Angle] = []
        for item in items:
            if isinstance(item, dict) and str(item.get("title") or "").strip():
                angles.append(Angle(id=f"a{len(angles) + 1}", title=_line(item.get("title"), 200),
                                    summary=_line(item.get("summary"), 1000)))
        if angles:
            return angles[:MAX_ANGLES]
    return []


def _json_candidates(text: str) -> list[str]:
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.DOTALL)
    start, end = text.find("{"), text.rfind("}")
    whole = [text[start:end + 1]] if 0 <= start < end else []
    return [*fenced, *whole, text.strip()]


def _line(value: Any, limit: int) -> str:
    return " ".join(str(value or "").split())[:limit]


def _fmt(value: Any) -> str:
    if not isinstance(value, int | float):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"


def angles_from_report(report: dict[str, Any]) -> list[Angle]:
    """Angles from the offline profile (:mod:`bot.analysts.profiler.report`), each quoting the profile's numbers."""
    found: list[tuple[str, str]] = []
    for facts in report.get("files", []):
        if not isinstance(facts, dict) or facts.get("error"):
            continue
        name = str(facts.get("name") or "the data")
        found += _trend(facts, name) + _categories(facts, name) + _relations(facts, name) + _outliers(facts, name)
        found += _missing(facts, name)
    if not found:
        for facts in report.get("files", []):
            if isinstance(facts, dict) and not facts.get("error"):
                found.append((f"What is in {facts.get('name')}",
                              f"{_fmt(facts.get('rows', 0))} rows and {_fmt(facts.get('columns_total', 0))} columns: "
                              "their types, ranges and missing values."))
    return [Angle(id=f"a{n}", title=t, summary=s) for n, (t, s) in enumerate(found[:MAX_ANGLES], 1)]


def _trend(facts: dict[str, Any], name: str) -> list[tuple[str, str]]:
    trend = facts.get("trend")
    if not isinstance(trend, dict) or not trend.get("first") or not trend.get("last"):
        return []
    what = trend.get("value") or "rows"
    (first_at, first), (last_at, last) = trend["first"], trend["last"]
    peak_at, peak = trend.get("peak") or ["?", None]
    change = trend.get("change_pct")
    moved = f", {'+' if change >= 0 else ''}{change:.0f}%" if isinstance(change, int | float) else ""
    return [(f"How {what} changed over time",
             f"{what} ({trend.get('agg')}) per {trend.get('period')} went from {_fmt(first)} in {first_at} to "
             f"{_fmt(last)} in {last_at}{moved}, peaking at {_fmt(peak)} in {peak_at} ({name}).")]


def _categories(facts: dict[str, Any], name: str) -> list[tuple[str, str]]:
    out = []
    for cat in facts.get("categories", [])[:2]:
        by = cat.get("by_value") if isinstance(cat, dict) else None
        if isinstance(by, dict) and by.get("top"):
            label, value, share = by["top"][0]
            shown = f"{share * 100:.0f}% of the total" if by.get("agg") == "sum" else f"an average of {_fmt(value)}"
            out.append((f"Which {cat['name']} drives {by['column']}",
                        f"{label} leads {by['column']} by {cat['name']} with {_fmt(value)} ({shown}), across "
                        f"{cat.get('unique')} values of {cat['name']} ({name})."))
        elif isinstance(cat, dict) and cat.get("top"):
            label, count, share = cat["top"][0]
            out.append((f"How {name} splits by {cat['name']}",
                        f"{cat.get('unique')} values of {cat['name']}; the most common, {label}, is {share * 100:.0f}% "
                        f"of the rows ({_fmt(count)})."))
    return out


def _relations(facts: dict[str, Any], name: str) -> list[tuple[str, str]]:
    pairs = [p for p in facts.get("correlations", []) if isinstance(p, dict) and abs(p.get("r") or 0) >= 0.3]
    if not pairs:
        return []
    p = pairs[0]
    way = "rise together" if p["r"] > 0 else "move in opposite directions"
    return [(f"{p['a']} and {p['b']} {way}", f"Their correlation is r = {p['r']:.2f} over the rows of {name}.")]


def _outliers(facts: dict[str, Any], name: str) -> list[tuple[str, str]]:
    found = [a for a in facts.get("anomalies", []) if isinstance(a, dict)]
    if not found:
        return []
    a = found[0]
    return [(f"Unusual values in {a['column']}",
             f"Row {a['row']} has {a['column']} = {_fmt(a['value'])}, {_fmt(a['iqrs'])} interquartile ranges from the "
             f"median of {_fmt(a['median'])} ({name}).")]


def _missing(facts: dict[str, Any], name: str) -> list[tuple[str, str]]:
    gaps = [c for c in facts.get("columns", []) if isinstance(c, dict) and (c.get("missing_pct") or 0) >= 5]
    if not gaps:
        return []
    worst = max(gaps, key=lambda c: c["missing_pct"])
    return [(f"Gaps in the data of {name}",
             f"{len(gaps)} column{'s' * (len(gaps) > 1)} miss values; {worst['name']} misses "
             f"{worst['missing_pct']:.0f}% of its rows.")]
