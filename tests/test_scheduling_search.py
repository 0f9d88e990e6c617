"""Scheduling with the whole protocol and a clinic calendar: bookable days and the search.

The oracle here is written apart from kaprules' scheduling code: its own day enumeration
and its own first-candidate day, judging a placement through `kaprules.evaluate` only.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import attrs
import icalendar
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import (
    STANDARD,
    STANDARD_V2,
    BaseRule,
    ClinicCalendar,
    Closure,
    Course,
    Escort,
    Fasting,
    Finding,
    Integration,
    IntegrationFollowup,
    Kind,
    Protocol,
    Session,
    SessionCount,
    SessionSpacing,
    Severity,
    Source,
    Timeline,
    TreatmentWindow,
    check_booking,
    forecast,
    plan,
)
from kaprules.forecasting import CLINIC_CALENDAR

from helpers import DENVER, AtMostInDays, at, course, series

DAY = dt.timedelta(days=1)
ZONE = kaprules.Course(DENVER, []).zone


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@attrs.frozen(repr=False)
class NotApart(BaseRule):
    """Two sessions adjacent in start order are not exactly ``days`` apart.

    Not monotone: an earlier session can make a later day worse, so a greedy placement
    can fail where another succeeds, and the search must go back.
    """

    default_id: ClassVar[str] = "not-apart"
    title: ClassVar[str] = "No fixed gap"
    rationale: ClassVar[str] = "For tests: a rule that defeats earliest-first placement."
    source: ClassVar[Source] = Source("Never exactly that many days apart.", "Tests")
    names: ClassVar[str] = "The later session of the pair."

    days: int = 3

    @property
    def statement(self) -> str:
        """What the rule requires."""
        return f"No two adjacent sessions are exactly {self.days} days apart."

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each adjacent pair exactly ``days`` apart."""
        for a, b in itertools.pairwise(timeline.sessions):
            if (b.date - a.date).days == self.days:
                yield Finding(self.id, self.severity, (b.id,), f"{b.label} is {self.days} days on")


@attrs.frozen(repr=False)
class Nothing(BaseRule):
    """A rule of its own that finds nothing: it makes a protocol take the general search."""

    default_id: ClassVar[str] = "nothing"
    title: ClassVar[str] = "Nothing"
    rationale: ClassVar[str] = "For tests."
    source: ClassVar[Source] = Source("Nothing.", "Tests")
    names: ClassVar[str] = "None."

    @property
    def statement(self) -> str:
        """What the rule requires."""
        return "Nothing."

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield nothing."""
        return iter(())


def protocol_of(
    count: int,
    window: int,
    gap: int,
    extra: Sequence[kaprules.Rule] = (),
    count_id: str = "session-count",
) -> Protocol:
    rules: list[kaprules.Rule] = [
        SessionCount(count=count, window_days=window, id=count_id),
        TreatmentWindow(days=window),
        SessionSpacing(min_days=gap),
        Fasting(),
        Escort(),
        *extra,
    ]
    return Protocol("clinic", "1", rules)


def nine(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(9), tzinfo=ZONE)


def first_day(moment: dt.date | dt.datetime) -> dt.date:
    """The first local day whose 09:00 starts after ``moment`` (the oracle's own)."""
    if isinstance(moment, dt.datetime):
        today = moment.astimezone(ZONE).date()
        return today if nine(today) > moment else today + DAY
    return moment + DAY


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + k * DAY for k in range((last - first).days + 1)]


def feasible(
    c: Course,
    placed: Sequence[dt.date],
    moment: dt.date | dt.datetime,
    protocol: Protocol,
) -> bool:
    """Whether sessions at 09:00 on ``placed`` meet every rule, by `evaluate` alone."""
    new = [Session(nine(x), Kind.INDUCTION, f"new-{k}") for k, x in enumerate(placed)]
    report = kaprules.evaluate(Course(c.timezone, [*c.sessions, *new]), protocol, as_of=moment)
    names = {s.id for s in new}
    return not any(
        f.severity is Severity.ERROR and names & set(f.sessions) for f in report.findings
    )


