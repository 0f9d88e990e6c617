"""Forecast, booking check, planner, clinic calendars and iCalendar export."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import jsonschema
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

import kaprules
from kaprules import (
    STANDARD,
    STANDARD_V2,
    BoosterInterval,
    ClinicCalendar,
    Course,
    Escort,
    Fasting,
    InputError,
    Kind,
    Protocol,
    ProtocolError,
    Session,
    SessionCount,
    SessionSpacing,
    TreatmentWindow,
    _time,
    check_booking,
    forecast,
    plan,
)
from kaprules import strategies as ks

from helpers import DENVER, at, course, rule_ids, series, session

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.timedelta(days=1)
ALL_DAYS = ClinicCalendar(weekdays=range(7))
VARIANT = Protocol(
    "variant",
    "1",
    [
        SessionCount(count=4, window_days=10),
        TreatmentWindow(days=10),
        SessionSpacing(min_days=3),
        Fasting(),
        Escort(),
        BoosterInterval(months=3, min_induction=4),
    ],
)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def dates(*texts: str) -> list[Session]:
    return series(texts)


# --- an independent reading of the issue's semantics, the oracle of the properties ---------


def plus_months(day: dt.date, months: int) -> dt.date:
    """The day ``months`` calendar months later, clamped to the month's end (own arithmetic)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return dt.date(year, month, min(day.day, (following - DAY).day))


def first_candidate(c: Course, moment: dt.date | dt.datetime) -> dt.date:
    """The first local day whose 09:00 session starts after ``moment``."""
    if not isinstance(moment, dt.datetime):
        return moment + DAY
    today = c.local(moment).date()
    nine = dt.datetime.combine(today, dt.time(9), tzinfo=c.zone)
    return today if nine.astimezone(dt.UTC) > moment.astimezone(dt.UTC) else today + DAY


def oracle(
    local_dates: Sequence[tuple[dt.date, Kind]],
    today: dt.date,
    lower: dt.date,
    n_: int,
    w: int,
    g: int,
    months: int | None,
    k: int,
) -> tuple[str, tuple[str, dt.date, dt.date, dt.date | None] | None]:
    inductions = sorted(day for day, kind in local_dates if kind is Kind.INDUCTION)
    n = len(inductions)
    last = max((day for day, _ in local_dates), default=None)
    if n == 0:
        earliest = today if last is None else max(today, last + g * DAY)
        return "not-started", ("induction", earliest, max(lower, earliest), None)
    first = inductions[0]
    assert last is not None
    if n < n_:
        earliest = last + g * DAY
        latest = first + (w - 1) * DAY - g * (n_ - n - 1) * DAY
        bookable = max(lower, earliest)
        if bookable > latest:
            return "cannot-complete", None
        return "in-progress", ("induction", earliest, bookable, latest)
    if months is None or n < k:
        return "complete", None
    earliest = max(plus_months(last, months), last + g * DAY)
    return "complete", ("booster", earliest, max(lower, earliest), None)


def variant(n: int, w: int, g: int, months: int | None, k: int) -> Protocol:
    rules: list[kaprules.Rule] = [SessionCount(count=n, window_days=w), TreatmentWindow(days=w)]
    if g:
        rules.append(SessionSpacing(min_days=g))
    rules += [Fasting(), Escort()]
    if months is not None:
        rules.append(BoosterInterval(months=months, min_induction=k))
    return Protocol("variant", "1", rules)


@st.composite
def situations(
    draw: st.DrawFn, *, max_count: int = 6, max_window: int = 20
) -> tuple[Protocol, tuple[int, int, int, int | None, int], Course, dt.date | dt.datetime]:
    """A protocol variant, a course of held sessions under it, and a moment after them."""
    n_ = draw(st.integers(1, max_count))
    w = draw(st.integers(1, max_window))
    g = draw(st.integers(0, 4))
    months = draw(st.none() | st.integers(1, 8))
    k = draw(st.integers(0, n_))
    zone = draw(st.sampled_from([DENVER, "Europe/London", "Australia/Lord_Howe", "UTC"]))
    first = draw(st.dates(dt.date(2025, 1, 1), dt.date(2027, 12, 31)))
    n = draw(st.integers(0, n_ + 1))
    days: list[tuple[dt.date, Kind]] = []
    day = first
    for _ in range(n):
        days.append((day, Kind.INDUCTION))
        day += draw(st.integers(max(g, 1), g + 3)) * DAY
    if n >= n_ and draw(st.booleans()):
        day = plus_months(days[-1][0], draw(st.integers(1, 9)))
        days.append((day, Kind.BOOSTER))
    sessions = [
        session(f"s{i}", _time.at_local(when, dt.time(9, 30), ZoneInfo(zone)), kind=kind)
        for i, (when, kind) in enumerate(days, start=1)
    ]
    c = Course(zone, sessions)
    last = days[-1][0] if days else first
    today = last + draw(st.integers(-2, 25)) * DAY
    moment: dt.date | dt.datetime = today
    if draw(st.booleans()):
        # An instant, written at a UTC offset other than the course's: its local date counts.
        local = _time.at_local(today, dt.time(draw(st.integers(0, 23))), ZoneInfo(zone))
        moment = local.astimezone(dt.timezone(dt.timedelta(hours=draw(st.integers(-12, 14)))))
    return variant(n_, w, g, months, k), (n_, w, g, months, k), c, moment


