"""Hypothesis strategies for courses: test your own protocol code with kaprules' generators.

Needs hypothesis (``pip install '.[strategies]'`` in a checkout of kaprules); the rest of
kaprules does not import this module.

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
from kaprules.model import Course, Integration, Kind, Session, Vital
from kaprules.phases import Phase, phase_of, treatment_week
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
    name = f"{protocol.id} {protocol.version}"
    if shape.phases is not None:
        if (
            _week_bounds(shape.phases, shape.weeks, 0) is None
            or _solve(_slots(shape.phases, shape.weeks, 0, None)) is None
        ):
            raise InvalidArgument(
                f"no course meets {name}: no sessions fit its phases' targets, caps and gaps"
                + ("" if shape.weeks is None else f" within {shape.weeks} treatment weeks")
            )
    elif (shape.count - 1) * shape.gap > _window(shape) - 1:
        raise InvalidArgument(
            f"no course meets {name}: {shape.count} sessions "
            f"{shape.gap} days apart do not fit in {_window(shape)} days"
        )
    if shape.bp_after[0] > shape.bp_after[1]:
        raise InvalidArgument(
            f"no course meets {name}: no time is in every window for a reading after dosing"
        )
    if shape.doses is not None and not all(shape.doses):
        raise InvalidArgument(f"no course meets {name}: no dose is allowed by every dose rule")
    return shape


def _window(shape: CourseShape) -> int:
    # The series' window, within the last treatment week a session may fall in.
    return shape.window if shape.weeks is None else min(shape.window, 7 * shape.weeks)


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

    For a phased protocol (one with `weekly-cap`, `weekly-target`, `overdue` or
    `min-gap`, such as esketamine-trd), a phased course instead: treatment weeks 1
    through the last week of the last phase that ends, each week of a phase with its
    target to its cap of sessions (week 1 at least one, the first session defining the
    weeks), on distinct local dates at least the phase's ``min_gap_days`` apart, then 0 to
    4 sessions of an open-ended last phase, each within its ``every_days`` of the one
    before and at most its cap a week; sessions of weeks before an open-ended phase are
    induction sessions, those in it boosters. `beyond-evaluated` ends courses at its week.
    With session-day rules (`liquid-fasting`, `blood-pressure-before`, ...), every
    session also records a last liquid, readings before and after dosing (and sometimes
    an earlier one of any value), a time ready to leave, a dose and a monitoring form
    that meet them, and the course an enrolment date on or before its first session's.

    Dates cluster around DST changes and month ends; wall times around midnight and the
    small hours. Session ids are ``"s1"``, ``"s2"``, ... in start order; sessions come in
    shuffled order.

    Args:
        boosters: How many boosters (default: 0 to 3); phased courses ignore it.
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
    if shape.phases is not None:
        return draw(_phased_courses(zones, shape))
    zone_name = draw(zones)
    zone = _time.zone(zone_name)
    offsets = [0]
    slack = _window(shape) - 1 - shape.gap * (shape.count - 1)
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
        if shape.weeks is not None and treatment_week(first, local.date()) > shape.weeks:
            break
        starts.append((Kind.BOOSTER, local))
    return _finished(draw, shape, zone_name, starts, last_induction, times)


def _finished(
    draw: st.DrawFn,
    shape: CourseShape,
    zone_name: str,
    starts: list[tuple[Kind, dt.datetime]],
    last_induction: dt.date,
    times: st.SearchStrategy[dt.time],
) -> Course:
    # The course of sessions at `starts` (in start order): fasts, escorts, therapists,
    # session-day data, integration meetings after `last_induction`, a patient.
    zone = _time.zone(zone_name)
    least = dt.timedelta(hours=shape.fast_hours)
    fasts = st.one_of(st.just(least), st.timedeltas(least, least + dt.timedelta(hours=32)))
    sessions = []
    for index, (kind, local) in enumerate(starts, start=1):
        fast = draw(fasts)
        start = draw(notations(local))
        last_food = draw(notations(_time.to_utc(local) - fast))
        data = _session_day(draw, shape, local, first=index == 1) if shape.session_day else {}
        sessions.append(
            Session(
                start,
                kind,
                f"s{index}",
                last_food,
                draw(_ESCORTS),
                therapist=draw(_ESCORTS),
                **data,
            )
        )
    meetings = []
    for n in range(max(shape.meetings, draw(st.integers(0, 2)))):
        day = last_induction + dt.timedelta(days=draw(st.integers(1, shape.meetings_within)))
        meetings.append(Integration(local_datetime(day, draw(times), zone), f"i{n + 1}"))
    patient = draw(st.none() | st.text(max_size=12))
    enrolled = None
    if shape.enrolled:
        before = draw(st.one_of(st.just(0), st.integers(0, 60)))
        enrolled = starts[0][1].date() - dt.timedelta(days=before)
    return Course(
        zone_name,
        draw(st.permutations(sessions)),
        patient,
        integrations=draw(st.permutations(meetings)),
        enrolled=enrolled,
    )


_ANY_READING = st.integers(1, 400)
_EARLIER = st.timedeltas(dt.timedelta(minutes=1), dt.timedelta(hours=3))


@functools.lru_cache(maxsize=256)
def _at_least(least: dt.timedelta, more: dt.timedelta) -> st.SearchStrategy[dt.timedelta]:
    # `least` itself often (the boundary), else up to `more` above it.
    return st.one_of(st.just(least), st.timedeltas(least, least + more))


@functools.lru_cache(maxsize=256)
def _up_to(most: dt.timedelta) -> st.SearchStrategy[dt.timedelta]:
    # A duration from 0 to `most`, often one of the two bounds.
    return st.one_of(st.sampled_from((dt.timedelta(0), most)), st.timedeltas(dt.timedelta(0), most))


@functools.lru_cache(maxsize=256)
def _reading(limit: int) -> st.SearchStrategy[int]:
    return st.one_of(st.just(limit), st.integers(1, limit))


def _vital(
    draw: st.DrawFn,
    at: dt.datetime,
    systolic: st.SearchStrategy[int],
    diastolic: st.SearchStrategy[int],
) -> Vital:
    # A reading's diastolic is at most its systolic (a Vital refuses more); lowering it
    # keeps a reading within a limit within it.
    high = draw(systolic)
    return Vital(at, high, min(draw(diastolic), high))


def _session_day(
    draw: st.DrawFn, shape: CourseShape, local: dt.datetime, *, first: bool
) -> dict[str, Any]:
    """Session-day data that meets ``shape`` for a session starting at ``local``."""
    start = _time.to_utc(local)
    # One notation for all of the session's day (drawing one per instant costs more than
    # it finds): another UTC offset, zone or type than the start's, often.
    notation = draw(_notations())

    def written(instant: dt.datetime) -> dt.datetime:
        return _rewrite(instant, notation)

    minutes = dt.timedelta(minutes=1)
    hours = dt.timedelta(hours=1)
    liquid = start - draw(_at_least(shape.liquid_minutes * minutes, 6 * hours))
    systolic, diastolic = shape.bp_limit
    # The latest reading in the window before dosing, within the limit.
    before = start - draw(_up_to(shape.bp_before_minutes * minutes))
    vitals = [_vital(draw, written(before), _reading(systolic), _reading(diastolic))]
    if draw(st.booleans()):
        # An earlier reading of any value: not the latest, so never judged against the limit.
        earlier = before - draw(_EARLIER)
        vitals.append(_vital(draw, written(earlier), _ANY_READING, _ANY_READING))
    low, high = shape.bp_after
    after = start + low * minutes + draw(_up_to((high - low) * minutes))
    # A reading at the start itself is also one before dosing, and may be the latest.
    at_start = after == start
    vitals.append(
        _vital(
            draw,
            written(after),
            _reading(systolic) if at_start else _ANY_READING,
            _reading(diastolic) if at_start else _ANY_READING,
        )
    )
    # In any order: the latest reading is found by time.
    turn = draw(st.integers(0, 2 * len(vitals) - 1))
    vitals = vitals[turn % len(vitals) :] + vitals[: turn % len(vitals)]
    ready = start + draw(_at_least(shape.monitoring_minutes * minutes, 3 * hours))
    form = start + draw(_up_to(dt.timedelta(days=shape.form_days)))
    doses = (28, 56, 84) if shape.doses is None else shape.doses[0 if first else 1]
    return {
        "last_liquid": written(liquid),
        "vitals": tuple(vitals if turn < len(vitals) else reversed(vitals)),
        "ready_to_leave": written(ready),
        "dose_mg": draw(_one_of(doses)),
        "monitoring_form": written(form),
    }


@functools.lru_cache(maxsize=64)
def _one_of(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


# Planning phased courses. A slot is one session to place: the earliest and the latest day
# offset from the first session's local date (day 0), the fewest days after the session
# before, and the most (None: any).
_Slot = tuple[int, int, int, int | None]
_OPEN_SPAN = 35  # the most days an open-ended phase's next session is looked for in


def _open_phase(phases: tuple[Phase, ...]) -> Phase | None:
    return phases[-1] if phases[-1].last is None else None


def _week_bounds(
    phases: tuple[Phase, ...], weeks: int | None, open_weeks: int
) -> list[tuple[int, int, int, int | None]] | None:
    """For each treatment week from 1: (fewest sessions, most, gap, every_days).

    The weeks of phases that end, and ``open_weeks`` weeks of an open-ended phase with a
    target, up to ``weeks``; None when week 1 cannot hold the first session.
    """
    last = max((p.last for p in phases if p.last is not None), default=0)
    open_phase = _open_phase(phases)
    if open_phase is not None and open_phase.target is not None:
        last = max(last, open_phase.first - 1 + open_weeks)
    last = max(last, 1)
    if weeks is not None:
        last = min(last, weeks)
    bounds: list[tuple[int, int, int, int | None]] = []
    for week in range(1, last + 1):
        phase = phase_of(phases, week)
        if phase is None:
            bounds.append((1, 1, 1, None) if week == 1 else (0, 0, 1, None))
            continue
        fewest = phase.target or 0
        most = phase.at_most if phase.at_most is not None else max(fewest, 2)
        if week == 1:
            fewest = max(fewest, 1)
        if fewest > most:
            return None
        every = phase.every_days if phase.last is None else None
        bounds.append((fewest, most, phase.min_gap_days or 1, every))
    return bounds


def _slots(
    phases: tuple[Phase, ...], weeks: int | None, open_weeks: int, counts: list[int] | None
) -> list[_Slot]:
    # The slots of `counts` sessions in each week (None: the fewest each week may have).
    bounds = _week_bounds(phases, weeks, open_weeks)
    assert bounds is not None
    slots: list[_Slot] = []
    for index, (fewest, _, gap, every) in enumerate(bounds):
        n = fewest if counts is None else counts[index]
        slots += [(7 * index, 7 * index + 6, gap, every)] * n
    first = slots[0]
    slots[0] = (0, 0, first[2], None)
    return slots


def _solve(slots: list[_Slot]) -> list[tuple[int, int]] | None:
    """Each slot's days that a whole placement can use, or None when none fits.

    Adjacent slots bound each other's difference: on a chain, narrowing each slot by the
    one after it (last to first) leaves every day of a slot with a day of the next one
    that fits, so placing them first to last never gets stuck.
    """
    bounds = [(low, high) for low, high, _, _ in slots]
    for i in range(len(slots) - 1, 0, -1):
        _, _, gap, every = slots[i]
        if every is not None and every < gap:
            return None
        low, high = bounds[i]
        before_low, before_high = bounds[i - 1]
        before_high = min(before_high, high - gap)
        if every is not None:
            before_low = max(before_low, low - every)
        bounds[i - 1] = (before_low, before_high)
    if any(low > high for low, high in bounds):
        return None
    return bounds


@st.composite
def _phased_offsets(draw: st.DrawFn, phases: tuple[Phase, ...], weeks: int | None) -> list[int]:
    """Day offsets of a phased course's sessions from the first one's local date."""
    open_phase = _open_phase(phases)
    # Weeks of an open-ended phase with a target: a few, or up to the last week allowed.
    most = 4
    if open_phase is not None and weeks is not None:
        most = min(max(most, weeks - open_phase.first + 1), 8)
    open_weeks = draw(st.one_of(st.just(most), st.integers(0, most)))
    bounds = _week_bounds(phases, weeks, open_weeks)
    assert bounds is not None
    counts = [draw(st.integers(fewest, most)) for fewest, most, _, _ in bounds]
    slots = _slots(phases, weeks, open_weeks, counts)
    solved = _solve(slots)
    if solved is None:  # too many sessions drawn to fit: the fewest do,
        slots = _slots(phases, weeks, open_weeks, None)
        solved = _solve(slots)
    if solved is None:  # or, failing that, the fewest without open weeks (course_shape)
        slots = _slots(phases, weeks, 0, None)
        solved = _solve(slots)
    assert solved is not None
    offsets: list[int] = []
    for (_, _, gap, every), (low, high) in zip(slots, solved, strict=True):
        if offsets:
            low = max(low, offsets[-1] + gap)
            high = high if every is None else min(high, offsets[-1] + every)
        offsets.append(draw(st.integers(low, high)))
    if open_phase is None or open_phase.target is not None or open_phase.at_most == 0:
        return offsets
    # An open-ended phase without a target: a few sessions, each within every_days of
    # the one before, at most at_most a week.
    per_week: dict[int, int] = {}
    for offset in offsets:
        per_week[offset // 7] = per_week.get(offset // 7, 0) + 1
    gap = open_phase.min_gap_days or 1
    for _ in range(draw(st.integers(0, 4))):
        low = max(offsets[-1] + gap, 7 * (open_phase.first - 1))
        high = low + _OPEN_SPAN
        if open_phase.every_days is not None:
            high = min(high, offsets[-1] + open_phase.every_days)
        if weeks is not None:
            high = min(high, 7 * weeks - 1)
        free = [
            day
            for day in range(low, high + 1)
            if open_phase.at_most is None or per_week.get(day // 7, 0) < open_phase.at_most
        ]
        if not free:
            break
        offsets.append(draw(st.sampled_from(free)))
        per_week[offsets[-1] // 7] = per_week.get(offsets[-1] // 7, 0) + 1
    return offsets


@st.composite
def _phased_courses(draw: st.DrawFn, zones: st.SearchStrategy[str], shape: CourseShape) -> Course:
    assert shape.phases is not None
    zone_name = draw(zones)
    zone = _time.zone(zone_name)
    offsets = draw(_phased_offsets(shape.phases, shape.weeks))
    # Day 0 or a later session on a month end, or the weeks straddling a DST change.
    first = draw(_first_dates(zone_name, draw(st.sampled_from(offsets))))
    times = st.one_of(st.sampled_from(INTERESTING_TIMES), st.times())
    open_phase = _open_phase(shape.phases)
    starts: list[tuple[Kind, dt.datetime]] = []
    for offset in offsets:
        maintained = open_phase is not None and offset // 7 + 1 >= open_phase.first
        local = local_datetime(first + dt.timedelta(days=offset), draw(times), zone)
        starts.append((Kind.BOOSTER if maintained else Kind.INDUCTION, local))
    inductions = [local.date() for kind, local in starts if kind is Kind.INDUCTION]
    last_induction = inductions[-1] if inductions else starts[-1][1].date()
    return _finished(draw, shape, zone_name, starts, last_induction, times)


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

    Phased rules add a session to a week at its cap (``weekly-cap``), take one from a week
    that has just its target (``weekly-target``), stretch a gap of an open-ended phase
    past its ``every_days`` (``overdue``), move a session onto its neighbour's local date
    (``min-gap``) or add one after the weeks evaluated (``beyond-evaluated``), keeping
    every other phase bound; session-day rules spoil one session's record: a late last
    liquid, the readings before or after dosing dropped, the latest one before raised
    over the limit, monitoring cut short, a dose no session may have, enrolment missing
    or late, the monitoring form early, late or missing. A course that cannot be broken
    so is drawn again; a rule with a twin of its class in the protocol, never.

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
