"""check_booking and forecast agree on the as_of boundary: a past proposal is refused.

The forecast's first bookable day is the first day whose candidate starts in the future at
``as_of``; check_booking refuses a proposal that does not (rule ``future-start``). These
tests hold the two to each other day by day, for plain dates and aware instants, on DST
days too; and hold plan, forecast and check_booking to one meaning of the open days, with
no calendar (every day) and with calendars.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import ClinicCalendar, Course, Integration, Session, _time
from kaprules.forecasting import FUTURE_START, check_booking, forecast
from kaprules.planning import plan

from helpers import DENVER, at, course, series

ZONE = ZoneInfo(DENVER)
DAY = dt.timedelta(days=1)
EXAMPLE = "examples/in-progress.json"
SPRING = dt.date(2026, 3, 8)  # Denver: 02:00 MST becomes 03:00 MDT
FALL = dt.date(2026, 11, 1)  # Denver: 02:00 MDT becomes 01:00 MST


def rules(report: kaprules.Report) -> list[str]:
    return [f.rule for f in report.findings]


def candidate(day: dt.date, time: dt.time, sid: str = "p") -> Session:
    return Session(_time.at_local(day, time, ZONE), id=sid)


# --- the issue's cases ----------------------------------------------------------------------


def test_the_issues_past_session_is_refused_as_forecast_says() -> None:
    c = kaprules.load_course(EXAMPLE)
    today = dt.date(2026, 12, 13)
    upcoming = forecast(c, today).next
    assert upcoming is not None
    assert upcoming.bookable_from == dt.date(2026, 12, 14)
    report = check_booking(c, candidate(dt.date(2026, 12, 12), dt.time(9), "dec-12"), today)
    assert not report.ok
    assert rules(report) == [FUTURE_START] == ["future-start"]
    (finding,) = report.findings
    assert finding.sessions == ("dec-12",)
    assert finding.message == (
        "session dec-12 (2026-12-12 09:00 UTC-07:00) is not in the future at as_of "
        "2026-12-13: that date counts as over, so a booking starts on 2026-12-14 or later"
    )
    assert (finding.expected, finding.actual) == ("after 2026-12-13", "2026-12-12T09:00:00-07:00")
    assert check_booking(c, candidate(dt.date(2026, 12, 14), dt.time(9)), today).ok


def test_an_aware_as_of_refuses_a_session_earlier_that_day() -> None:
    c = course(series(["2026-12-01", "2026-12-03", "2026-12-05"]))
    ten = at("2026-12-07", "10:00")
    upcoming = forecast(c, ten).next
    assert upcoming is not None
    assert upcoming.bookable_from == dt.date(2026, 12, 8)
    report = check_booking(c, candidate(dt.date(2026, 12, 7), dt.time(9)), ten)
    assert rules(report) == ["future-start"]
    assert report.findings[0].message == (
        "session p (2026-12-07 09:00 UTC-07:00) is not in the future at as_of "
        "2026-12-07 10:00 UTC-07:00: a booking starts after it"
    )
    # At 08:00 the same session is still to come, and the forecast offers its day.
    eight = at("2026-12-07", "08:00")
    assert check_booking(c, candidate(dt.date(2026, 12, 7), dt.time(9)), eight).ok
    upcoming = forecast(c, eight).next
    assert upcoming is not None
    assert upcoming.bookable_from == dt.date(2026, 12, 7)


def test_a_past_integration_meeting_is_refused_too() -> None:
    c = course(series(["2026-12-01", "2026-12-03", "2026-12-05", "2026-12-08"]))
    meeting = Integration(at("2026-12-09", "15:00"), "m1")
    report = check_booking(c, meeting, dt.date(2026, 12, 9), kaprules.STANDARD_V2)
    assert rules(report) == ["future-start"]
    assert report.findings[0].message.startswith(
        "integration meeting m1 (2026-12-09 15:00 UTC-07:00) is not in the future"
    )
    assert check_booking(c, meeting, at("2026-12-09", "14:00"), kaprules.STANDARD_V2).ok


# --- the boundary, day by day -------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "time", "first"),
    [
        # Spring forward: 02:30 does not exist; the candidate starts at 03:30 MDT.
        ("2026-03-08T03:15:00-06:00", "02:30", SPRING),
        ("2026-03-08T03:30:00-06:00", "02:30", SPRING + DAY),
        ("2026-03-08T01:59:00-07:00", "02:30", SPRING),
        # Fall back: 01:30 happens twice; the candidate is the first, 01:30 MDT.
        ("2026-11-01T01:15:00-06:00", "01:30", FALL),
        ("2026-11-01T01:15:00-07:00", "01:30", FALL + DAY),
        ("2026-11-01T01:45:00-06:00", "01:30", FALL + DAY),
        # A plain date on a DST day: that day is over.
        ("2026-03-08", "09:00", SPRING + DAY),
        ("2026-11-01", "00:00", FALL + DAY),
    ],
)
def test_dst_days_agree(moment: str, time: str, first: dt.date) -> None:
    as_of: dt.date = (
        dt.datetime.fromisoformat(moment) if "T" in moment else dt.date.fromisoformat(moment)
    )
    wall = dt.time.fromisoformat(time)
    calendar = ClinicCalendar(weekdays=range(7), at=wall)
    assert_agree(Course(DENVER, []), as_of, calendar)
    upcoming = forecast(Course(DENVER, []), as_of, calendar=calendar).next
    assert upcoming is not None
    assert upcoming.bookable_from == first


def assert_agree(c: Course, as_of: dt.date, calendar: ClinicCalendar) -> None:
    """A candidate is refused as past exactly on the days before the first bookable day."""
    upcoming = forecast(c, as_of, calendar=calendar).next
    assert upcoming is not None
    first = upcoming.bookable_from
    today = as_of.astimezone(ZONE).date() if isinstance(as_of, dt.datetime) else as_of
    for day in (today - DAY, today, today + DAY):
        report = check_booking(c, candidate(day, calendar.at), as_of, calendar=calendar)
        assert (FUTURE_START in rules(report)) == (day < first), (day, first, report.findings)
    assert check_booking(c, candidate(first, calendar.at), as_of, calendar=calendar).ok


DAYS = st.sampled_from([SPRING, FALL, dt.date(2026, 6, 15), dt.date(2026, 12, 31)])
TIMES = st.sampled_from([dt.time(0), dt.time(1, 30), dt.time(2, 30), dt.time(9), dt.time(23, 59)])


@st.composite
def moments(draw: st.DrawFn) -> dt.date:
    """A plain date, or an instant within a day (DST days among them), in any offset."""
    day = draw(DAYS)
    if draw(st.booleans()):
        return day
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=ZONE).astimezone(dt.UTC)
    instant = midnight + dt.timedelta(minutes=draw(st.integers(0, 25 * 60 - 1)))
    offset = dt.timezone(dt.timedelta(hours=draw(st.integers(-12, 12))))
    return instant.astimezone(draw(st.sampled_from([ZONE, dt.UTC, offset])))


@settings(max_examples=25)
@given(moments(), TIMES, st.booleans())
def test_check_booking_and_forecast_agree_on_the_as_of_boundary(
    as_of: dt.date, time: dt.time, started: bool
) -> None:
    # A course without sessions, or one session three days before: no rule of the protocol
    # refuses the days around as_of, so only the as_of test decides.
    today = as_of.astimezone(ZONE).date() if isinstance(as_of, dt.datetime) else as_of
    sessions = series([(today - 3 * DAY).isoformat()]) if started else []
    assert_agree(Course(DENVER, sessions), as_of, ClinicCalendar(weekdays=range(7), at=time))


# --- no calendar: one meaning for plan, forecast and check_booking ---------------------------

WEEK = [dt.date(2026, 12, 7) + n * DAY for n in range(7)]  # Monday 7 to Sunday 13 December


@pytest.mark.parametrize(
    ("calendar", "open_weekdays"),
    [
        (None, {0, 1, 2, 3, 4, 5, 6}),  # no calendar: every day open, at 09:00
        (ClinicCalendar(), {0, 1, 2, 3, 4}),  # the class's default: Monday to Friday
        (ClinicCalendar(weekdays=["mon", "wed", "fri", "sun"]), {0, 2, 4, 6}),
    ],
    ids=["none", "mon-fri", "mon-wed-fri-sun"],
)
@pytest.mark.parametrize("day", WEEK, ids=lambda d: d.strftime("%a"))
def test_plan_forecast_and_check_booking_agree_on_the_open_days(
    calendar: ClinicCalendar | None, open_weekdays: set[int], day: dt.date
) -> None:
    empty = course([])
    as_of = day - DAY  # a plain date: that day is over, so candidates start on ``day``
    is_open = day.weekday() in open_weekdays
    upcoming = forecast(empty, as_of, calendar=calendar).next
    assert upcoming is not None
    first = plan(empty, as_of, calendar).sessions[0]
    booking = check_booking(empty, candidate(day, dt.time(9)), as_of, calendar=calendar)
    assert (upcoming.bookable_from == day) is is_open
    assert (first.start.date() == day) is is_open
    assert first.start.time() == dt.time(9)
    assert booking.ok is is_open
