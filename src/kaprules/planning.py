"""Plans: the rest of a series proposed on the days a clinic is open, and calendar export.

[`plan`][kaprules.plan] places each remaining session on the earliest open day the
protocol allows, from the day after ``as_of``. Earliest-first placement is optimal for
rules made of a minimum gap and a deadline: if any placement on open days completes the
series, this one does, and each of its sessions is on or before the same session of any
other placement (the argument is on the scheduling page of the docs).
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
import hashlib
from typing import Any

import attrs

from kaprules import _time
from kaprules._version import __version__
from kaprules.clinic_calendar import ClinicCalendar
from kaprules.errors import InputError, Problem
from kaprules.forecasting import Forecast, _forecast, _Schedule, _timeline
from kaprules.model import Course, Kind, Session
from kaprules.protocol import STANDARD, Protocol

__all__ = ["HORIZON_DAYS", "Plan", "PlanStatus", "PlannedSession", "plan"]

HORIZON_DAYS = 366
"""How far ahead of ``as_of`` the planner looks for the first day of a new series, or for a
booster's open day: 366 days."""


class PlanStatus(enum.StrEnum):
    """What a plan says. Compares equal to its plain string.

    Attributes:
        PLANNED: Sessions are proposed.
        COMPLETE: The series is complete and no session is proposed (no booster to come, or no open
            day for it within the horizon; the plan's ``reason`` says which).
        CANNOT_COMPLETE: The remaining induction sessions do not fit on open days; nothing is
            proposed.
    """

    PLANNED = "planned"
    COMPLETE = "complete"
    CANNOT_COMPLETE = "cannot-complete"


@attrs.frozen
class PlannedSession:
    """A session the planner proposes.

    Attributes:
        id: An id not used by the course: ``planned-1``, ``planned-2``, ...
        kind: ``induction`` or ``booster``.
        number: Its place in the induction series (1-based), or among the course's
            boosters.
        start: Its start, an aware datetime in the course timezone at the calendar's time.
    """

    id: str
    kind: Kind
    number: int
    start: dt.datetime

    @property
    def session(self) -> Session:
        """The proposed session as a `Session`, with nothing recorded yet."""
        return Session(self.start, self.kind, self.id)

    def to_dict(self) -> dict[str, Any]:
        """This session as plain data for JSON.

        Returns:
            A dict with ``id``, ``kind``, ``number`` and ``start`` (ISO 8601 with the
            course zone's offset, such as ``2026-12-07T09:00:00-07:00``).
        """
        return {
            "id": self.id,
            "kind": self.kind.value,
            "number": self.number,
            "start": self.start.isoformat(),
        }


