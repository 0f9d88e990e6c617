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
from kaprules.clinic_calendar import WEEKDAYS, ClinicCalendar
from kaprules.errors import InputError, Problem
from kaprules.evaluation import check_protocol
from kaprules.forecasting import (
    HORIZON_DAYS,
    Forecast,
    PhasedSearch,
    Schedule,
    Search,
    past_years,
    protocol_phases,
    scheduling_timeline,
    version_for,
)
from kaprules.model import Course, Integration, Kind, Session
from kaprules.phases import Phase, phase_of, treatment_week, week_dates
from kaprules.protocol import STANDARD, Protocol, ProtocolVersions

__all__ = [
    "HORIZON_DAYS",
    "INTEGRATION",
    "MissedTarget",
    "Plan",
    "PlanStatus",
    "PlannedSession",
    "plan",
]

DEFAULT_WEEKS = 12
"""How many weeks after ``as_of`` a plan of a phased protocol that ends open-ended goes,
without ``until``."""

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
        TARGETS_MISSED: A phased protocol's plan: some targets cannot be met on the
            calendar (`Plan.missed` says which); the sessions that fit are proposed.
        MEETINGS_MISSED: The series is complete, or completed by the proposed sessions,
            but fewer integration meetings fit on open days by the protocol's deadline
            than it still needs (`Plan.unplaced_meetings` says how many fewer); the
            sessions and meetings that fit are proposed.
    """

    PLANNED = "planned"
    COMPLETE = "complete"
    CANNOT_COMPLETE = "cannot-complete"
    TARGETS_MISSED = "targets-missed"
    MEETINGS_MISSED = "meetings-missed"


@attrs.frozen
class MissedTarget:
    """A target of a phased protocol that a plan cannot meet on the clinic's calendar.

    Attributes:
        week: The treatment week.
        phase: The name of its phase.
        needed: The sessions the target asks for: the phase's weekly ``target``, or 1 for
            a session due within ``every_days``.
        sessions: The sessions the week has with the plan (for a weekly target), or 0
            when no session fits by ``due`` (``every_days``).
        due: The last day that would have met it: the week's last day, or the previous
            session + ``every_days``.
    """

    week: int
    phase: str
    needed: int
    sessions: int
    due: dt.date

    def to_dict(self) -> dict[str, Any]:
        """This missed target as plain data for JSON.

        Returns:
            ``{"week", "phase", "needed", "sessions", "due"}``, ``due`` as ``YYYY-MM-DD``.
        """
        return {
            "week": self.week,
            "phase": self.phase,
            "needed": self.needed,
            "sessions": self.sessions,
            "due": self.due.isoformat(),
        }


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
        week: For a phased protocol, its treatment week; None otherwise.
        phase: For a phased protocol, the name of that week's phase; None otherwise.

    For a phased protocol ``number`` is its place among all the course's sessions.
    """

    id: str
    kind: Kind | Literal["integration"]
    number: int
    start: dt.datetime
    week: int | None = None
    phase: str | None = None

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
            course zone's offset, such as ``2026-12-07T09:00:00-07:00``); for a phased
            protocol also ``week`` and ``phase``.
        """
        data: dict[str, Any] = {
            "id": self.id,
            "kind": str(self.kind),
            "number": self.number,
            "start": self.start.isoformat(),
        }
        if self.week is not None:
            data["week"] = self.week
            data["phase"] = self.phase
        return data


@attrs.frozen
class Plan:
    """The planner's answer: the sessions proposed, or why there are none.

    Built by [`plan`][kaprules.plan]; you read it, you do not build it.

    Attributes:
        status: What the plan says.
        sessions: The proposed sessions and meetings, in start order; empty unless
            ``status`` is ``planned``, ``targets-missed`` or ``meetings-missed``.
        reason: One sentence for a person on what was proposed, or why nothing was.
        window_opens: The first day of the series' window (planned or recorded), or None.
        window_closes: Its last day, or None.
        unplaced: How many induction sessions did not fit (0 unless ``cannot-complete``,
            or for a phased protocol ``targets-missed``: the sessions its targets lack).
        forecast: The forecast the plan starts from.
        calendar: The clinic calendar used.
        course: The course planned for (never shown in the plan's output).
        until: For a phased protocol, the last day planned for; None otherwise.
        missed: For a phased protocol, the targets the calendar does not let the plan
            meet, in date order; empty otherwise.
        unplaced_meetings: How many of the integration meetings the series still needs
            did not fit on open days by the deadline (0 unless ``meetings-missed``).
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
    until: dt.date | None = None
    missed: tuple[MissedTarget, ...] = ()
    unplaced_meetings: int = attrs.field(default=0, kw_only=True)

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
            ``reason``, ``window`` (``{"opens", "closes"}``), ``unplaced``,
            ``unplaced_meetings``, ``inductions``, ``count``, ``calendar``, ``today``,
            ``as_of``, ``timezone``, ``protocol``
            (``{"id", "version"}``) and ``kaprules_version``; for a phased protocol also
            ``until`` and ``missed`` (each as by `MissedTarget.to_dict`).
        """
        f = self.forecast
        data: dict[str, Any] = {
            "status": self.status.value,
            "sessions": [s.to_dict() for s in self.sessions],
            "reason": self.reason,
            "window": {
                "opens": iso_date(self.window_opens),
                "closes": iso_date(self.window_closes),
            },
            "unplaced": self.unplaced,
            "unplaced_meetings": self.unplaced_meetings,
            "inductions": f.inductions,
            "count": f.count,
            "calendar": self.calendar.to_dict(),
            "today": f.today.isoformat(),
            "as_of": f.as_of,
            "timezone": f.timezone,
            "protocol": {"id": f.protocol_id, "version": f.protocol_version},
            "kaprules_version": f.kaprules_version,
        }
        if f.phased:
            data["until"] = iso_date(self.until)
            data["missed"] = [m.to_dict() for m in self.missed]
        return data

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
                (``pip install '.[calendar]'`` in a checkout of kaprules).
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
            event.add("summary", _summary(s, f))
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


def _summary(session: PlannedSession, forecast: Forecast) -> str:
    if session.week is not None:
        return f"{forecast.protocol_id} session {session.number}, treatment week {session.week}" + (
            "" if session.phase is None else f" ({session.phase})"
        )
    if session.kind is Kind.INDUCTION:
        return f"KAP induction session {session.number} of {forecast.count}"
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
    protocol: Protocol | ProtocolVersions = STANDARD,
    *,
    until: dt.date | None = None,
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
      induction session and by the rule's deadline (kind ``integration``). When fewer
      fit than are needed, the status is ``meetings-missed`` and ``unplaced_meetings``
      counts the ones missing.

    For protocols made of kaprules' own scheduling rules this is the greedy placement,
    each session on the earliest open day the gap allows, which is optimal; with rules of
    your own it is a depth-first search the closed forms prune (see the scheduling page).

    When the remaining sessions cannot all fit, nothing is proposed: the status is
    ``cannot-complete`` and the reason names the window's last day and how many sessions
    did not fit.

    For a **phased** protocol (such as esketamine-trd: see
    [`forecast`][kaprules.forecast]) the plan proposes the sessions that meet every
    target from ``as_of`` to ``until``, day by day in date order: each treatment week's
    missing sessions (its phase's ``target`` less the sessions it has) on its earliest
    bookable days, and in an open-ended phase with ``every_days`` each session on the first
    bookable day after the one before it (the rules' gap and weekly cap allowing), which
    keeps it within ``every_days`` whenever the calendar can. A course without sessions
    starts treatment week 1 on its first bookable day. A week whose target cannot be met
    on the calendar (or a session that cannot be within ``every_days``) is listed in
    `Plan.missed`, the status is ``targets-missed``, and the plan goes on with the next
    week; a week that ends after ``until`` is planned up to ``until`` and not listed.
    Every proposed day is accepted by [`check_booking`][kaprules.check_booking] with the
    whole protocol given the sessions proposed before it.

    Args:
        course: The course.
        as_of: The moment of planning, read as `evaluate` reads it (a plain date: that
            day is over; an aware datetime: a session later that day may be proposed).
        calendar: The clinic's calendar, or None for every day open at 09:00, as for
            `forecast` and `check_booking` (the plan's ``calendar`` is then one open on
            all seven weekdays). Pass ``ClinicCalendar()`` for Monday to Friday, as
            ``kaprules plan`` does without calendar options.
        protocol: The protocol (kap-standard v1 by default).
        until: Phased protocols only: the last local date to plan for, from the first
            day a session could be planned (after ``as_of`` and the course's last
            session) to 366 days after the local date of ``as_of``. By default the last
            day of the last phase, or 12 weeks after ``as_of`` when the last phase is
            open-ended. A plan that proposes nothing is ``complete`` only when no week
            over at ``as_of`` missed its target (else ``targets-missed``, listing them).

    Returns:
        The plan.

    Raises:
        InputError: ``course``, ``as_of``, ``calendar`` or ``until`` is unusable (``until``
            before the first day a session could be planned), or ``until`` is given for a
            protocol that is not phased.
        ProtocolError: The protocol has no `SessionCount` or `TreatmentWindow` rule (and
            is not phased).
    """
    protocol = version_for(protocol, course, as_of)
    phases = protocol_phases(protocol)
    if phases is not None:
        check_protocol(protocol)
        timeline = scheduling_timeline(course, as_of, None)
        phased = PhasedSearch(timeline, phases, protocol, _calendar(calendar))
        return _PhasedSteps(phased, _calendar(calendar), _until(until, phased.today)).plan()
    if until is not None:
        raise InputError(
            Problem(
                "until",
                f"only a phased protocol's plan takes until; protocol {protocol.id} version "
                f"{protocol.version} has no phases (its plan completes its series)",
                "unsupported",
            )
        )
    schedule = Schedule.of(protocol)
    timeline = scheduling_timeline(course, as_of, schedule.count)
    calendar = _calendar(calendar)
    search = Search(timeline, schedule, protocol, calendar)
    forecast = search.forecast()
    steps = _Steps(search, forecast, calendar)
    if search.n == 0:
        return steps.new_series()
    if search.n < schedule.count:
        return steps.rest_of_series()
    return steps.booster()


# What no calendar means, for plan as for forecast and check_booking: every day open, sessions
# at 09:00. A plan states its calendar, so it is this one, not None.
_NO_CALENDAR = ClinicCalendar(weekdays=WEEKDAYS)


def _calendar(calendar: object) -> ClinicCalendar:
    if calendar is None:
        return _NO_CALENDAR
    if not isinstance(calendar, ClinicCalendar):
        raise InputError(
            Problem("calendar", f"must be a ClinicCalendar, got {type(calendar).__name__}", "type")
        )
    return calendar


def _until(until: object, today: dt.date) -> dt.date | None:
    if until is None:
        return None
    if not isinstance(until, dt.date) or isinstance(until, dt.datetime):
        raise InputError(Problem("until", f"must be a date, got {type(until).__name__}", "type"))
    last = today + dt.timedelta(days=HORIZON_DAYS)
    if not today <= until <= last:
        raise InputError(
            Problem(
                "until",
                f"{until.isoformat()} is not from as_of's local date {today.isoformat()} to "
                f"{HORIZON_DAYS} days after it ({last.isoformat()})",
                "range",
            )
        )
    return until


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
        unplaced_meetings: int = 0,
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
            unplaced_meetings=unplaced_meetings,
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
        count = self.schedule.count
        days = self.series()
        if days is not None:
            start = days[0]
            planned = self.inductions(days, 1)
            reason = (
                f"{count} induction sessions proposed from {start.isoformat()} to "
                f"{days[-1].isoformat()}, in the {self.schedule.window}-day window that "
                f"closes on {(start + self.window).isoformat()}"
            )
            return self.with_meetings(planned, reason, start)
        return self.cannot_complete()

    def cannot_complete(self) -> Plan:
        """Nothing proposed, for the reason the forecast gives too."""
        why = self.search.shortfall()
        return self.result(PlanStatus.CANNOT_COMPLETE, (), why.reason, why.opens, why.missing)

    def rest_of_series(self) -> Plan:
        search = self.search
        n, count = search.n, self.schedule.count
        first = search.first
        assert first is not None
        closes = first + self.window
        remaining = count - n
        days = self.series()
        if days is None:
            return self.cannot_complete()
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
                f"{start.isoformat()} to {end.isoformat()} for the booster{past_years(end)}"
            )
        return self.with_meetings(planned, reason, first)

    def with_meetings(
        self, planned: tuple[PlannedSession, ...], reason: str, opens: dt.date | None
    ) -> Plan:
        """The plan with the integration meetings the (completed) series still needs."""
        meetings, note, missing = self.meetings(planned)
        sessions = tuple(sorted((*planned, *meetings), key=lambda p: p.start))
        if missing:
            # The reason alone said so; a status and a count let an app see it.
            status = PlanStatus.MEETINGS_MISSED
        else:
            status = PlanStatus.PLANNED if sessions else PlanStatus.COMPLETE
        return self.result(status, sessions, reason + note, opens, unplaced_meetings=missing)

    def meetings(
        self, planned: tuple[PlannedSession, ...]
    ) -> tuple[list[PlannedSession], str, int]:
        """The meetings proposed, the reason's note on them, and how many did not fit."""
        rule = self.schedule.followup
        search = self.search
        series = [t.date for t in search.timeline.inductions] + [
            p.start.date() for p in planned if p.kind is Kind.INDUCTION
        ]
        if rule is None or len(series) < self.schedule.count:
            return [], "", 0
        last = series[-1]
        by = last + dt.timedelta(days=rule.within_days)
        held = sum(1 for m in search.timeline.integrations if last < m.date <= by)
        needed = rule.min_meetings - held
        if needed <= 0:
            return [], "", 0
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
        return found, note, needed - len(found)


