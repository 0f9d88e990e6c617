"""Property-based tests: invariants of evaluation and targeted mutations of compliant courses."""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import inspect
import itertools
import json
from typing import Any

import attrs
import pytest
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st

from kaprules import (
    STANDARD,
    BoosterInterval,
    Course,
    Fasting,
    InputError,
    Kind,
    Protocol,
    Session,
    SessionCount,
    SessionSpacing,
    TreatmentWindow,
    _time,
    evaluate,
    parse_course,
)
from kaprules.strategies import compliant_courses, courses, local_datetime, notations
from kaprules.timeline import TimedSession, Timeline

as_of_values = (
    st.none()
    | st.dates(dt.date(2019, 1, 1), dt.date(2037, 1, 1))
    | st.datetimes(dt.datetime(2019, 1, 1), dt.datetime(2037, 1, 1), timezones=st.just(dt.UTC))
)


def ordered(course: Course) -> tuple[TimedSession, ...]:
    return Timeline.of(course).sessions


def moved(course: Course, target: TimedSession, date: dt.date) -> Course:
    """The course with `target` moved to `date` at the same wall time, its fast kept."""
    s = target.session
    start = local_datetime(date, target.local.time(), course.zone)
    fast = s.instant - s.food_instant if s.food_instant else None
    # Subtract in UTC: aware arithmetic within one ZoneInfo is wall-clock arithmetic.
    food = None if fast is None else _time.to_utc(start) - fast
    new = attrs.evolve(s, start=start, last_food=food)
    return attrs.evolve(course, sessions=[new if x is s else x for x in course.sessions])


def with_session(course: Course, session: Session | None, replace: Session | None = None) -> Course:
    sessions = [x for x in course.sessions if x is not replace]
    return attrs.evolve(course, sessions=sessions + ([session] if session else []))


# --- invariants -----------------------------------------------------------------------


@given(compliant_courses())
def test_generated_compliant_courses_pass(course: Course) -> None:
    report = evaluate(course)
    assert report.ok, [f.message for f in report.findings]
    assert report.findings == ()


@given(courses(), st.randoms(use_true_random=False), as_of_values)
def test_input_order_does_not_change_findings(course: Course, rnd: object, as_of: object) -> None:
    shuffled = list(course.sessions)  # ids were assigned, so they travel with the sessions
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    again = attrs.evolve(course, sessions=shuffled)
    assert evaluate(again, as_of=as_of).to_dict() == evaluate(course, as_of=as_of).to_dict()  # type: ignore[arg-type]


@given(courses(max_sessions=8), st.data())
def test_utc_offset_notation_does_not_change_the_report(
    course: Course, data: st.DataObject
) -> None:
    rewritten = [
        attrs.evolve(
            s,
            start=data.draw(notations(s.start)),
            last_food=None if s.last_food is None else data.draw(notations(s.last_food)),
        )
        for s in course.sessions
    ]
    again = attrs.evolve(course, sessions=rewritten)
    assert evaluate(again).to_dict() == evaluate(course).to_dict()


@given(courses(), as_of_values)
def test_evaluate_never_raises_on_a_built_course(course: Course, as_of: object) -> None:
    report = evaluate(course, as_of=as_of)  # type: ignore[arg-type]
    data = json.loads(json.dumps(report.to_dict()))  # plain data, always
    assert data["ok"] == all(f["severity"] != "error" for f in data["findings"])
    assert {f["rule"] for f in data["findings"]} <= set(STANDARD.rule_ids)


@given(courses(), as_of_values)
def test_findings_name_known_sessions_in_start_order(course: Course, as_of: object) -> None:
    position = {t.id: t.position for t in ordered(course)}
    for finding in evaluate(course, as_of=as_of).findings:  # type: ignore[arg-type]
        places = [position[s] for s in finding.sessions]
        assert places == sorted(places)


MARK = "\u2063zq"  # a marker no message could contain by chance


