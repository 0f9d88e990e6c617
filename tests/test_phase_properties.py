"""Property-based tests of phased protocols and session-day rules.

Generated compliant courses meet every rule of the protocol; each targeted mutation trips
exactly its rule. For the esketamine protocols and phased clinic protocols built here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis.errors import InvalidArgument

from kaprules import (
    ESKETAMINE_MDSI,
    ESKETAMINE_TRD,
    STANDARD,
    STANDARD_V2,
    BaseRule,
    BeyondEvaluated,
    BloodPressureAfter,
    BloodPressureBefore,
    BloodPressureLimit,
    Course,
    CourseShape,
    Dose,
    Escort,
    Fasting,
    Kind,
    LiquidFasting,
    MinGap,
    MonitoringForm,
    Overdue,
    Phase,
    PostDoseMonitoring,
    Protocol,
    RemsEnrolment,
    Session,
    Therapist,
    WeeklyCap,
    WeeklyTarget,
    evaluate,
)
from kaprules.phases import phase_of, treatment_week
from kaprules.strategies import compliant_courses, course_shape, violating_courses
from kaprules.timeline import Timeline

IV_PHASES = (
    Phase("induction", (1, 3), at_most=2, target=2, min_gap_days=1),
    Phase("maintenance", (4, 7), at_most=1, target=1, min_gap_days=1),
)
CLINIC_IV = Protocol(
    "clinic-iv",
    "1",
    (
        WeeklyCap(phases=IV_PHASES),
        WeeklyTarget(phases=IV_PHASES),
        MinGap(phases=IV_PHASES),
        Fasting(hours=6),
        LiquidFasting(minutes=120),
        BloodPressureBefore(minutes=30),
        BloodPressureLimit(systolic=150, diastolic=95, minutes=30),
        # From the start itself: a reading at the start is one before and after dosing.
        BloodPressureAfter(from_minutes=0, to_minutes=90),
        PostDoseMonitoring(minutes=90),
        Dose(first=(35,), then=(35, 50, 70.5)),
        Therapist(),
    ),
)
"""An IV programme: twice a week for 3 weeks, then once a week for 4, with session-day
rules of the clinic's own numbers."""

FLEX_PHASES = (
    Phase("loading", (1, 2), at_most=3, target=2, min_gap_days=2),
    # Week 3 is a break: a phase without limits.
    Phase("break", (3, 3)),
    Phase("taper", (4, 5), at_most=1, min_gap_days=3),
    Phase("monthly", (6,), at_most=1, every_days=28, min_gap_days=7),
)
CLINIC_FLEX = Protocol(
    "clinic-flex",
    "1",
    (
        WeeklyCap(phases=FLEX_PHASES),
        WeeklyTarget(phases=FLEX_PHASES),
        Overdue(phases=FLEX_PHASES),
        MinGap(phases=FLEX_PHASES),
        Escort(),
        MonitoringForm(days=2),
        RemsEnrolment(),
    ),
)
"""Targets below caps, gaps of several days, a break week, a monthly open phase."""

WEEKLY_PHASES = (Phase("weekly", (1,), at_most=2, target=1, every_days=9, min_gap_days=2),)
CLINIC_WEEKLY = Protocol(
    "clinic-weekly",
    "1",
    (
        WeeklyCap(phases=WEEKLY_PHASES),
        WeeklyTarget(phases=WEEKLY_PHASES),
        Overdue(phases=WEEKLY_PHASES),
        MinGap(phases=WEEKLY_PHASES),
        BeyondEvaluated(after_week=5),
        Dose(first=(56,), then=(84,)),
    ),
)
"""One open-ended phase with a target from week 1, ended by beyond-evaluated."""

PROTOCOLS = (ESKETAMINE_TRD, ESKETAMINE_MDSI, CLINIC_IV, CLINIC_FLEX, CLINIC_WEEKLY)


def _breakable(protocol: Protocol) -> list[str]:
    return [
        r.id
        for r in protocol.rules
        if getattr(type(r), "break_course", BaseRule.break_course) is not BaseRule.break_course
    ]


TARGETS = [(p, rule_id) for p in PROTOCOLS for rule_id in _breakable(p)]


def _messages(course: Course, protocol: Protocol) -> list[tuple[str, str]]:
    return [(f.rule, f.message) for f in evaluate(course, protocol).findings]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.id)
def test_generated_phased_courses_pass_every_rule(protocol: Protocol) -> None:
    @settings(max_examples=12)
    @given(compliant_courses(protocol=protocol))
    def check(course: Course) -> None:
        report = evaluate(course, protocol)
        assert report.ok, _messages(course, protocol)
        assert report.findings == ()

    check()


@pytest.mark.parametrize(("protocol", "rule_id"), TARGETS, ids=[f"{p.id}:{r}" for p, r in TARGETS])
def test_each_mutation_trips_exactly_its_rule(protocol: Protocol, rule_id: str) -> None:
    @settings(max_examples=4)
    @given(violating_courses(rule_id, protocol))
    def check(course: Course) -> None:
        found = {f.rule for f in evaluate(course, protocol).findings}
        assert found == {rule_id}, _messages(course, protocol)

    check()


