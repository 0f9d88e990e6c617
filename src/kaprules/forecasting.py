"""Forecasts: when the next session of a course may be, and whether a booking may be made.

[`evaluate`][kaprules.evaluate] judges the sessions a course has;
[`forecast`][kaprules.forecast] answers the scheduling question beside it, as immunization
forecasters do: the next session's kind, its earliest and latest local dates, and whether
the series can still be completed. [`check_booking`][kaprules.check_booking] judges one
proposed session before it is booked.

Both read the protocol's own parameters, by rule id: N = ``session-count.count``,
W = ``treatment-window.days``, g = ``session-spacing.min_days`` (0 without that rule),
M = ``booster-interval.months`` and K = ``booster-interval.min_induction`` (no booster
without that rule).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import attrs

from kaprules import _time
from kaprules import report as _report
from kaprules._version import __version__
from kaprules.errors import InputError, Problem, ProtocolError, echo
from kaprules.model import Course, Kind, Session
from kaprules.protocol import (
    STANDARD,
    Protocol,
    _check_course,
    _check_protocol,
    _evaluate_timeline,
)
from kaprules.report import Finding, Help, Report, Severity
from kaprules.timeline import TimedSession, Timeline

__all__ = [
    "SERIES_COMPLETION",
    "Forecast",
    "NextSession",
    "SeriesStatus",
    "check_booking",
    "forecast",
]

SERIES_COMPLETION = "series-completion"
"""The rule id of [`check_booking`][kaprules.check_booking]'s finding for a booking after
which the induction series can no longer be completed."""


class SeriesStatus(enum.StrEnum):
    """Where a course's induction series stands. Compares equal to its plain string.

    Attributes:
        NOT_STARTED: No induction session is recorded yet.
        IN_PROGRESS: Some induction sessions are recorded and the rest can still fit in the window.
        CANNOT_COMPLETE: The remaining induction sessions can no longer fit in the window.
        COMPLETE: The series has all its induction sessions.
    """

    NOT_STARTED = "not-started"
    IN_PROGRESS = "in-progress"
    CANNOT_COMPLETE = "cannot-complete"
    COMPLETE = "complete"


@attrs.frozen
class NextSession:
    """The next session a course may have, as local dates in the course timezone.

    Attributes:
        kind: ``induction`` or ``booster``.
        earliest: The protocol's earliest date; may lie before ``as_of``.
        bookable_from: The first date a booking screen offers: the later of ``earliest``
            and the local date of ``as_of``.
        latest: The last date from which the series can still be completed, or None when
            there is no such limit (the first induction session, a booster).
    """

    kind: Kind
    earliest: dt.date
    bookable_from: dt.date
    latest: dt.date | None

    def to_dict(self) -> dict[str, str | None]:
        """This next session as plain data for JSON.

        Returns:
            A dict with the keys ``kind``, ``earliest``, ``bookable_from`` and ``latest``;
            dates as ``YYYY-MM-DD``, a missing ``latest`` as None.
        """
        return {
            "kind": self.kind.value,
            "earliest": self.earliest.isoformat(),
            "bookable_from": self.bookable_from.isoformat(),
            "latest": None if self.latest is None else self.latest.isoformat(),
        }


@attrs.frozen
class Forecast:
    """The answer to "when may this course's next session be?".

    Built by [`forecast`][kaprules.forecast]; you read it, you do not build it.

    Attributes:
        status: Where the induction series stands.
        inductions: How many induction sessions the course has, held and planned alike.
        count: How many the series needs (the protocol's ``session-count.count``).
        window_opens: The local date of the first induction session, or None.
        window_closes: The window's last day (``window_opens`` + W - 1), or None.
        next: The next session, or None when there is none (a series that cannot be
            completed, or a complete one without a booster to come).
        today: The local date of ``as_of`` in the course timezone.
        as_of: The ``as_of`` given, as ISO text.
        timezone: The course timezone.
        protocol_id: The protocol's id.
        protocol_version: The protocol's version.
        kaprules_version: The kaprules version that made the forecast.
    """

    status: SeriesStatus
    inductions: int
    count: int
    window_opens: dt.date | None
    window_closes: dt.date | None
    next: NextSession | None
    today: dt.date
    as_of: str
    timezone: str
    protocol_id: str
    protocol_version: str
    kaprules_version: str

    def to_dict(self) -> dict[str, Any]:
        """This forecast as plain data for JSON.

        Returns:
            A dict with the keys ``status``, ``inductions``, ``count``, ``window``
            (``{"opens", "closes"}``, both None until the first induction session),
            ``next`` (as by `NextSession.to_dict`, or None), ``today``, ``as_of``,
            ``timezone``, ``protocol`` (``{"id", "version"}``) and ``kaprules_version``.
        """
        return {
            "status": self.status.value,
            "inductions": self.inductions,
            "count": self.count,
            "window": {"opens": _iso(self.window_opens), "closes": _iso(self.window_closes)},
            "next": None if self.next is None else self.next.to_dict(),
            "today": self.today.isoformat(),
            "as_of": self.as_of,
            "timezone": self.timezone,
            "protocol": {"id": self.protocol_id, "version": self.protocol_version},
            "kaprules_version": self.kaprules_version,
        }


def _iso(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


@attrs.frozen
class _Schedule:
    """The protocol parameters a forecast reads; the planner shares them."""

    count: int
    window: int
    gap: int
    months: int | None
    min_induction: int

    @classmethod
    def of(cls, protocol: Protocol) -> _Schedule:
        """Read N, W, g, M and K from ``protocol``'s rules, by rule id."""
        _check_protocol(protocol)
        count = _required(protocol, "session-count", "count")
        window = _required(protocol, "treatment-window", "days")
        gap = _parameter(protocol, "session-spacing", "min_days", required=False)
        months = _parameter(protocol, "booster-interval", "months", required=False)
        minimum = _parameter(protocol, "booster-interval", "min_induction", required=False)
        return cls(count, window, gap or 0, months, minimum or 0)

    def latest(self, first: dt.date, inductions: int) -> dt.date:
        """The last date for the next induction session from which the series still fits."""
        rest = self.count - inductions - 1
        return first + dt.timedelta(days=self.window - 1 - self.gap * rest)


def _required(protocol: Protocol, rule_id: str, name: str) -> int:
    value = _parameter(protocol, rule_id, name, required=True)
    assert value is not None  # _parameter raises instead
    return value


def _parameter(protocol: Protocol, rule_id: str, name: str, *, required: bool) -> int | None:
    rule = next((r for r in protocol.rules if r.id == rule_id), None)
    if rule is None:
        if not required:
            return None
        raise ProtocolError(
            Problem(
                "rules",
                f"protocol {echo(protocol.id)} version {echo(protocol.version)} has no "
                f"{rule_id!r} rule; a forecast needs its {name!r} parameter",
                "missing",
            )
        )
    value = rule.parameters().get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(
            Problem(
                (rule_id, "parameters", name),
                "a forecast needs a whole number here (is the rule with this id one of "
                "kaprules' own?)",
                "type",
            )
        )
    return value


def _timeline(course: Course, as_of: dt.datetime | dt.date, schedule_length: int) -> Timeline:
    _check_course(course)
    if as_of is None:
        raise InputError(
            "as_of: a forecast needs the moment it is made: a local date or an aware datetime"
        )
    return Timeline.of(course, as_of, series_length=schedule_length)


def forecast(
    course: Course, as_of: dt.datetime | dt.date, protocol: Protocol = STANDARD
) -> Forecast:
    """When the next session of ``course`` may be, and whether its series can be completed.

    All dates are local calendar dates in the course timezone. With n induction sessions
    in the course (held and planned alike), ``first`` the first induction date, ``last``
    the latest session date of any kind and ``today`` the local date of ``as_of``:

    - **not-started** (n = 0): the next induction session from ``today`` (or ``last + g``
      when the course already has a session and that is later); no latest date.
    - **in-progress** (0 < n < N): from ``last + g`` to
      ``first + (W - 1) - g * (N - n - 1)``, the last day from which the remaining sessions
      still fit at the minimum gap.
    - **cannot-complete**: in progress, but the first bookable day is after that latest
      date; or not started under a protocol whose N sessions, g days apart, never fit in
      W days. There is no next session.
    - **complete** (n >= N): a booster from ``last + M months`` (clamped to the month's
      end, as the booster rule counts; and at least ``g`` days after ``last``) when the
      protocol has a booster-interval rule and n >= K; otherwise no next session.

    ``bookable_from`` is always the later of ``earliest`` and ``today``.

    Args:
        course: The course.
        as_of: The moment of the forecast, read as `evaluate` reads it: a date is a local
            date in the course timezone; an aware datetime is an instant.
        protocol: The protocol whose parameters are read (kap-standard v1 by default).

    Returns:
        The forecast.

    Raises:
        InputError: ``course`` is not a Course, or ``as_of`` is missing, naive or out of
            range.
        ProtocolError: The protocol has no ``session-count`` or ``treatment-window`` rule.
    """
    schedule = _Schedule.of(protocol)
    timeline = _timeline(course, as_of, schedule.count)
    return _forecast(timeline, schedule, protocol)


def _forecast(timeline: Timeline, schedule: _Schedule, protocol: Protocol) -> Forecast:
    today = timeline.as_of_date
    assert today is not None
    assert timeline.as_of is not None
    n = len(timeline.inductions)
    last = timeline.sessions[-1].date if timeline.sessions else None
    first = timeline.inductions[0].date if n else None
    closes = None if first is None else first + dt.timedelta(days=schedule.window - 1)
    step = dt.timedelta(days=schedule.gap)
    upcoming: NextSession | None = None
    if first is None:
        if schedule.gap * (schedule.count - 1) > schedule.window - 1:
            # No series fits this protocol's window at its gap, whenever it starts.
            status = SeriesStatus.CANNOT_COMPLETE
        else:
            status = SeriesStatus.NOT_STARTED
            earliest = today if last is None else max(today, last + step)
            upcoming = NextSession(Kind.INDUCTION, earliest, earliest, None)
    elif n < schedule.count:
        assert last is not None
        earliest = last + step
        latest = schedule.latest(first, n)
        bookable = max(today, earliest)
        if bookable > latest:
            status = SeriesStatus.CANNOT_COMPLETE
        else:
            status = SeriesStatus.IN_PROGRESS
            upcoming = NextSession(Kind.INDUCTION, earliest, bookable, latest)
    else:
        assert last is not None
        status = SeriesStatus.COMPLETE
        if schedule.months is not None and n >= schedule.min_induction:
            earliest = max(_time.add_months(last, schedule.months), last + step)
            upcoming = NextSession(Kind.BOOSTER, earliest, max(today, earliest), None)
    return Forecast(
        status,
        n,
        schedule.count,
        first,
        closes,
        upcoming,
        today,
        timeline.as_of.isoformat(),
        timeline.course.timezone,
        protocol.id,
        protocol.version,
        __version__,
    )


def check_booking(
    course: Course,
    proposed: Session,
    as_of: dt.datetime | dt.date,
    protocol: Protocol = STANDARD,
) -> Report:
    """Whether ``proposed`` may be booked: ``report.ok`` says yes or no.

    The protocol is evaluated on the course with the proposed session added, as a planned
    session (its escort, last meal and therapist are not yet due). The report keeps only
    the findings that name the proposed session: errors the course already had do not
    block a booking. When the proposed session is an induction session after which the
    series can no longer be completed (by [`forecast`][kaprules.forecast]) although it
    could before, the report has one more error finding, of rule id
    ``"series-completion"``, naming it and the latest date that kept the series possible.

    Args:
        course: The course as booked so far.
        proposed: The session to book. Without an id it is called ``proposed``.
        as_of: The moment of the booking, read as `evaluate` reads it.
        protocol: The protocol (kap-standard v1 by default).

    Returns:
        A report over the course with the proposed session added, holding only the
        findings about the proposed session.

    Raises:
        InputError: ``proposed`` is not a Session or has the id of a session of the course;
            ``course`` or ``as_of`` is unusable as for `forecast`.
        ProtocolError: The protocol has no ``session-count`` or ``treatment-window`` rule.
    """
    schedule = _Schedule.of(protocol)
    before = _timeline(course, as_of, schedule.count)
    if not isinstance(proposed, Session):
        raise InputError(
            Problem("proposed", f"must be a Session, got {type(proposed).__name__}", "type")
        )
    taken = {s.id for s in course.sessions}
    if proposed.id is None:
        fresh, number = "proposed", 1
        while fresh in taken:
            number += 1
            fresh = f"proposed-{number}"
        proposed = attrs.evolve(proposed, id=fresh)
    elif proposed.id in taken:
        raise InputError(
            Problem(
                ("proposed", "id"),
                f"the course already has a session {echo(proposed.id)}; give the proposed "
                "session an id of its own",
                "duplicate",
            )
        )
    name = proposed.id
    assert name is not None
    booked = attrs.evolve(course, sessions=(*course.sessions, proposed))
    timeline = Timeline.of(booked, as_of, series_length=schedule.count)
    # A booking is a planned session, even on today's date: what is due at the session
    # itself (escort, fasting, therapist) cannot be faulted yet.
    timeline = attrs.evolve(
        timeline,
        sessions=tuple(_as_planned(t, name) for t in timeline.sessions),
        inductions=tuple(_as_planned(t, name) for t in timeline.inductions),
    )
    report = _evaluate_timeline(timeline, protocol)
    findings = [f for f in report.findings if name in f.sessions]
    if proposed.kind is Kind.INDUCTION:
        was = _forecast(before, schedule, protocol)
        now = _forecast(timeline, schedule, protocol)
        if was.status is not SeriesStatus.CANNOT_COMPLETE and (
            now.status is SeriesStatus.CANNOT_COMPLETE
        ):
            placed = next(t for t in timeline.sessions if t.id == proposed.id)
            findings.append(_completion_finding(placed, was, now, schedule))
    return attrs.evolve(report, findings=tuple(findings))


def _as_planned(timed: TimedSession, session_id: str) -> TimedSession:
    return timed._replace(planned=True) if timed.id == session_id else timed


def _completion_finding(
    placed: TimedSession, was: Forecast, now: Forecast, schedule: _Schedule
) -> Finding:
    rest = schedule.count - now.inductions
    assert now.window_closes is not None
    message = (
        f"booking {placed.label} leaves {rest} induction "
        f"{'session' if rest == 1 else 'sessions'} that can no longer fit in the series' "
        f"{schedule.window}-day window, which closes on {now.window_closes.isoformat()}"
    )
    latest = was.next.latest if was.next is not None else None
    if latest is not None:
        message += f"; {latest.isoformat()} was the latest date that kept the series possible"
    return Finding(
        SERIES_COMPLETION,
        Severity.ERROR,
        (placed.id,),
        message,
        None if latest is None else latest.isoformat(),
        placed.date.isoformat(),
        help=Help(f"{_report.DOCS_URL}scheduling/#booking-check"),
    )
