"""Scheduling over phases: forecast, check_booking and plan for phased protocols.

The oracle here is written apart from kaprules' scheduling code: its own treatment weeks,
day enumeration and first-candidate day, judging placements through `kaprules.evaluate`
only.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import ClinicCalendar, Course, Kind, Protocol, Session, Severity
from kaprules.forecasting import check_booking, forecast, protocol_phases
from kaprules.phases import MinGap, Overdue, Phase, WeeklyCap, WeeklyTarget
from kaprules.planning import Plan, plan

from helpers import DENVER, TWICE_WEEKLY_DATES, course, series

DAY = dt.timedelta(days=1)
ZONE = ZoneInfo(DENVER)
TRD = kaprules.get_protocol("esketamine-trd@1")
MDSI = kaprules.get_protocol("esketamine-mdsi@1")
EVERY_DAY = ClinicCalendar(weekdays=range(7))


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def days_from(first: dt.date, count: int) -> list[dt.date]:
    return [first + k * DAY for k in range(count)]


def trd_history(d0: dt.date, weeks: int) -> list[dt.date]:
    """The dates of a TRD course that meets every target for ``weeks`` weeks from ``d0``."""
    dates = []
    for week in range(1, weeks + 1):
        start = d0 + 7 * (week - 1) * DAY
        dates += [start, start + 2 * DAY] if week <= 4 else [start]
    return dates


def history(dates: Sequence[dt.date]) -> Course:
    return course(series([x.isoformat() for x in dates]))


# --- treatment weeks, the forecast ---------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "as_of", "week", "phase", "bookable", "latest"),
    [
        # One session in week 2 (Dec 8-14): the next is week 2, by its last day.
        (
            ["2026-12-01", "2026-12-03", "2026-12-08"],
            "2026-12-09",
            2,
            "induction",
            "2026-12-10",
            "2026-12-14",
        ),
        # Week 2 full: week 3 (Dec 15-21), whose two sessions need its last two days.
        (
            ["2026-12-01", "2026-12-03", "2026-12-08", "2026-12-10"],
            "2026-12-10",
            3,
            "induction",
            "2026-12-15",
            "2026-12-20",
        ),
        # Week 1 with one session: the second by Dec 7, week 1's last day.
        (["2026-12-01"], "2026-12-01", 1, "induction", "2026-12-02", "2026-12-07"),
        # Week 4 done: optimization, one session in week 5 (Dec 29 - Jan 4).
        (
            list(TWICE_WEEKLY_DATES),
            "2026-12-24",
            5,
            "optimization",
            "2026-12-29",
            "2027-01-04",
        ),
    ],
)
def test_the_next_session_of_a_trd_course(
    held: list[str], as_of: str, week: int, phase: str, bookable: str, latest: str
) -> None:
    f = forecast(course(series(held)), d(as_of), TRD)
    assert f.status == "in-progress"
    assert f.next is not None
    assert (f.next.week, f.next.phase) == (week, phase)
    assert (f.next.bookable_from, f.next.latest) == (d(bookable), d(latest))
    data = f.to_dict()["next"]
    assert (data["week"], data["phase"], data["latest"]) == (week, phase, latest)


def test_a_full_week_is_refused_by_the_weekly_cap() -> None:
    c = history([d("2026-12-01"), d("2026-12-03"), d("2026-12-08"), d("2026-12-10")])
    f = forecast(c, d("2026-12-10"), TRD)
    assert f.next is not None
    refused = f.next.refused
    assert refused is not None
    assert (refused.date, refused.rule) == (d("2026-12-11"), "weekly-cap")
    assert "treatment week 2 (2026-12-08 to 2026-12-14) has 3 sessions" in refused.message
    # check_booking gives the same reason for a booking on that day.
    report = check_booking(c, Session(at9(d("2026-12-11")), id="b1"), d("2026-12-10"), TRD)
    assert not report.ok
    errors = [x for x in report.findings if x.severity is Severity.ERROR]
    assert [x.rule for x in errors] == ["weekly-cap"]
    assert "b1" in errors[0].sessions
    assert "phase induction allows at most 2 a week" in errors[0].message
    # The first day of week 3 may be booked.
    assert check_booking(c, Session(at9(d("2026-12-15")), id="b1"), d("2026-12-10"), TRD).ok


def test_two_sessions_on_one_date_are_refused_by_min_gap() -> None:
    c = history([d("2026-12-01")])
    late = Session(dt.datetime(2026, 12, 1, 15, tzinfo=ZONE), id="b1")
    report = check_booking(c, late, dt.datetime(2026, 12, 1, 10, tzinfo=ZONE), TRD)
    assert [x.rule for x in report.findings if x.severity is Severity.ERROR] == ["min-gap"]


def test_a_past_booking_is_refused_as_for_other_protocols() -> None:
    # check_booking refuses a day before as_of for every protocol, as forecast and plan
    # never propose one; the rules judge it as well.
    c = history([d("2026-12-01")])
    proposal = Session(at9(d("2026-12-03")), id="b1")
    for protocol in (kaprules.STANDARD, TRD):
        report = check_booking(c, proposal, d("2026-12-20"), protocol)
        assert [x.rule for x in report.findings] == ["future-start"]
        assert check_booking(c, proposal, d("2026-12-02"), protocol).ok
    same_day = Session(at9(d("2026-12-01")) + dt.timedelta(hours=3), id="b1")
    report = check_booking(c, same_day, d("2026-12-20"), TRD)
    assert [x.rule for x in report.findings if x.severity is Severity.ERROR] == [
        "future-start",
        "min-gap",
    ]


def test_a_closed_day_is_refused_with_the_calendars_reason() -> None:
    c = history([d("2026-12-01")])
    report = check_booking(
        c, Session(at9(d("2026-12-06")), id="b1"), d("2026-12-01"), TRD, ClinicCalendar()
    )
    assert [x.rule for x in report.findings] == ["clinic-calendar"]


def test_a_course_without_sessions_starts_week_one() -> None:
    f = forecast(course([]), d("2026-12-05"), TRD)
    assert f.status == "not-started"
    assert f.next is not None
    assert (f.next.week, f.next.phase, f.next.bookable_from, f.next.latest) == (
        1,
        "induction",
        d("2026-12-06"),
        None,
    )
    assert (f.window_opens, f.count) == (None, 12)


def test_maintenance_is_due_every_14_days() -> None:
    dates = trd_history(d("2026-09-01"), 9)  # weeks 1-9; the last on 2026-10-27, week 9
    c = history(dates)
    f = forecast(c, d("2026-10-27"), TRD)
    assert f.next is not None
    # Week 9 has its session (cap 1): the next is in week 10, and due by the last + 14.
    assert (f.next.week, f.next.phase) == (10, "maintenance")
    assert f.next.bookable_from == d("2026-11-03")
    assert f.next.latest == dates[-1] + 14 * DAY == d("2026-11-10")
    # A calendar closed on the due day: the last open day before it.
    closed = ClinicCalendar(weekdays=range(7), closed=[d("2026-11-10"), d("2026-11-09")])
    g = forecast(c, d("2026-10-27"), TRD, closed)
    assert g.next is not None
    assert g.next.latest == d("2026-11-08")
    # Already overdue: no day keeps the target.
    late = forecast(c, d("2026-11-20"), TRD)
    assert late.next is not None
    assert late.next.bookable_from == d("2026-11-21")
    assert late.next.latest is None


def test_mdsi_is_complete_after_its_four_weeks() -> None:
    c = history(trd_history(d("2026-12-01"), 4))
    f = forecast(c, d("2026-12-28"), MDSI)
    assert (f.status, f.next) == ("complete", None)
    assert f.window_closes == d("2026-12-28")
    p = plan(c, d("2026-12-28"), EVERY_DAY, MDSI)
    assert (p.status, p.sessions, p.missed) == ("complete", (), ())
    # Mid-way, the plan fills the weeks left, through the last day of week 4.
    mid = plan(history([d("2026-12-01"), d("2026-12-03")]), d("2026-12-03"), EVERY_DAY, MDSI)
    assert mid.until == d("2026-12-28")
    assert [s.start.date() for s in mid.sessions] == [
        d("2026-12-08"),
        d("2026-12-09"),
        d("2026-12-15"),
        d("2026-12-16"),
        d("2026-12-22"),
        d("2026-12-23"),
    ]


def test_non_phased_protocols_keep_their_json() -> None:
    c = history([d("2026-12-01"), d("2026-12-03")])
    for protocol in (kaprules.STANDARD, kaprules.STANDARD_V2):
        assert protocol_phases(protocol) is None
        f = forecast(c, d("2026-12-03"), protocol)
        assert f.next is not None
        assert list(f.to_dict()["next"]) == [
            "kind",
            "earliest",
            "bookable_from",
            "latest",
            "not_bookable",
        ]
        p = plan(c, d("2026-12-03"), EVERY_DAY, protocol)
        assert "until" not in p.to_dict()
        assert "missed" not in p.to_dict()
        assert all(list(s) == ["id", "kind", "number", "start"] for s in p.to_dict()["sessions"])
    assert protocol_phases(TRD) is not None


def test_until_is_refused_for_a_protocol_without_phases() -> None:
    c = history([d("2026-12-01")])
    with pytest.raises(kaprules.InputError) as caught:
        plan(c, d("2026-12-01"), EVERY_DAY, kaprules.STANDARD, until=d("2026-12-20"))
    assert caught.value.problems[0].path == ("until",)
    with pytest.raises(kaprules.InputError) as caught:
        plan(c, d("2026-12-05"), EVERY_DAY, TRD, until=d("2026-12-04"))
    assert caught.value.problems[0].path == ("until",)


# --- the plan ------------------------------------------------------------------------------


def at9(day: dt.date, calendar: ClinicCalendar | None = None) -> dt.datetime:
    time = dt.time(9) if calendar is None else calendar.at
    return dt.datetime.combine(day, time, tzinfo=ZONE)


def assert_each_day_is_bookable(
    c: Course, p: Plan, moment: dt.date | dt.datetime, protocol: Protocol
) -> None:
    booked = c
    for s in p.sessions:
        report = check_booking(booked, s.session, moment, protocol, p.calendar)
        assert report.ok, (s, report.findings)
        booked = Course(booked.timezone, [*booked.sessions, s.session])
    report = kaprules.evaluate(p.planned_course, protocol, as_of=moment)
    planned = {s.id for s in p.sessions}
    assert not [
        x for x in report.findings if x.severity is Severity.ERROR and planned & set(x.sessions)
    ]


def test_a_trd_plan_meets_every_target() -> None:
    c = history([d("2026-12-01"), d("2026-12-03"), d("2026-12-08")])
    p = plan(c, d("2026-12-09"), ClinicCalendar(), TRD, until=d("2027-02-09"))
    assert (p.status, p.missed, p.until) == ("planned", (), d("2027-02-09"))
    got = [(s.week, s.phase, s.start.date()) for s in p.sessions]
    assert got[:6] == [
        (2, "induction", d("2026-12-10")),
        (3, "induction", d("2026-12-15")),
        (3, "induction", d("2026-12-16")),
        (4, "induction", d("2026-12-22")),
        (4, "induction", d("2026-12-23")),
        (5, "optimization", d("2026-12-29")),
    ]
    assert [s.number for s in p.sessions] == list(range(4, 4 + len(p.sessions)))
    # Maintenance: each session on the first day the cap and gap allow, within 14 days.
    upkeep = [s.start.date() for s in p.sessions if s.phase == "maintenance"]
    assert upkeep == [d("2027-01-26"), d("2027-02-02"), d("2027-02-09")]
    assert p.sessions[0].start.date() == p.forecast.next.bookable_from  # type: ignore[union-attr]
    assert_each_day_is_bookable(c, p, d("2026-12-09"), TRD)
    report = kaprules.evaluate(p.planned_course, TRD, as_of=d("2027-02-10"))
    assert "weekly-target" not in {x.rule for x in report.findings}
    assert "overdue" not in {x.rule for x in report.findings}


def test_the_default_until_is_twelve_weeks_for_an_open_ended_protocol() -> None:
    p = plan(course([]), d("2026-12-05"), ClinicCalendar(), TRD)
    assert p.until == d("2026-12-05") + 84 * DAY
    assert p.sessions[0].start.date() == d("2026-12-07")
    assert (p.sessions[0].week, p.window_opens) == (1, d("2026-12-07"))
    assert p.to_dict()["until"] == "2027-02-27"


def test_a_week_the_calendar_cannot_fill_is_reported_and_the_plan_goes_on() -> None:
    c = history([d("2026-12-01"), d("2026-12-03")])
    calendar = ClinicCalendar(
        weekdays=["mon", "wed", "fri"], closed=[kaprules.Closure(d("2026-12-15"), d("2026-12-20"))]
    )
    p = plan(c, d("2026-12-03"), calendar, TRD, until=d("2026-12-28"))
    assert p.status == "targets-missed"
    assert [m.to_dict() for m in p.missed] == [
        {"week": 3, "phase": "induction", "needed": 2, "sessions": 1, "due": "2026-12-21"}
    ]
    assert p.unplaced == 1
    assert [(s.week, s.start.date()) for s in p.sessions] == [
        (2, d("2026-12-09")),
        (2, d("2026-12-11")),
        (3, d("2026-12-21")),
        (4, d("2026-12-23")),
        (4, d("2026-12-25")),
    ]
    assert "week 3 (induction: 1 of 2 sessions)" in p.reason
    assert_each_day_is_bookable(c, p, d("2026-12-03"), TRD)


def test_a_maintenance_session_the_calendar_cannot_fit_is_reported() -> None:
    dates = trd_history(d("2026-09-01"), 9)
    c = history(dates)
    calendar = ClinicCalendar(
        weekdays=range(7), closed=[kaprules.Closure(d("2026-10-28"), d("2026-11-15"))]
    )
    p = plan(c, d("2026-10-27"), calendar, TRD, until=d("2026-11-30"))
    assert p.status == "targets-missed"
    assert [m.to_dict() for m in p.missed] == [
        {"week": 11, "phase": "maintenance", "needed": 1, "sessions": 0, "due": "2026-11-10"}
    ]
    assert p.sessions[0].start.date() == d("2026-11-16")


# --- the brute force -----------------------------------------------------------------------


def first_day(moment: dt.date | dt.datetime) -> dt.date:
    """The first local day whose 09:00 starts after ``moment`` (the oracle's own)."""
    if isinstance(moment, dt.datetime):
        today = moment.astimezone(ZONE).date()
        return today if at9(today) > moment else today + DAY
    return moment + DAY


def week_of(d0: dt.date, day: dt.date) -> int:
    return (day - d0).days // 7 + 1


def accepted(
    c: Course, placed: Sequence[dt.date], moment: dt.date | dt.datetime, protocol: Protocol
) -> bool:
    """Whether sessions at 09:00 on ``placed`` meet every rule, by `evaluate` alone."""
    new = [Session(at9(x), Kind.INDUCTION, f"new-{k}") for k, x in enumerate(placed)]
    report = kaprules.evaluate(Course(c.timezone, [*c.sessions, *new]), protocol, as_of=moment)
    names = {s.id for s in new}
    return not any(
        f.severity is Severity.ERROR and names & set(f.sessions) for f in report.findings
    )


@st.composite
def phased_cases(
    draw: st.DrawFn,
) -> tuple[Protocol, tuple[Phase, ...], Course, dt.date | dt.datetime, ClinicCalendar]:
    phases = []
    for name, weeks in (("a", (1, 1)), ("b", (2, draw(st.integers(2, 3))))):
        target = draw(st.integers(1, 2))
        phases.append(
            Phase(
                name,
                weeks,
                at_most=target + draw(st.integers(0, 1)),
                target=target,
                min_gap_days=draw(st.integers(1, 3)),
            )
        )
    ph = tuple(phases)
    protocol = Protocol(
        "phased",
        "1",
        [WeeklyCap(phases=ph), WeeklyTarget(phases=ph), MinGap(phases=ph), Overdue(phases=ph)],
    )
    today = draw(st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)))
    held = draw(st.integers(0, 3))
    days = sorted({today - draw(st.integers(0, 12)) * DAY for _ in range(held)})
    moment: dt.date | dt.datetime = today
    if draw(st.booleans()):
        moment = dt.datetime.combine(today, dt.time(draw(st.sampled_from([0, 8, 10]))), ZONE)
    weekdays = draw(st.sets(st.integers(0, 6), min_size=2, max_size=4))
    closed = draw(st.lists(st.integers(0, 21), max_size=10))
    calendar = ClinicCalendar(weekdays=weekdays, closed=[today + k * DAY for k in closed])
    return protocol, ph, history(days), moment, calendar