def brute_force(
    c: Course,
    moment: dt.date | dt.datetime,
    protocol: Protocol,
    calendar: ClinicCalendar,
    count: int,
    window: int,
    horizon: int,
) -> list[tuple[dt.date, ...]]:
    """Every completion of the series on open days after ``moment``, in date order.

    For a new series only the completions from the first start that has any are listed
    (enough for the earliest and for the first bookable day).
    """
    held = sorted(c.local(s.start).date() for s in c.sessions)
    lower = first_day(moment)
    if held:
        lower = max(lower, held[-1] + DAY)
        pool = [x for x in days_between(lower, held[0] + (window - 1) * DAY) if calendar.is_open(x)]
        return [
            combo
            for combo in itertools.combinations(pool, count - len(held))
            if feasible(c, combo, moment, protocol)
        ]
    today = moment.astimezone(ZONE).date() if isinstance(moment, dt.datetime) else moment
    for start in days_between(lower, today + horizon * DAY):
        if not calendar.is_open(start):
            continue
        pool = [
            x for x in days_between(start + DAY, start + (window - 1) * DAY) if calendar.is_open(x)
        ]
        found = [
            (start, *rest)
            for rest in itertools.combinations(pool, count - 1)
            if feasible(c, (start, *rest), moment, protocol)
        ]
        if found:
            return found
    return []


@st.composite
def cases(
    draw: st.DrawFn,
) -> tuple[Protocol, int, int, Course, dt.date | dt.datetime, ClinicCalendar]:
    count = draw(st.integers(2, 4))
    window = draw(st.integers(count, 9))
    gap = draw(st.integers(1, 2))
    limit = draw(st.integers(1, 3))
    span = draw(st.integers(2, 6))
    own: list[kaprules.Rule] = []
    if draw(st.booleans()):
        own.append(AtMostInDays(sessions=limit, days=span))
    if draw(st.booleans()):
        own.append(NotApart(days=draw(st.integers(1, 4))))
    protocol = protocol_of(count, window, gap, own)
    today = draw(st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)))
    held = draw(st.integers(0, count - 1))
    days: list[dt.date] = []
    day = today - draw(st.integers(0, 3)) * DAY - (held - 1) * gap * DAY
    for _ in range(held):
        days.append(day)
        day += gap * DAY
    moment: dt.date | dt.datetime = today
    if draw(st.booleans()):
        moment = dt.datetime.combine(today, dt.time(draw(st.sampled_from([0, 8, 10, 23]))), ZONE)
    weekdays = draw(st.sets(st.integers(0, 6), min_size=2))
    closed = draw(st.lists(st.integers(0, 20), max_size=6))
    calendar = ClinicCalendar(weekdays=weekdays, closed=[today + k * DAY for k in closed])
    c = course(series([x.isoformat() for x in days]))
    return protocol, count, window, c, moment, calendar


@pytest.mark.slow
@settings(max_examples=40)
@given(cases())
def test_plan_and_forecast_agree_with_brute_force(case: tuple) -> None:  # type: ignore[type-arg]
    protocol, count, window, c, moment, calendar = case
    # A short horizon for the brute force: when the plan looks further, it found nothing
    # nearer, which the brute force then confirms over its own horizon.
    horizon = 40
    p = plan(c, moment, calendar, protocol)
    f = forecast(c, moment, protocol, calendar)
    found = brute_force(c, moment, protocol, calendar, count, window, horizon)
    event(f"{p.status} with {len(c.sessions)} held")
    if not found:
        assert p.status == "cannot-complete" or (
            not c.sessions and p.sessions[0].start.date() > first_day(moment) + horizon * DAY
        )
        if p.status == "cannot-complete":
            assert p.sessions == ()
            assert f.next is None
            assert f.status == "cannot-complete"
        return
    proposed = tuple(s.start.date() for s in p.sessions)
    assert p.status == "planned"
    # The plan is a completion, and none is earlier day by day.
    assert proposed == min(found)
    assert all(calendar.is_open(x) for x in proposed)
    # Bookable days are the first days of completions: forecast's range is theirs.
    bookable = sorted({combo[0] for combo in found})
    assert f.next is not None
    assert f.next.bookable_from == bookable[0] == proposed[0]
    if c.sessions:
        assert f.next.latest == bookable[-1]
        # Every open day in the range is bookable but those the forecast names.
        inside = [x for x in days_between(bookable[0], bookable[-1]) if calendar.is_open(x)]
        assert [x for x in inside if x not in bookable] == list(f.next.not_bookable)
        event(f"{'some' if f.next.not_bookable else 'no'} open days not bookable")
    else:
        assert f.next.latest is None
    for day in {f.next.bookable_from, f.next.latest or f.next.bookable_from}:
        proposal = Session(nine(day), Kind.INDUCTION, "new")
        assert check_booking(c, proposal, moment, protocol, calendar).ok


