"""Session-day rules: what happens on the day of a session, as a label and REMS ask.

The esketamine label and its REMS ask more of each session than a fast and an escort: no
liquids for a while before dosing, blood pressure before and after it, monitoring until the
patient is ready to leave, the dose, enrolment before the first treatment and a form after
each one. These rules read the session-day fields of the course format (``last_liquid``,
``vitals``, ``ready_to_leave``, ``dose_mg``, ``monitoring_form`` and the course's
``enrolled``). ``start`` is when dosing begins: the first device, the infusion's start.

Session-day rules judge held sessions; a planned one is exempt, as for
`therapist-present`. Their messages name thresholds and times, never a patient's
readings or doses.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

import attrs

from kaprules import _examples, _time
from kaprules._words import plural
from kaprules.errors import Problem, ProtocolError
from kaprules.model import Course, JSONValue, Session, Vital
from kaprules.report import Finding, Severity
from kaprules.rules import (
    BUILTIN_RULES,
    BaseRule,
    Bounds,
    Choices,
    CourseShape,
    Role,
    Source,
    alone_of_its_class,
    parameter,
    refuse_problem,
    session_changed,
    severity_field,
)
from kaprules.timeline import TimedSession, Timeline

__all__ = [
    "BLOOD_PRESSURE_WINDOW",
    "BloodPressureAfter",
    "BloodPressureBefore",
    "BloodPressureLimit",
    "Dose",
    "DoseSet",
    "LiquidFasting",
    "MonitoringForm",
    "PostDoseMonitoring",
    "RemsEnrolment",
]

_MINUTES = 24 * 60
_HCP_SITE = (
    "'TRD Dosing & Administration', the manufacturer's site for health care professionals, "
    "https://www.spravatohcp.com/dosing-spravato-trd"
)
_PATIENT_SITE = (
    "'Preparing for Treatment', the manufacturer's site for patients, "
    "https://www.spravato.com/treatment-with-SPRAVATO"
)
_LABEL_COPY = (
    "SPRAVATO (esketamine) nasal spray, US Prescribing Information, "
    "https://prescriberpoint.com/therapies/spravato-d81a6a7"
)
_REMS_SITE = "SPRAVATO REMS, Outpatient Healthcare Settings, https://www.spravatorems.com/outpatient-hcs.html"

BLOOD_PRESSURE_WINDOW = Role("blood-pressure-window", "the minutes before dosing a reading counts")
"""The minutes before the start in which a blood-pressure reading counts as taken before
dosing: `blood-pressure-before` and `blood-pressure-limit` read the same window."""


def _builtin(cls: type[BaseRule]) -> type[BaseRule]:
    BUILTIN_RULES[cls.default_id] = cls
    return cls


def _held(timeline: Timeline) -> Iterator[TimedSession]:
    return (t for t in timeline.sessions if not t.planned)


def _minutes(value: float) -> str:
    return plural(int(value), "minute") if value == int(value) else f"{value:g} minutes"


def _time_of(t: TimedSession, instant: dt.datetime) -> str:
    # A time of the session's day in the course zone: the time a reading was taken, never
    # the reading.
    return _time.format_local(_time.to_utc(instant).astimezone(t.local.tzinfo))


def _with(session: Session, **changes: Any) -> Session:
    return attrs.evolve(session, **changes)


def _day_examples(
    rule: BaseRule, good: dict[str, Any], bad: dict[str, Any], titles: tuple[str, str]
) -> Sequence[tuple[str, Course]]:
    start = _examples.at(_examples.DEC1, 9)

    def one(changes: dict[str, Any]) -> Course:
        made = {k: (v(start) if callable(v) else v) for k, v in changes.items()}
        return _examples.course([_with(_examples.session("s1", start), **made)])

    return ((titles[0], one(good)), (titles[1], one(bad)))


@_builtin
@attrs.frozen(repr=False)
class LiquidFasting(BaseRule):
    """At least ``minutes`` of elapsed time pass between the last liquid and the start.

    Args:
        minutes: The shortest time without liquids, in minutes of elapsed time (0 to 1440).
        id: The rule's id (default ``"liquid-fasting"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "liquid-fasting"
    title: ClassVar[str] = "No liquids before dosing"
    rationale: ClassVar[str] = (
        "The patient does not drink for a set time before dosing. The time is real elapsed "
        "time from last_liquid to the start, when dosing begins; a held session without a "
        "recorded last_liquid is a finding, and so is a liquid after the start."
    )
    source: ClassVar[Source] = Source(
        "You should avoid eating two hours before and drinking liquids 30 minutes before "
        "taking SPRAVATO",
        document=_PATIENT_SITE,
        location="'Preparing for Treatment'",
    )
    names: ClassVar[str] = "The session, one finding each."

    minutes: float = parameter(30, Bounds(0, _MINUTES, whole=False, unit="minutes"))

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every held session records last_liquid, and at least {_minutes(self.minutes)} of "
            "elapsed time pass from last_liquid to the start (exactly that passes)."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """Exactly ``minutes`` without liquids, and one minute less."""
        limit = dt.timedelta(minutes=self.minutes)
        return _day_examples(
            self,
            {"last_liquid": lambda s: s - limit},
            {"last_liquid": lambda s: s - limit + dt.timedelta(minutes=1)},
            (f"exactly {_minutes(self.minutes)}", "one minute less"),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated sessions record a last liquid long enough before."""
        return _day_shape(shape, liquid_minutes=max(shape.liquid_minutes, self.minutes))

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One held session's liquid moved too close to the start (or after it)."""
        session = _one(self, course, choose, protocol)
        if session is None:
            return None
        short = choose.duration(
            dt.timedelta(minutes=-30), dt.timedelta(minutes=self.minutes) - dt.timedelta(seconds=1)
        )
        return session_changed(course, session, last_liquid=session.instant - short)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each held session with a missing or short liquid fast."""
        limit = dt.timedelta(minutes=self.minutes)
        for t in _held(timeline):
            liquid = t.session.last_liquid
            if liquid is None:
                yield self.finding((t,), f"{t.label} has no last_liquid recorded", self.minutes)
                continue
            gap = t.instant - _time.to_utc(liquid)
            if gap < limit:
                detail = (
                    f"the last liquid is recorded {_time.format_duration(-gap)} after the start"
                    if gap < dt.timedelta(0)
                    else f"the last liquid was {_time.format_duration(gap)} before the start"
                )
                yield self.finding(
                    (t,),
                    f"{t.label}: {detail}; at least {_minutes(self.minutes)} are required",
                    self.minutes,
                    gap.total_seconds() / 60,
                )


def _readings(session: Session, low: dt.datetime, high: dt.datetime) -> list[Vital]:
    return [v for v in session.vitals if low <= _time.to_utc(v.at) <= high]


@_builtin
@attrs.frozen(repr=False)
class BloodPressureBefore(BaseRule):
    """A blood-pressure reading is taken within ``minutes`` before the start.

    Args:
        minutes: How long before the start a reading counts (1 to 1440).
        id: The rule's id (default ``"blood-pressure-before"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "blood-pressure-before"
    title: ClassVar[str] = "Blood pressure before dosing"
    rationale: ClassVar[str] = (
        "Blood pressure is assessed before dosing: a held session needs a reading in vitals "
        "taken from minutes before the start up to the start, both included. The window is "
        "kaprules' default, a clinic parameter; the sources say only 'prior to'."
    )
    source: ClassVar[Source] = Source(
        "Blood pressure should be monitored prior to and 40 minutes after administration and "
        "subsequently as clinically warranted until values remain consistent at a safe level "
        "and the treatment session ends",
        document=_HCP_SITE,
        location="'Dosing and administration'",
    )
    names: ClassVar[str] = "The session, one finding each."

    minutes: int = parameter(60, Bounds(1, _MINUTES), role=BLOOD_PRESSURE_WINDOW)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every held session has a blood-pressure reading taken from "
            f"{_minutes(self.minutes)} before the start up to the start (both included)."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """A reading exactly ``minutes`` before the start, and one minute earlier."""
        return _day_examples(
            self,
            {"vitals": lambda s: (Vital(s - dt.timedelta(minutes=self.minutes), 120, 80),)},
            {"vitals": lambda s: (Vital(s - dt.timedelta(minutes=self.minutes + 1), 120, 80),)},
            (f"a reading {_minutes(self.minutes)} before", "one minute earlier"),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated sessions have a reading within ``minutes`` before dosing."""
        return _day_shape(shape, bp_before_minutes=min(shape.bp_before_minutes, int(self.minutes)))

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One held session's readings before dosing dropped.

        None when a reading dropped is also one after dosing for a `BloodPressureAfter` of
        the protocol (a reading at the start, with ``from_minutes`` 0).
        """
        session = _one(
            self,
            course,
            choose,
            protocol,
            lambda s: (
                not any(
                    _after_dosing(rule, s, v)
                    for rule in protocol.rules
                    for v in s.vitals
                    if _time.to_utc(v.at) <= s.instant
                )
            ),
        )
        if session is None:
            return None
        kept = tuple(v for v in session.vitals if _time.to_utc(v.at) > session.instant)
        return session_changed(course, session, vitals=kept)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each held session without a reading before dosing."""
        window = dt.timedelta(minutes=self.minutes)
        for t in _held(timeline):
            if not _readings(t.session, t.instant - window, t.instant):
                yield self.finding(
                    (t,),
                    f"{t.label} has no blood-pressure reading in the {_minutes(self.minutes)} "
                    "before the start",
                    self.minutes,
                )


@_builtin
@attrs.frozen(repr=False)
class BloodPressureLimit(BaseRule):
    """The latest reading before dosing is at most ``systolic``/``diastolic`` mmHg.

    Args:
        systolic: The highest systolic pressure, in mmHg (50 to 300).
        diastolic: The highest diastolic pressure, in mmHg (30 to 200).
        minutes: How long before the start a reading counts (as `BloodPressureBefore`).
        id: The rule's id (default ``"blood-pressure-limit"``).
        severity: The severity of its findings (default ``"warning"``).
    """

    default_id: ClassVar[str] = "blood-pressure-limit"
    title: ClassVar[str] = "Blood pressure before dosing within a limit"
    rationale: ClassVar[str] = (
        "A patient whose blood pressure is elevated before dosing is for the clinician to "
        "weigh: a warning by default. The latest reading in the window before the start is "
        "read (of readings taken at the same instant, the worst: their order in the record "
        "does not matter); a systolic pressure above systolic or a diastolic above diastolic "
        "is a finding. 140/90 is given 'as a general guide', not as a cut-off: it is kaprules' "
        "default, a clinic parameter. The message never shows the reading."
    )
    source: ClassVar[Source] = Source(
        "In patients whose BP is elevated prior to SPRAVATO administration (as a general "
        "guide: >140/90 mmHg) a decision to delay SPRAVATO therapy should take into account "
        "the balance of benefit and risk in individual patients.",
        document="'Concomitant Use of SPRAVATO with Antihypertensive Medications', Johnson & "
        "Johnson Medical Information, https://www.jnjmedicalconnect.com/products/spravato/"
        "medical-content/concomitant-use-of-spravato-with-antihypertensive-medications",
        location="citing the prescribing information",
    )
    names: ClassVar[str] = "The session, one finding each."

    systolic: int = parameter(140, Bounds(50, 300))
    diastolic: int = parameter(90, Bounds(30, 200))
    minutes: int = parameter(60, Bounds(1, _MINUTES), role=BLOOD_PRESSURE_WINDOW)
    severity: Severity = severity_field(Severity.WARNING)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"In every held session, the latest blood-pressure reading taken from "
            f"{_minutes(self.minutes)} before the start up to the start has a systolic pressure "
            f"of at most {self.systolic} mmHg and a diastolic of at most {self.diastolic} mmHg "
            "(of readings taken at the same instant, each). A session without such a reading "
            "is blood-pressure-before's finding."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """A reading at the limit, and one just above it."""
        at = dt.timedelta(minutes=min(self.minutes, 20))
        # A reading's diastolic is at most its systolic.
        met, over = (self.systolic, self.diastolic), (self.systolic + 1, self.diastolic)
        met, over = (met[0], min(met)), (over[0], min(over))
        return _day_examples(
            self,
            {"vitals": lambda s: (Vital(s - at, *met),)},
            {"vitals": lambda s: (Vital(s - at, *over),)},
            (
                f"{met[0]}/{met[1]} mmHg before dosing",
                f"{over[0]}/{over[1]} mmHg",
            ),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated readings before dosing are within the limit."""
        return _day_shape(
            shape,
            bp_before_minutes=min(shape.bp_before_minutes, int(self.minutes)),
            bp_limit=(
                min(shape.bp_limit[0], int(self.systolic)),
                min(shape.bp_limit[1], int(self.diastolic)),
            ),
        )

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One held session's latest reading before dosing raised above the limit."""
        session = _one(self, course, choose, protocol)
        if session is None:
            return None
        window = dt.timedelta(minutes=self.minutes)
        before = _readings(session, session.instant - window, session.instant)
        if not before:
            return None
        latest = max(before, key=lambda v: _time.to_utc(v.at))
        # Each raised reading keeps its diastolic at most its systolic.
        high = choose.choice(
            [
                (self.systolic + 1, min(latest.diastolic, self.systolic + 1)),
                (max(120, self.diastolic + 1), self.diastolic + 1),
            ]
        )
        raised = Vital(latest.at, *high)
        vitals = tuple(raised if v is latest else v for v in session.vitals)
        return session_changed(course, session, vitals=vitals)

    def _over(self, reading: Vital) -> bool:
        return reading.systolic > self.systolic or reading.diastolic > self.diastolic

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each held session whose latest reading is over the limit."""
        window = dt.timedelta(minutes=self.minutes)
        limit = f"{self.systolic}/{self.diastolic} mmHg"
        for t in _held(timeline):
            before = _readings(t.session, t.instant - window, t.instant)
            if not before:
                continue
            # Readings taken at one instant are one measurement: the worst of them counts,
            # whatever their order in the list.
            newest = max(_time.to_utc(v.at) for v in before)
            tied = [v for v in before if _time.to_utc(v.at) == newest]
            latest = next((v for v in tied if self._over(v)), tied[0])
            if self._over(latest):
                yield self.finding(
                    (t,),
                    f"{t.label}: the latest blood pressure before dosing (taken "
                    f"{_time_of(t, latest.at)}) is above {limit}",
                    limit,
                )


@_builtin
@attrs.frozen(repr=False)
class BloodPressureAfter(BaseRule):
    """A reading is taken between ``from_minutes`` and ``to_minutes`` after the start.

    Args:
        from_minutes: The earliest a reading counts, in minutes after the start (0 to 1440).
        to_minutes: The latest, in minutes after the start (at least ``from_minutes``).
        id: The rule's id (default ``"blood-pressure-after"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "blood-pressure-after"
    title: ClassVar[str] = "Blood pressure about 40 minutes after dosing"
    rationale: ClassVar[str] = (
        "Blood pressure is assessed again about 40 minutes after dosing. 'About' is read as "
        "a window of from_minutes to to_minutes of elapsed time after the start, both "
        "included (30 to 60 by default, a clinic parameter): a held session without a "
        "reading in it is a finding."
    )
    source: ClassVar[Source] = BloodPressureBefore.source
    names: ClassVar[str] = "The session, one finding each."

    from_minutes: int = parameter(30, Bounds(0, _MINUTES))
    to_minutes: int = parameter(60, Bounds(0, _MINUTES))

    def __attrs_post_init__(self) -> None:
        if self.to_minutes < self.from_minutes:
            raise ProtocolError(
                Problem(
                    (type(self).__name__, "to_minutes"),
                    f"must be at least from_minutes ({self.from_minutes}), got {self.to_minutes}",
                    "range",
                )
            )

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every held session has a blood-pressure reading taken from "
            f"{_minutes(self.from_minutes)} to {_minutes(self.to_minutes)} after the start "
            "(both included)."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """A reading at ``to_minutes``, and one minute later."""
        return _day_examples(
            self,
            {"vitals": lambda s: (Vital(s + dt.timedelta(minutes=self.to_minutes), 120, 80),)},
            {"vitals": lambda s: (Vital(s + dt.timedelta(minutes=self.to_minutes + 1), 120, 80),)},
            (f"a reading {_minutes(self.to_minutes)} after", "one minute later"),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated sessions have a reading from ``from_minutes`` to ``to_minutes`` after."""
        low, high = shape.bp_after
        return _day_shape(
            shape,
            bp_after=(max(low, int(self.from_minutes)), min(high, int(self.to_minutes))),
        )

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One held session's readings in the window after dosing dropped.

        None when one of them is at the start, and so also a reading before dosing.
        """
        session = _one(
            self,
            course,
            choose,
            protocol,
            lambda s: (
                not any(
                    _after_dosing(self, s, v) and _time.to_utc(v.at) <= s.instant for v in s.vitals
                )
            ),
        )
        if session is None:
            return None
        kept = tuple(v for v in session.vitals if not _after_dosing(self, session, v))
        return session_changed(course, session, vitals=kept)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each held session without a reading after dosing."""
        low, high = dt.timedelta(minutes=self.from_minutes), dt.timedelta(minutes=self.to_minutes)
        for t in _held(timeline):
            if not _readings(t.session, t.instant + low, t.instant + high):
                yield self.finding(
                    (t,),
                    f"{t.label} has no blood-pressure reading from {_minutes(self.from_minutes)} "
                    f"to {_minutes(self.to_minutes)} after the start",
                    [self.from_minutes, self.to_minutes],
                )


@_builtin
@attrs.frozen(repr=False)
class PostDoseMonitoring(BaseRule):
    """The patient is monitored at least ``minutes`` after the start before leaving.

    Args:
        minutes: The shortest monitoring, in minutes of elapsed time (1 to 1440).
        id: The rule's id (default ``"post-dose-monitoring"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "post-dose-monitoring"
    title: ClassVar[str] = "Monitoring after dosing"
    rationale: ClassVar[str] = (
        "The patient is monitored after dosing until assessed ready to leave, and for at "
        "least a set time. ready_to_leave records when monitoring ended; a held session "
        "without it, or with less elapsed time since the start, is a finding."
    )
    source: ClassVar[Source] = Source(
        "patients must be monitored by a healthcare provider for at least 2 hours at each "
        "treatment session, followed by an assessment to determine when the patient is "
        "considered clinically stable and ready to leave the healthcare setting",
        document=_LABEL_COPY,
        location="section 5.1 Sedation",
    )
    names: ClassVar[str] = "The session, one finding each."

    minutes: int = parameter(120, Bounds(1, _MINUTES))

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every held session records ready_to_leave at least {_minutes(self.minutes)} of "
            "elapsed time after the start (exactly that passes)."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """Ready to leave exactly ``minutes`` after the start, and a minute sooner."""
        limit = dt.timedelta(minutes=self.minutes)
        return _day_examples(
            self,
            {"ready_to_leave": lambda s: s + limit},
            {"ready_to_leave": lambda s: s + limit - dt.timedelta(minutes=1)},
            (f"ready to leave after {_minutes(self.minutes)}", "one minute sooner"),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated sessions monitor long enough."""
        return _day_shape(shape, monitoring_minutes=max(shape.monitoring_minutes, self.minutes))

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One held session's monitoring cut short, or not recorded."""
        session = _one(self, course, choose, protocol)
        if session is None:
            return None
        short = choose.duration(
            dt.timedelta(0), dt.timedelta(minutes=self.minutes) - dt.timedelta(seconds=1)
        )
        ready = choose.choice([None, session.instant + short])
        return session_changed(course, session, ready_to_leave=ready)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each held session monitored too briefly."""
        limit = dt.timedelta(minutes=self.minutes)
        for t in _held(timeline):
            ready = t.session.ready_to_leave
            if ready is None:
                yield self.finding((t,), f"{t.label} has no ready_to_leave recorded", self.minutes)
                continue
            monitored = _time.to_utc(ready) - t.instant
            if monitored < limit:
                yield self.finding(
                    (t,),
                    f"{t.label}: monitoring ended {_time_of(t, ready)}, "
                    + (
                        f"{_time.format_duration(monitored)} after the start"
                        if monitored >= dt.timedelta(0)
                        else "before the start"
                    )
                    + f"; at least {_minutes(self.minutes)} are required",
                    self.minutes,
                    monitored.total_seconds() / 60,
                )


def _doses(value: object) -> object:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return value
    items = list(value)
    return tuple(items)


@attrs.frozen
class DoseSet:
    """A parameter holding the doses allowed, in mg: the validator of `Dose`'s fields."""

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        """Refuse anything but a non-empty list of positive doses (the attrs validator protocol).

        Raises:
            ProtocolError: The value is not a list of doses.
        """
        refuse_problem(self, instance, attribute, value)

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value``, or None when it is allowed.

        Args:
            value: A parameter value (after conversion: a tuple of numbers).

        Returns:
            A message, or None.
        """
        if not (
            isinstance(value, tuple)
            and 1 <= len(value) <= 20
            and all(
                isinstance(v, int | float)
                and not isinstance(v, bool)
                and math.isfinite(v)
                and 0 < v <= 100_000
                for v in value
            )
        ):
            return f"must be {self.describe()}"
        return None

    def describe(self) -> str:
        """The allowed values in words.

        Returns:
            The description.
        """
        return "a list of 1 to 20 doses in mg, each above 0 and at most 100000"

    def json_schema(self) -> dict[str, JSONValue]:
        """The allowed values as a JSON Schema.

        Returns:
            An array schema of numbers.
        """
        return {
            "description": "Doses in mg.",
            "type": "array",
            "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 100_000},
            "minItems": 1,
            "maxItems": 20,
        }


def _mg(doses: tuple[float, ...]) -> str:
    return " or ".join(f"{d:g}" for d in doses) + " mg"


@_builtin
@attrs.frozen(repr=False)
class Dose(BaseRule):
    """The first session's dose is one of ``first``; every later one, one of ``then``.

    Args:
        first: The doses allowed at the course's first session, in mg.
        then: The doses allowed at every later session, in mg.
        id: The rule's id (default ``"dose"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "dose"
    title: ClassVar[str] = "The dose of each session"
    rationale: ClassVar[str] = (
        "The first session (in start order, of any kind) has one of the first doses; each "
        "later one, one of the later doses. A held session without a recorded dose_mg is a "
        "finding. The message names the doses allowed, never the dose given."
    )
    source: ClassVar[Source] = Source(
        "The Day 1 starting dose of SPRAVATO® is 56 mg (2 devices).",
        document="'Dosing and Administration', the manufacturer's site for health care "
        "professionals, https://www.spravatohcp.com/dosing-and-administration",
        location="treatment-resistant depression",
        note="Later doses of 56 mg or 84 mg follow the table quoted for weekly-cap.",
    )
    names: ClassVar[str] = "The session, one finding each."

    first: tuple[float, ...] = parameter((56,), DoseSet(), converter=_doses)
    then: tuple[float, ...] = parameter((56, 84), DoseSet(), converter=_doses)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"The course's first session has a dose_mg of {_mg(self.first)}, and every later "
            f"session one of {_mg(self.then)}. A held session without dose_mg is a finding."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """A first dose allowed, and a first dose of a later one's that is not."""
        wrong = next((d for d in self.then if d not in self.first), max(self.first) + 1)
        return _day_examples(
            self,
            {"dose_mg": self.first[0]},
            {"dose_mg": wrong},
            (f"a first dose of {self.first[0]:g} mg", f"a first dose of {wrong:g} mg"),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated sessions have allowed doses: the first one of ``first``, the rest ``then``."""
        if shape.doses is None:
            return _day_shape(shape, doses=(self.first, self.then))
        first, then = shape.doses
        return _day_shape(
            shape,
            doses=(
                tuple(d for d in first if d in self.first),
                tuple(d for d in then if d in self.then),
            ),
        )

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One held session's dose changed to one no session may have, or not recorded."""
        session = _one(self, course, choose, protocol)
        if session is None:
            return None
        wrong = max((*self.first, *self.then)) + choose.integer(1, 20)
        return session_changed(course, session, dose_mg=choose.choice([None, wrong]))

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each held session without an allowed dose."""
        for t in _held(timeline):
            allowed, which = (
                (self.first, "the first session's")
                if t.position == 0
                else (self.then, "a later session's")
            )
            dose = t.session.dose_mg
            if dose is None:
                yield self.finding((t,), f"{t.label} has no dose_mg recorded", list(allowed))
            elif dose not in allowed:
                yield self.finding(
                    (t,),
                    f"{t.label}: the dose recorded is not {which} dose, {_mg(allowed)}",
                    list(allowed),
                )


@_builtin
@attrs.frozen(repr=False)
class RemsEnrolment(BaseRule):
    """The patient is enrolled in the REMS on or before the first session's local date.

    Args:
        id: The rule's id (default ``"rems-enrolment"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "rems-enrolment"
    title: ClassVar[str] = "Enrolled in the REMS before the first treatment"
    rationale: ClassVar[str] = (
        "An outpatient is enrolled in the REMS before the first treatment. The course's "
        "enrolled date is compared with the local date of its first session: on or before it "
        "passes. A course whose first session is held and that has no enrolled date is a "
        "finding; a first session still planned is exempt."
    )
    source: ClassVar[Source] = Source(
        "Outpatient Healthcare Settings are required to enroll patients prior to patient "
        "treatment and submit Patient Monitoring Forms after each patient treatment to the "
        "SPRAVATO® REMS.",
        document=_REMS_SITE,
        location="requirements of outpatient healthcare settings",
    )
    names: ClassVar[str] = "The course's first session."

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            "The course records enrolled, a local date on or before the local date of its "
            "first session. A first session still planned is exempt."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """Enrolled on the first session's date, and the day after."""
        session = _examples.session("s1", _examples.at(_examples.DEC1, 9))

        def enrolled(day: dt.date) -> Course:
            return attrs.evolve(_examples.course([session]), enrolled=day)

        return (
            ("enrolled on the first session's date", enrolled(_examples.DEC1)),
            ("enrolled the day after", enrolled(_examples.DEC1 + dt.timedelta(days=1))),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated courses are enrolled on or before their first session's local date."""
        return _day_shape(shape, enrolled=True)

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """The enrolment dropped or moved after the first session's local date."""
        sessions = Timeline.of(course).sessions
        if not sessions or not alone_of_its_class(self, protocol):
            return None
        late = sessions[0].date + dt.timedelta(days=choose.integer(1, 30))
        return attrs.evolve(course, enrolled=choose.choice([None, late]))

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding when a held first session comes before the enrolment."""
        if not timeline.sessions or timeline.sessions[0].planned:
            return
        first = timeline.sessions[0]
        enrolled = timeline.course.enrolled
        if enrolled is None:
            yield self.finding(
                (first,), f"the course has no enrolled date; {first.label} is its first"
            )
        elif enrolled > first.date:
            yield self.finding(
                (first,),
                f"the patient was enrolled on {enrolled.isoformat()}, after the first session, "
                f"{first.label}",
                first.date.isoformat(),
                enrolled.isoformat(),
            )


@_builtin
@attrs.frozen(repr=False)
class MonitoringForm(BaseRule):
    """The monitoring form is submitted at or after the start and within ``days`` of it.

    Args:
        days: The most elapsed days from the start to the submission (1 to 366).
        id: The rule's id (default ``"monitoring-form"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "monitoring-form"
    title: ClassVar[str] = "The Patient Monitoring Form after each session"
    rationale: ClassVar[str] = (
        "The REMS Patient Monitoring Form is submitted after each treatment, within a set "
        "number of days. monitoring_form records when: at or after the start, and at most "
        "days of elapsed time after it (exactly that many passes). A form not recorded is a "
        "finding once those days have passed: always for a final record; with an aware "
        "as_of, when as_of is later than the deadline; with a plain date, when the end of "
        "that local day is."
    )
    source: ClassVar[Source] = Source(
        "Submit completed patient monitoring forms within 7 days",
        document="'Spravato Patient Monitoring Form Instructions', a copy of the REMS form's "
        "instructions, https://manualspro.net/445029-spravato-patient-monitoring-form-"
        "instructions",
        location="Instructions",
    )
    names: ClassVar[str] = "The session, one finding each."

    days: int = parameter(7, Bounds(1, 366))

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every held session records monitoring_form at or after its start and at most "
            f"{plural(self.days, 'day')} of elapsed time after it. With as_of, a form not yet "
            f"recorded is a finding only once those {plural(self.days, 'day')} have passed."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """The form exactly ``days`` after the start, and a minute later."""
        limit = dt.timedelta(days=self.days)
        return _day_examples(
            self,
            {"monitoring_form": lambda s: s + limit},
            {"monitoring_form": lambda s: s + limit + dt.timedelta(minutes=1)},
            (f"submitted {plural(self.days, 'day')} after", "one minute later"),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated sessions have their forms in time."""
        return _day_shape(shape, form_days=min(shape.form_days, int(self.days)))

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One held session's form late, early or not recorded."""
        session = _one(self, course, choose, protocol)
        if session is None:
            return None
        late = session.instant + dt.timedelta(days=self.days, minutes=choose.integer(1, 600))
        early = session.instant - dt.timedelta(minutes=choose.integer(1, 600))
        return session_changed(course, session, monitoring_form=choose.choice([None, late, early]))

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each held session without its form in time."""
        limit = dt.timedelta(days=self.days)
        now = _now(timeline)
        for t in _held(timeline):
            form = t.session.monitoring_form
            if form is None:
                if now is None or now > t.instant + limit:
                    yield self.finding(
                        (t,),
                        f"{t.label} has no monitoring_form recorded; it is due within "
                        f"{plural(self.days, 'day')} of the start",
                        self.days,
                    )
                continue
            after = _time.to_utc(form) - t.instant
            if after < dt.timedelta(0):
                yield self.finding(
                    (t,), f"{t.label}: the monitoring form is recorded before the start", self.days
                )
            elif after > limit:
                yield self.finding(
                    (t,),
                    f"{t.label}: the monitoring form was submitted {_time_of(t, form)}, more than "
                    f"{plural(self.days, 'day')} after the start",
                    self.days,
                )


def _now(timeline: Timeline) -> dt.datetime | None:
    # The moment as_of stands for: itself, or the end of a plain date's local day.
    as_of = timeline.as_of
    if as_of is None:
        return None
    if isinstance(as_of, dt.datetime):
        return _time.to_utc(as_of)
    # The first instant of the next local day: a midnight skipped by a change reads (fold 0)
    # as the instant of the change, when that day begins.
    midnight = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(0), tzinfo=timeline.zone)
    return _time.to_utc(midnight)


def _day_shape(shape: CourseShape, **changes: Any) -> CourseShape:
    # A shape whose sessions record session-day data, narrowed by `changes`.
    return attrs.evolve(shape, session_day=True, **changes)


def _one(
    rule: BaseRule,
    course: Course,
    choose: Choices,
    protocol: Any,
    can: Callable[[Session], bool] | None = None,
) -> Session | None:
    # A held session to break (every session, without as_of) of those that `can` be, or
    # None: there is none, or another rule of this rule's class could see the mutation.
    if not alone_of_its_class(rule, protocol):
        return None
    sessions = [s for s in course.sessions if can is None or can(s)]
    return choose.choice(sessions) if sessions else None


def _after_dosing(rule: object, session: Session, vital: Vital) -> bool:
    # Whether `vital` counts as a reading after dosing for `rule`, if it is a
    # BloodPressureAfter.
    if not isinstance(rule, BloodPressureAfter):
        return False
    after = _time.to_utc(vital.at) - session.instant
    low = dt.timedelta(minutes=rule.from_minutes)
    return low <= after <= dt.timedelta(minutes=rule.to_minutes)