def feasible_placements(
    c: Course,
    moment: dt.date | dt.datetime,
    protocol: Protocol,
    phases: tuple[Phase, ...],
    calendar: ClinicCalendar,
    lower: dt.date,
    d0: dt.date,
    fixed: tuple[dt.date, ...],
) -> tuple[list[tuple[dt.date, ...]], int | None]:
    """Every placement with exactly the sessions each week still needs, week by week.

    Returns the feasible placements of all the weeks (``fixed`` first), and the first
    week none can meet (None when all can).
    """
    held = [c.local(s.start).date() for s in c.sessions]
    last_week = max(x.weeks[1] or 0 for x in phases)
    until = d0 + (7 * last_week - 1) * DAY
    prefixes: list[tuple[dt.date, ...]] = [fixed]
    for week in range(max(1, week_of(d0, lower)), last_week + 1):
        phase = next(p for p in phases if p.covers(week))
        start = d0 + 7 * (week - 1) * DAY
        pool = [x for x in days_from(start, 7) if lower <= x <= until and calendar.is_open(x)]
        have = sum(1 for x in (*held, *fixed) if start <= x < start + 7 * DAY)
        need = max(0, (phase.target or 0) - have)
        pool = [x for x in pool if x not in fixed]
        grown = [
            (*p, *combo)
            for p in prefixes
            for combo in itertools.combinations(pool, need)
            if accepted(c, (*p, *combo), moment, protocol)
        ]
        if not grown:
            return prefixes, week
        prefixes = grown
    return prefixes, None