@st.composite
def built_in_cases(
    draw: st.DrawFn,
) -> tuple[Protocol, Course, dt.date | dt.datetime, ClinicCalendar | None]:
    count = draw(st.integers(1, 5))
    window = draw(st.integers(1, 16))
    gap = draw(st.integers(1, 3))
    v2 = draw(st.booleans())
    base = kaprules.kap_protocol("clinic", "1", count=count, window_days=window, min_days=gap)
    rules = list(base.rules)
    if draw(st.booleans()):
        rules = [r for r in rules if not isinstance(r, SessionSpacing)]  # same-day sessions
    if v2:
        rules.append(IntegrationFollowup(within_days=draw(st.integers(1, 10))))
    protocol = Protocol("clinic", "1", rules)
    today = draw(st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)))
    held = draw(st.integers(0, count + 1))
    days: list[dt.date] = []
    day = today - draw(st.integers(0, 20)) * DAY
    for _ in range(held):
        days.append(day)
        day += draw(st.integers(gap, gap + 2)) * DAY
    c = course(series([x.isoformat() for x in days if x <= today]))
    moment: dt.date | dt.datetime = today
    if draw(st.booleans()):
        moment = dt.datetime.combine(today, dt.time(draw(st.integers(0, 23))), ZONE)
    calendar = None
    if draw(st.booleans()):
        weekdays = draw(st.sets(st.integers(0, 6), min_size=1))
        closed = draw(st.lists(st.integers(0, 30), max_size=6))
        hour = draw(st.sampled_from([8, 9, 11, 15]))
        calendar = ClinicCalendar(
            weekdays=weekdays, closed=[today + k * DAY for k in closed], at=dt.time(hour)
        )
    return protocol, c, moment, calendar


@settings(max_examples=50)
@given(built_in_cases())
def test_the_fast_path_agrees_with_the_general_search(case: tuple) -> None:  # type: ignore[type-arg]
    protocol, c, moment, calendar = case
    general = Protocol(protocol.id, protocol.version, [*protocol.rules, Nothing()])
    fast, slow = forecast(c, moment, protocol, calendar), forecast(c, moment, general, calendar)
    assert (fast.status, fast.next, fast.integration) == (slow.status, slow.next, slow.integration)
    if calendar is not None:
        a, b = plan(c, moment, calendar, protocol), plan(c, moment, calendar, general)
        assert (a.status, a.sessions, a.unplaced) == (b.status, b.sessions, b.unplaced)
        upcoming = fast.next
        firsts = [s for s in a.sessions if s.kind is Kind.INDUCTION]
        if upcoming is not None and upcoming.kind is Kind.INDUCTION:
            assert firsts
            assert firsts[0].start.date() == upcoming.bookable_from


# --- as_of: a plain date's day is over, an instant's day is not --------------------------


@pytest.mark.parametrize(
    ("as_of", "first"),
    [
        ("2026-12-07T08:00:00-07:00", "2026-12-07"),
        ("2026-12-07T08:59:00-07:00", "2026-12-07"),
        ("2026-12-07T09:00:00-07:00", "2026-12-08"),
        ("2026-12-07T10:00:00-07:00", "2026-12-08"),
        ("2026-12-07T15:00:00+00:00", "2026-12-07"),  # 08:00 in Denver
        ("2026-12-07T17:00:00+00:00", "2026-12-08"),  # 10:00 in Denver
        ("2026-12-07", "2026-12-08"),
    ],
)
def test_the_first_candidate_follows_as_of(as_of: str, first: str) -> None:
    moment = dt.datetime.fromisoformat(as_of) if "T" in as_of else d(as_of)
    every_day = ClinicCalendar(weekdays=range(7))
    f = forecast(course([]), moment)
    assert f.next is not None
    assert f.next.bookable_from == d(first)
    p = plan(course([]), moment, every_day)
    assert p.sessions[0].start.date() == d(first)
    held = course(series(["2026-12-03", "2026-12-05"]))
    g = forecast(held, moment)
    assert g.next is not None
    assert g.next.bookable_from == d(first)
    assert plan(held, moment, every_day).sessions[0].start.date() == d(first)


