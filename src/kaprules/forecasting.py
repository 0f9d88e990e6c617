"""Forecasts: when the next session of a course may be, and whether a booking may be made.

[`evaluate`][kaprules.evaluate] judges the sessions a course has;
[`forecast`][kaprules.forecast] answers the scheduling question beside it, as immunization
forecasters do: the next session's kind, its earliest and latest local dates, and whether
the series can still be completed. [`check_booking`][kaprules.check_booking] judges one
proposed session before it is booked.

Both read the protocol's own parameters, by rule class (whatever the rules' ids):
N = `SessionCount` ``count``, W = `TreatmentWindow` ``days``, g = `SessionSpacing`
``min_days`` (0 without that rule), M = `BoosterInterval` ``months`` and K =
``min_induction`` (no booster without that rule). Those closed forms are the fast path;
for a protocol with rules of its own, or with a clinic calendar, the forecast searches
the days, checking each booking with the whole protocol (see `Search`).
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
from collections.abc import Iterator
from typing import Any

import attrs

from kaprules import _time
from kaprules import phases as _phases
from kaprules import report as _report
from kaprules import session_day as _session_day
from kaprules._version import __version__
from kaprules._words import iso_date, plural
from kaprules.clinic_calendar import ClinicCalendar
from kaprules.errors import InputError, Problem, ProtocolError, echo, shown_id
from kaprules.evaluation import check_course, check_protocol, evaluate_timeline
from kaprules.model import Course, Integration, Kind, Session
from kaprules.phases import PHASES, Phase, phase_of, treatment_week, week_dates
from kaprules.protocol import (
    STANDARD,
    Protocol,
    ProtocolVersions,
)
from kaprules.report import Finding, Help, Report, Severity
from kaprules.rules import (
    BaseRule,
    BoosterInterval,
    Escort,
    Fasting,
    IntegrationFollowup,
    SessionCount,
    SessionSpacing,
    Therapist,
    TreatmentWindow,
    parameters_of,
)
from kaprules.timeline import TimedSession, Timeline

__all__ = [
    "CLINIC_CALENDAR",
    "FUTURE_START",
    "HORIZON_DAYS",
    "SEARCH_LIMIT",
    "SERIES_COMPLETION",
    "Forecast",
    "IntegrationDue",
    "NextSession",
    "Refusal",
    "SeriesStatus",
    "check_booking",
    "forecast",
    "protocol_phases",
]

CLINIC_CALENDAR = "clinic-calendar"
"""The rule id of [`check_booking`][kaprules.check_booking]'s finding for a booking on a day
the clinic's calendar is closed."""

FUTURE_START = "future-start"
"""The rule id of [`check_booking`][kaprules.check_booking]'s finding for a proposal that is
not in the future at ``as_of``: the same test as the forecast's first bookable day."""