def local_days(c: Course) -> list[tuple[dt.date, Kind]]:
    return [(c.local(s.start).date(), s.kind) for s in c.sessions]


def today_of(c: Course, moment: dt.date | dt.datetime) -> dt.date:
    if isinstance(moment, dt.datetime):
        return c.local(moment).date()
    return moment


def proposal(c: Course, day: dt.date, kind: Kind = Kind.INDUCTION) -> Session:
    return Session(_time.at_local(day, dt.time(9), c.zone), kind, "new")


# --- forecast: table tests --------------------------------------------------------------


def test_the_issues_example() -> None:
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05"))
    data = forecast(c, d("2026-12-06")).to_dict()
    assert data["status"] == "in-progress"
    assert data["inductions"] == 3
    assert data["count"] == 6
    assert data["window"] == {"opens": "2026-12-01", "closes": "2026-12-14"}
    assert data["next"] == {
        "kind": "induction",
        "earliest": "2026-12-07",
        "bookable_from": "2026-12-07",
        "latest": "2026-12-10",
        "not_bookable": [],
    }
    assert data["as_of"] == "2026-12-06"
    assert data["protocol"] == {"id": "kap-standard", "version": "1"}
    assert data["kaprules_version"] == kaprules.__version__


@pytest.mark.parametrize(
    ("today", "status", "bookable", "latest"),
    [
        # A plain date: that day is over, so the first candidate is the next day.
        ("2026-12-06", "in-progress", "2026-12-07", "2026-12-10"),
        ("2026-12-08", "in-progress", "2026-12-09", "2026-12-10"),
        ("2026-12-09", "in-progress", "2026-12-10", "2026-12-10"),
        ("2026-12-10", "cannot-complete", None, None),
        # An instant: today's 09:00 is bookable before 09:00, not after.
        ("2026-12-10T08:00:00-07:00", "in-progress", "2026-12-10", "2026-12-10"),
        ("2026-12-10T08:59:59-07:00", "in-progress", "2026-12-10", "2026-12-10"),
        ("2026-12-10T09:00:00-07:00", "cannot-complete", None, None),
        ("2026-12-10T10:00:00-07:00", "cannot-complete", None, None),
        ("2026-12-09T10:00:00-07:00", "in-progress", "2026-12-10", "2026-12-10"),
    ],
)
def test_latest_boundary(today: str, status: str, bookable: str | None, latest: str | None) -> None:
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05"))
    moment = dt.datetime.fromisoformat(today) if "T" in today else d(today)
    f = forecast(c, moment)
    assert f.status == status
    if bookable is None:
        assert f.next is None
    else:
        assert f.next is not None
        assert (f.next.bookable_from, f.next.latest) == (d(bookable), d(latest or ""))
        assert f.next.earliest == d("2026-12-07")


def test_not_started() -> None:
    f = forecast(course([]), d("2026-12-06"))
    assert f.status == "not-started"
    assert f.to_dict()["window"] == {"opens": None, "closes": None}
    assert f.next is not None
    # The plain date 2026-12-06 is over: the first candidate is the next day.
    assert (f.next.earliest, f.next.bookable_from, f.next.latest) == (
        d("2026-12-06"),
        d("2026-12-07"),
        None,
    )


def test_not_started_after_a_session_waits_the_gap() -> None:
    c = course([session("b", at("2026-12-05"), kind="booster")])
    f = forecast(c, d("2026-12-05"))
    assert f.next is not None
    assert f.next.earliest == d("2026-12-07")


def test_complete_forecasts_a_clamped_booster() -> None:
    # Aug 31 + 6 months is Feb 28 (2027 is not a leap year), as the booster rule counts.
    c = course(
        dates("2026-08-19", "2026-08-21", "2026-08-24", "2026-08-26", "2026-08-28", "2026-08-31")
    )
    f = forecast(c, d("2026-09-01"))
    assert f.status == "complete"
    assert f.next is not None
    assert f.next.kind is Kind.BOOSTER
    assert (f.next.earliest, f.next.bookable_from, f.next.latest) == (
        d("2027-02-28"),
        d("2027-02-28"),
        None,
    )
    assert check_booking(c, proposal(c, d("2027-02-28"), Kind.BOOSTER), d("2026-09-01")).ok
    assert not check_booking(c, proposal(c, d("2027-02-27"), Kind.BOOSTER), d("2026-09-01")).ok