def test_the_calendars_time_decides_today() -> None:
    # At 10:00, a clinic that starts at 11:00 can still take a session today.
    moment = dt.datetime(2026, 12, 7, 10, tzinfo=ZONE)
    late = ClinicCalendar(weekdays=range(7), at=dt.time(11))
    f = forecast(course([]), moment, calendar=late)
    assert f.next is not None
    assert f.next.bookable_from == d("2026-12-07")


# --- the booking check with a calendar ----------------------------------------------------


@pytest.mark.parametrize(
    ("day", "why"),
    [
        ("2026-12-06", "the clinic is closed on Sundays"),
        ("2026-12-24", "the clinic is closed on 2026-12-24"),
        ("2026-12-25", "Christmas Day (public holiday)"),
        ("2026-12-29", "closed: Christmas closure"),
    ],
)
def test_a_booking_on_a_closed_day_says_why(day: str, why: str) -> None:
    closure = Closure(d("2026-12-28"), d("2026-12-31"), "Christmas closure")
    calendar = ClinicCalendar(closed=[d("2026-12-24"), closure], holidays="US", subdivision="CO")
    assert calendar.closure(d(day)) == why
    assert not calendar.is_open(d(day))
    c = course([])
    report = check_booking(c, Session(nine(d(day)), id="b1"), d("2026-12-01"), calendar=calendar)
    assert not report.ok
    (finding,) = report.findings
    assert finding.rule == CLINIC_CALENDAR == "clinic-calendar"
    assert finding.severity is Severity.ERROR
    assert finding.sessions == ("b1",)
    assert finding.message == f"session b1 ({day} 09:00 UTC-07:00) cannot be booked: {why}"
    # The issue's "is on a day the clinic is closed: closed: Christmas closure": once.
    assert finding.message.count("closed") <= 1
    # Without a calendar the same booking is fine.
    assert check_booking(c, Session(nine(d(day)), id="b1"), d("2026-12-01")).ok


def test_open_days_have_no_closure() -> None:
    calendar = ClinicCalendar(holidays="US")
    for day in days_between(d("2026-11-01"), d("2027-01-31")):
        assert calendar.is_open(day) == (calendar.closure(day) is None)


# --- integration meetings -----------------------------------------------------------------


SERIES = ["2026-12-01", "2026-12-03", "2026-12-05", "2026-12-08", "2026-12-10", "2026-12-12"]


def test_integration_forecast_plan_and_booking() -> None:
    c = course(series(SERIES))
    f = forecast(c, d("2026-12-13"), STANDARD_V2)
    assert f.status == "complete"
    assert f.to_dict()["integration"] == {"needed": 1, "by": "2026-12-26"}
    assert forecast(c, d("2026-12-13")).to_dict()["integration"] is None  # v1 has no rule
    p = plan(c, d("2026-12-13"), ClinicCalendar(), STANDARD_V2)
    meetings = [s for s in p.sessions if s.kind == "integration"]
    assert [(s.id, s.start.date()) for s in meetings] == [("integration-1", d("2026-12-14"))]
    data = p.to_dict()
    assert [s["kind"] for s in data["sessions"]] == ["integration", "booster"]
    summaries = [
        str(e.get("summary")) for e in icalendar.Calendar.from_ical(p.to_ical()).walk("VEVENT")
    ]
    assert "KAP integration meeting 1" in summaries
    done = p.planned_course
    assert [m.id for m in done.integrations] == ["integration-1"]
    assert forecast(done, d("2026-12-13"), STANDARD_V2).integration is None
    # A booking of the meeting: on a Sunday the calendar says no; on a Monday it is fine.
    sunday = Integration(nine(d("2026-12-13")) + dt.timedelta(hours=6), "i1")
    report = check_booking(c, sunday, d("2026-12-12"), STANDARD_V2, ClinicCalendar())
    assert [f.rule for f in report.findings] == ["clinic-calendar"]
    assert "integration meeting i1" in report.findings[0].message
    monday = Integration(nine(d("2026-12-14")), "i1")
    assert check_booking(c, monday, d("2026-12-12"), STANDARD_V2, ClinicCalendar()).ok