@settings(max_examples=30, deadline=None)
@given(phased_cases())
def test_the_plan_is_the_earliest_by_brute_force(case: tuple) -> None:  # type: ignore[type-arg]
    protocol, phases, c, moment, calendar = case
    held = [c.local(s.start).date() for s in c.sessions]
    lower = first_day(moment)
    if held:
        lower = max(lower, held[-1] + DAY)
    p = plan(c, moment, calendar, protocol)
    f = forecast(c, moment, protocol, calendar)
    assert_each_day_is_bookable(c, p, moment, protocol)
    proposed = tuple(s.start.date() for s in p.sessions)
    fixed: tuple[dt.date, ...] = ()
    if held:
        d0 = held[0]
    else:
        d0 = next(x for x in days_from(lower, 400) if calendar.is_open(x))
        fixed = (d0,)
        assert proposed[0] == d0
    if week_of(d0, lower) > max(x.weeks[1] or 0 for x in phases):
        event("phases over")
        assert (p.status, p.sessions, f.status, f.next) == ("complete", (), "complete", None)
        return
    found, missed = feasible_placements(c, moment, protocol, phases, calendar, lower, d0, fixed)
    event(f"{p.status} with {len(held)} held")
    if missed is None:
        assert p.status in ("planned", "complete")
        assert p.missed == ()
        # The plan is a placement, none is earlier day by day, and it is on or before
        # every other one session by session.
        assert proposed == min(found)
        assert all(all(a <= b for a, b in zip(proposed, q, strict=True)) for q in found)
    else:
        assert p.status == "targets-missed"
        assert p.missed[0].week == missed
        # Before that week the plan is the earliest placement of the weeks that fit.
        before = tuple(x for x in proposed if week_of(d0, x) < missed or x in fixed)
        assert before == min(found)
    # The forecast's first bookable day is the first open day a session is accepted on.
    bookable = next(
        (
            x
            for x in days_from(lower, 21)
            if week_of(d0 if held else x, x) <= max(x.weeks[1] or 0 for x in phases)
            and calendar.is_open(x)
            and accepted(c, [x], moment, protocol)
        ),
        None,
    )
    if bookable is None:
        return
    assert f.next is not None
    assert f.next.bookable_from == bookable
    assert f.next.week == (week_of(d0, bookable) if held else 1)
    if held:
        # latest: the last day of the week from which its missing sessions all fit.
        week = week_of(d0, bookable)
        phase = next(x for x in phases if x.covers(week))
        start = d0 + 7 * (week - 1) * DAY
        need = (phase.target or 0) - sum(1 for x in held if start <= x < start + 7 * DAY)
        pool = [x for x in days_from(bookable, 7) if x < start + 7 * DAY and calendar.is_open(x)]
        firsts = (
            [
                combo[0]
                for combo in itertools.combinations(pool, need)
                if accepted(c, combo, moment, protocol)
            ]
            if need > 0
            else []
        )
        assert f.next.latest == (max(firsts) if firsts else None)