@given(courses(), st.text(max_size=10))
def test_messages_never_echo_escorts_or_patient(course: Course, tail: str) -> None:
    sessions = [
        attrs.evolve(s, escort=None if s.escort is None else f"{MARK}E{s.escort}{tail}")
        for s in course.sessions
    ]
    marked = attrs.evolve(course, sessions=sessions, patient=f"{MARK}P{tail}")
    text = json.dumps(evaluate(marked).to_dict(), ensure_ascii=False)
    assert MARK not in text
    assert MARK not in repr(marked)


extreme = STANDARD.replace(
    SessionCount(window_days=36_600),
    TreatmentWindow(days=36_600),
    SessionSpacing(min_days=36_600),
    Fasting(hours=8_784),
    BoosterInterval(months=1_200, min_induction=0),
)
edge_instants = st.datetimes(
    dt.datetime(1900, 1, 2), dt.datetime(9000, 12, 30), timezones=st.just(dt.UTC)
) | st.sampled_from(
    [dt.datetime(1900, 1, 1, tzinfo=dt.UTC), dt.datetime(9000, 12, 31, 23, 59, tzinfo=dt.UTC)]
)


@given(
    st.lists(st.tuples(edge_instants, st.sampled_from(Kind)), max_size=8),
    st.sampled_from(["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "America/Denver"]),
    st.sampled_from([STANDARD, extreme]),
    st.none() | st.dates(dt.date(1900, 1, 1), dt.date(9000, 12, 31)),
)
def test_evaluate_never_raises_across_the_supported_range(
    starts: list[tuple[dt.datetime, Kind]], zone: str, protocol: Protocol, as_of: dt.date | None
) -> None:
    sessions = [Session(s, k, f"s{i}", s, "E") for i, (s, k) in enumerate(starts)]
    report = evaluate(Course(zone, sessions), protocol, as_of=as_of)
    # Every finding names sessions of the course, and every message is one printable line.
    ids = {s.id for s in sessions}
    assert all(set(f.sessions) <= ids for f in report.findings)
    assert all(f.message.isprintable() for f in report.findings)


# --- targeted mutations: each trips exactly its rule --------------------------------


@given(compliant_courses(), st.data())
def test_moving_a_session_next_to_its_neighbour_trips_spacing(
    course: Course, data: st.DataObject
) -> None:
    series = [t for t in ordered(course) if t.kind is Kind.INDUCTION]
    i = data.draw(st.integers(1, len(series) - 1))
    mutated = moved(course, series[i], series[i - 1].date + dt.timedelta(days=1))
    report = evaluate(mutated)
    assert report.rules_found == {"session-spacing"}
    assert [f.sessions for f in report.findings] == [(series[i - 1].id, series[i].id)]


@given(compliant_courses(), st.data())
def test_shortening_a_fast_trips_fasting(course: Course, data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(course.sessions))
    short = data.draw(
        st.timedeltas(dt.timedelta(hours=-3), dt.timedelta(hours=4) - dt.timedelta(microseconds=1))
    )
    food = _time.to_utc(target.start) - short
    mutated = with_session(course, attrs.evolve(target, last_food=food), target)
    report = evaluate(mutated)
    assert report.rules_found == {"fasting"}
    assert [f.sessions for f in report.findings] == [(target.id,)]


@given(compliant_courses(), st.sampled_from([None, "", " ", "\t\n", "\u3000"]), st.data())
def test_blanking_an_escort_trips_escort(
    course: Course, blank: str | None, data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(course.sessions))
    report = evaluate(with_session(course, attrs.evolve(target, escort=blank), target))
    assert report.rules_found == {"escort"}
    assert [f.sessions for f in report.findings] == [(target.id,)]


def plus_months(date: dt.date, months: int) -> dt.date:
    """The booster rule's month arithmetic, written independently: keep the day, clamp."""
    index = date.year * 12 + date.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(date.day, calendar.monthrange(year, month + 1)[1]))


@pytest.mark.parametrize(
    ("date", "months", "expected"),
    [
        ("2026-08-31", 6, "2027-02-28"),
        ("2027-08-31", 6, "2028-02-29"),
        ("2026-01-31", 1, "2026-02-28"),
        ("2026-12-15", 1, "2027-01-15"),
        ("2026-03-31", 12, "2027-03-31"),
        ("2024-02-29", 12, "2025-02-28"),
    ],
)
def test_month_arithmetic_table(date: str, months: int, expected: str) -> None:
    day = dt.date.fromisoformat(date)
    assert plus_months(day, months) == dt.date.fromisoformat(expected)
    assert _time.add_months(day, months) == dt.date.fromisoformat(expected)


@given(st.dates(dt.date(1900, 1, 1), dt.date(8900, 12, 31)), st.integers(0, 1200))
def test_month_arithmetic_agrees_with_an_independent_reading(date: dt.date, months: int) -> None:
    assert _time.add_months(date, months) == plus_months(date, months)


@given(compliant_courses(boosters=st.integers(1, 3)), st.data())
def test_moving_a_booster_a_day_early_trips_booster_interval(
    course: Course, data: st.DataObject
) -> None:
    timeline = ordered(course)
    boosters = [t for t in timeline if t.kind is Kind.BOOSTER]
    target = data.draw(st.sampled_from(boosters))
    earliest = plus_months(timeline[target.position - 1].date, 6)
    report = evaluate(moved(course, target, earliest - dt.timedelta(days=1)))
    assert report.rules_found == {"booster-interval"}
    assert [f.sessions for f in report.findings] == [(target.id,)]


@given(compliant_courses(boosters=st.just(0)))
def test_moving_the_last_induction_past_the_window_trips_treatment_window(course: Course) -> None:
    series = [t for t in ordered(course) if t.kind is Kind.INDUCTION]
    last = series[-1]
    closes = series[0].date + dt.timedelta(days=13)
    report = evaluate(moved(course, last, closes + dt.timedelta(days=1)))
    assert report.rules_found == {"treatment-window"}
    assert [f.sessions for f in report.findings] == [(last.id,)]
    # On the window's last day itself, nothing.
    assert evaluate(moved(course, last, closes)).ok


# A stricter value of each rule's parameter: a shorter window, a longer gap, fast or interval.
STRICTER = {
    "treatment-window": ("days", -1),
    "session-spacing": ("min_days", +1),
    "fasting": ("hours", +1),
    "booster-interval": ("months", +1),
}


@given(
    courses(max_sessions=8),
    st.sampled_from(["treatment-window", "session-spacing", "fasting", "booster-interval"]),
)
def test_a_stricter_parameter_never_removes_a_finding(course: Course, rule_id: str) -> None:
    name, step = STRICTER[rule_id]
    rule = STANDARD.rule(rule_id)
    value = rule.parameters()[name]
    assert isinstance(value, int | float)
    stricter = STANDARD.update(rule_id, **{name: value + step})
    before = {(f.rule, f.sessions) for f in evaluate(course).findings if f.rule == rule_id}
    after = {(f.rule, f.sessions) for f in evaluate(course, stricter).findings if f.rule == rule_id}
    assert before <= after


@given(compliant_courses(), st.data())
def test_dropping_an_induction_session_trips_session_count(
    course: Course, data: st.DataObject
) -> None:
    series = [t for t in ordered(course) if t.kind is Kind.INDUCTION]
    target = data.draw(st.sampled_from(series))
    report = evaluate(with_session(course, None, target.session))
    # A booster then also has only five induction sessions before it.
    has_boosters = any(s.kind is Kind.BOOSTER for s in course.sessions)
    assert report.rules_found == {"session-count"} | (
        {"booster-interval"} if has_boosters else set()
    )
    assert [f.sessions for f in report.findings if f.rule == "session-count"] == [()]


@given(compliant_courses(), st.data())
def test_adding_an_induction_session_trips_session_count(
    course: Course, data: st.DataObject
) -> None:
    timeline = ordered(course)
    series = [t for t in timeline if t.kind is Kind.INDUCTION]
    boosters = [t for t in timeline if t.kind is Kind.BOOSTER]
    first = series[0].date
    slots = [
        d
        for d in (first + dt.timedelta(days=k) for k in range(1, 14))
        if all(abs((d - t.date).days) >= 2 for t in series)
        and (not boosters or d <= series[-1].date or boosters[0].date >= plus_months(d, 6))
    ]
    assume(slots)
    day = data.draw(st.sampled_from(slots))
    start = local_datetime(day, dt.time(12), course.zone)
    food = _time.to_utc(start) - dt.timedelta(hours=6)
    extra = Session(start, Kind.INDUCTION, "added", food, "E")
    report = evaluate(with_session(course, extra))
    assert report.rules_found == {"session-count"}
    [finding] = report.findings
    assert finding.sessions == (series[-1].id if day < series[-1].date else "added",)


# --- parsing --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def outcome(raw: str | bytes) -> Course | InputError:
    """What parse_course gives; any exception but InputError escapes and fails the test."""
    try:
        return parse_course(raw)
    except InputError as exc:
        return exc


@given(json_values)
def test_parse_course_gives_a_course_or_an_input_error(value: object) -> None:
    result = outcome(json.dumps(value))
    assert isinstance(result, Course) or (result.problems and str(result))


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_parse_course_on_any_text_or_bytes(raw: bytes | str) -> None:
    result = outcome(raw)
    assert isinstance(result, Course) or (result.problems and str(result))


def test_standard_is_the_default_protocol() -> None:
    # STANDARD itself, kap-standard v1 forever, is pinned in test_protocol.py.
    assert inspect.signature(evaluate).parameters["protocol"].default is STANDARD


@given(compliant_courses())
def test_generated_courses_serialize_and_reload(course: Course) -> None:
    # Written by hand, not by kaprules.dumps: the loader against an independent writer.
    document = {
        "timezone": course.timezone,
        "sessions": [
            {
                "id": s.id,
                "kind": str(s.kind),
                "start": s.start.isoformat(),
                "last_food": None if s.last_food is None else s.last_food.isoformat(),
                "escort": s.escort,
                "therapist": s.therapist,
            }
            for s in course.sessions
        ],
        "integrations": [{"id": i.id, "start": i.start.isoformat()} for i in course.integrations],
    }
    again = parse_course(json.dumps(document))
    assert again == attrs.evolve(course, patient=None)
    assert evaluate(again).ok


# --- the generator reaches the hard cases ---------------------------------------------


def clamps_a_booster(course: Course) -> bool:
    timeline = ordered(course)
    return any(
        b.kind is Kind.BOOSTER and plus_months(a.date, 6).day != a.date.day
        for a, b in itertools.pairwise(timeline)
    )


def straddles_dst(course: Course) -> bool:
    return len({t.local.utcoffset() for t in ordered(course) if t.kind is Kind.INDUCTION}) > 1


def near_midnight(course: Course) -> bool:
    return any(t.local.hour == 23 or t.local.hour == 0 for t in ordered(course))


class _Found(Exception):
    pass


def find_any(strategy: st.SearchStrategy[Course], predicate: Any) -> Course:
    """An example satisfying ``predicate``, without shrinking it: existence, not minimality."""
    found: list[Course] = []

    @settings(
        max_examples=1_000, phases=[Phase.generate], database=None, derandomize=True, deadline=None
    )
    @given(strategy)
    def search(value: Course) -> None:
        if predicate(value):
            found.append(value)
            raise _Found

    with contextlib.suppress(_Found):
        search()
    assert found, f"no generated course {predicate.__name__}"
    return found[0]


@pytest.mark.parametrize("predicate", [clamps_a_booster, straddles_dst, near_midnight])
def test_compliant_courses_reach_the_hard_cases(predicate: Any) -> None:
    # find_any guarantees the predicate; what this adds is that the hard case, once
    # reached, is still a compliant course.
    found = find_any(compliant_courses(), predicate)
    assert evaluate(found).ok