def test_integration_needed_after_the_deadline_is_still_reported() -> None:
    c = course(series(SERIES))
    f = forecast(c, d("2027-01-10"), STANDARD_V2)
    assert f.integration is not None
    assert (f.integration.needed, f.integration.by) == (1, d("2026-12-26"))
    p = plan(c, d("2027-01-10"), ClinicCalendar(), STANDARD_V2)
    assert all(s.kind != "integration" for s in p.sessions)


def test_a_plan_that_completes_the_series_proposes_its_meeting() -> None:
    c = course(series(SERIES[:4]))
    p = plan(c, d("2026-12-08"), ClinicCalendar(weekdays=range(7)), STANDARD_V2)
    assert [(str(s.kind), s.start.date()) for s in p.sessions] == [
        ("induction", d("2026-12-10")),
        ("induction", d("2026-12-12")),
        ("integration", d("2026-12-13")),
    ]
    assert "1 integration meeting proposed by 2026-12-26" in p.reason
    report = kaprules.evaluate(p.planned_course, STANDARD_V2, as_of=d("2026-12-08"))
    # Only the held sessions' own findings (no therapist recorded) remain.
    assert {s for f in report.findings for s in f.sessions} <= {"s1", "s2", "s3", "s4"}
    after = kaprules.evaluate(p.planned_course, STANDARD_V2, as_of=d("2027-01-31"))
    assert "integration-followup" not in {f.rule for f in after.findings}


def test_a_plan_short_of_meetings_says_so_in_status_and_count() -> None:
    # Issue 27: two meetings needed within 14 days, one open day for them: the plan said
    # "planned" with unplaced 0, and only its reason told the shortfall.
    two = STANDARD_V2.replace(IntegrationFollowup(within_days=14, min_meetings=2))
    c = course(series(SERIES))
    calendar = ClinicCalendar(closed=[Closure(d("2026-12-15"), d("2026-12-31"), "Break")])
    p = plan(c, d("2026-12-13"), calendar, two)
    meetings = [s.start.date() for s in p.sessions if s.kind == "integration"]
    assert meetings == [d("2026-12-14")]
    assert (p.status, p.unplaced_meetings, p.unplaced) == ("meetings-missed", 1, 0)
    assert "only 1 of the 2 integration meetings needed by 2026-12-26" in p.reason
    data = p.to_dict()
    assert (data["status"], data["unplaced_meetings"]) == ("meetings-missed", 1)
    # With room for both, the plan is planned and misses none.
    p = plan(c, d("2026-12-13"), ClinicCalendar(), two)
    assert (p.status, p.unplaced_meetings) == ("planned", 0)
    assert p.to_dict()["unplaced_meetings"] == 0
    # Past the deadline every needed meeting is missed, beside the booster.
    p = plan(c, d("2027-01-10"), ClinicCalendar(), STANDARD_V2)
    assert (p.status, p.unplaced_meetings) == ("meetings-missed", 1)
    assert [str(s.kind) for s in p.sessions] == ["booster"]


# --- rules found by class, and a clinic's own rule -----------------------------------------


def test_a_session_count_with_another_id() -> None:
    protocol = protocol_of(4, 10, 2, count_id="my-count")
    c = course(series(["2026-12-01", "2026-12-03"]))
    f = forecast(c, d("2026-12-03"), protocol)
    assert (f.count, f.status) == (4, "in-progress")
    assert f.next is not None
    assert (f.next.bookable_from, f.next.latest) == (d("2026-12-05"), d("2026-12-08"))
    p = plan(c, d("2026-12-03"), ClinicCalendar(weekdays=range(7)), protocol)
    assert [s.start.date() for s in p.sessions] == [d("2026-12-05"), d("2026-12-07")]


