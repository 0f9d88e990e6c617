"""Hypothesis strategies for courses: test your own protocol code with kaprules' generators.

Needs hypothesis (``pip install 'kaprules[strategies]'``); the rest of kaprules does not
import this module.

- [`compliant_courses`][kaprules.strategies.compliant_courses]: courses that meet a
  protocol (kap-standard v1 by default) by construction, in any IANA zone, with sessions
  near midnight and DST changes and boosters at month ends.
- [`violating_courses`][kaprules.strategies.violating_courses]: compliant courses with one
  targeted mutation, so that exactly one rule has findings.
- [`courses`][kaprules.strategies.courses]: any structurally valid course, compliant or not.
- [`local_datetime`][kaprules.strategies.local_datetime]: a wall time on a local date,
  resolved in a zone so that the local date is kept.

Example:
    >>> from hypothesis import given
    >>> from kaprules import evaluate
    >>> from kaprules.strategies import compliant_courses
    >>> @given(compliant_courses())
    ... def test_compliant(course):
    ...     assert evaluate(course).ok
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Any

import attrs
import pendulum
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from kaprules import _time
from kaprules.errors import InputError, Problem
from kaprules.model import Course, Integration, Kind, Session
from kaprules.protocol import STANDARD, Protocol
from kaprules.rules import BaseRule, CourseShape, Rule

__all__ = [
    "INTERESTING_TIMES",
    "compliant_courses",
    "course_shape",
    "courses",
    "local_datetime",
    "notations",
    "timezones",
    "violating_courses",
]

INTERESTING_TIMES = tuple(
    dt.time(h, m)
    for h, m in ((0, 0), (0, 1), (0, 30), (1, 30), (2, 0), (2, 30), (3, 0), (23, 0), (23, 59))
)
"""Wall times where local dates and DST changes go wrong: around midnight and 01:00-03:00."""

_FIRST_YEAR, _LAST_YEAR = 2020, 2035


@functools.cache
def timezones() -> st.SearchStrategy[str]:
    """IANA zone names that a course may have, shrinking towards ``UTC``.

    Returns:
        A strategy of zone names (one shared object).
    """
    # Shared: a new sampled_from of ~600 names recomputes its label over every name, and
    # notations() draws from it twice per session.
    return st.sampled_from(_zone_names())


@functools.cache
def _zone_names() -> tuple[str, ...]:
    # Scanning the zone database costs milliseconds; hypothesis' timezone_keys() does it
    # on every draw.
    names = sorted(_time.zone_names() - {"UTC"})
    return ("UTC", *names)


def local_datetime(date: dt.date, time: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The aware datetime at wall ``time`` on local ``date`` in ``zone``.

    A wall time skipped by a DST change is moved forward by the change, as clocks do. If
    that would leave ``date`` (a change at midnight), noon is used instead, so the local
    date is always ``date``.

    Args:
        date: The local date.
        time: The wall time.
        zone: The zone.

    Returns:
        An aware datetime whose local date in ``zone`` is ``date``.

    Raises:
        InputError: ``date`` never existed in ``zone`` (Pacific/Apia skipped 2011-12-30).
    """
    try:
        return _time.at_local(date, time, zone)
    except _time.NoSuchDay as exc:
        raise InputError(Problem("date", str(exc), "value")) from None


@functools.lru_cache(maxsize=4096)
def _offset_changes(zone_name: str, year: int) -> tuple[dt.date, ...]:
    # Dates in `year` on which the zone's UTC offset at noon differs from the day before.
    zone = _time.zone(zone_name)
    day = dt.date(year, 1, 1)
    found = []
    previous = dt.datetime.combine(day, dt.time(12), tzinfo=zone).utcoffset()
    while day.year == year:
        day += dt.timedelta(days=1)
        offset = dt.datetime.combine(day, dt.time(12), tzinfo=zone).utcoffset()
        if offset != previous:
            found.append(day)
        previous = offset
    return tuple(found)