HORIZON_DAYS = 366
"""How far ahead of ``as_of`` scheduling looks for the first day of a new series, or for a
booster's open day: 366 days."""

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
        earliest: The earliest date by the closed forms of the protocol's own scheduling
            rules (the last session + the spacing gap, or + M months for a booster); may
            lie before ``as_of``.
        bookable_from: The first bookable date: open, after ``as_of``, accepted by the
            booking check with the whole protocol, and leaving the series completable.
        latest: The last bookable date within the series' window, or None when there is
            no such limit (the first induction session, a booster).
        not_bookable: The open days after ``bookable_from`` and before ``latest`` that are
            not bookable, in date order. Always empty for kaprules' own rules (every open
            day in the range is bookable); a clinic's own rule may leave such gaps.
        phase: For a phased protocol, the name of the phase of the next session's
            treatment week; None otherwise (and for a week no phase covers).
        week: For a phased protocol, the treatment week of the next session on
            ``bookable_from`` (1 for a course without sessions); None otherwise.
        refused: For a phased protocol, why the next session is not earlier: the first
            open day after ``as_of`` and the last session that the protocol refuses, with
            the rule that refuses it; None when nothing did (or the protocol is not phased).
    """

    kind: Kind
    earliest: dt.date
    bookable_from: dt.date
    latest: dt.date | None
    not_bookable: tuple[dt.date, ...] = ()
    phase: str | None = None
    week: int | None = None
    refused: Refusal | None = None

    def to_dict(self) -> dict[str, Any]:
        """This next session as plain data for JSON.

        Returns:
            A dict with the keys ``kind``, ``earliest``, ``bookable_from``, ``latest`` and
            ``not_bookable`` (a list); dates as ``YYYY-MM-DD``, a missing ``latest`` as None.
            For a phased protocol also ``phase``, ``week`` and ``refused`` (as by
            `Refusal.to_dict`, or None); these keys are absent otherwise.
        """
        data: dict[str, Any] = {
            "kind": self.kind.value,
            "earliest": self.earliest.isoformat(),
            "bookable_from": self.bookable_from.isoformat(),
            "latest": None if self.latest is None else self.latest.isoformat(),
            "not_bookable": [day.isoformat() for day in self.not_bookable],
        }
        if self.week is not None:
            data["phase"] = self.phase
            data["week"] = self.week
            data["refused"] = None if self.refused is None else self.refused.to_dict()
        return data


@attrs.frozen
class Refusal:
    """Why a day is not bookable: the first error a booking on it gets, and its rule.

    Attributes:
        date: The local date refused.
        rule: The id of the rule that refuses it, such as ``"weekly-cap"``.
        message: That rule's message, such as "treatment week 3 (...) has 3 sessions (...);
            phase induction allows at most 2 a week".
    """

    date: dt.date
    rule: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """This refusal as plain data for JSON.

        Returns:
            ``{"date": "YYYY-MM-DD", "rule": ..., "message": ...}``.
        """
        return {"date": self.date.isoformat(), "rule": self.rule, "message": self.message}


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
        integration: The integration meetings a complete series still needs under the
            protocol's `IntegrationFollowup` rule, or None (none needed, no such rule, or
            a series not complete yet).
        reason: Why the series cannot be completed, one sentence for a person, the same
            as [`plan`][kaprules.plan]'s: the window's last day and how many sessions do
            not fit from the first day a session could be booked, on open days (the
            calendar's closures) or under the protocol's own rules. None unless the status
            is ``cannot-complete``.
        phased: Whether the protocol is phased (not in `to_dict`: the next session's
            ``phase`` and ``week`` say so there).

    For a phased protocol (see `protocol_phases`) the series is the course's phases:
    ``inductions`` counts the course's sessions of every kind, ``count`` the sessions the
    targets of its finite phases ask for in all, ``window_opens`` is the first session's
    local date (treatment week 1) and ``window_closes`` the last day of the last phase
    when that phase is finite (None when it is open-ended); the status is ``complete``
    once no phase covers the weeks ahead.
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
    integration: IntegrationDue | None = None
    reason: str | None = attrs.field(default=None, kw_only=True)
    phased: bool = attrs.field(default=False, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """This forecast as plain data for JSON.

        Returns:
            A dict with the keys ``status``, ``inductions``, ``count``, ``window``
            (``{"opens", "closes"}``, both None until the first induction session),
            ``next`` (as by `NextSession.to_dict`, or None), ``today``, ``as_of``,
            ``timezone``, ``protocol`` (``{"id", "version"}``), ``kaprules_version``,
            ``integration`` (as by `IntegrationDue.to_dict`, or None) and ``reason``
            (None unless the status is ``cannot-complete``).
        """
        return {
            "status": self.status.value,
            "inductions": self.inductions,
            "count": self.count,
            "window": {
                "opens": iso_date(self.window_opens),
                "closes": iso_date(self.window_closes),
            },
            "next": None if self.next is None else self.next.to_dict(),
            "today": self.today.isoformat(),
            "as_of": self.as_of,
            "timezone": self.timezone,
            "protocol": {"id": self.protocol_id, "version": self.protocol_version},
            "kaprules_version": self.kaprules_version,
            "integration": None if self.integration is None else self.integration.to_dict(),
            "reason": self.reason,
        }


@attrs.frozen
class IntegrationDue:
    """The integration meetings a complete series still needs, and their deadline.

    Attributes:
        needed: How many meetings are still needed.
        by: The last local date for them.
    """

    needed: int
    by: dt.date

    def to_dict(self) -> dict[str, Any]:
        """These meetings as plain data for JSON.

        Returns:
            ``{"needed": n, "by": "YYYY-MM-DD"}``.
        """
        return {"needed": self.needed, "by": self.by.isoformat()}


# The rules whose effect on a booking the closed forms know completely. A rule of any other
# class, a built-in one added later included, is evaluated day by day in the search.
_CLOSED_FORM_CLASSES: frozenset[type[BaseRule]] = frozenset(
    (
        SessionCount,
        TreatmentWindow,
        SessionSpacing,
        Fasting,
        Escort,
        BoosterInterval,
        Therapist,
        IntegrationFollowup,
    )
)


@attrs.frozen
class Schedule:
    """The protocol parameters scheduling reads, found by rule class; the planner shares them.

    ``gap`` is the largest ``min_days`` of the protocol's spacing rules (the closed forms
    use it); ``hard_gap`` the largest of those whose findings are errors (a booking closer
    than it is refused, so the search may skip those days). ``exact`` says that the closed
    forms are the whole truth about a booking: every rule is one of kaprules' own classes,
    one of each scheduling rule, each an error.
    """

    count: int
    window: int
    gap: int
    months: int | None
    min_induction: int
    hard_gap: int = 0
    hard_booster: bool = False
    exact: bool = True
    followup: IntegrationFollowup | None = None

    @classmethod
    def of(cls, protocol: Protocol) -> Schedule:
        """Read N, W, g, M and K from ``protocol``'s rules, by rule class."""
        check_protocol(protocol)
        rules = protocol.rules
        counts = [r for r in rules if isinstance(r, SessionCount)]
        windows = [r for r in rules if isinstance(r, TreatmentWindow)]
        spacings = [r for r in rules if isinstance(r, SessionSpacing)]
        boosters = [r for r in rules if isinstance(r, BoosterInterval)]
        followups = [r for r in rules if isinstance(r, IntegrationFollowup)]
        if not counts:
            raise _missing(protocol, SessionCount, "count")
        if not windows:
            raise _missing(protocol, TreatmentWindow, "days")
        booster = boosters[0] if boosters else None
        errors = [r for r in (*windows, *spacings, *boosters) if r.severity is Severity.ERROR]
        exact = (
            all(type(r) in _CLOSED_FORM_CLASSES for r in rules)
            and len(counts) == len(windows) == 1
            and len(spacings) <= 1
            and len(boosters) <= 1
            and len(errors) == len(windows) + len(spacings) + len(boosters)
        )
        return cls(
            count=counts[0].count,
            window=windows[0].days,
            gap=max((r.min_days for r in spacings), default=0),
            months=None if booster is None else booster.months,
            min_induction=0 if booster is None else booster.min_induction,
            hard_gap=max((r.min_days for r in spacings if r.severity is Severity.ERROR), default=0),
            hard_booster=booster is not None and booster.severity is Severity.ERROR,
            exact=exact,
            followup=followups[0] if followups else None,
        )

    def latest(self, first: dt.date, inductions: int) -> dt.date:
        """The last date for the next induction session from which the series still fits."""
        rest = self.count - inductions - 1
        return first + dt.timedelta(days=self.window - 1 - self.gap * rest)


def _missing(protocol: Protocol, cls: type[BaseRule], name: str) -> ProtocolError:
    return ProtocolError(
        Problem(
            "rules",
            f"protocol {echo(protocol.id)} version {echo(protocol.version)} has no "
            f"{cls.default_id!r} rule ({cls.__name__}); a forecast needs its {name!r} parameter",
            "missing",
        )
    )


def version_for(protocol: Protocol | ProtocolVersions, course: object, moment: object) -> Protocol:
    """The one protocol a scheduling answer uses: for versions, the one in force then.

    Scheduling books by the rules in force: `forecast` and `plan` by the version in force
    on ``as_of``'s local date, `check_booking` by the one in force on the proposed
    session's. A version that takes effect later is not anticipated.

    Raises:
        InputError: No version is in force on that date.
    """
    if not isinstance(protocol, ProtocolVersions):
        return protocol
    check_course(course)
    assert isinstance(course, Course)
    if isinstance(moment, dt.datetime):
        if not _time.is_aware(moment):
            return protocol.latest  # the moment's own check names the problem
        day = course.local(moment).date()
    elif isinstance(moment, dt.date):
        day = moment
    else:
        return protocol.latest
    return protocol.at(day)


def scheduling_timeline(
    course: Course, as_of: dt.datetime | dt.date, schedule_length: int | None
) -> Timeline:
    check_course(course)
    if as_of is None:
        raise InputError(
            "as_of: a forecast needs the moment it is made: a local date or an aware datetime"
        )
    if course.waivers:  # a waiver never makes a search propose what the rules refuse
        course = attrs.evolve(course, waivers=())
    return Timeline.of(course, as_of, series_length=schedule_length)


def _check_calendar(calendar: object) -> ClinicCalendar | None:
    if calendar is not None and not isinstance(calendar, ClinicCalendar):
        raise InputError(
            Problem("calendar", f"must be a ClinicCalendar, got {type(calendar).__name__}", "type")
        )
    return calendar