# --- DST -------------------------------------------------------------------------------------


def test_a_plan_across_the_spring_dst_change() -> None:
    # DST starts in Denver on Sunday 2026-03-08: the weeks are local dates, the time 09:00.
    c = history([d("2026-03-02")])  # a Monday: weeks run Monday to Sunday
    p = plan(c, d("2026-03-02"), EVERY_DAY, TRD, until=d("2026-03-22"))
    got = [(s.week, s.start.isoformat()) for s in p.sessions]
    assert got == [
        (1, "2026-03-03T09:00:00-07:00"),
        (2, "2026-03-09T09:00:00-06:00"),
        (2, "2026-03-10T09:00:00-06:00"),
        (3, "2026-03-16T09:00:00-06:00"),
        (3, "2026-03-17T09:00:00-06:00"),
    ]
    # At 08:30 on the change day (after the skipped hour) its 09:00 is still ahead.
    moment = dt.datetime(2026, 3, 8, 8, 30, tzinfo=ZONE)
    f = forecast(history([d("2026-03-02"), d("2026-03-04")]), moment, TRD)
    assert f.next is not None
    assert (f.next.week, f.next.bookable_from) == (2, d("2026-03-09"))
    g = forecast(history([d("2026-03-02")]), moment, TRD)
    assert g.next is not None
    assert (g.next.week, g.next.bookable_from, g.next.latest) == (
        1,
        d("2026-03-08"),
        d("2026-03-08"),
    )