@st.composite
def _first_dates(draw: st.DrawFn, zone_name: str, last_offset: int) -> dt.date:
    year = draw(st.integers(_FIRST_YEAR, _LAST_YEAR - 1))
    changes = _offset_changes(zone_name, year)
    kinds = ["any", "month-end"] + (["dst"] if changes else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "dst":
        # Start so that the two weeks of the series straddle the change.
        return draw(st.sampled_from(changes)) - dt.timedelta(days=draw(st.integers(0, 13)))
    if kind == "month-end":
        # Put the last induction session on day 29-31 of a month, so that the first
        # booster's "+ 6 months" has to clamp (Aug 31 -> Feb 28).
        month = draw(st.integers(1, 12))
        month_end = _time.add_months(dt.date(year, month, 1), 1) - dt.timedelta(days=1)
        last = month_end - dt.timedelta(days=draw(st.integers(0, 2)))
        return last - dt.timedelta(days=last_offset)
    return draw(st.dates(dt.date(year, 1, 1), dt.date(year, 12, 31)))


def _rewrite(utc: dt.datetime, notation: tuple[str, Any]) -> dt.datetime:
    how, arg = notation
    if how == "offset":
        return utc.astimezone(dt.timezone(dt.timedelta(minutes=15 * arg)))
    if how == "zone":
        return utc.astimezone(_time.zone(arg))
    if how == "pendulum":
        return pendulum.instance(utc).in_timezone(arg)
    return utc


@functools.cache
def _notations() -> st.SearchStrategy[tuple[str, Any]]:
    # Built once: a strategy built anew for every instant costs more than drawing from it.
    return st.one_of(
        st.just(("utc", None)),
        st.integers(-14 * 4, 14 * 4).map(lambda q: ("offset", q)),
        timezones().map(lambda name: ("zone", name)),
        timezones().map(lambda name: ("pendulum", name)),
    )


def notations(value: dt.datetime) -> st.SearchStrategy[dt.datetime]:
    """The instant of ``value`` written in other notations: other UTC offsets and types.

    Args:
        value: An aware datetime.

    Returns:
        A strategy of aware datetimes equal to ``value`` as instants: a fixed offset
        (whole, half and quarter hours), UTC, an IANA zone, or pendulum's ``DateTime``.
    """
    return _notations().map(functools.partial(_rewrite, _time.to_utc(value)))


_ESCORTS = st.text(min_size=1, max_size=24).filter(lambda s: bool(s.strip()))


def course_shape(protocol: Protocol) -> CourseShape:
    """What courses that meet ``protocol`` look like, as its rules say.

    Starts from the default [`CourseShape`][kaprules.CourseShape] and asks each rule of the
    protocol, in order, to narrow it (``rule.course_shape(shape)``).

    Args:
        protocol: The protocol.

    Returns:
        The shape.

    Raises:
        hypothesis.errors.InvalidArgument: A rule cannot say how to generate courses that
            meet it (it has no ``course_shape``, or that returns None), naming the rule; or
            no course can meet the protocol.
    """
    shape = CourseShape()
    for rule in protocol.rules:
        narrow = getattr(rule, "course_shape", None)
        narrowed = narrow(shape) if callable(narrow) else None
        if not isinstance(narrowed, CourseShape):
            raise InvalidArgument(
                f"cannot generate courses for protocol {protocol.id} {protocol.version}: rule "
                f"{rule.id} ({type(rule).__name__}) does not say how to generate courses that "
                "meet it; give it a course_shape(shape) method (see kaprules.BaseRule)"
            )
        shape = narrowed
    if (shape.count - 1) * shape.gap > shape.window - 1:
        raise InvalidArgument(
            f"no course meets {protocol.id} {protocol.version}: {shape.count} sessions "
            f"{shape.gap} days apart do not fit in {shape.window} days"
        )
    return shape


def compliant_courses(
    *,
    boosters: st.SearchStrategy[int] | None = None,
    zones: st.SearchStrategy[str] | None = None,
    protocol: Protocol = STANDARD,
) -> st.SearchStrategy[Course]:
    """Courses that meet a protocol by construction (``evaluate(course, protocol).ok``).

    For kap-standard v1 (the default): six induction sessions within 14 local days, at
    least two local days apart; each with a fast of at least 4 hours of elapsed time, an
    escort and a therapist; then boosters, each on or after the previous session's local
    date + 6 months. For another protocol built from kaprules' own rules, the same with
    its parameters, and with the integration meetings its ``integration-followup`` asks.
    Dates cluster around DST changes and month ends; wall times around midnight and the
    small hours. Session ids are ``"s1"``, ``"s2"``, ... in start order; sessions come in
    shuffled order.

    Args:
        boosters: How many boosters (default: 0 to 3).
        zones: The zone names to use (default: any IANA zone).
        protocol: The protocol the courses meet; only kaprules' own rules are known.

    Returns:
        A strategy of courses.

    Raises:
        hypothesis.errors.InvalidArgument: The protocol has a rule kaprules does not know,
            or no course can meet it.
    """
    return _compliant_courses(
        boosters if boosters is not None else st.integers(0, 3),
        zones if zones is not None else timezones(),
        course_shape(protocol),
    )


@st.composite
def _compliant_courses(
    draw: st.DrawFn,
    boosters: st.SearchStrategy[int],
    zones: st.SearchStrategy[str],
    shape: CourseShape,
) -> Course:
    zone_name = draw(zones)
    zone = _time.zone(zone_name)
    offsets = [0]
    slack = shape.window - 1 - shape.gap * (shape.count - 1)
    for _ in range(shape.count - 1):
        extra = draw(st.integers(0, slack))
        slack -= extra
        offsets.append(offsets[-1] + shape.gap + extra)
    first = draw(_first_dates(zone_name, offsets[-1]))
    times = st.one_of(st.sampled_from(INTERESTING_TIMES), st.times())

    starts: list[tuple[Kind, dt.datetime]] = []
    for offset in offsets:
        local = local_datetime(first + dt.timedelta(days=offset), draw(times), zone)
        starts.append((Kind.INDUCTION, local))
    last_induction = starts[-1][1].date()
    for _ in range(draw(boosters)):
        previous = starts[-1][1].date()
        earliest = max(
            _time.add_months(previous, shape.booster_months),
            previous + dt.timedelta(days=shape.gap),
        )
        # Often exactly on the earliest date, which is itself a clamped month end when
        # the previous session was on day 29-31.
        late = draw(st.one_of(st.just(0), st.integers(0, 90)))
        local = local_datetime(earliest + dt.timedelta(days=late), draw(times), zone)
        starts.append((Kind.BOOSTER, local))

    least = dt.timedelta(hours=shape.fast_hours)
    fasts = st.one_of(st.just(least), st.timedeltas(least, least + dt.timedelta(hours=32)))
    sessions = []
    for index, (kind, local) in enumerate(starts, start=1):
        fast = draw(fasts)
        start = draw(notations(local))
        last_food = draw(notations(_time.to_utc(local) - fast))
        sessions.append(
            Session(start, kind, f"s{index}", last_food, draw(_ESCORTS), therapist=draw(_ESCORTS))
        )
    meetings = []
    for n in range(max(shape.meetings, draw(st.integers(0, 2)))):
        day = last_induction + dt.timedelta(days=draw(st.integers(1, shape.meetings_within)))
        meetings.append(Integration(local_datetime(day, draw(times), zone), f"i{n + 1}"))
    patient = draw(st.none() | st.text(max_size=12))
    return Course(
        zone_name,
        draw(st.permutations(sessions)),
        patient,
        integrations=draw(st.permutations(meetings)),
    )


def violating_courses(rule_id: str, protocol: Protocol = STANDARD) -> st.SearchStrategy[Course]:
    """Courses that break exactly one rule of a protocol: compliant ones, mutated.

    The rule says how to break a course (``rule.break_course``); kaprules' own rules cut a
    fast short (``fasting``), blank or drop an escort or therapist on a session the rule
    covers and no other rule of its class does (``escort``, ``therapist-present``), drop
    every integration meeting (``integration-followup``), move an induction session to
    one day less than ``min_days`` after the one before it (``session-spacing``), or move
    a booster to the day before its earliest date (``booster-interval``). Times of day and
    fasts (as elapsed time) move with a session. Evaluated with ``protocol``, the course
    has findings of that rule and of no other.

    Args:
        rule_id: The id of the rule to break, in ``protocol``.
        protocol: The protocol; every rule must say how to generate courses that meet it.

    Returns:
        A strategy of courses.

    Raises:
        hypothesis.errors.InvalidArgument: The rule does not say how to break a course, or
            the protocol is not one `compliant_courses` can generate.
    """
    rule = protocol.rule(rule_id)
    mutate = getattr(rule, "break_course", None)
    if not callable(mutate) or getattr(type(rule), "break_course", None) is BaseRule.break_course:
        raise InvalidArgument(
            f"violating_courses cannot target {rule_id}: {type(rule).__name__} does not say "
            "how to break a course; give it a break_course(course, choose, protocol) method"
        )
    return _violating(compliant_courses(protocol=protocol), rule, protocol)


@attrs.frozen
class _Draws:
    """A rule's mutation choices, drawn by hypothesis (`kaprules.Choices`)."""

    draw: st.DrawFn

    def integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def choice(self, options: Any) -> Any:
        return self.draw(st.sampled_from(options))

    def duration(self, low: dt.timedelta, high: dt.timedelta) -> dt.timedelta:
        return self.draw(st.timedeltas(low, high))


@st.composite
def _violating(
    draw: st.DrawFn, courses: st.SearchStrategy[Course], rule: Rule, protocol: Protocol
) -> Course:
    course = draw(courses)
    broken = rule.break_course(course, _Draws(draw), protocol)  # type: ignore[attr-defined]
    assume(broken is not None)
    assert isinstance(broken, Course)
    return broken


def _place(drawn: tuple[dt.datetime, tuple[str, Any]]) -> dt.datetime:
    naive, (how, arg) = drawn
    if how == "wall":  # the naive time as a wall time in a zone (DST gaps and folds too)
        return naive.replace(tzinfo=_time.zone(arg))
    return _rewrite(naive.replace(tzinfo=_time.UTC), arg)


@functools.cache
def _aware_datetimes() -> st.SearchStrategy[dt.datetime]:
    naive = st.datetimes(dt.datetime(_FIRST_YEAR, 1, 1), dt.datetime(_LAST_YEAR, 12, 31))
    how = _notations().map(lambda notation: ("instant", notation)) | timezones().map(
        lambda name: ("wall", name)
    )
    return st.tuples(naive, how).map(_place)


def courses(*, max_sessions: int = 12) -> st.SearchStrategy[Course]:
    """Any structurally valid course: any zone, sessions, kinds, fasts and escorts.

    Args:
        max_sessions: The most sessions in a course.

    Returns:
        A strategy of courses, compliant or not. Ids are unique; some sessions have none.
    """
    return _courses(max_sessions)


@st.composite
def _courses(draw: st.DrawFn, max_sessions: int) -> Course:
    n = draw(st.integers(0, max_sessions))
    sessions: list[Any] = []
    for index in range(n):
        start = draw(_aware_datetimes())
        fast = draw(st.none() | st.timedeltas(dt.timedelta(hours=-2), dt.timedelta(hours=30)))
        food = None if fast is None else _time.to_utc(start) - fast
        sessions.append(
            Session(
                start,
                draw(st.sampled_from(Kind)),
                draw(st.sampled_from([f"x{index}", None])),
                food,
                draw(st.none() | st.sampled_from(["", " ", "\t"]) | _ESCORTS),
            )
        )
    # Positional ids ("1", "2", ...) must not collide with the explicit ones.
    return Course(draw(timezones()), sessions, draw(st.none() | st.text(max_size=8)))