def forecast(
    course: Course,
    as_of: dt.datetime | dt.date,
    protocol: Protocol | ProtocolVersions = STANDARD,
    calendar: ClinicCalendar | None = None,
) -> Forecast:
    """When the next session of ``course`` may be, and whether its series can be completed.

    All dates are local calendar dates in the course timezone. The next session's
    **bookable** days are the days that are open in ``calendar`` (every day without one)
    on which a session of the next kind, starting at the calendar's time (09:00 without
    one) and after ``as_of``, is accepted by [`check_booking`][kaprules.check_booking]
    with the whole protocol, and after which the rest of the series can still be booked,
    session by session, on bookable days. See the scheduling page for the search.

    With n induction sessions in the course (held and planned alike), ``first`` the first
    induction date, ``last`` the latest session date of any kind, and N, W, g, M, K the
    protocol's `SessionCount` count, `TreatmentWindow` days, `SessionSpacing` min_days,
    `BoosterInterval` months and min_induction, found by rule class:

    - **not-started** (n = 0): ``bookable_from`` is the first bookable day within 366
      days; ``latest`` is None (the window opens with the first session).
    - **in-progress** (0 < n < N): from the first to the last bookable day, none later
      than ``first + (W - 1) - g * (N - n - 1)``.
    - **cannot-complete**: no day is bookable (the series can no longer be completed), or
      a protocol whose N sessions, g days apart, never fit in W days. No next session;
      ``reason`` says why, as [`plan`][kaprules.plan]'s reason does.
    - **complete** (n >= N): a booster on the first bookable day within 366 days of its
      earliest date ``max(last + M months, last + g)``, when the protocol has a
      `BoosterInterval` and n >= K; otherwise no next session. With an
      `IntegrationFollowup` rule, ``integration`` holds the meetings still needed.

    For a **phased** protocol (one whose rules hold phases, such as esketamine-trd) the
    next session is on the first bookable day within 366 days in a week a phase covers,
    and ``next`` also has its ``phase`` and treatment ``week``, and what ``refused`` the
    days before it. ``latest`` is the last bookable day that still meets the current
    target: while the week of ``bookable_from`` is under its phase's target, the last day
    of that week from which its missing sessions all still fit in it; in an open-ended
    phase with ``every_days``, the last bookable day by the previous session +
    ``every_days``; None when no target applies or it can no longer be met, and for a
    course without sessions (its first session starts week 1). Once no phase covers the
    weeks ahead the status is ``complete``; with no bookable day, ``cannot-complete``.

    Args:
        course: The course.
        as_of: The moment of the forecast, read as `evaluate` reads it: a date is a local
            date in the course timezone, and that day is over (sessions on it count as
            held), so candidates start the next day; an aware datetime is an instant, and
            a candidate on its local date is bookable when it starts after it.
        protocol: The protocol (kap-standard v1 by default).
        calendar: The clinic's calendar, or None for every day open at 09:00, as for
            `check_booking` and `plan`.

    Returns:
        The forecast.

    Raises:
        InputError: ``course`` is not a Course, ``as_of`` is missing, naive or out of
            range, or ``calendar`` is not a ClinicCalendar.
        ProtocolError: The protocol has no `SessionCount` or `TreatmentWindow` rule.
    """
    protocol = version_for(protocol, course, as_of)
    phases = protocol_phases(protocol)
    if phases is not None:
        check_protocol(protocol)
        timeline = scheduling_timeline(course, as_of, None)
        return PhasedSearch(timeline, phases, protocol, _check_calendar(calendar)).forecast()
    schedule = Schedule.of(protocol)
    timeline = scheduling_timeline(course, as_of, schedule.count)
    search = Search(timeline, schedule, protocol, _check_calendar(calendar))
    return search.forecast()


def protocol_phases(protocol: Protocol) -> tuple[Phase, ...] | None:
    """The phases of a phased protocol, or None for a protocol that has none.

    A protocol is phased when one of its rules has a parameter of role
    `kaprules.phases.PHASES` (such as `WeeklyCap`'s ``phases``); its phased rules all read
    the same phases.

    Args:
        protocol: A protocol.

    Returns:
        The first such parameter's phases, or None.
    """
    for rule in protocol.rules:
        for p in parameters_of(type(rule)):
            if p.role == PHASES:
                return tuple(getattr(rule, p.name))
    return None


def _series_rules(protocol: Protocol) -> bool:
    return any(isinstance(r, SessionCount) for r in protocol.rules) and any(
        isinstance(r, TreatmentWindow) for r in protocol.rules
    )


def _forecast(
    timeline: Timeline, schedule: Schedule, protocol: Protocol, at: dt.time = dt.time(9)
) -> Forecast:
    """The closed-form forecast: every day open, a booking limited by N, W, g and M only.

    ``at`` is the time of day of candidate sessions (the calendar's), which decides
    whether a candidate on the local date of an aware ``as_of`` is still in the future.
    """
    today = timeline.as_of_date
    assert today is not None
    assert timeline.as_of is not None
    n = len(timeline.inductions)
    last = timeline.sessions[-1].date if timeline.sessions else None
    first = timeline.inductions[0].date if n else None
    closes = None if first is None else first + dt.timedelta(days=schedule.window - 1)
    step = dt.timedelta(days=schedule.gap)
    lower = _first_candidate_day(timeline, at)
    upcoming: NextSession | None = None
    if first is None:
        if schedule.gap * (schedule.count - 1) > schedule.window - 1:
            # No series fits this protocol's window at its gap, whenever it starts.
            status = SeriesStatus.CANNOT_COMPLETE
        else:
            status = SeriesStatus.NOT_STARTED
            earliest = today if last is None else max(today, last + step)
            upcoming = NextSession(Kind.INDUCTION, earliest, max(lower, earliest), None)
    elif n < schedule.count:
        assert last is not None
        earliest = last + step
        latest = schedule.latest(first, n)
        bookable = max(lower, earliest)
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
            upcoming = NextSession(Kind.BOOSTER, earliest, max(lower, earliest), None)
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
        _integration_due(timeline, schedule),
    )


def _in_future(timeline: Timeline, start: dt.datetime) -> bool:
    """Whether a session starting at ``start`` is in the future at the timeline's ``as_of``.

    The one test of "in the future" that scheduling has: the forecast's first bookable day
    and the booking check's `FUTURE_START` both read it. As `evaluate` reads ``as_of``: an
    aware instant is passed when the session starts after it; a plain date means that
    local day is over, so only a session on a later local date is in the future.
    """
    as_of = timeline.as_of
    if isinstance(as_of, dt.datetime):
        return start > as_of
    today = timeline.as_of_date
    assert today is not None
    return start.astimezone(timeline.zone).date() > today


def _first_candidate_day(timeline: Timeline, at: dt.time) -> dt.date:
    """The first local date on which a session at wall time ``at`` is `_in_future`."""
    today = timeline.as_of_date
    assert today is not None
    try:
        start = _time.at_local(today, at, timeline.zone)
    except _time.NoSuchDay:  # a plain date the zone skipped: no session on it at all
        return today + _DAY
    return today if _in_future(timeline, start) else today + _DAY


def _integration_due(timeline: Timeline, schedule: Schedule) -> IntegrationDue | None:
    rule = schedule.followup
    series = timeline.inductions
    if rule is None or not series or len(series) < schedule.count:
        return None
    last = series[-1].date
    by = last + dt.timedelta(days=rule.within_days)
    held = sum(1 for m in timeline.integrations if last < m.date <= by)
    if held >= rule.min_meetings:
        return None
    return IntegrationDue(rule.min_meetings - held, by)