@attrs.frozen
class Plan:
    """The planner's answer: the sessions proposed, or why there are none.

    Built by [`plan`][kaprules.plan]; you read it, you do not build it.

    Attributes:
        status: What the plan says.
        sessions: The proposed sessions, in start order; empty unless ``status`` is
            ``planned``.
        reason: One sentence for a person on what was proposed, or why nothing was.
        window_opens: The first day of the series' window (planned or recorded), or None.
        window_closes: Its last day, or None.
        unplaced: How many induction sessions did not fit (0 unless ``cannot-complete``).
        forecast: The forecast the plan starts from.
        calendar: The clinic calendar used.
        course: The course planned for (never shown in the plan's output).
    """

    status: PlanStatus
    sessions: tuple[PlannedSession, ...]
    reason: str
    window_opens: dt.date | None
    window_closes: dt.date | None
    unplaced: int
    forecast: Forecast
    calendar: ClinicCalendar
    course: Course = attrs.field(repr=False)

    @property
    def planned_course(self) -> Course:
        """The course with the proposed sessions added, to check or store."""
        return attrs.evolve(
            self.course, sessions=(*self.course.sessions, *(p.session for p in self.sessions))
        )

    def to_dict(self) -> dict[str, Any]:
        """This plan as plain data for JSON.

        Returns:
            A dict with ``status``, ``sessions`` (each as by `PlannedSession.to_dict`),
            ``reason``, ``window`` (``{"opens", "closes"}``), ``unplaced``, ``inductions``,
            ``count``, ``calendar``, ``today``, ``as_of``, ``timezone``, ``protocol``
            (``{"id", "version"}``) and ``kaprules_version``.
        """
        f = self.forecast
        return {
            "status": self.status.value,
            "sessions": [s.to_dict() for s in self.sessions],
            "reason": self.reason,
            "window": {"opens": _iso(self.window_opens), "closes": _iso(self.window_closes)},
            "unplaced": self.unplaced,
            "inductions": f.inductions,
            "count": f.count,
            "calendar": self.calendar.to_dict(),
            "today": f.today.isoformat(),
            "as_of": f.as_of,
            "timezone": f.timezone,
            "protocol": {"id": f.protocol_id, "version": f.protocol_version},
            "kaprules_version": f.kaprules_version,
        }

    def to_ical(self) -> bytes:
        """The proposed sessions as an iCalendar file (RFC 5545), made with ``icalendar``.

        One VEVENT per proposed session, tentative, with DTSTART in the course timezone
        (TZID and a VTIMEZONE), a summary such as "KAP induction session 4 of 6" and a
        UID that stays the same when the same session of the same course is planned
        again. With the calendar's ``duration_minutes``, DTEND is that much elapsed time
        after the start (across a DST change too; an end whose wall time a DST change
        makes ambiguous is written in UTC); with its ``location``, LOCATION. DTSTAMP is
        the ``as_of`` moment, so the same plan gives the same bytes. No patient, escort or
        therapist text is written.

        Returns:
            The calendar file's bytes.

        Raises:
            ImportError: The ``icalendar`` package is missing
                (``pip install 'kaprules[calendar]'``).
        """
        import icalendar

        f = self.forecast
        calendar = icalendar.Calendar()
        calendar.add("prodid", f"-//kaprules//kaprules {__version__}//EN")
        calendar.add("version", "2.0")
        calendar.add("calscale", "GREGORIAN")
        stamp = _stamp(f.as_of, self.course)
        anchor = _anchor(self.course, self.sessions)
        for s in self.sessions:
            event = icalendar.Event()
            uid = hashlib.sha256(f"{anchor}|{s.kind.value}|{s.number}".encode()).hexdigest()
            event.add("uid", f"{uid[:32]}@kaprules")
            event.add("dtstamp", stamp)
            event.add("dtstart", s.start)
            if self.calendar.duration_minutes is not None:
                event.add("dtend", _end(s.start, self.calendar.duration_minutes))
            if self.calendar.location is not None:
                event.add("location", self.calendar.location)
            event.add("summary", _summary(s, f.count))
            event.add("status", "TENTATIVE")
            event.add(
                "description",
                f"Proposed by kaprules under protocol {f.protocol_id} version "
                f"{f.protocol_version}; not yet booked.",
            )
            calendar.add_component(event)
        if self.sessions:
            first = self.sessions[0].start.date()
            last = self.sessions[-1].start.date()
            calendar.add_missing_timezones(
                first_date=dt.date(first.year - 1, 1, 1),
                last_date=dt.date(last.year + 2, 1, 1),
            )
        return bytes(calendar.to_ical())


def _count(sessions: int) -> str:
    return f"{sessions} induction session{'' if sessions == 1 else 's'}"


