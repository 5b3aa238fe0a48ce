"""The words of the offline first look: the JSON report of :mod:`bot.analysts.profiler` as a short Markdown
narrative that quotes the data's own numbers (shape, column kinds, missing values, headline numbers, the trend,
the biggest categories, the strongest relationship, durations between timestamps, unusual values), and the
honest reply to a question the offline engine cannot answer.
"""

from __future__ import annotations

from typing import Any

MODEL_SETTINGS_HINT = (
    "set `OPENAI_API_KEY` to use OpenAI, or `OPENAI_BASE_URL` and `DATASTORY_MODEL` (with `OPENAI_API_KEY` if the "
    "endpoint wants one) to use any OpenAI-compatible endpoint, such as a local model server"
)
FOOTER = ("_Automatic first look, computed without a language model. To ask questions about the data, "
          f"{MODEL_SETTINGS_HINT}._")
MAX_NUMERIC_LINES = 4
MAX_CATEGORY_LINES = 3
_SEP_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", "\\s+": "blank"}
MAX_NAMED_COLUMNS = 24



def format_number(value: float | None) -> str:
    """A number as a reader wants it: ``4.56M``, ``14,127``, ``70.5``, ``0.458``; ``n/a`` for ``None``."""
    if value is None:
        return "n/a"
    size = abs(value)
    if size >= 1e9:
        text, suffix = f"{value / 1e9:.2f}", "B"
    elif size >= 1e6:
        text, suffix = f"{value / 1e6:.2f}", "M"
    elif size >= 1e4:
        return f"{value:,.0f}"
    elif size >= 100:
        text, suffix = f"{value:,.1f}", ""
    elif size >= 1:
        text, suffix = f"{value:.2f}", ""
    elif size == 0:
        return "0"
    else:
        return f"{value:.3g}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + suffix