def test_every_new_rule_says_how_to_break_a_course() -> None:
    ids = {rule_id for _, rule_id in TARGETS}
    assert {
        "weekly-cap",
        "weekly-target",
        "overdue",
        "min-gap",
        "beyond-evaluated",
        "liquid-fasting",
        "blood-pressure-before",
        "blood-pressure-limit",
        "blood-pressure-after",
        "post-dose-monitoring",
        "dose",
        "rems-enrolment",
        "monitoring-form",
    } <= ids


@settings(max_examples=10)
@given(compliant_courses(protocol=ESKETAMINE_TRD))
def test_trd_courses_have_the_shape_of_the_label(course: Course) -> None:
    timeline = Timeline.of(course)
    first = timeline.sessions[0].date
    weeks = [treatment_week(first, t.date) for t in timeline.sessions]
    for week in range(1, 9):
        assert weeks.count(week) == (2 if week <= 4 else 1)
    assert 12 <= len(weeks) <= 16
    assert len({t.date for t in timeline.sessions}) == len(weeks)
    # Weeks before the open-ended phase are inductions, those in it boosters.
    for t, week in zip(timeline.sessions, weeks, strict=True):
        assert t.kind is (Kind.INDUCTION if week <= 8 else Kind.BOOSTER)
    assert course.enrolled is not None
    assert course.enrolled <= first
    assert timeline.sessions[0].session.dose_mg == 56


@settings(max_examples=8)
@given(compliant_courses(protocol=CLINIC_FLEX))
def test_weeks_in_no_phase_have_no_sessions(course: Course) -> None:
    sessions = Timeline.of(course).sessions
    first = sessions[0].date
    for t in sessions[1:]:
        assert phase_of(FLEX_PHASES, treatment_week(first, t.date)) is not None


def test_kap_standard_generation_is_unchanged() -> None:
    # The induction-series generator reads only the shape's first seven fields; everything
    # phased and session-day stays at its default, so kap-standard's draws are today's.
    assert course_shape(STANDARD) == CourseShape(gap=2, fast_hours=4, booster_months=6)
    assert course_shape(STANDARD_V2) == CourseShape(
        gap=2, fast_hours=4, booster_months=6, meetings=1
    )
    default = CourseShape()
    assert (default.phases, default.weeks, default.session_day, default.enrolled) == (
        None,
        None,
        False,
        False,
    )


def test_shapes_of_the_esketamine_protocols() -> None:
    trd = course_shape(ESKETAMINE_TRD)
    assert trd.phases == ESKETAMINE_TRD.rule("weekly-cap").phases  # type: ignore[attr-defined]
    assert trd.session_day
    assert trd.enrolled
    assert (trd.liquid_minutes, trd.bp_before_minutes, trd.bp_limit) == (30, 60, (140, 90))
    assert (trd.bp_after, trd.monitoring_minutes, trd.form_days) == ((30, 60), 120, 7)
    assert trd.doses == ((56,), (56, 84))
    assert trd.weeks is None
    assert course_shape(ESKETAMINE_MDSI).weeks == 4


def test_impossible_shapes_are_refused() -> None:
    apart = Protocol(
        "apart",
        "1",
        (
            BloodPressureAfter(from_minutes=0, to_minutes=10),
            BloodPressureAfter(from_minutes=20, to_minutes=30, id="bp-after-late"),
        ),
    )
    with pytest.raises(InvalidArgument, match="reading after dosing"):
        course_shape(apart)
    doses = Protocol("doses", "1", (Dose(first=(10,)), Dose(first=(20,), id="dose-2")))
    with pytest.raises(InvalidArgument, match="no dose"):
        course_shape(doses)
    # Each phase fits on its own; together, week 2's first session is at least 6 days
    # after week 1's last (day 6 at the earliest), leaving no room for its second.
    cramped = (
        Phase("a", (1, 1), at_most=3, target=3, min_gap_days=3),
        Phase("b", (2, 2), at_most=2, target=2, min_gap_days=6),
    )
    with pytest.raises(InvalidArgument, match="phases"):
        course_shape(Protocol("cramped", "1", (WeeklyTarget(phases=cramped),)))


class _First:
    """Choices that always take the first option and the lowest value."""

    def integer(self, low: int, high: int) -> int:
        return low

    def choice(self, options: Sequence[_T]) -> _T:
        return options[0]

    def duration(self, low: dt.timedelta, high: dt.timedelta) -> dt.timedelta:
        return low


_T = TypeVar("_T")


def test_twin_rules_are_not_broken_alone() -> None:
    # Two dose rules would both see a wrong dose: the mutation is refused, not generated.
    twins = Protocol("twins", "1", (Dose(), Dose(id="dose-2")))
    start = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    course = Course("UTC", (Session(start, id="s1", dose_mg=56),))
    for rule in twins.rules:
        assert rule.break_course(course, _First(), twins) is None  # type: ignore[attr-defined]
    single = Protocol("single", "1", (Dose(),))
    broken = single.rules[0].break_course(course, _First(), single)  # type: ignore[attr-defined]
    assert broken is not None
    assert {f.rule for f in evaluate(broken, single).findings} == {"dose"}