def test_complete_without_booster_rule_has_no_next() -> None:
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05", "2026-12-08"))
    f = forecast(c, d("2026-12-09"), VARIANT.without("booster-interval"))
    assert f.status == "complete"
    assert f.next is None
    assert f.to_dict()["next"] is None


def test_the_issues_variant_protocol() -> None:
    c = course(dates("2026-12-01", "2026-12-04"))
    f = forecast(c, d("2026-12-04"), VARIANT)
    assert f.next is not None
    # first + 9 - 3 * (4 - 2 - 1) = Dec 7.
    assert (f.next.earliest, f.next.latest) == (d("2026-12-07"), d("2026-12-07"))
    assert forecast(c, d("2026-12-08"), VARIANT).status == "cannot-complete"


def test_as_of_instant_uses_its_local_date() -> None:
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05"))
    # 2026-12-10T05:00Z is Dec 9, 22:00 in Denver: Dec 10 is still bookable.
    f = forecast(c, dt.datetime(2026, 12, 10, 5, tzinfo=dt.UTC))
    assert f.today == d("2026-12-09")
    assert f.status == "in-progress"
    # Dec 11, 05:00Z is Dec 10, 22:00: that day's 09:00 has passed, and so has the window.
    assert forecast(c, dt.datetime(2026, 12, 11, 5, tzinfo=dt.UTC)).status == "cannot-complete"


def test_window_counts_local_dates_across_dst() -> None:
    # Denver springs forward on 2027-03-14: the window still counts calendar days.
    c = course(dates("2027-03-08", "2027-03-10", "2027-03-12"))
    f = forecast(c, d("2027-03-13"))
    assert f.window_closes == d("2027-03-21")
    assert f.next is not None
    assert f.next.latest == d("2027-03-17")


@pytest.mark.parametrize("missing", ["session-count", "treatment-window"])
def test_a_protocol_without_count_or_window_cannot_forecast(missing: str) -> None:
    protocol = STANDARD.without(missing)
    with pytest.raises(ProtocolError, match=missing):
        forecast(course([]), d("2026-12-01"), protocol)


def test_without_spacing_the_gap_is_zero() -> None:
    c = course(dates("2026-12-01", "2026-12-03"))
    f = forecast(c, d("2026-12-03"), STANDARD.without("session-spacing"))
    assert f.next is not None
    assert (f.next.earliest, f.next.latest) == (d("2026-12-03"), d("2026-12-14"))


@pytest.mark.parametrize(
    "as_of",
    [None, dt.datetime(2026, 12, 1, 9), "2026-12-01", dt.datetime(1800, 1, 1, tzinfo=dt.UTC)],
)
def test_unusable_as_of_is_an_input_error(as_of: object) -> None:
    with pytest.raises(InputError, match="as_of"):
        forecast(course([]), as_of)  # type: ignore[arg-type]


def test_not_a_course_is_an_input_error() -> None:
    with pytest.raises(InputError, match="course"):
        forecast({"timezone": "UTC"}, d("2026-12-01"))  # type: ignore[arg-type]


# --- booking check ------------------------------------------------------------------------


def test_booking_the_day_after_latest_names_series_completion() -> None:
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05"))
    report = check_booking(c, proposal(c, d("2026-12-11")), d("2026-12-06"))
    assert not report.ok
    assert rule_ids(report) == ["series-completion"]
    (finding,) = report.findings
    assert finding.sessions == ("new",)
    assert "2026-12-10 was the latest date that kept the series possible" in finding.message
    assert "window" in finding.message
    assert (finding.expected, finding.actual) == ("2026-12-10", "2026-12-11")


def test_the_issues_case_fifth_of_eight_on_day_26() -> None:
    protocol = kaprules.kap_protocol("eight", "1", count=8, window_days=28)
    c = course(dates("2026-12-01", "2026-12-04", "2026-12-08", "2026-12-12"))
    report = check_booking(c, proposal(c, d("2026-12-26")), d("2026-12-13"), protocol)
    assert rule_ids(report) == ["series-completion"]