class _PhasedSteps:
    """A phased protocol's plan: every target from as_of to until, day by day."""

    def __init__(
        self, search: PhasedSearch, calendar: ClinicCalendar, until: dt.date | None
    ) -> None:
        self.search = search
        self.calendar = calendar
        self.until = until
        self.forecast = search.forecast()
        self.phases: tuple[Phase, ...] = search.phases

    def limit(self, d0: dt.date) -> dt.date:
        if self.until is not None:
            return self.until
        end = self.search.phase_end(d0)
        if end is not None:
            return end
        return self.search.today + dt.timedelta(weeks=DEFAULT_WEEKS)

    def result(
        self,
        status: PlanStatus,
        placed: tuple[dt.date, ...],
        reason: str,
        d0: dt.date | None,
        until: dt.date | None,
        missed: tuple[MissedTarget, ...] = (),
    ) -> Plan:
        search = self.search
        ahead = len(search.held)
        sessions = []
        for k, day in enumerate(placed):
            week = None if d0 is None else treatment_week(d0, day)
            phase = None if week is None else phase_of(self.phases, week)
            sessions.append(
                PlannedSession(
                    search.session_id(k),
                    Kind.INDUCTION,
                    ahead + k + 1,
                    _time.at_local(day, self.calendar.at, search.course.zone),
                    week,
                    None if phase is None else phase.name,
                )
            )
        return Plan(
            status,
            tuple(sessions),
            reason,
            d0,
            None if d0 is None else search.phase_end(d0),
            sum(m.needed - m.sessions for m in missed),
            self.forecast,
            self.calendar,
            search.course,
            until,
            missed,
        )

    def plan(self) -> Plan:
        search = self.search
        if self.until is not None and self.until < search.start:
            # A range that runs backwards plans nothing and would read as complete.
            raise InputError(
                Problem(
                    "until",
                    f"{self.until.isoformat()} is before {search.start.isoformat()}, the first "
                    "day a session could be planned (after as_of and after the course's last "
                    "session); give until on or after it",
                    "range",
                )
            )
        placed: tuple[dt.date, ...] = ()
        d0, day = search.d0, search.start
        if d0 is None:
            upcoming = self.forecast.next
            if upcoming is None:
                end = search.start + dt.timedelta(days=HORIZON_DAYS)
                return self.result(
                    PlanStatus.CANNOT_COMPLETE,
                    (),
                    f"the calendar has no bookable day from {search.start.isoformat()} to "
                    f"{end.isoformat()} on which the course could start{past_years(end)}",
                    None,
                    self.until,
                )
            d0 = upcoming.bookable_from
            until = self.limit(d0)
            if d0 > until:
                return self.result(
                    PlanStatus.COMPLETE,
                    (),
                    f"the course's first bookable day, {d0.isoformat()}, is after "
                    f"{until.isoformat()}: no session is proposed",
                    None,
                    until,
                )
            placed, day = (d0,), d0 + _DAY
        until = self.limit(d0)
        missed: list[MissedTarget] = []
        over = False
        while day <= until:
            week = treatment_week(d0, day)
            if search.beyond(week):
                over = True
                break
            phase = phase_of(self.phases, week)
            if phase is not None:
                if self.needed(d0, week, phase, placed) and search.bookable(placed, day):
                    placed = (*placed, day)
                missed += self.misses(d0, day, week, phase, placed)
            day += _DAY
        over = over or search.beyond(treatment_week(d0, day))
        return self.answer(placed, d0, until, tuple(missed), over)

    def needed(self, d0: dt.date, week: int, phase: Phase, placed: tuple[dt.date, ...]) -> bool:
        """Whether a session on a day of ``week`` is one the targets ask for."""
        if phase.target is not None and self.search.in_week(d0, week, placed) < phase.target:
            return True
        return phase.every_days is not None

    def misses(
        self, d0: dt.date, day: dt.date, week: int, phase: Phase, placed: tuple[dt.date, ...]
    ) -> list[MissedTarget]:
        """The targets that ``day``, the last day that could meet them, leaves unmet."""
        found = []
        if phase.target is not None and day == week_dates(d0, week)[1]:
            have = self.search.in_week(d0, week, placed)
            if have < phase.target:
                found.append(MissedTarget(week, phase.name, phase.target, have, day))
        if phase.every_days is not None and phase.target is None:
            days = (*self.search.held, *placed)
            before = [x for x in days if x < day]
            due = bool(before) and day == before[-1] + dt.timedelta(days=phase.every_days)
            if due and days[-1] != day:
                found.append(MissedTarget(week, phase.name, 1, 0, day))
        return found

    def answer(
        self,
        placed: tuple[dt.date, ...],
        d0: dt.date,
        until: dt.date,
        missed: tuple[MissedTarget, ...],
        over: bool,
    ) -> Plan:
        if placed:
            when = (
                f"on {placed[0].isoformat()}"
                if len(placed) == 1
                else f"from {placed[0].isoformat()} to {placed[-1].isoformat()}"
            )
            reason = f"{plural(len(placed), 'session')} proposed {when}"
        elif over:
            reason = "the protocol's phases are over: no session is proposed"
        else:
            reason = (
                f"no session is needed or bookable from {self.search.start.isoformat()} to "
                f"{until.isoformat()}"
            )
        if missed:
            listed = ", ".join(_missed_words(m) for m in missed)
            reason += (
                f"; {plural(len(missed), 'target')} cannot be met on the calendar by "
                f"{until.isoformat()}: {listed}"
            )
            status = PlanStatus.TARGETS_MISSED
        else:
            if placed:
                reason += f", meeting every target through {until.isoformat()}"
            status = PlanStatus.PLANNED if placed else PlanStatus.COMPLETE
        if status is PlanStatus.COMPLETE:
            # Never complete while a week already over lacks its target.
            missed = self.judged_misses(d0)
            if missed:
                listed = ", ".join(_missed_words(m) for m in missed[:5])
                if len(missed) > 5:
                    listed += f" and {len(missed) - 5} more"
                reason += (
                    f"; {plural(len(missed), 'week')} over by as_of missed "
                    f"{'its target' if len(missed) == 1 else 'their targets'}: {listed}"
                )
                status = PlanStatus.TARGETS_MISSED
        return self.result(status, placed, reason, d0, until, missed)

    def judged_misses(self, d0: dt.date) -> tuple[MissedTarget, ...]:
        """The weeks over at as_of (as `weekly-target` judges them) under their target."""
        search = self.search
        cutoff = search.today
        if not isinstance(search.as_of, dt.datetime):
            cutoff += _DAY  # a plain date's day is over
        counts: dict[int, int] = {}
        for day in search.held:
            week = treatment_week(d0, day)
            counts[week] = counts.get(week, 0) + 1
        found = []
        for week in range(1, (cutoff - d0).days // 7 + 1):
            phase = phase_of(self.phases, week)
            if phase is None or phase.target is None:
                continue
            have = counts.get(week, 0)
            if have < phase.target:
                due = week_dates(d0, week)[1]
                found.append(MissedTarget(week, phase.name, phase.target, have, due))
        return tuple(found)


def _missed_words(m: MissedTarget) -> str:
    if m.needed == 1 and m.sessions == 0:
        return f"week {m.week} ({m.phase}: no session fits by {m.due.isoformat()})"
    return f"week {m.week} ({m.phase}: {m.sessions} of {m.needed} sessions)"
