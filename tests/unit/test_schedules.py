"""Digest schedules: phrases and cron, next runs across time zones and DST changes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.schedules import ScheduleError, parse_digest_command, parse_schedule

NY, BERLIN, TOKYO = "America/New_York", "Europe/Berlin", "Asia/Tokyo"


def at(tz: str, *args: int) -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(("text", "cron", "label"), [
    ("every monday 09:00", "0 9 * * 1", "every Monday at 09:00"),
    ("Mondays at 9am", "0 9 * * 1", "every Monday at 09:00"),
    ("every mon and thu 5:30pm", "30 17 * * 1,4", "every Monday, Thursday at 17:30"),
    ("daily 08:30", "30 8 * * *", "every day at 08:30"),
    ("every day at 7", "0 7 * * *", "every day at 07:00"),
    ("weekdays 17:00", "0 17 * * 1-5", "every weekday at 17:00"),
    ("every weekday at 12pm", "0 12 * * 1-5", "every weekday at 12:00"),
    ("every 1st of the month 09:00", "0 9 1 * *", "on day 1 of every month at 09:00"),
    ("monthly on the 15th at 10:00", "0 10 15 * *", "on day 15 of every month at 10:00"),
    ("0 9 * * 1-5", "0 9 * * 1-5", "cron `0 9 * * 1-5`"),
    ("*/30 8-18 * * *", "*/30 8-18 * * *", "cron `*/30 8-18 * * *`"),
])
def test_phrases_and_cron(text: str, cron: str, label: str) -> None:
    schedule = parse_schedule(text, tz=NY)
    assert (schedule.cron, schedule.label, schedule.tz) == (cron, label, NY)


@pytest.mark.parametrize("text", ["every funday 09:00", "daily 25:00", "every monday", "whenever", "",
                                  "every 31st of the month 09:00", "daily 13pm"])
def test_what_cannot_be_understood_is_explained_with_examples(text: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_schedule(text, tz=NY)
    assert "`daily 08:30`" in str(err.value) or "Examples" in str(err.value) or "Pick a day" in str(err.value)


@pytest.mark.parametrize(("tz", "after", "expected"), [
    (NY, at(NY, 2026, 11, 25, 12, 0), ["2026-11-30 09:00-05:00", "2026-12-07 09:00-05:00", "2026-12-14 09:00-05:00"]),
    (BERLIN, at(BERLIN, 2026, 3, 24, 12, 0), ["2026-03-30 09:00+02:00", "2026-04-06 09:00+02:00",
                                              "2026-04-13 09:00+02:00"]),
    (TOKYO, at(TOKYO, 2026, 11, 30, 9, 0), ["2026-12-07 09:00+09:00", "2026-12-14 09:00+09:00",
                                            "2026-12-21 09:00+09:00"]),
])
def test_next_three_runs_of_every_monday_in_several_zones(tz: str, after: float, expected: list[str]) -> None:
    runs = parse_schedule("every monday 09:00", tz=tz).next_runs(after)
    assert [r.strftime("%Y-%m-%d %H:%M%z")[:-2] + ":" + r.strftime("%z")[-2:] for r in runs] == expected


def test_wall_clock_time_is_kept_across_the_spring_change() -> None:
    schedule = parse_schedule("daily 09:00", tz=NY)  # 2026-03-08: clocks go 02:00 -> 03:00
    runs = schedule.next_runs(at(NY, 2026, 3, 7, 10, 0))
    assert [(r.day, r.hour, r.utcoffset().total_seconds() / 3600) for r in runs] == [  # type: ignore[union-attr]
        (8, 9, -4), (9, 9, -4), (10, 9, -4)]
    assert runs[1].timestamp() - runs[0].timestamp() == 86_400


def test_a_run_in_the_skipped_hour_happens_right_after_it() -> None:
    runs = parse_schedule("daily 02:30", tz=NY).next_runs(at(NY, 2026, 3, 7, 12, 0))
    assert (runs[0].day, runs[0].hour, runs[0].minute) == (8, 3, 0)
    assert (runs[1].day, runs[1].hour, runs[1].minute) == (9, 2, 30)


def test_a_run_in_the_repeated_hour_happens_once() -> None:
    runs = parse_schedule("daily 01:30", tz=NY).next_runs(at(NY, 2026, 10, 31, 12, 0))  # 2026-11-01 falls back
    assert [(r.day, r.hour, r.minute) for r in runs] == [(1, 1, 30), (2, 1, 30), (3, 1, 30)]


def test_unknown_time_zones_fall_back_to_utc() -> None:
    assert parse_schedule("daily 08:00", tz="Mars/Olympus").tz == "UTC"


def test_the_digest_command() -> None:
    parsed = parse_digest_command("digest every monday 09:00: summarise revenue by region and flag drops over 10%",
                                  tz=NY)
    assert parsed is not None
    assert parsed.schedule.cron == "0 9 * * 1" and parsed.skip_unchanged
    assert parsed.question == "summarise revenue by region and flag drops over 10%"
    always = parse_digest_command("digest always daily 08:30: totals", tz=NY)
    assert always is not None and not always.skip_unchanged and always.schedule.cron == "30 8 * * *"
    assert parse_digest_command("what is the digest of this?", tz=NY) is None
    with pytest.raises(ScheduleError, match="digest <schedule>: <question>"):
        parse_digest_command("digest every monday 09:00", tz=NY)
    cron = parse_digest_command("digest 0 9 * * 1-5: totals", tz=NY)
    assert cron is not None and cron.schedule.cron == "0 9 * * 1-5" and cron.question == "totals"