def test_booking_today_is_a_planned_session() -> None:
    # Before its start, a booking later today may be made: its escort and fast are not due.
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05"))
    report = check_booking(c, proposal(c, d("2026-12-07")), at("2026-12-07", "08:00"))
    assert report.ok, report.findings
    # With a date as_of, that day is over: a booking on it is refused as not in the
    # future, and only so (it is still judged as a planned session, not a held one).
    report = check_booking(c, proposal(c, d("2026-12-07")), d("2026-12-07"))
    assert rule_ids(report) == ["future-start"]


def test_existing_errors_do_not_block_a_booking() -> None:
    c = course([*dates("2026-12-01", "2026-12-02"), session("s3", at("2026-12-05"), escort=None)])
    assert not kaprules.evaluate(c, as_of=d("2026-12-06")).ok
    report = check_booking(c, proposal(c, d("2026-12-07")), d("2026-12-06"))
    assert report.ok
    assert report.findings == ()


def test_booking_too_close_names_the_rule() -> None:
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05"))
    report = check_booking(c, proposal(c, d("2026-12-06")), d("2026-12-05"))
    assert rule_ids(report) == ["session-spacing"]


def test_booking_an_existing_id_is_an_input_error() -> None:
    c = course(dates("2026-12-01"))
    with pytest.raises(InputError, match=r"proposed\.id"):
        check_booking(c, Session(at("2026-12-03"), id="s1"), d("2026-12-02"))


def test_a_proposed_session_without_id_gets_a_free_one() -> None:
    c = course([session("proposed", at("2026-12-01"))])
    report = check_booking(c, Session(at("2026-12-01", "10:00")), d("2026-12-01"))
    assert {s for f in report.findings for s in f.sessions} >= {"proposed-2"}


def test_booking_reports_are_reports() -> None:
    c = course(dates("2026-12-01"))
    report = check_booking(c, proposal(c, d("2026-12-03")), d("2026-12-02"), STANDARD_V2)
    assert report.protocol_id == "kap-standard"
    assert report.protocol_version == "2"
    assert report.as_of == "2026-12-02"


# --- forecast and booking: properties -----------------------------------------------------


@given(situations())
def test_forecast_matches_the_semantics(case: tuple) -> None:  # type: ignore[type-arg]
    protocol, params, c, moment = case
    f = forecast(c, moment, protocol)
    status, upcoming = oracle(
        local_days(c), today_of(c, moment), first_candidate(c, moment), *params
    )
    n_, w, g, _, _ = params
    if status == "not-started" and g * (n_ - 1) > w - 1:
        status, upcoming = "cannot-complete", None  # no series fits the protocol at all
    assert f.status == status
    assert f.inductions == sum(1 for s in c.sessions if s.kind is Kind.INDUCTION)
    if upcoming is None:
        assert f.next is None
    else:
        assert f.next is not None
        assert (f.next.kind.value, f.next.earliest, f.next.bookable_from, f.next.latest) == upcoming
    json.dumps(f.to_dict())


@given(situations(max_count=5, max_window=14))
def test_every_day_in_the_range_can_be_booked_and_no_day_outside(case: tuple) -> None:  # type: ignore[type-arg]
    protocol, _, c, moment = case
    f = forecast(c, moment, protocol)
    assume(f.next is not None)
    assert f.next is not None
    kind = f.next.kind
    end = f.next.latest or f.next.bookable_from + 3 * DAY
    day = f.next.bookable_from
    while day <= end:
        report = check_booking(c, proposal(c, day, kind), moment, protocol)
        assert report.ok, (day, report.findings)
        after = attrs_added(c, proposal(c, day, kind))
        assert forecast(after, moment, protocol).status != "cannot-complete"
        day += DAY
    if f.next.latest is not None:
        late = check_booking(c, proposal(c, f.next.latest + DAY, kind), moment, protocol)
        assert not late.ok
    # Future days before bookable_from, after the course's last session, are refused.
    # (A new session goes after the sessions already booked: see the scheduling page.)
    last = max((c.local(s.start).date() for s in c.sessions), default=None)
    day = (
        first_candidate(c, moment) if last is None else max(first_candidate(c, moment), last + DAY)
    )
    while day < f.next.bookable_from:
        assert not check_booking(c, proposal(c, day, kind), moment, protocol).ok
        day += DAY


def attrs_added(c: Course, s: Session) -> Course:
    return Course(c.timezone, [*c.sessions, s])


@given(ks.courses(max_sessions=8), st.dates(dt.date(1950, 1, 1), dt.date(8000, 1, 1)))
def test_forecast_and_plan_never_raise_on_a_valid_course(c: Course, today: dt.date) -> None:
    f = forecast(c, today, STANDARD_V2)
    p = plan(c, today, ALL_DAYS, VARIANT)
    json.dumps(f.to_dict())
    json.dumps(p.to_dict())


