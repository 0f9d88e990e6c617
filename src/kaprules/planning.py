"""Plans: the rest of a series proposed on the days a clinic is open, and calendar export.

[`plan`][kaprules.plan] proposes the earliest feasible completion of a series in date
order, with the whole protocol, on the days the clinic is open: the same search as
[`forecast`][kaprules.forecast]'s bookable days (kaprules.forecasting's `Search`). For
rules made of a minimum gap and a deadline it is earliest-first placement, which is
optimal: if any placement on open days completes the series, this one does, and each of
its sessions is on or before the same session of any other placement (the argument is on
the scheduling page of the docs).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import itertools
from typing import Any, Literal

import attrs

from kaprules import _time
from kaprules._version import __version__
from kaprules._words import iso_date, plural
from kaprules.clinic_calendar import ClinicCalendar
from kaprules.errors import InputError, Problem
from kaprules.forecasting import HORIZON_DAYS, Forecast, Schedule, Search, scheduling_timeline
from kaprules.model import Course, Integration, Kind, Session
from kaprules.protocol import STANDARD, Protocol

__all__ = ["HORIZON_DAYS", "INTEGRATION", "Plan", "PlanStatus", "PlannedSession", "plan"]

INTEGRATION: Literal["integration"] = "integration"
"""The kind of a proposed integration meeting (`PlannedSession.kind`)."""

_DAY = dt.timedelta(days=1)


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
        id: An id not used by the course: ``planned-1``, ``planned-2``, ... for
            sessions, ``integration-1``, ... for integration meetings.
        kind: ``induction``, ``booster`` or ``"integration"`` (`INTEGRATION`, an
            integration meeting).
        number: Its place in the induction series (1-based), among the course's
            boosters, or among the proposed meetings.
        start: Its start, an aware datetime in the course timezone at the calendar's time.
    """

    id: str
    kind: Kind | Literal["integration"]
    number: int
    start: dt.datetime

    @property
    def session(self) -> Session:
        """The proposed session as a `Session`, with nothing recorded yet.

        Raises:
            ValueError: This is an integration meeting; see `meeting`.
        """
        if self.kind == INTEGRATION:
            raise ValueError(f"{self.id} is an integration meeting, not a session")
        return Session(self.start, Kind(self.kind), self.id)

    @property
    def meeting(self) -> Integration:
        """The proposed integration meeting as an `Integration`.

        Raises:
            ValueError: This is a session; see `session`.
        """
        if self.kind != INTEGRATION:
            raise ValueError(f"{self.id} is a session, not an integration meeting")
        return Integration(self.start, self.id)

    def to_dict(self) -> dict[str, Any]:
        """This session as plain data for JSON.

        Returns:
            A dict with ``id``, ``kind``, ``number`` and ``start`` (ISO 8601 with the
            course zone's offset, such as ``2026-12-07T09:00:00-07:00``).
        """
        return {
            "id": self.id,
            "kind": str(self.kind),
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
        """The course with the proposed sessions and meetings added, to check or store."""
        return attrs.evolve(
            self.course,
            sessions=(
                *self.course.sessions,
                *(p.session for p in self.sessions if p.kind != INTEGRATION),
            ),
            integrations=(
                *self.course.integrations,
                *(p.meeting for p in self.sessions if p.kind == INTEGRATION),
            ),
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
            "window": {
                "opens": iso_date(self.window_opens),
                "closes": iso_date(self.window_closes),
            },
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
            uid = hashlib.sha256(f"{anchor}|{s.kind}|{s.number}".encode()).hexdigest()
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


def _summary(session: PlannedSession, count: int) -> str:
    if session.kind is Kind.INDUCTION:
        return f"KAP induction session {session.number} of {count}"
    if session.kind == INTEGRATION:
        return f"KAP integration meeting {session.number}"
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


def plan(
    course: Course,
    as_of: dt.datetime | dt.date,
    calendar: ClinicCalendar | None = None,
    protocol: Protocol = STANDARD,
) -> Plan:
    """Propose the rest of a course's series on the days the clinic is open.

    The plan is the earliest feasible completion in date order with the whole protocol:
    its first induction session is on the forecast's ``bookable_from`` for the same
    course, calendar, protocol and ``as_of``, and each later one on the earliest day that
    is open, starts after ``as_of``, is accepted by [`check_booking`][kaprules.check_booking]
    given the sessions proposed before it, and leaves the rest completable. No other
    completion is earlier day by day. With N, W, g, M as for
    [`forecast`][kaprules.forecast] and n the course's induction sessions:

    - n = 0: the full series, from the first bookable day within 366 days.
    - 0 < n < N: the remaining N - n sessions, all within the window.
    - n >= N: one booster on its first bookable day, when the forecast has a booster.
    - With an `IntegrationFollowup` rule, the integration meetings the complete (or
      completed by the plan) series still needs, on the first open days after its last
      induction session and by the rule's deadline (kind ``integration``).

    For protocols made of kaprules' own scheduling rules this is the greedy placement,
    each session on the earliest open day the gap allows, which is optimal; with rules of
    your own it is a depth-first search the closed forms prune (see the scheduling page).

    When the remaining sessions cannot all fit, nothing is proposed: the status is
    ``cannot-complete`` and the reason names the window's last day and how many sessions
    did not fit.

    Args:
        course: The course.
        as_of: The moment of planning, read as `evaluate` reads it (a plain date: that
            day is over; an aware datetime: a session later that day may be proposed).
        calendar: The clinic's calendar; Monday to Friday at 09:00 by default.
        protocol: The protocol (kap-standard v1 by default).

    Returns:
        The plan.

    Raises:
        InputError: ``course``, ``as_of`` or ``calendar`` is unusable.
        ProtocolError: The protocol has no `SessionCount` or `TreatmentWindow` rule.
    """
    schedule = Schedule.of(protocol)
    timeline = scheduling_timeline(course, as_of, schedule.count)
    if calendar is None:
        calendar = ClinicCalendar()
    elif not isinstance(calendar, ClinicCalendar):
        raise InputError(
            Problem("calendar", f"must be a ClinicCalendar, got {type(calendar).__name__}", "type")
        )
    search = Search(timeline, schedule, protocol, calendar)
    forecast = search.forecast()
    steps = _Steps(search, forecast, calendar)
    if search.n == 0:
        return steps.new_series()
    if search.n < schedule.count:
        return steps.rest_of_series()
    return steps.booster()


def _past_years(last: dt.date) -> str:
    # Days past the supported years are never proposed: a reason that ends there says so.
    if last.year <= _time.MAX_YEAR:
        return ""
    return f" (no session is proposed after the year {_time.MAX_YEAR}, the last supported)"


class _Steps:
    """The steps of a plan, over one search: a new series, the rest of one, a booster."""

    def __init__(self, search: Search, forecast: Forecast, calendar: ClinicCalendar) -> None:
        self.search = search
        self.forecast = forecast
        self.calendar = calendar
        self.schedule = search.schedule
        self.course = search.course
        self.window = dt.timedelta(days=search.schedule.window - 1)

    def result(
        self,
        status: PlanStatus,
        sessions: tuple[PlannedSession, ...],
        reason: str,
        opens: dt.date | None,
        unplaced: int = 0,
    ) -> Plan:
        closes = None if opens is None else opens + self.window
        return Plan(
            status,
            sessions,
            reason,
            opens,
            closes,
            unplaced,
            self.forecast,
            self.calendar,
            self.course,
        )

    def inductions(self, days: list[dt.date], first_number: int) -> tuple[PlannedSession, ...]:
        ids = self.search.ids
        return tuple(
            PlannedSession(ids[k], Kind.INDUCTION, first_number + k, self.start(day))
            for k, day in enumerate(days)
        )

    def start(self, day: dt.date) -> dt.datetime:
        return _time.at_local(day, self.calendar.at, self.course.zone)

    def series(self) -> list[dt.date] | None:
        """The earliest completion from the forecast's first bookable day, or None."""
        upcoming = self.forecast.next
        if upcoming is None or upcoming.kind is not Kind.INDUCTION:
            return None
        return self.search.completion(upcoming.bookable_from)

    def new_series(self) -> Plan:
        search, count = self.search, self.schedule.count
        days = self.series()
        lower = search.start()
        if days is not None:
            start = days[0]
            planned = self.inductions(days, 1)
            reason = (
                f"{count} induction sessions proposed from {start.isoformat()} to "
                f"{days[-1].isoformat()}, in the {self.schedule.window}-day window that "
                f"closes on {(start + self.window).isoformat()}"
            )
            return self.with_meetings(planned, reason, start)
        first = next(search.open_days(lower, search.horizon), None)
        if first is None:
            return self.result(
                PlanStatus.CANNOT_COMPLETE,
                (),
                f"the calendar has no open day from {lower.isoformat()} to "
                f"{search.horizon.isoformat()} on which the series could start"
                f"{_past_years(search.horizon)}",
                None,
                count,
            )
        placed = len(search.chain(None, 0, first, count, window_only=True))
        missing = count - placed if placed < count else count
        why = (
            f"with {missing} of {count} sessions not fitting"
            if placed < count
            else "and the protocol's own rules leave no way to complete it"
        )
        return self.result(
            PlanStatus.CANNOT_COMPLETE,
            (),
            f"no first day up to {search.horizon.isoformat()} fits all {count} induction "
            f"sessions in a {self.schedule.window}-day window on open days; from the first "
            f"open day, {first.isoformat()}, the window would close on "
            f"{(first + self.window).isoformat()} {why}{_past_years(search.horizon)}",
            first,
            missing,
        )

    def rest_of_series(self) -> Plan:
        search = self.search
        n, count = search.n, self.schedule.count
        first = search.first
        assert first is not None
        closes = first + self.window
        remaining = count - n
        days = self.series()
        if days is None:
            lower = search.start()
            placed = len(search.chain(first, n, lower, remaining, window_only=True))
            missing = remaining - placed if placed < remaining else remaining
            how = "on open days" if placed < remaining else "under the protocol's own rules"
            return self.result(
                PlanStatus.CANNOT_COMPLETE,
                (),
                f"the series' {self.schedule.window}-day window closes on "
                f"{closes.isoformat()}: {missing} of the remaining "
                f"{plural(remaining, 'induction session')} "
                f"{'does' if missing == 1 else 'do'} not fit {how} from {lower.isoformat()}",
                first,
                missing,
            )
        when = (
            f"on {days[0].isoformat()}"
            if remaining == 1
            else f"from {days[0].isoformat()} to {days[-1].isoformat()}"
        )
        reason = (
            f"the remaining {plural(remaining, 'induction session')} "
            f"{'is' if remaining == 1 else 'are'} "
            f"proposed {when}, in the window that closes on {closes.isoformat()}"
        )
        return self.with_meetings(self.inductions(days, n + 1), reason, first)

    def booster(self) -> Plan:
        search, schedule = self.search, self.schedule
        first = search.first
        upcoming = self.forecast.next
        boosters = sum(1 for t in search.timeline.sessions if t.kind is Kind.BOOSTER)
        planned: tuple[PlannedSession, ...] = ()
        if upcoming is not None:
            day = upcoming.bookable_from
            planned = (PlannedSession(search.ids[0], Kind.BOOSTER, boosters + 1, self.start(day)),)
            reason = (
                f"booster proposed on {day.isoformat()}, the first bookable day on or after "
                f"{max(search.start(), upcoming.earliest).isoformat()}"
            )
        elif schedule.months is None or search.n < schedule.min_induction:
            reason = "the induction series is complete and the protocol has no booster to come"
        else:
            assert search.last is not None
            start = max(search.start(), _time.add_months(search.last, schedule.months))
            end = start + dt.timedelta(days=HORIZON_DAYS)
            reason = (
                f"the induction series is complete; the calendar has no bookable day from "
                f"{start.isoformat()} to {end.isoformat()} for the booster{_past_years(end)}"
            )
        return self.with_meetings(planned, reason, first)

    def with_meetings(
        self, planned: tuple[PlannedSession, ...], reason: str, opens: dt.date | None
    ) -> Plan:
        """The plan with the integration meetings the (completed) series still needs."""
        meetings, note = self.meetings(planned)
        sessions = tuple(sorted((*planned, *meetings), key=lambda p: p.start))
        status = PlanStatus.PLANNED if sessions else PlanStatus.COMPLETE
        return self.result(status, sessions, reason + note, opens)

    def meetings(self, planned: tuple[PlannedSession, ...]) -> tuple[list[PlannedSession], str]:
        rule = self.schedule.followup
        search = self.search
        series = [t.date for t in search.timeline.inductions] + [
            p.start.date() for p in planned if p.kind is Kind.INDUCTION
        ]
        if rule is None or len(series) < self.schedule.count:
            return [], ""
        last = series[-1]
        by = last + dt.timedelta(days=rule.within_days)
        held = sum(1 for m in search.timeline.integrations if last < m.date <= by)
        needed = rule.min_meetings - held
        if needed <= 0:
            return [], ""
        booked = attrs.evolve(
            self.course,
            sessions=(*self.course.sessions, *(p.session for p in planned)),
        )
        taken = {m.id for m in self.course.integrations}
        ids = (f"integration-{k}" for k in itertools.count(1))
        found: list[PlannedSession] = []
        for day in search.open_days(max(search.lower, last + _DAY), by):
            if len(found) == needed:
                break
            meeting_id = next(i for i in ids if i not in taken)
            proposed = PlannedSession(meeting_id, INTEGRATION, len(found) + 1, self.start(day))
            if search.accepts_meeting(booked, [p.meeting for p in found], proposed.meeting):
                found.append(proposed)
        word = "meeting" if needed == 1 else "meetings"
        if len(found) == needed:
            note = f"; {needed} integration {word} proposed by {by.isoformat()}"
        else:
            note = (
                f"; only {len(found)} of the {needed} integration {word} needed by "
                f"{by.isoformat()} fit on open days"
            )
        return found, note
