"""Local days that never existed, and the last supported year: results or InputErrors."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import kaprules
from kaprules import ClinicCalendar, Course, InputError, Session, _time

APIA = "Pacific/Apia"
SKIPPED = dt.date(2011, 12, 30)  # Samoa moved across the date line: the 29th, then the 31st

# Days whole zones skipped, as the zone database records them.
SKIPPED_DAYS = [
    ("Pacific/Apia", "2011-12-30"),
    ("Pacific/Fakaofo", "2011-12-30"),
    ("Pacific/Kwajalein", "1993-08-21"),
    ("Pacific/Kanton", "1994-12-31"),
    ("Pacific/Kiritimati", "1994-12-31"),
]


@pytest.mark.parametrize(("zone", "date"), SKIPPED_DAYS)
def test_a_skipped_day_does_not_exist_and_its_neighbours_do(zone: str, date: str) -> None:
    day = dt.date.fromisoformat(date)
    tz = ZoneInfo(zone)
    assert not _time.day_exists(day, tz)
    for other in (day - dt.timedelta(days=1), day + dt.timedelta(days=1)):
        assert _time.day_exists(other, tz)
        assert _time.at_local(other, dt.time(9), tz).date() == other
    with pytest.raises(_time.NoSuchDay, match=f"{date} never existed in {zone}"):
        _time.at_local(day, dt.time(9), tz)


def test_every_day_of_a_dst_zone_exists_even_when_midnight_is_skipped() -> None:
    # Havana's clocks skip midnight at the spring change: the day starts at 01:00.
    havana = ZoneInfo("America/Havana")
    day = dt.date(2026, 3, 1)
    while day.year == 2026:
        assert _time.day_exists(day, havana)
        assert _time.at_local(day, dt.time(0), havana).date() == day
        day += dt.timedelta(days=1)


def test_the_strategies_local_datetime_refuses_a_skipped_day() -> None:
    pytest.importorskip("hypothesis")
    from kaprules.strategies import local_datetime

    with pytest.raises(InputError, match="never existed"):
        local_datetime(SKIPPED, dt.time(9), ZoneInfo(APIA))


def _session(day: int, month: int = 12, year: int = 2011, zone: str = APIA) -> Session:
    start = dt.datetime(year, month, day, 9, tzinfo=ZoneInfo(zone))
    return Session(start, last_food=start - dt.timedelta(hours=6), escort="on file")


COURSES = {
    "none": [],
    "two": [_session(26), _session(28)],
    "one": [_session(27)],
    "four": [_session(22), _session(24), _session(26), _session(28)],
}
CALENDARS = {
    "every day": ClinicCalendar(weekdays=range(7)),
    "weekdays": ClinicCalendar(),
    "at midnight": ClinicCalendar(weekdays=range(7), at=dt.time(0)),
}


@pytest.mark.parametrize("sessions", COURSES, ids=str)
@pytest.mark.parametrize("calendar", CALENDARS, ids=str)
def test_plans_and_forecasts_around_the_skipped_day(sessions: str, calendar: str) -> None:
    course = Course(APIA, COURSES[sessions])
    for offset in range(-3, 3):
        day = SKIPPED + dt.timedelta(days=offset)
        instant = dt.datetime.combine(day, dt.time(10), ZoneInfo(APIA))
        for as_of in [day] if day == SKIPPED else [day, instant]:
            for protocol in (kaprules.STANDARD, kaprules.STANDARD_V2):
                forecast = kaprules.forecast(course, as_of, protocol)
                if forecast.next is not None:
                    assert forecast.next.bookable_from != SKIPPED
                    assert forecast.next.latest != SKIPPED
                result = kaprules.plan(course, as_of, CALENDARS[calendar], protocol)
                planned = result.planned_course
                kaprules.evaluate(planned, protocol, as_of=as_of)
                for proposal in result.sessions:
                    assert planned.local(proposal.start).date() != SKIPPED


def test_the_commands_around_the_skipped_day(cli: Any) -> None:
    course = json.dumps(Course(APIA, COURSES["two"]).to_dict())
    code, out, err = cli(
        "plan",
        "-",
        "--as-of",
        "2011-12-29",
        "--open",
        "mon,tue,wed,thu,fri,sat,sun",
        "--format",
        "json",
        stdin=course,
    )
    assert (code, err) == (0, "")
    starts = [s["start"] for s in json.loads(out)["sessions"]]
    assert starts
    assert not [s for s in starts if s.startswith("2011-12-30")]
    code, out, err = cli("next", "-", "--as-of", "2011-12-29", "--format", "json", stdin=course)
    assert (code, err) == (0, "")
    assert json.loads(out)["next"]["bookable_from"] == "2011-12-31"
    code, out, err = cli("check", "-", "--as-of", "2011-12-29", stdin=course)
    assert (code, err) == (0, "")


# --- the last supported year ---


def _series(year: int, month: int, zone: str = "UTC") -> list[Session]:
    return [_session(day, month, year, zone) for day in (4, 6, 8, 11, 13, 15)]


@pytest.mark.parametrize(
    ("sessions", "as_of", "status", "proposed"),
    [
        # A booster 6 months after August 9000 would be in 9001: none, the series complete.
        (_series(9000, 8), dt.date(9000, 8, 15), "complete", 0),
        # Near the end of 8999 the booster is still in 9000.
        (_series(8999, 8), dt.date(8999, 8, 15), "planned", 1),
        # A new series from 9000-12-30 cannot fit before 9001.
        ([], dt.date(9000, 12, 30), "cannot-complete", 0),
        ([], dt.date(9000, 12, 10), "planned", 6),
        (_series(9000, 12)[:3], dt.date(9000, 12, 8), "planned", 3),
    ],
)
def test_a_plan_never_proposes_a_session_past_the_supported_years(
    sessions: list[Session], as_of: dt.date, status: str, proposed: int
) -> None:
    course = Course("UTC", sessions)
    calendar = ClinicCalendar(weekdays=range(7))
    result = kaprules.plan(course, as_of, calendar)
    assert (result.status.value, len(result.sessions)) == (status, proposed)
    if status != "planned":
        assert f"after the year {_time.MAX_YEAR}" in result.reason
    planned = result.planned_course  # refused past the supported years
    kaprules.evaluate(planned, as_of=as_of)
    for proposal in result.sessions:
        assert proposal.start.year <= _time.MAX_YEAR
    if result.sessions:  # the first proposal may be booked as it stands
        assert kaprules.check_booking(course, result.sessions[0].session, as_of).ok
    forecast = kaprules.forecast(course, as_of)
    if forecast.next is not None:
        assert forecast.next.bookable_from.year <= _time.MAX_YEAR
    elif sessions:
        assert forecast.status.value in ("complete", "cannot-complete")


class _First:
    """Choices that always take the lowest option."""

    def integer(self, low: int, high: int) -> int:
        return low

    def choice(self, options: Any) -> Any:
        return options[0]

    def duration(self, low: dt.timedelta, high: dt.timedelta) -> dt.timedelta:
        return low


def test_a_rule_never_breaks_a_course_by_moving_a_session_to_a_skipped_day() -> None:
    # The spacing rule moves session 2 to the day after session 1: 2011-12-30 in Apia.
    course = Course(APIA, [_session(29), _session(31), _session(2, 1, 2012)])
    spacing = next(r for r in kaprules.STANDARD.rules if isinstance(r, kaprules.SessionSpacing))
    assert spacing.break_course(course, _First(), kaprules.STANDARD) is None
    # A day that exists: broken as usual.
    denver = Course("America/Denver", [_session(d, zone="America/Denver") for d in (1, 3, 5)])
    broken = spacing.break_course(denver, _First(), kaprules.STANDARD)
    assert broken is not None
    assert not kaprules.evaluate(broken).ok
