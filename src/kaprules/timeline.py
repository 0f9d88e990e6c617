"""The timeline: a course as rules see it.

[`evaluate`][kaprules.evaluate] turns a [`Course`][kaprules.Course] into a
[`Timeline`][kaprules.Timeline] once, and hands the same timeline to every rule: sessions
in start order, each with its local start and date in the course timezone and whether it
is still planned, and the integration meetings with their local dates. Rules compare these
plain standard-library values; none of them has to think about zones or offsets again.
"""

from __future__ import annotations

import datetime as dt
import operator
import zoneinfo
from typing import NamedTuple

import attrs

from kaprules import _time
from kaprules.errors import InputError, Problem, shown_id
from kaprules.model import Course, Integration, Kind, Session, out_of_range

__all__ = ["TimedIntegration", "TimedSession", "Timeline"]


class TimedSession(NamedTuple):
    """A session placed on its course's timeline.

    A named tuple, built once per session for every evaluation: several times cheaper to
    make than a frozen attrs instance, and as immutable. ``t._replace(planned=True)`` gives
    a changed copy.

    Attributes:
        session: The session itself.
        id: Its id (always set once in a course).
        kind: Its kind.
        position: Its 0-based place in start order.
        instant: Its start, as a plain ``datetime`` in UTC.
        local: Its start, as a plain ``datetime`` in the course timezone.
        date: Its local date: the calendar date of ``local``.
        planned: True when ``as_of`` was given and the session starts after it.
    """

    session: Session
    id: str
    kind: Kind
    position: int
    instant: dt.datetime
    local: dt.datetime
    date: dt.date
    planned: bool

    @property
    def label(self) -> str:
        """How messages name the session: ``session s3 (2026-12-03 09:00 UTC-07:00)``."""
        return f"session {shown_id(self.id)} ({_time.format_local(self.local)})"


@attrs.frozen
class TimedIntegration:
    """An integration meeting placed on its course's timeline.

    Attributes:
        integration: The meeting itself.
        instant: Its start, as a plain ``datetime`` in UTC.
        local: Its start, as a plain ``datetime`` in the course timezone.
        date: Its local date.
    """

    integration: Integration
    instant: dt.datetime
    local: dt.datetime
    date: dt.date


@attrs.frozen
class Timeline:
    """A course's sessions in start order, with local dates, for rules to read.

    Attributes:
        course: The course.
        sessions: Every session, in start order (ties broken by id).
        inductions: The induction series: the induction sessions, in start order.
        as_of: The ``as_of`` moment or date, or None when the record is final.
        as_of_date: The local date of ``as_of`` in the course timezone, or None.
        integrations: The integration meetings, in start order.
        series_length: How many induction sessions make a complete series in the
            protocol being evaluated (its `SessionCount` rule's ``count``), or None when
            the protocol does not say.
    """

    course: Course
    sessions: tuple[TimedSession, ...]
    inductions: tuple[TimedSession, ...]
    as_of: dt.datetime | dt.date | None
    as_of_date: dt.date | None
    integrations: tuple[TimedIntegration, ...] = ()
    series_length: int | None = None

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The course timezone."""
        return self.course.zone

    @classmethod
    def of(
        cls,
        course: Course,
        as_of: dt.datetime | dt.date | None = None,
        *,
        series_length: int | None = None,
    ) -> Timeline:
        """Place a course's sessions on a timeline.

        Args:
            course: The course.
            as_of: None for a final record; a date (local, in the course timezone) or an
                aware datetime after which sessions count as planned.
            series_length: How many induction sessions complete the series, when the
                protocol says (`evaluate` passes it).

        Returns:
            The timeline.

        Raises:
            InputError: ``as_of`` is a naive datetime or not a date at all.
        """
        zone = course.zone
        planned_after: dt.datetime | None = None
        as_of_date: dt.date | None = None
        as_of = checked_as_of(as_of)
        if isinstance(as_of, dt.datetime):
            planned_after = _time.to_utc(as_of)
            as_of_date = planned_after.astimezone(zone).date()
        elif isinstance(as_of, dt.date):
            as_of_date = dt.date(as_of.year, as_of.month, as_of.day)

        # Every session of a course has an id, so (instant, id) orders them all.
        ordered = sorted(course.sessions, key=_START_ORDER)
        timed = []
        inductions = []
        induction = Kind.INDUCTION
        for position, session in enumerate(ordered):
            instant, kind = session.instant, session.kind
            local = instant.astimezone(zone)
            date = local.date()
            if planned_after is not None:
                planned = instant > planned_after
            else:
                planned = as_of_date is not None and date > as_of_date
            # tuple.__new__ directly: the values are a course's own, already checked.
            t = _make(
                TimedSession, (session, session.id, kind, position, instant, local, date, planned)
            )
            timed.append(t)
            if kind is induction:
                inductions.append(t)
        meetings: tuple[TimedIntegration, ...] = ()
        if course.integrations:
            placed = []
            for meeting in course.integrations:
                local = meeting.instant.astimezone(zone)
                placed.append(TimedIntegration(meeting, meeting.instant, local, local.date()))
            meetings = tuple(sorted(placed, key=lambda m: m.instant))
        return cls(
            course, tuple(timed), tuple(inductions), as_of, as_of_date, meetings, series_length
        )


_START_ORDER = operator.attrgetter("instant", "id")
_make = tuple.__new__


def checked_as_of(as_of: object) -> dt.datetime | dt.date | None:
    """``as_of`` if a timeline can take it: None, a date, or an aware datetime in range.

    The one check of ``as_of`` (`Timeline.of` makes it, an audit makes it once).

    Raises:
        InputError: ``as_of`` is a naive datetime, outside the supported years, or not a
            date at all.
    """
    if as_of is None:
        return None
    if isinstance(as_of, dt.datetime):
        if not _time.is_aware(as_of):
            raise InputError(
                "as_of: naive datetime has no UTC offset; give an aware datetime "
                "or a plain date (a local date in the course timezone)"
            )
        if not _time.in_range(as_of):
            raise InputError(Problem("as_of", out_of_range(as_of)))
        return as_of
    if isinstance(as_of, dt.date):
        if not _time.MIN_YEAR <= as_of.year <= _time.MAX_YEAR:
            raise InputError(Problem("as_of", out_of_range(as_of)))
        return as_of
    raise InputError(
        f"as_of: must be None, a date or an aware datetime, got {type(as_of).__name__}"
    )