def test_the_issues_transfer_case_keeps_the_clinics_own_rule() -> None:
    # Transferred in on Tue/Thu/Sat; a Mon/Wed/Fri clinic with "at most 3 in any 7 days".
    protocol = protocol_of(6, 14, 1, [AtMostInDays()])
    c = course(series(["2026-12-01", "2026-12-03", "2026-12-05"]))
    calendar = ClinicCalendar(weekdays=["mon", "wed", "fri"])
    p = plan(c, d("2026-12-05"), calendar, protocol)
    days = [s.start.date() for s in p.sessions]
    # Dec 7 would be the 4th session in the 7 days from Dec 1; Dec 9 is the 3rd from Dec 3.
    assert days == [d("2026-12-09"), d("2026-12-11"), d("2026-12-14")]
    assert kaprules.evaluate(p.planned_course, protocol, as_of=d("2026-12-05")).ok
    f = forecast(c, d("2026-12-05"), protocol, calendar)
    assert f.next is not None
    assert f.next.bookable_from == d("2026-12-09")
    assert not check_booking(c, Session(nine(d("2026-12-07"))), d("2026-12-05"), protocol).ok


def test_the_search_goes_back_when_earliest_first_fails() -> None:
    # From Dec 1: the earliest accepted next days are Dec 2 and Dec 3, but then the 4th
    # session has no day (Dec 4 makes 4 in 4 days, Dec 5 is closed, Dec 6 is 3 days after
    # Dec 3). Moving the 3rd to Dec 4 frees Dec 6: the earliest completion goes back.
    protocol = protocol_of(4, 6, 1, [NotApart(days=3), AtMostInDays(sessions=3, days=4)])
    c = course(series(["2026-12-01"]))
    calendar = ClinicCalendar(weekdays=range(7), closed=[d("2026-12-05"), d("2026-12-09")])
    p = plan(c, d("2026-12-01"), calendar, protocol)
    assert [s.start.date() for s in p.sessions] == [
        d("2026-12-02"),
        d("2026-12-04"),
        d("2026-12-06"),
    ]
    assert kaprules.evaluate(p.planned_course, protocol, as_of=d("2026-12-01")).ok
    f = forecast(c, d("2026-12-01"), protocol, calendar)
    assert f.next is not None
    # Dec 3 (then Dec 4, Dec 6) is the last bookable day; Dec 4 is 3 days after Dec 1.
    assert (f.next.bookable_from, f.next.latest) == (d("2026-12-02"), d("2026-12-03"))
    assert not check_booking(c, Session(nine(d("2026-12-04"))), d("2026-12-01"), protocol).ok


def test_a_clinic_rule_can_leave_gaps_in_the_bookable_range() -> None:
    protocol = protocol_of(3, 10, 1, [NotApart(days=2)])
    c = course(series(["2026-12-01"]))
    f = forecast(c, d("2026-12-01"), protocol)
    assert f.next is not None
    assert (f.next.bookable_from, f.next.latest) == (d("2026-12-02"), d("2026-12-09"))
    assert f.next.not_bookable == (d("2026-12-03"),)
    assert f.to_dict()["next"]["not_bookable"] == ["2026-12-03"]
    assert not check_booking(c, Session(nine(d("2026-12-03"))), d("2026-12-01"), protocol).ok
    for day in ("2026-12-02", "2026-12-04", "2026-12-09"):
        assert check_booking(c, Session(nine(d(day))), d("2026-12-01"), protocol).ok


def test_a_clinic_rule_can_make_a_series_impossible() -> None:
    protocol = protocol_of(3, 5, 1, [AtMostInDays(sessions=2, days=5)])
    c = course(series(["2026-12-01"]))
    p = plan(c, d("2026-12-01"), ClinicCalendar(weekdays=range(7)), protocol)
    assert p.status == "cannot-complete"
    assert p.sessions == ()
    assert "protocol's own rules" in p.reason
    assert forecast(c, d("2026-12-01"), protocol).status == "cannot-complete"


def test_the_default_protocols_keep_their_answers() -> None:
    c = course(series(["2026-12-01", "2026-12-03", "2026-12-05"]))
    for protocol in (STANDARD, STANDARD_V2):
        f = forecast(c, d("2026-12-06"), protocol)
        assert f.next is not None
        assert (f.next.bookable_from, f.next.latest) == (d("2026-12-07"), d("2026-12-10"))
        assert at("2026-12-07").date() == f.next.bookable_from