# --- planner ------------------------------------------------------------------------------


def test_plan_the_rest_of_a_series() -> None:
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05"))
    p = plan(c, d("2026-12-06"))
    data = p.to_dict()
    assert data["status"] == "planned"
    assert [s["start"] for s in data["sessions"]] == [
        "2026-12-07T09:00:00-07:00",
        "2026-12-09T09:00:00-07:00",
        "2026-12-11T09:00:00-07:00",
    ]
    assert [s["number"] for s in data["sessions"]] == [4, 5, 6]
    assert kaprules.evaluate(p.planned_course, as_of=d("2026-12-06")).ok


def test_plan_skips_weekends_closed_dates_and_holidays() -> None:
    protocol = kaprules.kap_protocol("five", "1", count=5, window_days=21)
    c = course(dates("2026-12-17", "2026-12-21"))  # a Thursday and a Monday
    calendar = ClinicCalendar(closed=[d("2026-12-23")], holidays="US", subdivision="CO")
    p = plan(c, d("2026-12-21"), calendar, protocol)
    # Dec 23 closed, Dec 25 Christmas (a Friday), Dec 26-27 a weekend.
    assert p.status == "planned"
    assert [s.start.date() for s in p.sessions] == [
        d("2026-12-24"),
        d("2026-12-28"),
        d("2026-12-30"),
    ]
    assert [s.id for s in p.sessions] == ["planned-1", "planned-2", "planned-3"]
    assert kaprules.evaluate(p.planned_course, protocol, as_of=d("2026-12-21")).ok


def test_plan_cannot_complete_names_the_window_and_the_shortfall() -> None:
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05"))
    p = plan(c, d("2026-12-06"), ClinicCalendar(weekdays=["wed"]))
    assert p.status == "cannot-complete"
    assert p.sessions == ()
    assert p.unplaced == 2
    assert "2026-12-14" in p.reason
    assert "2 of the remaining 3 induction sessions do not fit" in p.reason


def test_plan_a_booster_after_a_complete_series() -> None:
    c = course(dates(*[f"2026-08-{day:02d}" for day in (19, 21, 24, 26, 28, 31)]))
    p = plan(c, d("2026-09-01"), ClinicCalendar())
    # Feb 28, 2027 is a Sunday: the next open day is Monday, Mar 1.
    assert [(s.kind, s.start.date()) for s in p.sessions] == [(Kind.BOOSTER, d("2027-03-01"))]
    assert p.status == "planned"


def test_plan_complete_without_booster() -> None:
    c = course(dates("2026-12-01", "2026-12-04", "2026-12-07", "2026-12-10"))
    p = plan(c, d("2026-12-11"), protocol=VARIANT.without("booster-interval"))
    assert (p.status, p.sessions) == ("complete", ())


def test_plan_at_a_wall_time_skipped_by_dst() -> None:
    # 02:30 does not exist in Denver on 2027-03-14; the session starts at 03:30 that day.
    p = plan(course([]), d("2027-03-13"), ClinicCalendar(weekdays=range(7), at=dt.time(2, 30)))
    first = p.sessions[0].start
    assert first.date() == d("2027-03-14")
    assert (first.hour, first.minute) == (3, 30)
    assert p.to_dict()["sessions"][0]["start"] == "2027-03-14T03:30:00-06:00"


def test_plan_over_a_month_end() -> None:
    c = course(dates("2027-01-27", "2027-01-29"))
    p = plan(c, d("2027-01-29"), ALL_DAYS)
    assert [s.start.date() for s in p.sessions] == [
        d("2027-01-31"),
        d("2027-02-02"),
        d("2027-02-04"),
        d("2027-02-06"),
    ]


@st.composite
def small_cases(draw: st.DrawFn) -> tuple[Protocol, int, int, int, Course, dt.date, ClinicCalendar]:
    n_ = draw(st.integers(1, 4))
    w = draw(st.integers(1, 10))
    # Same-day sessions (g = 0) would make subsets of days too weak a brute force.
    g = draw(st.integers(1, 3))
    today = draw(st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)))
    n = draw(st.integers(0, n_ - 1))
    days: list[dt.date] = []
    day = today - draw(st.integers(0, max(0, (n - 1) * g))) * DAY
    for _ in range(n):
        days.append(day)
        day += max(g, 1) * DAY
    weekdays = draw(st.sets(st.integers(0, 6), min_size=1))
    closed = draw(st.lists(st.integers(1, 40), max_size=12))
    calendar = ClinicCalendar(weekdays=weekdays, closed=[today + k * DAY for k in closed])
    c = course([session(f"s{i}", at(x.isoformat())) for i, x in enumerate(days, 1)])
    return variant(n_, w, g, None, 0), n_, w, g, c, today, calendar