def _iso(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _summary(session: PlannedSession, count: int) -> str:
    if session.kind is Kind.INDUCTION:
        return f"KAP induction session {session.number} of {count}"
    return f"KAP booster session {session.number}"


def _end(start: dt.datetime, minutes: int) -> dt.datetime:
    # Elapsed time, not wall time: a two-hour session that spans a DST change still lasts
    # two hours. An end in a repeated hour would be read as its first occurrence by
    # calendar apps (RFC 5545, 3.3.5), so that one is written in UTC.
    end = (_time.to_utc(start) + dt.timedelta(minutes=minutes)).astimezone(start.tzinfo)
    if _time.to_utc(end.replace(fold=0)) != _time.to_utc(end):
        return _time.to_utc(end)
    return end


def _stamp(as_of: str, course: Course) -> dt.datetime:
    if "T" in as_of:
        return _time.to_utc(dt.datetime.fromisoformat(as_of))
    midnight = dt.datetime.combine(dt.date.fromisoformat(as_of), dt.time(), tzinfo=course.zone)
    return midnight.astimezone(_time.UTC)


def _anchor(course: Course, proposed: tuple[PlannedSession, ...]) -> str:
    # What identifies the series without personal text: the zone and its first session (the
    # first proposed one for a course without sessions).
    if course.sessions:
        first = min(course.sessions, key=lambda s: (s.instant, s.id or ""))
        return f"{course.timezone}|{first.id}|{first.instant.isoformat()}"
    start = proposed[0].start if proposed else None
    return f"{course.timezone}||{start.isoformat() if start else ''}"


class _OpenDays:
    """The open days of a calendar between two dates, for quick earliest-open lookups."""

    def __init__(self, calendar: ClinicCalendar, first: dt.date, last: dt.date) -> None:
        days = (last - first).days + 1
        self.days = [
            d
            for d in (first + dt.timedelta(days=k) for k in range(max(days, 0)))
            if calendar.is_open(d)
        ]

    def on_or_after(self, date: dt.date) -> dt.date | None:
        index = bisect.bisect_left(self.days, date)
        return self.days[index] if index < len(self.days) else None

    def chain(self, start: dt.date, count: int, gap: int, closes: dt.date) -> list[dt.date]:
        """Up to ``count`` open days, each the earliest ``gap`` days after the one before."""
        placed: list[dt.date] = []
        at = start
        step = dt.timedelta(days=gap)
        for _ in range(count):
            day = self.on_or_after(at)
            if day is None or day > closes:
                break
            placed.append(day)
            at = day + step
        return placed


def plan(
    course: Course,
    as_of: dt.datetime | dt.date,
    calendar: ClinicCalendar | None = None,
    protocol: Protocol = STANDARD,
) -> Plan:
    """Propose the rest of a course's series on the days the clinic is open.

    Proposed sessions start strictly after the local date of ``as_of``, on open days of
    ``calendar``, at its time, as planned sessions in the course timezone. With N, W, g, M
    as for [`forecast`][kaprules.forecast] and n the course's induction sessions:

    - n = 0: the full series. Its first day is the earliest open day (from the next day
      on, and at least ``last + g`` when the course has a session) from which placing
      each session on the earliest open day at least g days after the one before fits all
      N in its W-day window. First days up to 366 days ahead are tried.
    - 0 < n < N: the remaining N - n sessions, each on the earliest open day at least g
      days after the session before it, all on or before the window's last day.
    - n >= N: one booster, on the earliest open day on or after the forecast's earliest
      booster date (and after ``as_of``), when the forecast has a booster.

    When the remaining sessions cannot all fit, nothing is proposed: the status is
    ``cannot-complete`` and the reason names the window's last day and how many sessions
    did not fit.

    Args:
        course: The course.
        as_of: The moment of planning, read as `evaluate` reads it.
        calendar: The clinic's calendar; Monday to Friday at 09:00 by default.
        protocol: The protocol (kap-standard v1 by default).

    Returns:
        The plan.

    Raises:
        InputError: ``course``, ``as_of`` or ``calendar`` is unusable.
        ProtocolError: The protocol has no ``session-count`` or ``treatment-window`` rule.
    """
    schedule = _Schedule.of(protocol)
    timeline = _timeline(course, as_of, schedule.count)
    if calendar is None:
        calendar = ClinicCalendar()
    elif not isinstance(calendar, ClinicCalendar):
        raise InputError(
            Problem("calendar", f"must be a ClinicCalendar, got {type(calendar).__name__}", "type")
        )
    forecast = _forecast(timeline, schedule, protocol)
    today = forecast.today
    tomorrow = today + dt.timedelta(days=1)
    n = forecast.inductions
    last = timeline.sessions[-1].date if timeline.sessions else None
    gap = dt.timedelta(days=schedule.gap)
    lower = tomorrow if last is None else max(tomorrow, last + gap)
    window = dt.timedelta(days=schedule.window - 1)
    horizon = today + dt.timedelta(days=HORIZON_DAYS)

    def result(
        status: PlanStatus,
        days: list[dt.date],
        kind: Kind,
        first_number: int,
        reason: str,
        opens: dt.date | None,
        unplaced: int = 0,
    ) -> Plan:
        taken = {s.id for s in course.sessions}
        ids = (f"planned-{k}" for k in range(1, len(taken) + len(days) + 2))
        free = [i for i in ids if i not in taken][: len(days)]
        sessions = tuple(
            PlannedSession(
                free[k], kind, first_number + k, _time.at_local(d, calendar.at, course.zone)
            )
            for k, d in enumerate(days)
        )
        closes = None if opens is None else opens + window
        return Plan(status, sessions, reason, opens, closes, unplaced, forecast, calendar, course)

    count = schedule.count
    if n == 0:
        days_open = _OpenDays(calendar, lower, horizon + window)
        first_try: tuple[dt.date, int] | None = None
        for start in days_open.days:
            if start > horizon:
                break
            days = days_open.chain(start, count, schedule.gap, start + window)
            if len(days) == count:
                return result(
                    PlanStatus.PLANNED,
                    days,
                    Kind.INDUCTION,
                    1,
                    f"{count} induction sessions proposed from {start.isoformat()} to "
                    f"{days[-1].isoformat()}, in the {schedule.window}-day window that closes "
                    f"on {(start + window).isoformat()}",
                    start,
                )
            if first_try is None:
                first_try = (start, count - len(days))
        if first_try is None:
            return result(
                PlanStatus.CANNOT_COMPLETE,
                [],
                Kind.INDUCTION,
                1,
                f"the calendar has no open day from {lower.isoformat()} to "
                f"{horizon.isoformat()} on which the series could start",
                None,
                count,
            )
        start, missing = first_try
        return result(
            PlanStatus.CANNOT_COMPLETE,
            [],
            Kind.INDUCTION,
            1,
            f"no first day up to {horizon.isoformat()} fits all {count} induction sessions in "
            f"a {schedule.window}-day window on open days; from the first open day, "
            f"{start.isoformat()}, the window would close on {(start + window).isoformat()} "
            f"with {missing} of {count} sessions not fitting",
            start,
            missing,
        )
    if n < count:
        first = timeline.inductions[0].date
        closes = first + window
        remaining = count - n
        days = _OpenDays(calendar, lower, closes).chain(lower, remaining, schedule.gap, closes)
        if len(days) < remaining:
            missing = remaining - len(days)
            return result(
                PlanStatus.CANNOT_COMPLETE,
                [],
                Kind.INDUCTION,
                n + 1,
                f"the series' {schedule.window}-day window closes on {closes.isoformat()}: "
                f"{missing} of the remaining {_count(remaining)} "
                f"{'does' if missing == 1 else 'do'} not fit on open days from "
                f"{lower.isoformat()}",
                first,
                missing,
            )
        when = (
            f"on {days[0].isoformat()}"
            if remaining == 1
            else f"from {days[0].isoformat()} to {days[-1].isoformat()}"
        )
        return result(
            PlanStatus.PLANNED,
            days,
            Kind.INDUCTION,
            n + 1,
            f"the remaining {_count(remaining)} {'is' if remaining == 1 else 'are'} "
            f"proposed {when}, in the window that closes on {closes.isoformat()}",
            first,
        )
    first = timeline.inductions[0].date
    upcoming = forecast.next
    if upcoming is None:
        return result(
            PlanStatus.COMPLETE,
            [],
            Kind.BOOSTER,
            1,
            "the induction series is complete and the protocol has no booster to come",
            first,
        )
    boosters = sum(1 for t in timeline.sessions if t.kind is Kind.BOOSTER)
    start = max(tomorrow, upcoming.earliest)
    end = start + dt.timedelta(days=HORIZON_DAYS)
    day = _OpenDays(calendar, start, end).on_or_after(start)
    if day is None:
        return result(
            PlanStatus.COMPLETE,
            [],
            Kind.BOOSTER,
            boosters + 1,
            f"the induction series is complete; the calendar has no open day from "
            f"{start.isoformat()} to {end.isoformat()} for the booster",
            first,
        )
    return result(
        PlanStatus.PLANNED,
        [day],
        Kind.BOOSTER,
        boosters + 1,
        f"booster proposed on {day.isoformat()}, the first open day on or after "
        f"{start.isoformat()}",
        first,
    )