def test_a_plan_across_the_autumn_dst_change() -> None:
    # DST ends on Sunday 2026-11-01: 01:30 happens twice; weeks still count local dates.
    c = history([d("2026-10-26"), d("2026-10-28")])
    moment = dt.datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ZONE)  # the second 01:30
    p = plan(c, moment, EVERY_DAY, TRD, until=d("2026-11-15"))
    got = [(s.week, s.start.isoformat()) for s in p.sessions]
    assert got == [
        (2, "2026-11-02T09:00:00-07:00"),
        (2, "2026-11-03T09:00:00-07:00"),
        (3, "2026-11-09T09:00:00-07:00"),
        (3, "2026-11-10T09:00:00-07:00"),
    ]
    f = forecast(history([d("2026-10-26")]), moment, TRD)
    assert f.next is not None
    # Week 1 ends on Sunday Nov 1, whose 09:00 (-07:00) is after the moment.
    assert (f.next.week, f.next.bookable_from, f.next.latest) == (
        1,
        d("2026-11-01"),
        d("2026-11-01"),
    )
    assert_each_day_is_bookable(c, p, moment, TRD)


# --- the command line ------------------------------------------------------------------------


def test_cli_next_and_plan_carry_phase_and_week(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    path = tmp_path / "trd.json"
    c = history([d("2026-12-01"), d("2026-12-03"), d("2026-12-08"), d("2026-12-10")])
    path.write_text(kaprules.dumps(c), encoding="utf-8")
    base = (str(path), "--as-of", "2026-12-10", "--protocol", "esketamine-trd@1")
    code, out, err = cli("next", *base, "--format", "json")
    assert (code, err) == (0, "")
    upcoming = json.loads(out)["next"]
    assert (upcoming["phase"], upcoming["week"], upcoming["bookable_from"]) == (
        "induction",
        3,
        "2026-12-15",
    )
    assert upcoming["refused"]["rule"] == "weekly-cap"
    code, out, err = cli("next", *base)
    assert (code, err) == (0, "")
    assert (
        out.splitlines()[1]
        == "Next session: treatment week 3 (induction), from 2026-12-15 to 2026-12-20."
    )
    assert out.splitlines()[2].startswith(
        "Not earlier: 2026-12-11 is refused by weekly-cap: treatment week 2"
    )
    code, out, err = cli("plan", *base, "--until", "2027-01-05", "--format", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["status"], data["until"], data["missed"]) == ("planned", "2027-01-05", [])
    assert [(s["week"], s["phase"], s["start"][:10]) for s in data["sessions"]] == [
        (3, "induction", "2026-12-15"),
        (3, "induction", "2026-12-16"),
        (4, "induction", "2026-12-22"),
        (4, "induction", "2026-12-23"),
        (5, "optimization", "2026-12-29"),
        (6, "optimization", "2027-01-05"),
    ]
    code, out, err = cli("plan", *base, "--until", "2027-01-05")
    assert (code, err) == (0, "")
    assert out.splitlines()[0].startswith(
        "planned: 6 sessions proposed from 2026-12-15 to 2027-01-05"
    )
    assert "week 5" in out.splitlines()[5]
    assert "optimization" in out.splitlines()[5]
    code, out, err = cli("plan", str(path), "--as-of", "2026-12-10", "--until", "2027-01-05")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "--until" in err
    code, out, err = cli("plan", *base, "--until", "2027-02-30")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