def feasible_completions(
    n_: int, w: int, g: int, c: Course, today: dt.date, calendar: ClinicCalendar
) -> list[tuple[dt.date, ...]]:
    """Every placement of the remaining inductions on open days, by brute force."""
    held = sorted(c.local(s.start).date() for s in c.sessions)
    lower = today + DAY if not held else max(today + DAY, held[-1] + g * DAY)
    if held:
        closes = held[0] + (w - 1) * DAY
        pool = [x for x in _span(lower, closes) if calendar.is_open(x)]
        return [
            combo
            for combo in itertools.combinations(pool, n_ - len(held))
            if all((b - a).days >= g for a, b in itertools.pairwise(combo))
        ]
    found = []
    for start in _span(lower, today + 366 * DAY):
        if not calendar.is_open(start):
            continue
        pool = [x for x in _span(start + DAY, start + (w - 1) * DAY) if calendar.is_open(x)]
        found += [
            (start, *rest)
            for rest in itertools.combinations(pool, n_ - 1)
            if all((b - a).days >= g for a, b in itertools.pairwise((start, *rest)))
        ]
    return found


def _span(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + k * DAY for k in range((last - first).days + 1)]


@pytest.mark.slow
@given(small_cases())
def test_the_planner_is_optimal_by_brute_force(case: tuple) -> None:  # type: ignore[type-arg]
    protocol, n_, w, g, c, today, calendar = case
    p = plan(c, today, calendar, protocol)
    event(f"{p.status} with {len(c.sessions)} held")
    feasible = feasible_completions(n_, w, g, c, today, calendar)
    if not feasible:
        assert p.status == "cannot-complete"
        assert p.sessions == ()
        return
    assert p.status == "planned"
    proposed = tuple(s.start.date() for s in p.sessions)
    assert proposed in feasible
    for other in feasible:
        assert all(a <= b for a, b in zip(proposed, other, strict=True)), other


@given(situations(max_count=5, max_window=20), st.sets(st.integers(0, 6), min_size=1))
def test_a_plan_keeps_a_compliant_course_compliant(case: tuple, weekdays: set[int]) -> None:  # type: ignore[type-arg]
    protocol, _, c, moment = case
    assume(kaprules.evaluate(c, protocol, as_of=moment).ok)
    p = plan(c, moment, ClinicCalendar(weekdays=weekdays), protocol)
    report = kaprules.evaluate(p.planned_course, protocol, as_of=moment)
    assert report.ok, report.findings
    # Proposals start after as_of: after the instant, or from the day after a plain date.
    assert all(s.start.date() >= first_candidate(c, moment) for s in p.sessions)
    if isinstance(moment, dt.datetime):
        assert all(s.start > moment for s in p.sessions)
    assert all(ClinicCalendar(weekdays=weekdays).is_open(s.start.date()) for s in p.sessions)


def test_plan_with_a_bad_calendar_is_an_input_error() -> None:
    with pytest.raises(InputError, match="calendar"):
        plan(course([]), d("2026-12-01"), {"weekdays": ["mon"]})  # type: ignore[arg-type]


# --- clinic calendars ---------------------------------------------------------------------


def test_calendar_defaults_and_weekday_forms() -> None:
    assert ClinicCalendar().weekdays == ("mon", "tue", "wed", "thu", "fri")
    assert ClinicCalendar(weekdays=["Fri", "MON", "wed"]).weekdays == ("mon", "wed", "fri")
    assert ClinicCalendar(weekdays=[4, 0]).weekdays == ("mon", "fri")
    assert ClinicCalendar(weekdays=["sunday", "sat"]).weekdays == ("sat", "sun")
    assert not ClinicCalendar().is_open(d("2026-12-05"))  # a Saturday
    assert ClinicCalendar().is_open(d("2026-12-07"))