def format_pct(value: float) -> str:
    """``30.56`` → ``30.6%``."""
    return f"{value:.1f}%"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _hours(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 72:
        return f"{value / 24:.1f} days"
    if value < 1:
        return f"{value * 60:.0f} minutes"
    return f"{value:.1f} hours"


def _date_text(stamp: str) -> str:
    return stamp[:-9] if stamp.endswith(" 00:00:00") else stamp[:16]


def _column_kinds(columns: list[dict[str, Any]], total: int) -> str:
    if total > MAX_NAMED_COLUMNS:
        counts: dict[str, int] = {}
        for c in columns:
            counts[c["kind"]] = counts.get(c["kind"], 0) + 1
        kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        first = ", ".join(c["name"] for c in columns[:8])
        return f"{total:,} columns ({kinds} among the {len(columns):,} profiled), starting with {first}"
    words = {"datetime": "date", "category": "category", "boolean": "yes/no", "text": "text", "id": "identifier",
             "constant": "always the same value", "empty": "empty", "period": "part of the period"}
    parts: list[str] = []
    numeric = [c["name"] for c in columns if c["kind"] == "numeric"]
    for c in columns:
        if c["kind"] == "numeric":
            continue
        extra = f", {_plural(c['unique'], 'value')}" if c["kind"] == "category" else ""
        parts.append(f"{c['name']} ({words.get(c['kind'], c['kind'])}{extra})")
    if numeric:
        parts.append(", ".join(numeric) + (" (numbers)" if len(numeric) > 1 else " (number)"))
    return "; ".join(parts)


def _read_note(read: dict[str, Any]) -> str:
    notes: list[str] = []
    if read.get("reader") == "read_fwf":
        notes.append("fixed-width columns")
    if read.get("sep") not in (None, ","):
        notes.append(f"{_SEP_NAMES.get(read['sep'], repr(read['sep']))}-separated")
    if read.get("skiprows") or read.get("skipfooter"):
        notes.append("notes around the table skipped")
    if read.get("sheet_name") not in (None, 0):
        notes.append(f"sheet {read['sheet_name']}")
    if read.get("decimal") == ",":
        notes.append("decimal comma")
    if read.get("encoding") not in (None, "utf-8", "utf-8-sig"):
        notes.append(f"{read['encoding']} encoding")
    if read.get("compression"):
        notes.append(f"{read['compression']}-compressed")
    return ", ".join(notes)


def _missing_lines(f: dict[str, Any]) -> list[str]:
    missing = sorted((c for c in f["columns"] if c["missing"]), key=lambda c: -c["missing"])
    if not missing:
        return ["No missing values."]
    shown = ", ".join(f"{c['name']} {format_pct(c['missing_pct'])} ({c['missing']:,})" for c in missing[:5])
    more = f" and {len(missing) - 5} more columns" if len(missing) > 5 else ""
    lines = [f"Missing values: {shown}{more}."]
    heavy = [c for c in missing if c["missing_pct"] >= 20]
    if heavy:
        names = ", ".join(f"{c['name']} ({format_pct(c['missing_pct'])})" for c in heavy)
        lines.append(f"⚠️ Mostly or largely empty: {names}; numbers based on {'them' if len(heavy) > 1 else 'it'} "
                     "rest on fewer rows.")
    return lines


def _with_unit(text: str, unit: str | None) -> str:
    """``1,234`` with ``$`` → ``$1,234``; with ``%`` → ``1,234%``."""
    if not unit:
        return text
    return text + unit if unit == "%" else (f"-{unit}{text[1:]}" if text.startswith("-") else unit + text)


def _numeric_lines(f: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    ordered = sorted(f["numeric"], key=lambda n: n["name"] != f.get("main_numeric"))
    units = f.get("units") or {}
    if f["rows"] == 1:
        shown = ", ".join(f"{n['name']} {_with_unit(format_number(n['max']), units.get(n['name']))}"
                          for n in ordered[:12])
        more = f" and {len(ordered) - 12:,} more" if len(ordered) > 12 else ""
        return [f"Values: {shown}{more}."] if ordered else []
    for n in ordered[:MAX_NUMERIC_LINES]:
        unit = units.get(n["name"])

        def fmt(value: float | None, unit: str | None = unit) -> str:
            return _with_unit(format_number(value), unit)

        spread = f"{fmt(n['min'])} to {fmt(n['max'])}"
        if n["additive"]:
            line = (f"**{n['name']}**: total {fmt(n['sum'])}; per row median {fmt(n['median'])}"
                    f" ({spread}), mean {fmt(n['mean'])}")
        else:
            line = (f"**{n['name']}**: average {fmt(n['mean'])}, median {fmt(n['median'])} "
                    f"({spread})")
        if n["skew"] is not None and abs(n["skew"]) > 1:
            side = "right" if n["skew"] > 0 else "left"
            tail = "large" if n["skew"] > 0 else "small"
            line += f"; {side}-skewed (skew {n['skew']:.2f}), a long tail of {tail} values"
        if n["outliers"]:
            line += f"; {_plural(n['outliers'], 'extreme value')} (beyond 3× the interquartile range)"
        lines.append(line + ".")
    if len(ordered) > MAX_NUMERIC_LINES:
        lines.append(f"…and {len(ordered) - MAX_NUMERIC_LINES} more numeric columns.")
    return lines


def _when(point: list[Any]) -> tuple[str, str]:
    """``["week of 2025-07-07", 25087.0]`` → ``("the week of 2025-07-07", "25,087")``."""
    label = str(point[0])
    return ("the " + label if label.startswith("week of") else label), format_number(point[1])


def _trend_line(t: dict[str, Any]) -> str:
    how = {"sum": "total", "mean": "average", "count": "number of"}[t["agg"]]
    what = f"{how} {t['value']}" if t["value"] else f"rows (by {t['date']})"
    step = f" (readings every {t['step']})" if t.get("step") and t.get("step") != t["period"] and t["value"] else ""
    fit = t["fit_change_pct"]
    direction = "stayed roughly flat" if abs(fit) < 5 else ("trended up" if fit > 0 else "trended down")
    first, last, peak, low = (_when(t[k]) for k in ("first", "last", "peak", "low"))
    change = "" if t["change_pct"] is None else f", {t['change_pct']:+.1f}%"
    line = (f"**Trend**: {what} per {t['period']} {direction} over {t['periods']} {t['period']}s: "
            f"{first[1]} in {first[0]} → {last[1]} in {last[0]}{change}; peak {peak[1]} in {peak[0]}, "
            f"low {low[1]} in {low[0]}")
    if t["partial"]:
        line += f" (incomplete: {' and '.join(t['partial'])}, left out of the comparison)"
    if t.get("unusual"):
        line += "; unusual: " + ", ".join(f"{format_number(v)} in {_when([k, v])[0]}" for k, v in t["unusual"])
    return line.replace(f" per {t['period']} ", f" per {t['period']}{step} ", 1) + "."


def _category_line(c: dict[str, Any], rows: int) -> str:
    by_value = c.get("by_value")
    if by_value and by_value.get("agg") == "mean":
        top, low = by_value["top"][0], by_value["bottom"][0]
        line = _category_line({**c, "by_value": None}, rows).rstrip(".")
        line += f"; average {by_value['column']} is highest for {top[0]} ({format_number(top[1])})"
        if low[0] != top[0]:
            line += f" and lowest for {low[0]} ({format_number(low[1])})"
        return line + "."
    if by_value:
        top = by_value["top"][0]
        low = by_value["bottom"][0]
        line = (f"**{c['name']}**: {top[0]} brings the most {by_value['column']}, {format_pct(top[2] * 100)} "
                f"({format_number(top[1])})")
        if low[0] != top[0]:
            line += f"; {low[0]} the least, {format_pct(low[2] * 100)} ({format_number(low[1])})"
        return line + f" across {c['unique']} values."
    top = c["top"]
    if len({t[1] for t in top}) == 1 and c["unique"] <= len(top):
        return f"**{c['name']}**: {c['unique']} values, evenly spread ({top[0][1]:,} rows each)."
    rest = ", ".join(f"{t[0]} {format_pct(t[2] * 100)}" for t in top[1:3])
    line = (f"**{c['name']}**: {top[0][0]} is the most common of {c['unique']} values, "
            f"{format_pct(top[0][2] * 100)} of rows ({top[0][1]:,})")
    return line + (f"; then {rest}." if rest else ".")


def _correlation_line(pairs: list[dict[str, Any]]) -> str | None:
    if not pairs:
        return None
    best = pairs[0]
    r = best["r"]
    if abs(r) < 0.3:
        return (f"**Correlations**: no strong linear relationship between the numeric columns (strongest: "
                f"{best['a']} and {best['b']}, r = {r:.2f}).")
    strength = "very strong" if abs(r) >= 0.8 else "strong" if abs(r) >= 0.6 else "moderate"
    sign = "positive" if r > 0 else "negative"
    line = f"**Correlations**: {best['a']} and {best['b']} have a {strength} {sign} correlation (r = {r:.2f})"
    others = [p for p in pairs[1:] if abs(p["r"]) >= 0.3]
    if others:
        line += "; also " + ", ".join(f"{p['a']}–{p['b']} (r = {p['r']:.2f})" for p in others)
    return line + "."


def _duration_line(d: dict[str, Any]) -> str:
    line = (f"**Time from {d['start']} to {d['end']}**: median {_hours(d['median_hours'])}, 90% within "
            f"{_hours(d['p90_hours'])}, longest {_hours(d['max_hours'])}")
    if d["missing_end"]:
        line += f"; {_plural(d['missing_end'], 'row')} ha{'s' if d['missing_end'] == 1 else 've'} no {d['end']} yet"
    return line + "."


def _pattern_lines(f: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if f.get("trend"):
        lines.append(_trend_line(f["trend"]))
    for c in f["categories"][:MAX_CATEGORY_LINES] if f["rows"] > 1 else []:
        lines.append(_category_line(c, f["rows"]))
    for d in f["durations"]:
        lines.append(_duration_line(d))
    corr = _correlation_line(f["correlations"])
    if corr:
        lines.append(corr)
    if f.get("anomalies"):
        shown = "; ".join(f"{a['column']} {format_number(a['value'])} on row {a['row']} (median "
                          f"{format_number(a['median'])})" for a in f["anomalies"])
        lines.append(f"**Unusual values**: {shown}.")
    return lines


def describe_file(f: dict[str, Any]) -> str:
    """The Markdown section of one profiled file."""
    if "error" in f:
        return f"**{f['name']}**: I could not read this file ({f['error']})."
    rows, cols = f["rows"], f.get("columns_total", len(f["columns"]))
    head = f"**{f['name']}**: {_plural(rows, 'row')} × {_plural(cols, 'column')}"
    if f["dates"]:
        d = f["dates"][0]
        head += f"; {d['name']} runs from {_date_text(d['min'])} to {_date_text(d['max'])}"
    note = _read_note(f.get("read", {}))
    if note:
        head += f" (read as {note})"
    lines = [head + "."]
    if rows == 0:
        return lines[0] + "\nThe file has a header but no data rows."
    bullets = [f"Columns: {_column_kinds(f['columns'], f.get('columns_total', len(f['columns'])))}.",
               *_missing_lines(f)]
    if f.get("duplicates"):
        bullets.append(f"{_plural(f['duplicates'], 'duplicate row')}.")
    if rows < 10:
        these = "this row" if rows == 1 else "these rows"
        bullets.append(f"Only {_plural(rows, 'row')}: the numbers below describe {these}, not a pattern.")
    bullets += _numeric_lines(f)
    bullets += _pattern_lines(f)
    bullets += [f"⚠️ {w}." for w in f.get("warnings", [])]
    return "\n".join(lines + [f"- {b}" for b in bullets])


def narrative(report: dict[str, Any], *, question_note: str = "") -> str:
    """The whole answer: an optional note about the question, one section per file, the charts, the footer."""
    sections = [question_note] if question_note else []
    sections += [describe_file(f) for f in report["files"]]
    charts = [c["file"] for f in report["files"] for c in f.get("charts", [])]
    if charts:
        sections.append("Charts: " + ", ".join(f"`{c}`" for c in charts) + ".")
    sections.append(FOOTER)
    return "\n\n".join(sections)


def follow_up_answer(question: str) -> str:
    """The honest reply to a question the offline engine cannot answer."""
    asked = question.strip()
    quoted = f" (“{asked[:200]}{'…' if len(asked) > 200 else ''}”)" if asked else ""
    return (f"I can't answer questions about the data{quoted} yet: I'm running without a language model, so all I "
            "can do is the automatic first look at each file when it is shared. To get answers, an administrator "
            f"needs to configure a model: {MODEL_SETTINGS_HINT}. Then ask again in this thread.")
