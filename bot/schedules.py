"""Digest schedules: everyday phrases and cron expressions, turned into cron and next-run times in a time zone.

Phrases (case-insensitive; times as ``09:00``, ``9:30``, ``9am``, ``5:15pm``):

- ``daily 08:30``, ``every day at 8:30``
- ``weekdays 17:00``, ``every weekday at 5pm``
- ``every monday 09:00``, ``mondays at 9am``, ``every mon and thu 09:00``
- ``every 1st of the month 09:00``, ``monthly on the 15th at 10:00``
- any 5-field cron expression (``0 9 * * 1-5``), interpreted in the schedule's time zone

Next-run maths is croniter's, in the schedule's IANA time zone, so DST changes keep the wall-clock time: a run in
a skipped hour (spring forward) happens at the first valid minute after it, and a run in a repeated hour (fall
back) happens once, not twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

DAYS = {"monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6, "sunday": 0}
DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
EXAMPLES = (
    "`daily 08:30`, `weekdays 17:00`, `every monday 09:00`, `every 1st of the month 09:00`, "
    "or a cron expression such as `0 9 * * 1-5`"
)
_TIME = re.compile(r"(?:at\s+)?(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>am|pm)?$")
_MONTHLY = re.compile(r"(?:every\s+|monthly\s+on\s+(?:the\s+)?|every\s+month\s+on\s+(?:the\s+)?)"
                      r"(?P<d>\d{1,2})(?:st|nd|rd|th)?(?:\s+(?:day\s+)?of\s+(?:the|every)\s+month)?\s+(?P<t>.+)$")


class ScheduleError(ValueError):
    """A schedule that cannot be understood; the message says what was wrong and shows examples."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring time: a cron expression evaluated in ``tz``, and how to say it."""

    cron: str
    tz: str
    label: str

    def next_runs(self, after: float, count: int = 3) -> list[datetime]:
        """The next ``count`` run times strictly after ``after`` (Unix seconds), aware in the schedule's zone."""
        zone = ZoneInfo(self.tz)
        it = croniter(self.cron, datetime.fromtimestamp(after, zone))
        runs: list[datetime] = []
        while len(runs) < count:
            moment: datetime = it.get_next(datetime)
            if runs and _wall(runs[-1]) == _wall(moment):
                continue  # the repeated hour of a fall-back day: once is enough
            runs.append(moment)
        return runs

    def next_run(self, after: float) -> float:
        """The next run strictly after ``after``, as Unix seconds."""
        return self.next_runs(after, 1)[0].timestamp()


def _wall(moment: datetime) -> tuple[int, int, int, int, int]:
    return moment.year, moment.month, moment.day, moment.hour, moment.minute


def _time(text: str) -> tuple[int, int]:
    match = _TIME.match(text.strip())
    if not match:
        raise ScheduleError(f"I could not read the time `{text.strip() or '(none)'}`. Examples: {EXAMPLES}.")
    hour, minute = int(match["h"]), int(match["m"] or 0)
    if match["ampm"]:
        if not 1 <= hour <= 12:
            raise ScheduleError(f"`{text.strip()}` is not a time. Examples: {EXAMPLES}.")
        hour = hour % 12 + (12 if match["ampm"] == "pm" else 0)
    if hour > 23 or minute > 59:
        raise ScheduleError(f"`{text.strip()}` is not a time of day. Examples: {EXAMPLES}.")
    return hour, minute


def _days(words: str) -> list[int]:
    days: list[int] = []
    for word in re.split(r"[\s,]+|\band\b", words):
        word = word.strip().rstrip("s") if word.strip() not in DAYS else word.strip()
        if not word:
            continue
        found = [n for name, n in DAYS.items() if name.startswith(word) and len(word) >= 3]
        if len(found) != 1:
            raise ScheduleError(f"`{word}` is not a day of the week. Examples: {EXAMPLES}.")
        days.append(found[0])
    if not days:
        raise ScheduleError(f"Which day? Examples: {EXAMPLES}.")
    return sorted(set(days))


def check_zone(tz: str) -> str:
    """``tz`` when it is a known IANA zone, else UTC."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return tz


def parse_schedule(text: str, *, tz: str) -> Schedule:
    """Understand ``text`` (a phrase or a cron expression) in the time zone ``tz``."""
    zone = check_zone(tz)
    raw = " ".join(text.strip().split())
    words = raw.lower()
    if croniter.is_valid(raw) and len(raw.split()) == 5:
        return Schedule(cron=raw, tz=zone, label=f"cron `{raw}`")
    if m := re.match(r"(?:every\s+day|daily)(?:\s+(?P<t>.+))?$", words):
        h, mi = _time(m["t"] or "")
        return Schedule(cron=f"{mi} {h} * * *", tz=zone, label=f"every day at {h:02d}:{mi:02d}")
    if m := re.match(r"(?:every\s+)?weekdays?(?:\s+(?P<t>.+))?$", words):
        h, mi = _time(m["t"] or "")
        return Schedule(cron=f"{mi} {h} * * 1-5", tz=zone, label=f"every weekday at {h:02d}:{mi:02d}")
    if m := _MONTHLY.match(words):
        day = int(m["d"])
        if not 1 <= day <= 28:
            raise ScheduleError("Pick a day of the month from 1 to 28, so every month has it. "
                                f"Examples: {EXAMPLES}.")
        h, mi = _time(m["t"])
        return Schedule(cron=f"{mi} {h} {day} * *", tz=zone,
                        label=f"on day {day} of every month at {h:02d}:{mi:02d}")
    if m := re.match(r"(?:every\s+)?(?P<days>[a-z,\s]+?)\s+(?P<t>(?:at\s+)?\d.*)$", words):
        days = _days(m["days"])
        h, mi = _time(m["t"])
        names = ", ".join(DAY_NAMES[d] for d in days)
        return Schedule(cron=f"{mi} {h} * * {','.join(str(d) for d in days)}", tz=zone,
                        label=f"every {names} at {h:02d}:{mi:02d}")
    raise ScheduleError(f"I could not understand the schedule `{raw or '(empty)'}`. Examples: {EXAMPLES}.")


DIGEST_COMMAND = re.compile(r"^\s*digest\s+(?:(?P<always>always)\s+)?(?P<schedule>.+?)\s*:\s+(?P<question>\S.*)$",
                            re.S | re.I)
"""``digest [always] <schedule>: <question>``; the separator is a colon followed by a space, so ``09:00`` stays
whole. ``always`` posts a full digest even when the data has not changed (the default skips with one line)."""


@dataclass(frozen=True, slots=True)
class DigestCommand:
    """What a ``digest`` message asks for."""

    schedule: Schedule
    question: str
    skip_unchanged: bool = True


def parse_digest_command(text: str, *, tz: str) -> DigestCommand | None:
    """``digest every monday 09:00: summarise revenue`` → the command; None when the text is not one.

    Raises :class:`ScheduleError` when it is a digest command whose schedule or question is wrong.
    """
    stripped = text.strip()
    if not re.match(r"^digest\b", stripped, re.I):
        return None
    match = DIGEST_COMMAND.match(stripped)
    if not match:
        raise ScheduleError("Write it as `digest <schedule>: <question>`, for example "
                            "`digest every monday 09:00: summarise revenue by region`. "
                            f"Schedules: {EXAMPLES}.")
    return DigestCommand(schedule=parse_schedule(match["schedule"], tz=tz), question=match["question"].strip(),
                         skip_unchanged=match["always"] is None)


def utc(ts: float) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)