def test_calendar_holidays_of_a_subdivision() -> None:
    colorado = ClinicCalendar(holidays="US", subdivision="CO")
    assert not colorado.is_open(d("2026-12-25"))
    assert not colorado.is_open(d("2026-01-19"))  # Martin Luther King Jr. Day
    assert colorado.is_open(d("2026-12-24"))


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"weekdays": []}, "weekdays"),
        ({"weekdays": ["moon"]}, "weekdays"),
        ({"weekdays": ["monkey"]}, "weekdays"),
        ({"closed": ["2026-12-24"]}, "closed[0]"),
        ({"holidays": "XX"}, "holidays"),
        ({"holidays": "US", "subdivision": "ZZ"}, "subdivision"),
        ({"subdivision": "CO"}, "subdivision"),
        ({"at": "09:00"}, "at"),
        ({"at": dt.time(9, tzinfo=dt.UTC)}, "at"),
    ],
)
def test_calendar_problems_name_the_field(kwargs: dict[str, object], path: str) -> None:
    with pytest.raises(InputError) as info:
        ClinicCalendar(**kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(path)


def test_calendar_file_round_trip_and_schema(tmp_path: Path) -> None:
    example = ROOT / "examples" / "calendars" / "lakeside.toml"
    calendar = kaprules.load_calendar(example)
    assert calendar.weekdays == ("mon", "tue", "wed", "thu")
    assert calendar.at == dt.time(10)
    assert d("2026-12-24") in calendar.closed
    jsonschema.validate(calendar.to_dict(), kaprules.calendar_schema())
    path = tmp_path / "calendar.json"
    path.write_text(json.dumps(calendar.to_dict()))
    assert kaprules.load_calendar(path) == calendar


def test_calendar_file_problems_are_collected() -> None:
    text = 'weekdays = ["mon"]\nat = "9am"\nclosed = ["2026-02-30"]\nopen = ["tue"]\n'
    with pytest.raises(InputError) as info:
        kaprules.parse_calendar(text)
    message = str(info.value)
    assert "at: must be a local time HH:MM" in message
    assert "closed[0]: must be a date" in message
    assert "unknown field" in message
    schema_errors = list(
        jsonschema.Draft202012Validator(kaprules.calendar_schema()).iter_errors(
            {"weekdays": ["mon"], "at": "9am", "open": ["tue"]}
        )
    )
    assert len(schema_errors) == 2


# --- iCalendar ----------------------------------------------------------------------------


def test_ical_reads_back_with_icalendar() -> None:
    held = [
        Session(s.start, s.kind, s.id, s.last_food, "Jordan (spouse)")
        for s in dates("2026-12-01", "2026-12-03", "2026-12-05")
    ]
    c = Course(DENVER, held, patient="P-secret")
    p = plan(c, d("2026-12-06"))
    data = p.to_ical()
    assert b"Jordan" not in data
    assert b"P-secret" not in data
    parsed = icalendar.Calendar.from_ical(data)
    events = list(parsed.walk("VEVENT"))
    assert [str(e["summary"]) for e in events] == [
        "KAP induction session 4 of 6",
        "KAP induction session 5 of 6",
        "KAP induction session 6 of 6",
    ]
    starts = [e.decoded("dtstart") for e in events]
    assert starts == [s.start for s in p.sessions]
    assert all(e["dtstart"].params["TZID"] == DENVER for e in events)
    assert [tz["tzid"] for tz in parsed.walk("VTIMEZONE")] == [DENVER]
    assert len({str(e["uid"]) for e in events}) == 3
    # The same plan gives the same bytes; planning the rest again keeps each session's UID.
    assert plan(c, d("2026-12-06")).to_ical() == data
    later = plan(c, d("2026-12-07"))
    uids = {str(e["summary"]): str(e["uid"]) for e in events}
    again = icalendar.Calendar.from_ical(later.to_ical()).walk("VEVENT")
    assert all(uids[str(e["summary"])] == str(e["uid"]) for e in again)


# --- command line -------------------------------------------------------------------------


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "kaprules", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_cli_next_text_and_json() -> None:
    c = course(dates("2026-12-01", "2026-12-03", "2026-12-05"))
    text = kaprules.dumps(c)
    result = run("next", "-", "--as-of", "2026-12-06", stdin=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Series in progress: 3 of 6 sessions.\n"
        "Next induction session: from 2026-12-07 to 2026-12-10.\n"
    )
    result = run("next", "-", "--as-of", "2026-12-11", "--format", "json", stdin=text)
    assert result.returncode == 0
    assert json.loads(result.stdout)["status"] == "cannot-complete"


def test_cli_next_names_the_closure_not_a_closed_window(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    # Issue 27: the window closes on 2026-12-14, after as_of; the closure is what leaves no
    # room. `next` said "its window closed for them on 2026-12-14"; it now says what `plan`
    # says.
    args = ("examples/in-progress.json", "--as-of", "2026-12-10")
    closure = ("--closed", "2026-12-11..2026-12-20")
    code, out, err = cli("next", *args, *closure)
    assert (code, err) == (0, "")
    why = (
        "the series' 14-day window closes on 2026-12-14: 1 of the remaining 1 induction "
        "session does not fit on open days from 2026-12-12"
    )
    assert out == f"Series cannot be completed: 5 of 6 sessions.\nNo next session: {why}.\n"
    _, planned, _ = cli("plan", *args, *closure, "--open", "mon,tue,wed,thu,fri,sat,sun")
    assert planned == f"cannot-complete: {why}.\n"
    _, text, _ = cli("next", *args, *closure, "--format", "json")
    assert json.loads(text)["reason"] == why
    # Once the window's last day is over, it closed.
    c = kaprules.load_course(ROOT / "examples/in-progress.json")
    f = forecast(c, d("2026-12-16"))
    assert f.reason == (
        "the series' 14-day window closed on 2026-12-14: 1 of the remaining 1 induction "
        "session does not fit on open days from 2026-12-17"
    )
    assert forecast(c, d("2026-12-10")).reason is None
    assert forecast(c, d("2026-12-10")).to_dict()["reason"] is None


def test_cli_plan_with_options_and_ics(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    out = tmp_path / "plan.ics"
    base = ("plan", "examples/in-progress.json", "--as-of", "2026-12-10", "--at", "10:15")
    written = ("--ics", str(out), "--format", "json")
    closures = ("--open", "mon,wed,sat", "--closed", "2026-12-12", "--closed", "2026-12-14")
    code, stdout, stderr = cli(*base, *closures, *written)
    assert code == 0
    assert (
        stderr
        == f"kaprules: note: no calendar file written to {out}: the series cannot be completed\n"
    )
    assert not out.exists()
    data = json.loads(stdout)
    assert data["status"] == "cannot-complete"
    assert data["calendar"]["closed"] == ["2026-12-12", "2026-12-14"]
    _, stdout, _ = cli(*base, *written)
    data = json.loads(stdout)
    assert [s["start"] for s in data["sessions"]] == ["2026-12-14T10:15:00-07:00"]
    events = list(icalendar.Calendar.from_ical(out.read_bytes()).walk("VEVENT"))
    assert len(events) == 1


def test_cli_as_of_today_is_accepted_by_check_next_and_plan(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    for command in ("check", "next", "plan"):
        code, out, err = cli(command, "examples/compliant.json", "--as-of", "today")
        assert code in (0, 1), (command, err)
        assert err == ""
        assert out
    today = dt.datetime.now(ZoneInfo(DENVER)).date()
    _, out, _ = cli("next", "examples/compliant.json", "--as-of", "today", "--format", "json")
    assert json.loads(out)["today"] in {today.isoformat(), (today + DAY).isoformat()}


@pytest.mark.parametrize(
    "args",
    [
        ("next", "examples/compliant.json"),
        ("next", "examples/compliant.json", "--as-of", "tomorrow"),
        ("plan", "examples/compliant.json", "--as-of", "today", "--open", "mon,funday"),
        ("plan", "examples/compliant.json", "--as-of", "today", "--closed", "2026-02-30"),
        ("plan", "examples/compliant.json", "--as-of", "today", "--at", "9"),
        ("plan", "examples/compliant.json", "--as-of", "today", "--calendar", "missing.toml"),
        ("plan", "examples/compliant.json", "--as-of", "today", "--ics", "/nonexistent/x.ics"),
        ("next", "examples/compliant.json", "--as-of", "today", "--protocol", "kap-standard@9"),
        ("next", "examples/violations.json", "--as-of", "0001-01-01"),
        ("next", "-", "--as-of", "today"),
    ],
)
def test_cli_scheduling_problems_are_one_line_exit_2(
    args: tuple[str, ...], cli: Callable[..., tuple[int, str, str]]
) -> None:
    code, out, err = cli(*args, stdin="{")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("kaprules: ")


@pytest.mark.parametrize(
    "zone", ["UTC", "Etc/GMT+5", "Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns"]
)
def test_ical_starts_read_back_in_any_zone(zone: str) -> None:
    p = plan(Course(zone, []), d("2030-03-09"), ALL_DAYS)
    parsed = icalendar.Calendar.from_ical(p.to_ical())
    starts = [e.decoded("dtstart") for e in parsed.walk("VEVENT")]
    assert starts == [s.start for s in p.sessions]
    assert len(starts) == 6


def test_without_the_calendar_extra_the_cli_says_what_to_install(
    cli: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "icalendar", None)
    monkeypatch.setitem(sys.modules, "holidays", None)
    args = ("plan", "examples/in-progress.json", "--as-of", "2026-12-09")
    code, out, err = cli(*args, "--ics", str(tmp_path / "x.ics"))
    assert (code, out) == (2, "")
    assert "pip install '.[calendar]' in a checkout of kaprules" in err
    code, out, err = cli(*args, "--calendar", "examples/calendars/lakeside.toml")
    assert (code, out) == (2, "")
    assert (
        "holidays: public holidays need the holidays package: pip install '.[calendar]' in a "
        "checkout of kaprules"
    ) in err
    assert not (tmp_path / "x.ics").exists()