# --- the command line -----------------------------------------------------------------------


def test_cli_next_takes_the_calendar_options(cli: Callable[..., tuple[int, str, str]]) -> None:
    base = ("next", "examples/in-progress.json", "--as-of", "2026-12-10", "--format", "json")
    # Without a calendar option every day is open: Saturday, Dec 12 is offered.
    code, out, err = cli(*base)
    assert (code, err) == (0, "")
    assert json.loads(out)["next"]["bookable_from"] == "2026-12-12"
    code, out, _ = cli(*base, "--open", "mon,wed,fri")
    assert json.loads(out)["next"]["bookable_from"] == "2026-12-14"
    code, out, _ = cli(*base, "--open", "mon,wed,fri", "--closed", "2026-12-14")
    data = json.loads(out)
    assert (code, data["status"], data["next"]) == (0, "cannot-complete", None)
    # The same calendar gives plan the same first day.
    _, out, _ = cli("plan", *base[1:], "--open", "mon,wed,fri", "--at", "10:00")
    assert json.loads(out)["sessions"][0]["start"] == "2026-12-14T10:00:00-07:00"
    code, out, err = cli(*base[:4], "--open", "mon,funday")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        (
            "mon,wed,fry",
            "'fry' is not a weekday name (mon to sun, in a list such as mon,wed,fri); "
            "did you mean 'fri'?",
        ),
        (
            "mon,funday",
            "'funday' is not a weekday name (mon to sun, in a list such as "
            "mon,wed,fri); did you mean 'sun'?",
        ),
        (
            "Monday",
            "'Monday' is not a weekday name (mon to sun, in a list such as mon,wed,fri); "
            "did you mean 'mon'?",
        ),
        ("mon,xyz", "'xyz' is not a weekday name (mon to sun, in a list such as mon,wed,fri)"),
    ],
)
def test_cli_open_suggests_the_nearest_weekday(
    given: str, hint: str, cli: Callable[..., tuple[int, str, str]]
) -> None:
    # Issue 27: "--open mon,wed,fry" got no "did you mean".
    for command in ("next", "plan"):
        code, out, err = cli(
            command, "examples/in-progress.json", "--as-of", "2026-12-10", "--open", given
        )
        assert (code, out) == (2, "")
        assert (
            err == f"kaprules: error: argument --open: {hint} (see 'kaprules {command} --help')\n"
        )


def test_a_calendar_names_each_wrong_weekday_with_the_nearest() -> None:
    with pytest.raises(kaprules.InputError) as raised:
        kaprules.parse_calendar('weekdays = ["mon", "funday", "Thurs", 9]')
    assert [str(p) for p in raised.value.problems] == [
        "weekdays[1]: 'funday' is not a weekday name (mon to sun); did you mean 'sun'?",
        "weekdays[2]: 'Thurs' is not a weekday name (mon to sun); did you mean 'thu'?",
        "weekdays[3]: must be one of the weekday names (mon, tue, wed, thu, fri, sat, sun) or "
        "numbers from 0 (Monday) to 6",
    ]
    with pytest.raises(kaprules.InputError, match=r"^weekdays\[0\]: 'x{20}") as raised:
        ClinicCalendar(weekdays=["x" * 10_000 + "fri"])
    # Echoed bounded, and compared on its first characters only: no hint, at no cost.
    assert len(str(raised.value)) < 300
    assert "did you mean" not in str(raised.value)


def test_cli_next_names_the_integration_meetings_still_needed(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    path = tmp_path / "done.json"
    path.write_text(kaprules.dumps(course(series(SERIES))), encoding="utf-8")
    args = ("next", str(path), "--as-of", "2026-12-13", "--protocol", "kap-standard@2")
    code, out, err = cli(*args)
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        "Integration: 1 meeting still needed by 2026-12-26.",
        "Next booster session: from 2027-06-12.",
    ]
    code, out, _ = cli(*args, "--format", "json")
    assert json.loads(out)["integration"] == {"needed": 1, "by": "2026-12-26"}