_DAY = dt.timedelta(days=1)

SEARCH_LIMIT = 20_000
"""The most booking checks one forecast or plan makes with a protocol of custom rules
before it stops looking: a day whose completion is not settled by then is not bookable."""


class _SearchLimit(Exception):
    """The search made SEARCH_LIMIT booking checks."""


def _free_ids(taken: set[str], how_many: int) -> list[str]:
    ids = (f"planned-{k}" for k in range(1, len(taken) + how_many + 2))
    return [i for i in ids if i not in taken][:how_many]


class Search:
    """Bookable days and earliest completions of one course, shared by forecast and plan.

    The search is date ordered and depth first: each session of the series is placed on
    the earliest day that is open, accepted by the booking check given the sessions placed
    before it, and from which the rest can still be placed. The closed forms prune it: no
    day before the last session + the error spacing's gap, none after the day from which
    the series still fits its window at the spacing's gap (the booking check's own
    ``series-completion`` limit), and no day from which a greedy placement under those two
    bounds alone fails. When the protocol is ``exact`` those bounds are the whole truth,
    the booking check is not run and the search is the greedy placement itself.
    """

    def __init__(
        self,
        timeline: Timeline,
        schedule: Schedule,
        protocol: Protocol,
        calendar: ClinicCalendar | None,
    ) -> None:
        self.timeline = timeline
        self.schedule = schedule
        self.protocol = protocol
        self.calendar = calendar
        self.course = timeline.course
        self.at = dt.time(9) if calendar is None else calendar.at
        self.lower = _first_candidate_day(timeline, self.at)
        today = timeline.as_of_date
        assert today is not None
        self.today = today
        self.horizon = today + dt.timedelta(days=HORIZON_DAYS)
        self.n = len(timeline.inductions)
        self.first = timeline.inductions[0].date if self.n else None
        self.last = timeline.sessions[-1].date if timeline.sessions else None
        self.checks = 0
        taken = {s.id for s in self.course.sessions if s.id is not None}
        self.ids = _free_ids(taken, max(schedule.count - self.n, 0) + 1)
        self._open: dict[dt.date, bool] = {}
        self._completions: dict[dt.date, list[dt.date] | None] = {}

    # --- days ---

    def is_open(self, day: dt.date) -> bool:
        known = self._open.get(day)
        if known is None:
            # The calendar first: it is the cheaper test, and most closed days end there.
            known = self._open[day] = (
                self.calendar is None or self.calendar.is_open(day)
            ) and self.usable(day)
        return known

    def usable(self, day: dt.date) -> bool:
        """Whether a session can be proposed on ``day`` at all, whatever the calendar.

        The day existed in the course's zone (Pacific/Apia has no 2011-12-30), and a
        session at the calendar's time on it is within the supported years: a proposal
        past them could not be booked or checked.
        """
        try:
            start = _time.at_local(day, self.at, self.course.zone)
        except _time.NoSuchDay:
            return False
        return _time.in_range(start)

    def every_day_usable(self, upcoming: NextSession) -> bool:
        """Whether the closed forms' days for ``upcoming`` are all `usable`.

        They assume every day is: through the next session's bookable days and the
        window the rest of the series fills after them.
        """
        first = upcoming.bookable_from
        last = first
        if upcoming.kind is Kind.INDUCTION:
            last = (upcoming.latest or first) + dt.timedelta(days=self.schedule.window)
        days = range((last - first).days + 1)
        return all(self.usable(first + dt.timedelta(days=k)) for k in days)

    def open_days(self, first: dt.date, last: dt.date) -> Iterator[dt.date]:
        day = first
        while day <= last:
            if self.is_open(day):
                yield day
            day += _DAY

    def deadline(self, first: dt.date | None, placed: int) -> dt.date:
        """The last day for induction number ``placed + 1`` of a series opened on ``first``."""
        if first is None:
            return self.horizon
        return self.schedule.latest(first, placed)

    def after(self, day: dt.date) -> dt.date:
        return day + dt.timedelta(days=self.schedule.hard_gap)

    def chain(
        self,
        first: dt.date | None,
        placed: int,
        start: dt.date,
        left: int,
        *,
        window_only: bool = False,
    ) -> list[dt.date]:
        """Up to ``left`` days under the closed-form bounds only, each as early as it can be.

        ``placed`` induction sessions of the series opened on ``first`` (None: not yet)
        come before them. Earliest-first is optimal under a gap and per-session deadlines,
        so when this places fewer than ``left``, no placement places them all. With
        ``window_only`` every session's deadline is the window's last day: how many fit
        at all, as a plan's reason counts them.
        """
        days: list[dt.date] = []
        day = start
        for _ in range(left):
            limit = self.deadline(first, placed + len(days))
            if window_only and first is not None:
                limit = first + dt.timedelta(days=self.schedule.window - 1)
            while day <= limit and not self.is_open(day):
                day += _DAY
            if day > limit:
                break
            days.append(day)
            first = first or day
            day = self.after(day)
        return days

    def greedy(
        self, first: dt.date | None, placed: int, start: dt.date, left: int
    ) -> list[dt.date] | None:
        """`chain`'s days when it places all ``left``, else None."""
        days = self.chain(first, placed, start, left)
        return days if len(days) == left else None

    # --- booking checks ---

    def candidate(self, day: dt.date, kind: Kind, index: int) -> Session:
        return Session(_time.at_local(day, self.at, self.course.zone), kind, self.ids[index])

    def accepts(self, placed: tuple[Session, ...], proposed: Session) -> bool:
        if self.schedule.exact:
            return True  # the closed-form bounds the caller applied are the whole check
        self.checks += 1
        if self.checks > SEARCH_LIMIT:
            raise _SearchLimit
        course = attrs.evolve(self.course, sessions=(*self.course.sessions, *placed))
        as_of = self.timeline.as_of
        assert as_of is not None
        return _booking(course, proposed, as_of, self.protocol, self.schedule, self.calendar).ok

    def complete(
        self, placed: tuple[Session, ...], first: dt.date | None, start: dt.date, left: int
    ) -> list[dt.date] | None:
        """The earliest days, in date order, for ``left`` more induction sessions."""
        if left == 0:
            return []
        count = self.n + len(placed)
        if self.schedule.exact:
            return self.greedy(first, count, start, left)
        for day in self.open_days(start, self.deadline(first, count)):
            opens = first or day
            if self.greedy(opens, count + 1, self.after(day), left - 1) is None:
                if first is not None:
                    break  # a later day leaves less room still
                continue
            proposed = self.candidate(day, Kind.INDUCTION, len(placed))
            if not self.accepts(placed, proposed):
                continue
            rest = self.complete((*placed, proposed), opens, self.after(day), left - 1)
            if rest is not None:
                return [day, *rest]
        return None

    def bookable(self, day: dt.date) -> bool:
        """Whether the next induction session may be booked on ``day`` (an open day)."""
        return self.completion(day) is not None

    def completion(self, day: dt.date) -> list[dt.date] | None:
        """The earliest days of the rest of the series with its next session on ``day``."""
        if day in self._completions:
            return self._completions[day]
        left = self.schedule.count - self.n
        opens = self.first or day
        found: list[dt.date] | None = None
        rest = self.greedy(opens, self.n + 1, self.after(day), left - 1)
        if rest is not None and self.schedule.exact:
            found = [day, *rest]
        elif rest is not None:
            proposed = self.candidate(day, Kind.INDUCTION, 0)
            try:
                if self.accepts((), proposed):
                    more = self.complete((proposed,), opens, self.after(day), left - 1)
                    found = None if more is None else [day, *more]
            except _SearchLimit:
                found = None
        self._completions[day] = found
        return found

    def accepts_meeting(
        self, course: Course, placed: list[Integration], proposed: Integration
    ) -> bool:
        """Whether a meeting is accepted after ``placed`` ones, on a course with the plan."""
        if self.calendar is not None and not self.is_open(course.local(proposed.start).date()):
            return False
        if self.schedule.exact:
            return True
        booked = attrs.evolve(course, integrations=(*course.integrations, *placed))
        as_of = self.timeline.as_of
        assert as_of is not None
        return _meeting_booking(
            booked, proposed, as_of, self.protocol, self.schedule, self.calendar
        ).ok

    def start(self) -> dt.date:
        """The first day any session may be appended on: after as_of and the spacing gap."""
        if self.last is None:
            return self.lower
        return max(self.lower, self.after(self.last))

    # --- the forecast ---

    def forecast(self) -> Forecast:
        """The forecast, with the reason of a series that cannot be completed."""
        answer = self._forecast()
        if answer.status is not SeriesStatus.CANNOT_COMPLETE:
            return answer
        return attrs.evolve(answer, reason=self.shortfall().reason)

    def _forecast(self) -> Forecast:
        closed = _forecast(self.timeline, self.schedule, self.protocol, self.at)
        upcoming = closed.next
        if upcoming is None:
            return closed
        if self.schedule.exact and self.calendar is None and self.every_day_usable(upcoming):
            return closed
        if upcoming.kind is Kind.BOOSTER:
            day = self.booster_day(upcoming.earliest)
            if day is None:
                return attrs.evolve(closed, next=None)
            return attrs.evolve(closed, next=attrs.evolve(upcoming, bookable_from=day))
        first_day = self.first_bookable()
        if first_day is None:
            return attrs.evolve(closed, status=SeriesStatus.CANNOT_COMPLETE, next=None)
        latest = None
        gaps: tuple[dt.date, ...] = ()
        if upcoming.latest is not None:
            latest = next(
                d
                for d in _downward(upcoming.latest, first_day)
                if self.is_open(d) and self.bookable(d)
            )
            if not self.schedule.exact:
                # The greedy bound is monotone; a clinic's own rule need not be.
                inside = self.open_days(first_day + _DAY, latest - _DAY)
                gaps = tuple(d for d in inside if not self.bookable(d))
        return attrs.evolve(
            closed, next=NextSession(Kind.INDUCTION, upcoming.earliest, first_day, latest, gaps)
        )

    def shortfall(self) -> Shortfall:
        """Why the series cannot be completed: what `plan` and the forecast's reason say.

        Only meaningful when it cannot be (the forecast is ``cannot-complete``). How many
        sessions do not fit is counted by the closed-form bounds on open days (`chain`);
        when they all would, the protocol's own rules are what leave no way.
        """
        count, window = self.schedule.count, self.schedule.window
        span = dt.timedelta(days=window - 1)
        lower = self.start()
        if self.first is None:
            first = next(self.open_days(lower, self.horizon), None)
            if first is None:
                return Shortfall(
                    f"the calendar has no open day from {lower.isoformat()} to "
                    f"{self.horizon.isoformat()} on which the series could start"
                    f"{past_years(self.horizon)}",
                    count,
                    None,
                )
            placed = len(self.chain(None, 0, first, count, window_only=True))
            missing = count - placed if placed < count else count
            why = (
                f"with {missing} of {count} sessions not fitting"
                if placed < count
                else "and the protocol's own rules leave no way to complete it"
            )
            return Shortfall(
                f"no first day up to {self.horizon.isoformat()} fits all {count} induction "
                f"sessions in a {window}-day window on open days; from the first open day, "
                f"{first.isoformat()}, the window would close on "
                f"{(first + span).isoformat()} {why}{past_years(self.horizon)}",
                missing,
                first,
            )
        closes = self.first + span
        remaining = count - self.n
        placed = len(self.chain(self.first, self.n, lower, remaining, window_only=True))
        missing = remaining - placed if placed < remaining else remaining
        how = "on open days" if placed < remaining else "under the protocol's own rules"
        # A window whose last day is before the first day a session could be on is over.
        tense = "closed" if closes < lower else "closes"
        return Shortfall(
            f"the series' {window}-day window {tense} on {closes.isoformat()}: {missing} of "
            f"the remaining {plural(remaining, 'induction session')} "
            f"{'does' if missing == 1 else 'do'} not fit {how} from {lower.isoformat()}",
            missing,
            self.first,
        )

    def first_bookable(self) -> dt.date | None:
        return next(
            (
                d
                for d in self.open_days(self.start(), self.deadline(self.first, self.n))
                if self.bookable(d)
            ),
            None,
        )

    def booster_day(self, earliest: dt.date) -> dt.date | None:
        """The first open day from ``earliest`` within the horizon that takes a booster."""
        start = self.start()
        months = self.schedule.months
        if self.schedule.exact:
            start = max(start, earliest)
        elif self.schedule.hard_booster and months is not None and self.last is not None:
            start = max(start, _time.add_months(self.last, months))
        end = max(start, earliest) + dt.timedelta(days=HORIZON_DAYS)
        try:
            for day in self.open_days(start, end):
                if self.accepts((), self.candidate(day, Kind.BOOSTER, 0)):
                    return day
        except _SearchLimit:
            pass
        return None


@attrs.frozen
class Shortfall:
    """Why a series cannot be completed (`Search.shortfall`), shared by forecast and plan.

    ``missing`` is how many induction sessions do not fit; ``opens`` the first day of the
    window they were tried in (the series' own, or a new series' first open day), or None.
    """

    reason: str
    missing: int
    opens: dt.date | None


def past_years(last: dt.date) -> str:
    """The note a reason ends with when its days run past the supported years, or "".

    Days past them are never proposed: a reason whose range ends there says so.
    """
    if last.year <= _time.MAX_YEAR:
        return ""
    return f" (no session is proposed after the year {_time.MAX_YEAR}, the last supported)"


def _downward(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    day = first
    while day >= last:
        yield day
        day -= _DAY


def check_booking(
    course: Course,
    proposed: Session | Integration,
    as_of: dt.datetime | dt.date,
    protocol: Protocol | ProtocolVersions = STANDARD,
    calendar: ClinicCalendar | None = None,
) -> Report:
    """Whether ``proposed`` may be booked: ``report.ok`` says yes or no.

    The protocol is evaluated on the course with the proposed session added, as a planned
    session (its escort, last meal and therapist are not yet due). The report keeps only
    the findings that name the proposed session: errors the course already had do not
    block a booking. When the proposed session is an induction session after which the
    series can no longer be completed (by the closed forms of
    [`forecast`][kaprules.forecast]: the window at the spacing's gap) although it could
    before, the report has one more error finding, of rule id ``"series-completion"``,
    naming it and the latest date that kept the series possible. With a calendar, a
    proposal on a day the clinic is closed has an error finding of rule id
    ``"clinic-calendar"`` that says why. A proposal that is not in the future at
    ``as_of`` (it starts at or before an aware instant, or on or before a plain date,
    whose day counts as over) has an error finding of rule id ``"future-start"``: the
    same test that decides the forecast's first bookable day, so the two agree.

    A phased protocol (see [`forecast`][kaprules.forecast]) has no series to complete:
    its rules judge the booking, and a booking over a week's cap is refused by the
    ``weekly-cap`` finding, whose message names the week and its sessions.

    An [`Integration`][kaprules.Integration] meeting is checked by adding it to the
    course's meetings: the report keeps the findings it adds (and the calendar's).

    Args:
        course: The course as booked so far.
        proposed: The session or integration meeting to book. Without an id it is called
            ``proposed``.
        as_of: The moment of the booking, read as `evaluate` reads it.
        protocol: The protocol (kap-standard v1 by default).
        calendar: The clinic's calendar, or None for every day open at 09:00 (no
            calendar check), as for `forecast` and `plan`.

    Returns:
        A report over the course with the proposal added, holding only the findings about
        it.

    Raises:
        InputError: ``proposed`` is not a Session or an Integration, or has the id of one
            of the course's; ``course``, ``as_of`` or ``calendar`` is unusable as for
            `forecast`.
        ProtocolError: The protocol has no `SessionCount` or `TreatmentWindow` rule.
    """
    if isinstance(proposed, Session | Integration):
        protocol = version_for(protocol, course, proposed.start)
    schedule: Schedule | None
    if protocol_phases(protocol) is not None and not _series_rules(protocol):
        # A phased protocol: the rules judge the booking; there is no series to complete.
        check_protocol(protocol)
        schedule = None
    else:
        schedule = Schedule.of(protocol)
    scheduling_timeline(course, as_of, None if schedule is None else schedule.count)
    calendar = _check_calendar(calendar)
    if isinstance(proposed, Integration):
        return _meeting_booking(
            course, proposed, as_of, protocol, schedule, calendar, refuse_past=True
        )
    if not isinstance(proposed, Session):
        raise InputError(
            Problem(
                "proposed",
                f"must be a Session or an Integration, got {type(proposed).__name__}",
                "type",
            )
        )
    taken = {s.id for s in course.sessions}
    if proposed.id is None:
        proposed = attrs.evolve(proposed, id=_fresh(taken))
    elif proposed.id in taken:
        raise InputError(_duplicate(proposed.id, "a session"))
    return _booking(course, proposed, as_of, protocol, schedule, calendar, refuse_past=True)


def _fresh(taken: set[str | None]) -> str:
    fresh, number = "proposed", 1
    while fresh in taken:
        number += 1
        fresh = f"proposed-{number}"
    return fresh


def _duplicate(name: str, what: str) -> Problem:
    return Problem(
        ("proposed", "id"),
        f"the course already has {what} {echo(name)}; give the proposed one an id of its own",
        "duplicate",
    )


def _booking(
    course: Course,
    proposed: Session,
    as_of: dt.datetime | dt.date,
    protocol: Protocol,
    schedule: Schedule | None,
    calendar: ClinicCalendar | None,
    *,
    refuse_past: bool = False,
) -> Report:
    """The booking check of a session with an id of its own, on a checked course.

    ``schedule`` is None for a phased protocol: no series-completion check. With
    ``refuse_past`` a proposal that is not `_in_future` gets a `FUTURE_START` error; the
    searches leave it off, as their candidates are in the future (or, for a phased
    forecast's ``earliest``, are meant to ignore ``as_of``).
    """
    name = proposed.id
    assert name is not None
    length = None if schedule is None else schedule.count
    booked = attrs.evolve(course, sessions=(*course.sessions, proposed))
    timeline = Timeline.of(booked, as_of, series_length=length)
    # A booking is a planned session, even on today's date: what is due at the session
    # itself (escort, fasting, therapist) cannot be faulted yet.
    timeline = attrs.evolve(
        timeline,
        sessions=tuple(_as_planned(t, name) for t in timeline.sessions),
        inductions=tuple(_as_planned(t, name) for t in timeline.inductions),
    )
    report = evaluate_timeline(timeline, protocol)
    findings = [f for f in report.findings if name in f.sessions]
    placed = next(t for t in timeline.sessions if t.id == name)
    if schedule is not None and proposed.kind is Kind.INDUCTION:
        at = dt.time(9) if calendar is None else calendar.at
        before = Timeline.of(course, as_of, series_length=schedule.count)
        was = _forecast(before, schedule, protocol, at)
        now = _forecast(timeline, schedule, protocol, at)
        if was.status is not SeriesStatus.CANNOT_COMPLETE and (
            now.status is SeriesStatus.CANNOT_COMPLETE
        ):
            findings.append(_completion_finding(placed, was, now, schedule))
    if calendar is not None:
        why = calendar.closure(placed.date)
        if why is not None:
            findings.insert(0, _closed_finding(name, placed.label, placed.date, why))
    if refuse_past and not _in_future(timeline, proposed.start):
        findings.insert(0, _past_finding(timeline, name, placed.label, placed.local))
    return attrs.evolve(report, findings=tuple(findings))


def _meeting_booking(
    course: Course,
    proposed: Integration,
    as_of: dt.datetime | dt.date,
    protocol: Protocol,
    schedule: Schedule | None,
    calendar: ClinicCalendar | None,
    *,
    refuse_past: bool = False,
) -> Report:
    length = None if schedule is None else schedule.count
    taken = {m.id for m in course.integrations}
    if proposed.id is None:
        proposed = attrs.evolve(proposed, id=_fresh(taken))
    elif proposed.id in taken:
        raise InputError(_duplicate(proposed.id, "an integration meeting"))
    name = proposed.id
    assert name is not None
    before = evaluate_timeline(Timeline.of(course, as_of, series_length=length), protocol)
    booked = attrs.evolve(course, integrations=(*course.integrations, proposed))
    timeline = Timeline.of(booked, as_of, series_length=length)
    report = evaluate_timeline(timeline, protocol)
    old = set(before.findings)
    findings = [f for f in report.findings if f not in old]
    local = course.local(proposed.start)
    label = f"integration meeting {shown_id(name)} ({_time.format_local(local)})"
    if calendar is not None:
        why = calendar.closure(local.date())
        if why is not None:
            findings.insert(0, _closed_finding(name, label, local.date(), why))
    if refuse_past and not _in_future(timeline, proposed.start):
        findings.insert(0, _past_finding(timeline, name, label, local))
    return attrs.evolve(report, findings=tuple(findings))


def _past_finding(timeline: Timeline, name: str, label: str, local: dt.datetime) -> Finding:
    as_of, today = timeline.as_of, timeline.as_of_date
    assert as_of is not None
    assert today is not None
    if isinstance(as_of, dt.datetime):
        moment = _time.format_local(as_of.astimezone(timeline.zone))
        why = f"{moment}: a booking starts after it"
    else:
        why = (
            f"{today.isoformat()}: that date counts as over, so a booking starts on "
            f"{(today + _DAY).isoformat()} or later"
        )
    return Finding(
        FUTURE_START,
        Severity.ERROR,
        (name,),
        f"{label} is not in the future at as_of {why}",
        f"after {as_of.isoformat()}",
        local.isoformat(),
        help=Help(f"{_report.DOCS_URL}scheduling/#booking-check"),
    )


def _closed_finding(name: str, label: str, day: dt.date, why: str) -> Finding:
    return Finding(
        CLINIC_CALENDAR,
        Severity.ERROR,
        (name,),
        # `why` says "closed" itself ("the clinic is closed on Sundays", "closed: Winter
        # break"): the message must not say it again.
        f"{label} cannot be booked: {why}",
        "an open day",
        day.isoformat(),
        help=Help(f"{_report.DOCS_URL}scheduling/#booking-check"),
    )


def _as_planned(timed: TimedSession, session_id: str) -> TimedSession:
    return timed._replace(planned=True) if timed.id == session_id else timed


def _completion_finding(
    placed: TimedSession, was: Forecast, now: Forecast, schedule: Schedule
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


_WINDOWED: frozenset[type[BaseRule]] = frozenset(
    {
        _phases.WeeklyCap,
        _phases.WeeklyTarget,
        _phases.Overdue,
        _phases.MinGap,
        _phases.BeyondEvaluated,
        Fasting,
        Escort,
        Therapist,
        SessionSpacing,
        _session_day.LiquidFasting,
        _session_day.BloodPressureBefore,
        _session_day.BloodPressureLimit,
        _session_day.BloodPressureAfter,
        _session_day.PostDoseMonitoring,
        _session_day.Dose,
        _session_day.RemsEnrolment,
        _session_day.MonitoringForm,
    }
)
"""The rule classes whose findings about a new last session read only the course's first
session, the session before it and the sessions of its treatment week (and the course's own
fields): a phased search checks a booking under them on those sessions alone
(`PhasedSearch`). Exact classes only: a subclass may read more."""

_WEEKLY = frozenset[type[BaseRule]]((_phases.WeeklyCap, _phases.WeeklyTarget))
"""The `_WINDOWED` rules that read the new session's whole treatment week."""


class PhasedSearch:
    """Bookable days of a course under a phased protocol, shared by forecast and plan.

    A day is bookable for a new session when it is open (in the calendar, and a day the
    course's zone has), a session on it at the calendar's time starts after ``as_of`` and
    after the course's last session, and [`check_booking`][kaprules.check_booking] with
    the whole protocol accepts it given the sessions placed before it. Days are tried in
    date order; treatment weeks count from the course's first session, or from the first
    session placed when the course has none.
    """

    def __init__(
        self,
        timeline: Timeline,
        phases: tuple[Phase, ...],
        protocol: Protocol,
        calendar: ClinicCalendar | None,
    ) -> None:
        self.timeline = timeline
        self.phases = phases
        self.protocol = protocol
        self.calendar = calendar
        self.course = timeline.course
        self.at = dt.time(9) if calendar is None else calendar.at
        today, as_of = timeline.as_of_date, timeline.as_of
        assert today is not None
        assert as_of is not None
        self.today = today
        self.as_of = as_of
        sessions = timeline.sessions
        self.held = tuple(t.date for t in sessions)
        self.d0 = sessions[0].date if sessions else None
        self.last = sessions[-1] if sessions else None
        self.start = self.after_last(_first_candidate_day(timeline, self.at))
        self.last_week = phases[-1].last  # None: the last phase is open-ended
        self.checks = 0
        self._taken = {s.id for s in self.course.sessions if s.id is not None}
        self._proposed = _fresh(set(self._taken))  # never planned-k: see session_id
        self._ids: list[str] = []
        self._open: dict[dt.date, bool] = {}
        self._candidates: dict[tuple[dt.date, int], Session] = {}
        self._windowed = all(type(r) in _WINDOWED for r in protocol.rules)

    # --- days and weeks ---

    def after_last(self, day: dt.date) -> dt.date:
        """The first day from ``day`` on which a session starts after the last one's start."""
        last = self.last
        if last is None or day > last.date:
            return day
        if _time.at_local(last.date, self.at, self.course.zone) > last.instant:
            return last.date
        return last.date + _DAY

    def is_open(self, day: dt.date) -> bool:
        known = self._open.get(day)
        if known is None:
            known = self._open[day] = (
                self.calendar is None or self.calendar.is_open(day)
            ) and self._usable(day)
        return known

    def _usable(self, day: dt.date) -> bool:
        try:
            start = _time.at_local(day, self.at, self.course.zone)
        except _time.NoSuchDay:
            return False
        return _time.in_range(start)

    def beyond(self, week: int) -> bool:
        """Whether ``week`` is after the last phase (never, when it is open-ended)."""
        return self.last_week is not None and week > self.last_week

    def in_week(self, d0: dt.date, week: int, placed: tuple[dt.date, ...]) -> int:
        """How many sessions, recorded and placed, the treatment week has."""
        first, last = week_dates(d0, week)
        return sum(1 for day in (*self.held, *placed) if first <= day <= last)

    def phase_end(self, d0: dt.date) -> dt.date | None:
        """The last day of the last phase, or None when it is open-ended."""
        return None if self.last_week is None else week_dates(d0, self.last_week)[1]

    # --- booking checks ---

    def session_id(self, index: int) -> str:
        while len(self._ids) <= index:
            self._ids = _free_ids(self._taken, 2 * len(self._ids) + 8)
        return self._ids[index]

    def candidate(self, day: dt.date, index: int) -> Session:
        known = self._candidates.get((day, index))
        if known is None:
            start = _time.at_local(day, self.at, self.course.zone)
            known = self._candidates[day, index] = Session(
                start, Kind.INDUCTION, self.session_id(index)
            )
        return known

    def sessions(self, placed: tuple[dt.date, ...]) -> tuple[Session, ...]:
        return tuple(self.candidate(day, k) for k, day in enumerate(placed))

    def booking(self, placed: tuple[dt.date, ...], day: dt.date) -> Report:
        """The booking check of a session on ``day`` after the ``placed`` ones (no calendar)."""
        self.checks += 1
        start = _time.at_local(day, self.at, self.course.zone)
        proposed = Session(start, Kind.INDUCTION, self._proposed)
        if self._windowed:
            return self._windowed_booking(placed, proposed, day)
        course = attrs.evolve(self.course, sessions=(*self.course.sessions, *self.sessions(placed)))
        return _booking(course, proposed, self.as_of, self.protocol, None, None)

    def _windowed_booking(
        self, placed: tuple[dt.date, ...], proposed: Session, day: dt.date
    ) -> Report:
        """`_booking` of ``proposed`` under `_WINDOWED` rules, each on the sessions it reads.

        The proposed session is after every other. The weekly rules read the first session
        and its treatment week's; every other one the first session and the one before it.
        Each rule's findings naming the proposal are those of the whole course, ordered as
        `evaluate` orders them (start order is kept), so a check costs a week's sessions,
        not the course's: a plan over 10,000 recorded sessions stays in seconds.
        """
        held = self.timeline.sessions
        added = self.sessions(placed)
        anchor = self.d0 if self.d0 is not None else (placed[0] if placed else day)
        week_start = week_dates(anchor, treatment_week(anchor, day))[0]
        since = bisect.bisect_left(self.held, week_start)  # held dates are in start order
        ordered = (*(t.session for t in held), *added, proposed)
        first, before = ordered[0], ordered[-2] if len(ordered) > 1 else proposed
        week = (
            *(t.session for t in held[since:]),
            *(s for s, d in zip(added, placed, strict=True) if d >= week_start),
        )
        place = {s.id: k for k, s in enumerate(ordered)}
        name = self._proposed
        found: list[tuple[int, Finding]] = []
        groups = (((first, *week, proposed), True), ((first, before, proposed), False))
        for sessions, weekly in groups:
            rules = [
                (index, rule)
                for index, rule in enumerate(self.protocol.rules)
                if (type(rule) in _WEEKLY) is weekly
            ]
            if not rules:
                continue
            unique = tuple({id(s): s for s in sessions}.values())
            timeline = Timeline.of(attrs.evolve(self.course, sessions=unique), self.as_of)
            timeline = attrs.evolve(
                timeline,
                sessions=tuple(_as_planned(t, name) for t in timeline.sessions),
                inductions=tuple(_as_planned(t, name) for t in timeline.inductions),
            )
            found += (
                (i, attrs.evolve(f, protocol_version=self.protocol.version))
                for i, rule in rules
                for f in rule(timeline)
                if name in f.sessions
            )

        def order(item: tuple[int, Finding]) -> tuple[Any, ...]:
            # The order of _judging.findings_of (what evaluate runs), by places in the whole
            # course.
            index, f = item
            places = tuple(place.get(s, -1) for s in f.sessions)
            return (places[:1] or (-1,), index, places, f.message)

        found.sort(key=order)
        return Report(
            self.protocol.id,
            self.protocol.version,
            tuple(f for _, f in found),
            self.as_of.isoformat(),
            __version__,
            self.protocol.derived_from,
        )

    def bookable(self, placed: tuple[dt.date, ...], day: dt.date) -> bool:
        return self.is_open(day) and self.booking(placed, day).ok

    def fill(self, placed: tuple[dt.date, ...], more: int, first: dt.date, last: dt.date) -> bool:
        """Whether ``more`` sessions fit, earliest first, on bookable days first..last."""
        day = first
        while more > 0 and day <= last:
            if self.bookable(placed, day):
                placed, more = (*placed, day), more - 1
            day += _DAY
        return more <= 0

    def first_bookable(
        self, placed: tuple[dt.date, ...], start: dt.date, end: dt.date
    ) -> tuple[dt.date | None, Refusal | None, bool]:
        """The first bookable day from ``start`` to ``end`` in a week a phase covers.

        Returns:
            The day (or None), the first open day refused by a rule before it (or None),
            and whether the search stopped because the phases were over.
        """
        refused = None
        day = start
        anchor = self.d0 if self.d0 is not None else (placed[0] if placed else None)
        while day <= end:
            week = 1 if anchor is None else treatment_week(anchor, day)
            if self.beyond(week):
                return None, refused, True
            if self.is_open(day) and phase_of(self.phases, week) is not None:
                report = self.booking(placed, day)
                if report.ok:
                    return day, refused, False
                if refused is None:
                    error = next(f for f in report.findings if f.severity is Severity.ERROR)
                    refused = Refusal(day, error.rule, error.message)
            day += _DAY
        return None, refused, False

    # --- the forecast ---

    def earliest(self) -> dt.date:
        """The first day after the last session the rules accept, ignoring as_of and calendar."""
        if self.last is None:
            return self.today
        day = self.after_last(self.last.date)
        for _ in range(HORIZON_DAYS):
            if self._usable(day) and self.booking((), day).ok:
                return day
            day += _DAY
        return day

    def latest(self, first: dt.date) -> dt.date | None:
        """The last bookable day that still meets the current target, from ``first``."""
        d0 = self.d0
        if d0 is None:
            return None
        week = treatment_week(d0, first)
        phase = phase_of(self.phases, week)
        if phase is None:
            return None
        need = 0 if phase.target is None else phase.target - self.in_week(d0, week, ())
        if need > 0:
            end = week_dates(d0, week)[1]
            for day in _downward(end, first):
                if self.bookable((), day) and self.fill((day,), need - 1, day + _DAY, end):
                    return day
            return None
        if phase.every_days is not None and self.last is not None:
            due = self.last.date + dt.timedelta(days=phase.every_days)
            return next((day for day in _downward(due, first) if self.bookable((), day)), None)
        return None

    def forecast(self) -> Forecast:
        phases, d0 = self.phases, self.d0
        end = self.start + dt.timedelta(days=HORIZON_DAYS)
        first, refused, over = self.first_bookable((), self.start, end)
        upcoming = None
        if first is not None:
            week = 1 if d0 is None else treatment_week(d0, first)
            phase = phase_of(phases, week)
            upcoming = NextSession(
                Kind.INDUCTION,
                self.earliest(),
                first,
                self.latest(first),
                phase=None if phase is None else phase.name,
                week=week,
                refused=refused,
            )
            status = SeriesStatus.NOT_STARTED if d0 is None else SeriesStatus.IN_PROGRESS
        else:
            status = SeriesStatus.COMPLETE if over else SeriesStatus.CANNOT_COMPLETE
        reason = None
        if status is SeriesStatus.CANNOT_COMPLETE:
            reason = (
                f"no day from {self.start.isoformat()} to {end.isoformat()} is bookable"
                f"{past_years(end)}"
            )
        count = sum(
            p.target * (p.last - p.first + 1)
            for p in phases
            if p.target is not None and p.last is not None
        )
        return Forecast(
            status,
            len(self.held),
            count,
            d0,
            None if d0 is None else self.phase_end(d0),
            upcoming,
            self.today,
            self.as_of.isoformat(),
            self.course.timezone,
            self.protocol.id,
            self.protocol.version,
            __version__,
            None,
            reason=reason,
            phased=True,
        )
