"""Phases: a protocol's treatment weeks, what each phase asks of them, and the phased rules.

A phased protocol, such as the esketamine label's, does not have one induction series: it
counts **treatment weeks** from the first session and gives each range of weeks its own
pace. Treatment week ``n`` of a course is the 7 local dates ``d0 + 7(n - 1)`` to
``d0 + 7n - 1``, where ``d0`` is the local date of the course's first session (of any
kind, planned or held): a course that starts on a Thursday has Thursday-to-Wednesday weeks.
These are not ISO weeks, because the label counts weeks from the first dose.

A [`Phase`][kaprules.Phase] covers a range of weeks (``weeks=(1, 4)``, or open-ended
``weeks=(9,)``) and may say how many sessions each of its weeks has at most (a cap), how
many it should have (a target), how many days may pass between sessions in an open-ended
phase, and how many local days consecutive sessions are at least apart. The rules below read
the same phases, a quantity of the protocol (the `PHASES` role): `weekly-cap`,
`weekly-target`, `overdue` and `min-gap`. Phased rules count sessions of every kind.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    Escort,
    Fasting,
    Role,
    Source,
    Therapist,
    alone_of_its_class,
    parameter,
    refuse_problem,
    severity_field,
)
from kaprules.timeline import TimedSession, Timeline

__all__ = [
    "MAX_WEEK",
    "PHASES",
    "TRD_PHASES",
    "BeyondEvaluated",
    "MinGap",
    "Overdue",
    "Phase",
    "PhaseList",
    "WeeklyCap",
    "WeeklyTarget",
    "phase_of",
    "treatment_week",
    "week_dates",
]

_TABLE_COPY = (
    "'About Spravato (Esketamine)', a clinic's page reproducing the label's TRD dosing table, "
    "https://liobm.com/spravato/"
)
"""Where the esketamine phases are quoted from: the US label's table as a clinic reproduces
it (kaprules has read no copy of the label's section 2 itself; see the provenance page)."""

MAX_WEEK = 5_229
"""The last treatment week a phase may name: a century of weeks."""

_DAYS = 36_600
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
_FIELDS = ("name", "weeks", "at_most", "target", "every_days", "min_gap_days")

PHASES = Role("phases", "the protocol's phases")
"""The role of a protocol's phases: every phased rule of a protocol reads the same ones."""


def treatment_week(first: dt.date, date: dt.date) -> int:
    """The treatment week of a local date: 1 for the first session's date and 6 days after.

    Args:
        first: The local date of the course's first session (``d0``).
        date: A local date on or after it.

    Returns:
        ``(date - first) // 7 + 1``.
    """
    return (date - first).days // 7 + 1


def week_dates(first: dt.date, week: int) -> tuple[dt.date, dt.date]:
    """The first and last local dates of a treatment week.

    Args:
        first: The local date of the course's first session (``d0``).
        week: The week, 1 or more.

    Returns:
        ``(d0 + 7(week - 1), d0 + 7 week - 1)``.
    """
    start = first + dt.timedelta(days=7 * (week - 1))
    return start, start + dt.timedelta(days=6)


def _count(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _weeks(value: object) -> object:
    # [1, 4] or [9] (open-ended) as a pair; anything else passes through to be named.
    if isinstance(value, list | tuple) and len(value) in (1, 2):
        return (value[0], value[1] if len(value) == 2 else None)
    return value


def _phase_problems(data: Mapping[str, Any]) -> list[str]:
    """Every problem with one phase's values, as ``field: what`` texts."""
    found = []
    name = data.get("name")
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        found.append(
            "name: must be a name of 1 to 64 letters, digits, spaces, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    weeks = _weeks(data.get("weeks"))
    if not (
        isinstance(weeks, tuple)
        and _count(weeks[0], 1, MAX_WEEK)
        and (weeks[1] is None or _count(weeks[1], weeks[0], MAX_WEEK))
    ):
        found.append(
            f"weeks: must be [first, last] (1 <= first <= last <= {MAX_WEEK}) or [first] "
            "for an open-ended phase"
        )
        weeks = None
    for field, low, high in (
        ("at_most", 0, 100),
        ("target", 1, 100),
        ("every_days", 1, _DAYS),
        ("min_gap_days", 1, _DAYS),
    ):
        value = data.get(field)
        if value is not None and not _count(value, low, high):
            found.append(f"{field}: must be a whole number from {low} to {high}, or left out")
    target, at_most = data.get("target"), data.get("at_most")
    if _count(target, 1, 100) and _count(at_most, 0, 100) and target > at_most:  # type: ignore[operator]
        found.append("target: must be at most at_most (a week cannot need more than it may hold)")
    if data.get("every_days") is not None and isinstance(weeks, tuple) and weeks[1] is not None:
        found.append("every_days: only an open-ended phase (weeks = [first]) takes every_days")
    if not found and isinstance(weeks, tuple):
        found += _impossible(weeks, data)
    return found


def _impossible(weeks: tuple[int, int | None], data: Mapping[str, Any]) -> list[str]:
    """The limits of a valid phase that no course can keep to, as ``field: what`` texts.

    Each is a proof, not a guess: ``target`` sessions in each of a phase's ``k`` weeks are
    ``target * k`` sessions in its ``7k`` local dates, each at least ``min_gap_days`` after
    the one before, so ``(target * k - 1) * min_gap_days <= 7k - 1`` (for an open-ended
    phase, every k: ``target * min_gap_days <= 7``); a session within ``every_days`` of the
    one before gives a week at least ``7 / every_days`` sessions, so ``at_most *
    every_days >= 7``; and a gap cannot be both at least ``min_gap_days`` and at most
    ``every_days``.
    """
    found = []
    target, gap = data.get("target"), data.get("min_gap_days")
    at_most, every = data.get("at_most"), data.get("every_days")
    first, last = weeks
    k = None if last is None else last - first + 1
    if target is not None and gap is not None:
        if (target - 1) * gap > 6:
            found.append(
                f"min_gap_days: {target} sessions (target) at least {plural(gap, 'day')} apart "
                "do not fit in a treatment week's 7 days"
            )
        elif k is None and target * gap > 7:
            found.append(
                f"min_gap_days: {target} sessions (target) a week at least "
                f"{plural(gap, 'day')} apart cannot go on week after week (target * "
                "min_gap_days is at most 7 in an open-ended phase)"
            )
        elif k is not None and (target * k - 1) * gap > 7 * k - 1:
            found.append(
                f"min_gap_days: {target * k} sessions ({target} in each of {k} weeks) at "
                f"least {plural(gap, 'day')} apart do not fit in the phase's {7 * k} days"
            )
    if every is not None and at_most is not None and at_most * every < 7:
        found.append(
            f"every_days: a session at most every {plural(every, 'day')} needs more than "
            f"at_most = {at_most} in a treatment week (at_most * every_days is at least 7)"
        )
    if every is not None and gap is not None and gap > every:
        found.append(
            f"min_gap_days: sessions at least {plural(gap, 'day')} apart cannot be at most "
            f"every_days = {every} apart"
        )
    return found


@attrs.frozen
class Phase:
    """A range of treatment weeks and what the protocol asks of each of them.

    Args:
        name: The phase's name, such as ``"induction"`` (1 to 64 letters, digits, spaces,
            ``.``, ``_`` or ``-``).
        weeks: ``(first, last)``, or ``(first,)`` for an open-ended phase that goes on
            for as long as the course does (weeks 1 to 5229).
        at_most: The most sessions in each of its treatment weeks (a cap), or None.
        target: The sessions each of its treatment weeks should have (adherence), or
            None; at most ``at_most``.
        every_days: Open-ended phases only: each session at most this many local days
            after the one before it, or None.
        min_gap_days: Consecutive sessions, the later one in this phase, at least this
            many local days apart (1: never two on one local date), or None.

    Raises:
        ProtocolError: A value is out of range; every problem is named.
    """

    name: str
    weeks: tuple[int, int | None] = attrs.field(converter=_weeks)
    at_most: int | None = None
    target: int | None = None
    every_days: int | None = None
    min_gap_days: int | None = None

    def __attrs_post_init__(self) -> None:
        found = _phase_problems({f: getattr(self, f) for f in _FIELDS})
        if found:
            raise ProtocolError(*(Problem(("Phase",), what, "range") for what in found))

    @property
    def first(self) -> int:
        """The phase's first treatment week."""
        return self.weeks[0]

    @property
    def last(self) -> int | None:
        """The phase's last treatment week, or None when it is open-ended."""
        return self.weeks[1]

    def covers(self, week: int) -> bool:
        """Whether treatment week ``week`` is in this phase.

        Args:
            week: A treatment week.

        Returns:
            True when it is.
        """
        return self.first <= week and (self.last is None or week <= self.last)

    @property
    def span(self) -> str:
        """The weeks in words: ``weeks 1-4``, ``week 9 on``."""
        if self.last is None:
            return f"week {self.first} on"
        if self.last == self.first:
            return f"week {self.first}"
        return f"weeks {self.first}-{self.last}"

    def to_dict(self) -> dict[str, JSONValue]:
        """The phase as protocol file data.

        Returns:
            ``{"name", "weeks", ...}``, with only the limits that are set.
        """
        data: dict[str, JSONValue] = {
            "name": self.name,
            "weeks": [self.first] if self.last is None else [self.first, self.last],
        }
        for field in _FIELDS[2:]:
            if getattr(self, field) is not None:
                data[field] = getattr(self, field)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Phase:
        """A phase from protocol file data (the form of `to_dict`).

        Args:
            data: ``{"name", "weeks", ...}``.

        Returns:
            The phase.

        Raises:
            ProtocolError: A field is unknown or a value out of range.
        """
        problems = _data_problems(data)
        if problems:
            raise ProtocolError(*(Problem(("Phase",), what, "range") for what in problems))
        return cls(**data)


def _data_problems(data: object) -> list[str]:
    if not isinstance(data, Mapping):
        return ["must be a table {name, weeks, at_most, target, every_days, min_gap_days}"]
    unknown = [k for k in data if k not in _FIELDS]
    if unknown:
        return [
            f"unknown field {k!r}; a phase takes {', '.join(_FIELDS)}"
            if isinstance(k, str) and k.isidentifier() and len(k) <= 40
            else f"an unknown field; a phase takes {', '.join(_FIELDS)}"
            for k in unknown
        ]
    return _phase_problems(data)


def _to_phases(value: object) -> object:
    # Protocol data (tables) or Phase objects as a tuple of phases; anything that cannot
    # be one passes through for PhaseList to name.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        return value
    items = list(value)
    if all(isinstance(p, Phase) for p in items):
        return tuple(items)
    if all(isinstance(p, Phase) or not _data_problems(p) for p in items):
        return tuple(p if isinstance(p, Phase) else Phase(**p) for p in items)
    return items


@attrs.frozen
class PhaseList:
    """A parameter holding a protocol's phases: the validator of ``phases``.

    The phases are in order of their weeks, the first starts in week 1 and each starts the
    week after the one before ends (every treatment week is in a phase); only the last may
    be open-ended; names are unique.
    """

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        """Refuse anything but a list of phases in order (the attrs validator protocol).

        Raises:
            ProtocolError: The value is not a valid list of phases.
        """
        refuse_problem(self, instance, attribute, value)

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value``, or None when it is allowed.

        Args:
            value: A parameter value (after conversion: a tuple of phases).

        Returns:
            A message naming the phase and field, or None.
        """
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            return "must be a non-empty list of phases"
        items = list(value)
        if not items:
            return "must be a non-empty list of phases"
        if len(items) > 100:
            return "must hold at most 100 phases"
        for index, item in enumerate(items):
            if not isinstance(item, Phase):
                found = _data_problems(item)
                if found:
                    return f"[{index}] {found[0]}"
        phases = [p if isinstance(p, Phase) else Phase(**p) for p in items]
        # Every treatment week has a phase: a week in none would be judged by no phased
        # rule (4 sessions in an uncovered week would pass). A break is a phase of its own
        # without limits.
        if phases[0].first != 1:
            return (
                f"[0] (phase {phases[0].name}) starts in week {phases[0].first}: the first "
                "phase starts in week 1, so that every treatment week is in a phase (a "
                "break is a phase without limits)"
            )
        for index, (before, after) in enumerate(itertools.pairwise(phases), start=1):
            if before.last is None:
                return (
                    f"[{index - 1}] (phase {before.name}) is open-ended: only the last phase may be"
                )
            if after.first <= before.last:
                return (
                    f"[{index}] (phase {after.name}) starts in week {after.first}, which is "
                    f"not after phase [{index - 1}] ({before.name})'s last week "
                    f"{before.last}: phases are in order and do not overlap"
                )
            if after.first != before.last + 1:
                return (
                    f"[{index}] (phase {after.name}) starts in week {after.first}, but phase "
                    f"[{index - 1}] ({before.name}) ends in week {before.last}: phases are "
                    f"contiguous, so that weeks {before.last + 1} to {after.first - 1} are "
                    "in a phase (a break is a phase without limits)"
                )
        names = [p.name for p in phases]
        if len(set(names)) != len(names):
            return "names must be unique"
        return None

    def describe(self) -> str:
        """The allowed values in words.

        Returns:
            The description.
        """
        return (
            "a list of phases in week order, each a table of name, weeks ([first, last] or "
            "[first]) and optional at_most, target, every_days (open-ended phases) and "
            "min_gap_days"
        )

    def json_schema(self) -> dict[str, JSONValue]:
        """The allowed values as a JSON Schema.

        Returns:
            An array schema of phase objects.
        """
        whole: dict[str, JSONValue] = {"type": "integer"}
        return {
            "description": "The protocol's phases, in week order.",
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": f"^{_NAME.pattern}$"},
                    "weeks": {
                        "type": "array",
                        "items": {**whole, "minimum": 1, "maximum": MAX_WEEK},
                        "minItems": 1,
                        "maxItems": 2,
                    },
                    "at_most": {**whole, "minimum": 0, "maximum": 100},
                    "target": {**whole, "minimum": 1, "maximum": 100},
                    "every_days": {**whole, "minimum": 1, "maximum": _DAYS},
                    "min_gap_days": {**whole, "minimum": 1, "maximum": _DAYS},
                },
                "required": ["name", "weeks"],
                "additionalProperties": False,
            },
        }


TRD_PHASES: tuple[Phase, ...] = (
    Phase("induction", (1, 4), at_most=2, target=2, min_gap_days=1),
    Phase("optimization", (5, 8), at_most=1, target=1, min_gap_days=1),
    Phase("maintenance", (9,), at_most=1, every_days=14, min_gap_days=1),
)
"""The phases of the esketamine label for treatment-resistant depression: weeks 1-4 twice a
week, weeks 5-8 once a week, week 9 on every 2 weeks (at most once a week); never two
sessions on one local date."""


def later_phases(
    phases: tuple[Phase, ...], sessions: Sequence[TimedSession]
) -> Iterator[tuple[TimedSession, TimedSession, Phase]]:
    """Each pair of adjacent sessions with the phase that judges it: its later session's.

    The later session is the one whose booking made the gap, so its treatment week's phase
    sets the limit (pairs whose later session is in no phase are left out).
    """
    if not sessions:
        return
    first = sessions[0].date
    for a, b in itertools.pairwise(sessions):
        phase = phase_of(phases, treatment_week(first, b.date))
        if phase is not None:
            yield a, b, phase


def phase_of(phases: Sequence[Phase], week: int) -> Phase | None:
    """The phase that covers a treatment week.

    Args:
        phases: A protocol's phases.
        week: A treatment week.

    Returns:
        The phase, or None when no phase covers the week.
    """
    for phase in phases:
        if phase.covers(week):
            return phase
    return None


def _phases_text(phases: Sequence[Phase], field: str, say: str) -> str:
    parts = [
        f"in {p.span} ({p.name}), {say.format(n=getattr(p, field))}"
        for p in phases
        if getattr(p, field) is not None
    ]
    return "; ".join(parts) if parts else "no phase sets it"


_LABEL_PHASES = Source(
    "Weeks 1 to 4: Administer twice per week; Day 1 starting dose: 56 mg followed by "
    "subsequent doses of 56 mg or 84 mg. Maintenance Phase Weeks 5 to 8: Administer once "
    "weekly at 56 mg or 84 mg.",
    document=_TABLE_COPY,
    location="'Introduction Phase' and 'Maintenance Phase'",
    note="Twice per week is read as a cap and a target of 2 sessions in each treatment week. "
    "min_gap_days 1 (never two sessions on one local date) is kaprules' reading, a clinic "
    "default: the table gives no gap.",
)


def _builtin(cls: type[BaseRule]) -> type[BaseRule]:
    BUILTIN_RULES[cls.default_id] = cls
    return cls


def _phases_field() -> Any:
    return parameter(TRD_PHASES, PhaseList(), role=PHASES, converter=_to_phases)


def _by_week(timeline: Timeline) -> Iterator[tuple[int, list[TimedSession]]]:
    sessions = timeline.sessions
    first = sessions[0].date
    for week, group in itertools.groupby(sessions, key=lambda t: treatment_week(first, t.date)):
        yield week, list(group)


def _week_words(first: dt.date, week: int) -> str:
    start, end = week_dates(first, week)
    return f"treatment week {week} ({start.isoformat()} to {end.isoformat()})"


# Helpers of break_course: mutations of generated courses (kaprules.strategies).


def _counts(sessions: Sequence[TimedSession]) -> dict[int, int]:
    first = sessions[0].date
    counts: dict[int, int] = {}
    for t in sessions:
        week = treatment_week(first, t.date)
        counts[week] = counts.get(week, 0) + 1
    return counts


def _trips(
    phases: Sequence[Phase], dates: Sequence[dt.date], after_week: int | None
) -> set[type[BaseRule]]:
    """The phased rules that sessions on local ``dates`` would have findings of.

    Without as_of, as a final record; the first of ``dates`` is the first session's.
    ``after_week`` is a `beyond-evaluated` rule's, or None.
    """
    first, ordered = dates[0], sorted(dates)
    found: set[type[BaseRule]] = set()
    counts: dict[int, int] = {}
    for day in ordered:
        week = treatment_week(first, day)
        counts[week] = counts.get(week, 0) + 1
    last = treatment_week(first, ordered[-1])
    for week in range(1, last + 1):
        phase = phase_of(phases, week)
        if phase is None:
            continue
        if phase.at_most is not None and counts.get(week, 0) > phase.at_most:
            found.add(WeeklyCap)
        if phase.target is not None and counts.get(week, 0) < phase.target:
            found.add(WeeklyTarget)
    for a, b in itertools.pairwise(ordered):
        phase = phase_of(phases, treatment_week(first, b))
        if phase is None:
            continue
        if phase.every_days is not None and (b - a).days > phase.every_days:
            found.add(Overdue)
        if phase.min_gap_days is not None and (b - a).days < phase.min_gap_days:
            found.add(MinGap)
    if after_week is not None and last > after_week:
        found.add(BeyondEvaluated)
    return found


def _without(course: Course, gone: Session) -> Course:
    return attrs.evolve(course, sessions=[s for s in course.sessions if s is not gone])


def _replaced(course: Course, new: Mapping[int, Session | None]) -> Course | None:
    # The course with each session whose id() is a key replaced; None if one cannot be
    # (a date the zone skipped).
    if any(s is None for s in new.values()):
        return None
    return attrs.evolve(course, sessions=[new.get(id(s)) or s for s in course.sessions])


_MINUTE = dt.timedelta(minutes=1)


def _at(course: Course, session: Session, day: dt.date) -> Session | None:
    # The session on local `day` at its wall time; None for a date the zone skipped.
    try:
        start = _time.at_local(day, course.local(session.start).time(), course.zone)
    except _time.NoSuchDay:
        return None
    return _started(session, start)


def _on_date(course: Course, session: Session, start: dt.datetime, day: dt.date) -> Session | None:
    # The session started at `start`, if that is on local `day`; else None.
    if course.local(start).date() != day:
        return None
    return _started(session, start)


def _started(session: Session, start: dt.datetime) -> Session:
    # The session started at `start`, every recorded time of its day moved by the same
    # elapsed time.
    delta = _time.to_utc(start) - session.instant

    def moved(value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else _time.to_utc(value) + delta

    return attrs.evolve(
        session,
        start=start,
        last_food=moved(session.last_food),
        last_liquid=moved(session.last_liquid),
        vitals=tuple(
            Vital(_time.to_utc(v.at) + delta, v.systolic, v.diastolic) for v in session.vitals
        ),
        ready_to_leave=moved(session.ready_to_leave),
        monitoring_form=moved(session.monitoring_form),
    )


def _added(course: Course, model: Session, day: dt.date) -> Course | None:
    # The course with a copy of `model` (not its first session) on local `day`, under a
    # new id.
    copy = _at(course, model, day)
    if copy is None:
        return None
    ids = {s.id for s in course.sessions}
    number = len(ids) + 1
    while f"s{number}" in ids:
        number += 1
    return attrs.evolve(course, sessions=[*course.sessions, attrs.evolve(copy, id=f"s{number}")])


class _Phased(BaseRule):
    """What the phased rules share: their phases, and courses generated to meet them."""

    phases: tuple[Phase, ...]

    def course_shape(self, shape: CourseShape) -> CourseShape | None:
        """Phased courses, generated by `kaprules.strategies` from the phases."""
        return attrs.evolve(shape, phases=self.phases)

    def _only(self, protocol: Any, dates: list[dt.date]) -> bool:
        # Whether sessions on local `dates` (the first session's first) break this rule
        # and no other phased rule of the protocol's phases, nor its beyond-evaluated.
        after_week = min(
            (r.after_week for r in protocol.rules if isinstance(r, BeyondEvaluated)),
            default=None,
        )
        return _trips(self.phases, dates, after_week) == {type(self)}


@_builtin
@attrs.frozen(repr=False)
class WeeklyCap(_Phased):
    """No treatment week has more sessions than its phase's ``at_most``.

    Args:
        phases: The protocol's phases (default: the esketamine label's for
            treatment-resistant depression, `TRD_PHASES`).
        id: The rule's id (default ``"weekly-cap"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "weekly-cap"
    title: ClassVar[str] = "At most so many sessions a treatment week"
    rationale: ClassVar[str] = (
        "A phased protocol gives each range of treatment weeks its pace. More sessions in a "
        "week than its phase allows is over the protocol at once, whether they were held or "
        "are planned, so a booking that would exceed the cap is refused. Treatment weeks "
        "count from the local date of the course's first session, and sessions of every kind "
        "count."
    )
    source: ClassVar[Source] = _LABEL_PHASES
    names: ClassVar[str] = "Every session of a week over its cap, one finding a week."

    phases: tuple[Phase, ...] = _phases_field()

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            "Each treatment week has at most as many sessions, of any kind, planned or held, as "
            "its phase allows: "
            + _phases_text(self.phases, "at_most", "at most {n} a week")
            + ". Treatment week n is the 7 local dates from the first session's date + 7(n-1)."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """The first phase's cap reached in week 1, and one session more."""
        phase = next((p for p in self.phases if p.at_most is not None), None)
        if phase is None:
            return ()
        return _cap_examples(phase)

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One session more in a week at its cap, on a free local date after the first.

        A copy of a later session's day (wall time, fasts, session-day data), on a date
        where no other phased rule has a finding: every gap stays in its phase's bounds
        and no week after it is left under a target. None when no week has room.
        """
        sessions = Timeline.of(course).sessions
        if len(sessions) < 2 or not alone_of_its_class(self, protocol):
            return None
        first, dates = sessions[0].date, [t.date for t in sessions]
        counts = _counts(sessions)
        days = []
        for week in range(1, treatment_week(first, dates[-1]) + 1):
            phase = phase_of(self.phases, week)
            if phase is None or phase.at_most is None or counts.get(week, 0) != phase.at_most:
                continue
            start, _ = week_dates(first, week)
            for day in (start + dt.timedelta(days=k) for k in range(7)):
                if day > first and day not in dates and self._only(protocol, [*dates, day]):
                    days.append(day)
        if not days:
            return None
        return _added(course, choose.choice(sessions[1:]).session, choose.choice(days))

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each treatment week over its phase's cap."""
        if not timeline.sessions:
            return
        first = timeline.sessions[0].date
        for week, group in _by_week(timeline):
            phase = phase_of(self.phases, week)
            if phase is None or phase.at_most is None or len(group) <= phase.at_most:
                continue
            yield self.finding(
                group,
                f"{_week_words(first, week)} has {len(group)} sessions ("
                + ", ".join(t.label for t in group)
                + f"); phase {phase.name} allows at most {phase.at_most} a week",
                phase.at_most,
                len(group),
            )


def _cap_examples(phase: Phase) -> Sequence[tuple[str, Course]]:
    # Sessions on consecutive days of the phase's first week, from Dec 1 2026.
    assert phase.at_most is not None
    base = _examples.DEC1 - dt.timedelta(days=7 * (phase.first - 1))

    def week(n: int) -> Course:
        first = _examples.session("s0", _examples.at(base, 9))
        days = [_examples.DEC1 + dt.timedelta(days=2 * k) for k in range(n)]
        rest = [_examples.session(f"s{k + 1}", _examples.at(d, 9)) for k, d in enumerate(days)]
        return _examples.course(rest if phase.first == 1 else [first, *rest])

    return (
        (f"{plural(phase.at_most, 'session')} in week {phase.first}", week(phase.at_most)),
        (f"{phase.at_most + 1} sessions in week {phase.first}", week(phase.at_most + 1)),
    )


def _judged_until(timeline: Timeline) -> int:
    """The last treatment week that is over: weeks 1 to this one are judged for targets."""
    first = timeline.sessions[0].date
    if timeline.as_of_date is None:
        return treatment_week(first, timeline.sessions[-1].date)
    # A week is over once its last local date is before as_of's; a plain date's day is
    # over itself.
    cutoff = timeline.as_of_date
    if not isinstance(timeline.as_of, dt.datetime):
        cutoff += dt.timedelta(days=1)
    return (cutoff - first).days // 7


@_builtin
@attrs.frozen(repr=False)
class WeeklyTarget(_Phased):
    """Each treatment week that is over has its phase's ``target`` sessions.

    Args:
        phases: The protocol's phases (default `TRD_PHASES`).
        id: The rule's id (default ``"weekly-target"``).
        severity: The severity of its findings (default ``"warning"``: a missed session
            is for a clinician to review, and the schedule goes on).
    """

    default_id: ClassVar[str] = "weekly-target"
    title: ClassVar[str] = "So many sessions a treatment week"
    rationale: ClassVar[str] = (
        "A phase's pace is also a target: a week with fewer sessions than it asks is a "
        "finding to review, a warning by default (the label says to continue the current "
        "dosing schedule after a missed session). A week is judged once it is over: without "
        "as_of (a final record), weeks 1 through the week of the last session; with as_of, "
        "every week whose last local date is before the local date of as_of (for a plain "
        "date, on or before it, as that day is over), including weeks after the last "
        "session, when a patient stopped coming."
    )
    source: ClassVar[Source] = _LABEL_PHASES
    names: ClassVar[str] = "The sessions of the week under its target (possibly none)."

    phases: tuple[Phase, ...] = _phases_field()
    severity: Severity = severity_field(Severity.WARNING)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            "Each treatment week that is over has at least as many sessions, of any kind, as "
            "its phase's target: "
            + _phases_text(self.phases, "target", "{n} a week")
            + ". Without as_of, weeks 1 through the week of the last session are judged; with "
            "as_of, every week whose last local date is before the local date of as_of (on or "
            "before it, for a plain date)."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """The first phase's target met in week 1, and one session short."""
        phase = next((p for p in self.phases if p.target is not None), None)
        if phase is None or phase.first != 1:
            return ()
        assert phase.target is not None
        at, session = _examples.at, _examples.session
        days = [_examples.DEC1 + dt.timedelta(days=2 * k) for k in range(phase.target)]
        later = _examples.DEC1 + dt.timedelta(days=7)
        met = [session(f"s{k + 1}", at(d, 9)) for k, d in enumerate(days)]
        closing = session(f"s{phase.target + 1}", at(later, 9))
        return (
            (f"{plural(phase.target, 'session')} in week 1", _examples.course([*met, closing])),
            (
                f"{plural(phase.target - 1, 'session')} in week 1",
                _examples.course([*met[1:], closing]),
            ),
        )

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each judged week under its phase's target."""
        if not timeline.sessions:
            return
        first = timeline.sessions[0].date
        until = _judged_until(timeline)
        held = dict(_by_week(timeline))
        for phase in self.phases:
            if phase.target is None:
                continue
            last = until if phase.last is None else min(until, phase.last)
            for week in range(phase.first, last + 1):
                group = held.get(week, [])
                if len(group) >= phase.target:
                    continue
                listed = ", ".join(t.label for t in group) if group else "none"
                yield self.finding(
                    group,
                    f"{_week_words(first, week)} had {len(group)} of the {phase.target} "
                    f"sessions phase {phase.name} asks for each week (sessions: {listed})",
                    phase.target,
                    len(group),
                )

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """A session taken from a week that has just its target: dropped, or moved.

        Moved to a free date of the week before or after, at its wall time. Never the
        first session (it defines the weeks); only where no other phased rule has a
        finding (no gap overdue, no week over its cap) and the week is still judged.
        """
        sessions = Timeline.of(course).sessions
        if len(sessions) < 2 or not alone_of_its_class(self, protocol):
            return None
        first, dates = sessions[0].date, [t.date for t in sessions]
        counts = _counts(sessions)
        changes: list[tuple[TimedSession, dt.date | None]] = []
        for i, t in enumerate(sessions[1:], start=1):
            week = treatment_week(first, t.date)
            phase = phase_of(self.phases, week)
            if phase is None or phase.target is None or counts[week] != phase.target:
                continue
            rest = dates[:i] + dates[i + 1 :]
            if self._only(protocol, rest):
                changes.append((t, None))
            start, _ = week_dates(first, week - 1)
            for day in (start + dt.timedelta(days=k) for k in range(21)):
                if (
                    day > first
                    and day not in dates
                    and treatment_week(first, day) != week
                    and self._only(protocol, [*rest, day])
                ):
                    changes.append((t, day))
        if not changes:
            return None
        t, moved = choose.choice(changes)
        if moved is None:
            return _without(course, t.session)
        return _replaced(course, {id(t.session): _at(course, t.session, moved)})


@_builtin
@attrs.frozen(repr=False)
class Overdue(_Phased):
    """In an open-ended phase, each session follows the one before within ``every_days``.

    Args:
        phases: The protocol's phases (default `TRD_PHASES`).
        id: The rule's id (default ``"overdue"``).
        severity: The severity of its findings (default ``"warning"``).
    """

    default_id: ClassVar[str] = "overdue"
    title: ClassVar[str] = "A maintenance session overdue"
    rationale: ClassVar[str] = (
        "In an open-ended phase sessions go on at a pace of at most every_days local days. "
        "A session whose week is in such a phase and whose local date is more than "
        "every_days after the session before it is overdue. With as_of, the next session is "
        "also overdue once the last day it could have been held is over: the last "
        "session's date + every_days, or the day before the phase begins when that is later "
        "(a session in an earlier phase is never overdue). A plain date as_of counts its day "
        "as over, as for weekly targets. The message names the phase, the days it allows "
        "and that last day."
    )
    source: ClassVar[Source] = Source(
        "Week 9 and after: Administer every 2 weeks or once weekly at 56 mg or 84 mg.",
        document=_TABLE_COPY,
        location="'Maintenance Phase'",
        note="Every 2 weeks is read as at most 14 local days between sessions; once weekly "
        "as a cap of 1 session in each treatment week.",
    )
    names: ClassVar[str] = "The session before the gap (the last session, with as_of)."

    phases: tuple[Phase, ...] = _phases_field()
    severity: Severity = severity_field(Severity.WARNING)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            "A session whose treatment week is in an open-ended phase has a local date at most "
            "every_days after the session before it: "
            + _phases_text(self.phases, "every_days", "every {n} days at most")
            + ". With as_of, the next session is overdue when the local date of as_of is after "
            "the last day it could have been held (on or after it, for a plain date): the last "
            "session's date + every_days, or the day before the phase begins when that is later."
        )

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One gap in an open-ended phase made longer than its every_days.

        Every session from one in such a phase on moved later by whole weeks (each keeps
        its weekday, and the weeks their counts), a session between two dropped, or a
        session added after the last one, past its every_days: only where no other
        phased rule has a finding.
        """
        sessions = Timeline.of(course).sessions
        if len(sessions) < 2 or not alone_of_its_class(self, protocol):
            return None
        first, dates = sessions[0].date, [t.date for t in sessions]
        changes: list[tuple[str, int, int]] = []
        for j in range(1, len(sessions)):
            phase = phase_of(self.phases, treatment_week(first, dates[j]))
            if phase is None or phase.every_days is None:
                continue
            gap = (dates[j] - dates[j - 1]).days
            weeks = -(-(phase.every_days - gap + 1) // 7)
            later = [d + dt.timedelta(days=7 * weeks) for d in dates[j:]]
            if self._only(protocol, dates[:j] + later):
                changes.append(("later", j, weeks))
            if j >= 2 and self._only(protocol, dates[: j - 1] + dates[j:]):
                changes.append(("drop", j - 1, 0))
        # A session after the last one, in an open-ended phase.
        last, phase = dates[-1], self.phases[-1]
        if phase.every_days is not None:
            for extra in range(1, 8):
                day = last + dt.timedelta(days=phase.every_days + extra)
                if self._only(protocol, [*dates, day]):
                    changes.append(("add", extra, 0))
        if not changes:
            return None
        how, j, weeks = choose.choice(changes)
        if how == "drop":
            return _without(course, sessions[j].session)
        if how == "add":
            assert phase.every_days is not None
            day = last + dt.timedelta(days=phase.every_days + j)
            return _added(course, sessions[-1].session, day)
        return _replaced(
            course,
            {
                id(t.session): _at(course, t.session, t.date + dt.timedelta(days=7 * weeks))
                for t in sessions[j:]
            },
        )

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each gap longer than its phase's ``every_days``."""
        sessions = timeline.sessions
        if not sessions:
            return
        first = sessions[0].date
        for a, b, phase in later_phases(self.phases, sessions):
            if phase.every_days is None:
                continue
            gap = (b.date - a.date).days
            if gap > phase.every_days:
                yield self.finding(
                    (a,),
                    f"{b.label} is {plural(gap, 'day')} after {a.label}; "
                    + _due_words(first, phase, a.date, "is"),
                    phase.every_days,
                    gap,
                )
        if timeline.as_of_date is None:
            return
        last = sessions[-1]
        # The earliest local date a next session could still have: as_of's, unless a plain
        # date's day is over.
        earliest = timeline.as_of_date
        if not isinstance(timeline.as_of, dt.datetime):
            earliest += dt.timedelta(days=1)
        if earliest <= last.date:
            return
        current = phase_of(self.phases, treatment_week(first, earliest))
        if current is None or current.every_days is None:
            return
        phase = current
        if earliest > _due(first, phase, last.date):
            yield self.finding(
                (last,),
                f"no session since {last.label}; "
                + _due_words(first, phase, last.date, "was")
                + f" (as of {timeline.as_of_date.isoformat()})",
                phase.every_days,
                (earliest - last.date).days,
            )


def _due(first: dt.date, phase: Phase, before: dt.date) -> dt.date:
    """The last local date a session after one on ``before`` keeps to ``phase``'s every_days.

    A session is overdue when its week is in the phase and it is more than every_days after
    the one before: so the later of ``before + every_days`` and the day before the phase
    begins (a session in an earlier phase is never overdue).
    """
    assert phase.every_days is not None
    begins = week_dates(first, phase.first)[0]
    return max(before + dt.timedelta(days=phase.every_days), begins - dt.timedelta(days=1))


def _due_words(first: dt.date, phase: Phase, before: dt.date, verb: str) -> str:
    assert phase.every_days is not None
    due = _due(first, phase, before)
    within = plural(phase.every_days, "day")
    if due == before + dt.timedelta(days=phase.every_days):
        return (
            f"in phase {phase.name} the next session {verb} due within {within} "
            f"(by {due.isoformat()})"
        )
    return (
        f"phase {phase.name} began on {(due + dt.timedelta(days=1)).isoformat()} (treatment "
        f"week {phase.first}) and allows at most {within} between sessions, so the next "
        f"session {verb} due by {due.isoformat()}"
    )


@_builtin
@attrs.frozen(repr=False)
class MinGap(_Phased):
    """Consecutive sessions are at least their phase's ``min_gap_days`` local days apart.

    Args:
        phases: The protocol's phases (default `TRD_PHASES`).
        id: The rule's id (default ``"min-gap"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "min-gap"
    title: ClassVar[str] = "Sessions far enough apart"
    rationale: ClassVar[str] = (
        "Two sessions adjacent in start order, of any kind, are at least min_gap_days local "
        "calendar days apart, as the phase of the later session's treatment week says; 1 "
        "means never two on one local date. Hours do not count, local dates do."
    )
    source: ClassVar[Source] = _LABEL_PHASES
    names: ClassVar[str] = "Both sessions of each pair too close together, one finding a pair."

    phases: tuple[Phase, ...] = _phases_field()

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            "Any two sessions adjacent in start order, of any kind, are at least min_gap_days "
            "local dates apart, by the phase of the later one's treatment week: "
            + _phases_text(self.phases, "min_gap_days", "at least {n} apart")
            + "."
        )

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """A session moved onto the local date of its neighbour in the same week.

        At its own wall time, or a minute after (before) the neighbour, so that the two
        keep their order and the first session stays first; weekly counts do not change,
        and only where the wider gap it leaves on the other side is not overdue.
        """
        sessions = Timeline.of(course).sessions
        if len(sessions) < 2 or not alone_of_its_class(self, protocol):
            return None
        first, dates = sessions[0].date, [t.date for t in sessions]
        moves: list[tuple[Session, Session]] = []
        for i in range(1, len(sessions)):
            a, b = sessions[i - 1], sessions[i]
            if treatment_week(first, a.date) != treatment_week(first, b.date):
                continue
            # b back onto a's date, after a: at its own wall time, or a minute after a.
            if self._only(protocol, [*dates[:i], a.date, *dates[i + 1 :]]):
                back = _at(course, b.session, a.date)
                if back is None or back.instant <= a.instant:
                    back = _on_date(course, b.session, a.instant + _MINUTE, a.date)
                if back is not None:
                    moves.append((b.session, back))
            # a forward onto b's date, before b (never the first session): at its own wall
            # time, or a minute before b.
            if i >= 2 and self._only(protocol, [*dates[: i - 1], b.date, *dates[i:]]):
                forward = _at(course, a.session, b.date)
                if forward is None or forward.instant >= b.instant:
                    forward = _on_date(course, a.session, b.instant - _MINUTE, b.date)
                if forward is not None:
                    moves.append((a.session, forward))
        if not moves:
            return None
        old, new = choose.choice(moves)
        return _replaced(course, {id(old): new})

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each adjacent pair closer than its phase allows."""
        for a, b, phase in later_phases(self.phases, timeline.sessions):
            if phase.min_gap_days is None:
                continue
            gap = (b.date - a.date).days
            if gap < phase.min_gap_days:
                yield self.finding(
                    (a, b),
                    f"{a.label} and {b.label} are {plural(gap, 'day')} apart"
                    + (" (same day)" if gap == 0 else "")
                    + f"; in phase {phase.name} sessions are at least "
                    f"{plural(phase.min_gap_days, 'day')} apart",
                    phase.min_gap_days,
                    gap,
                )


@_builtin
@attrs.frozen(repr=False)
class BeyondEvaluated(BaseRule):
    """A session after treatment week ``after_week`` is beyond what was evaluated.

    Args:
        after_week: The last treatment week of the evaluated treatment (1 to 5229).
        id: The rule's id (default ``"beyond-evaluated"``).
        severity: The severity of its findings (default ``"warning"``).
    """

    default_id: ClassVar[str] = "beyond-evaluated"
    title: ClassVar[str] = "Treatment beyond the weeks evaluated"
    rationale: ClassVar[str] = (
        "For depressive symptoms with acute suicidal ideation or behaviour, the label's "
        "treatment lasts 4 weeks, and use beyond them has not been systematically evaluated. "
        "Each session after that week, held or planned, is a warning for a clinician to "
        "review: the label does not forbid it."
    )
    source: ClassVar[Source] = Source(
        "Treatment beyond 4 weeks has not been systematically evaluated",
        document="'Dosing and Administration SMDD', the manufacturer's site for health care "
        "professionals, https://www.spravatohcp.com/mdsi/dosing-and-administration",
        location="the 4-week treatment course",
    )
    names: ClassVar[str] = "Each session after the week, one finding each."

    after_week: int = parameter(4, Bounds(1, MAX_WEEK))
    severity: Severity = severity_field(Severity.WARNING)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every session, planned or held, is in treatment weeks 1 to {self.after_week}; a "
            f"session after week {self.after_week} is a finding: treatment beyond "
            f"{plural(self.after_week, 'week')} has not been systematically evaluated."
        )

    def examples(self) -> Sequence[tuple[str, Course]]:
        """A session on the last day of the week, and one on the day after."""
        at, session = _examples.at, _examples.session
        last = _examples.DEC1 + dt.timedelta(days=7 * self.after_week - 1)

        def pair(day: dt.date) -> Course:
            return _examples.course(
                [session("s1", at(_examples.DEC1, 9)), session("s2", at(day, 9))]
            )

        return (
            (f"the last session in week {self.after_week}", pair(last)),
            (f"a session in week {self.after_week + 1}", pair(last + dt.timedelta(days=1))),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape | None:
        """Courses whose sessions are all in treatment weeks 1 to ``after_week``."""
        weeks = self.after_week if shape.weeks is None else min(shape.weeks, self.after_week)
        return attrs.evolve(shape, weeks=weeks)

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """A session added in week ``after_week + 1``, a copy of the last one's day.

        Only in protocols of phased and per-session rules (a series rule would see the
        session too), on a date where no phased rule has a finding: the phases' caps,
        targets and gaps kept.
        """
        sessions = Timeline.of(course).sessions
        if len(sessions) < 2 or not alone_of_its_class(self, protocol):
            return None
        if not all(
            isinstance(r, _Phased | BeyondEvaluated | Fasting | Escort | Therapist)
            or type(r).__module__ == "kaprules.session_day"
            for r in protocol.rules
        ):
            return None
        phases = next((r.phases for r in protocol.rules if isinstance(r, _Phased)), ())
        first, dates = sessions[0].date, [t.date for t in sessions]
        start, _ = week_dates(first, self.after_week + 1)
        days = [
            day
            for day in (start + dt.timedelta(days=k) for k in range(7))
            if day > dates[-1] and _trips(phases, [*dates, day], self.after_week) == {type(self)}
        ]
        if not days:
            return None
        return _added(course, sessions[-1].session, choose.choice(days))

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each session after ``after_week``."""
        sessions = timeline.sessions
        if not sessions:
            return
        first = sessions[0].date
        for t in sessions:
            week = treatment_week(first, t.date)
            if week > self.after_week:
                yield self.finding(
                    (t,),
                    f"{t.label} is in treatment week {week}; treatment beyond "
                    f"{plural(self.after_week, 'week')} has not been systematically evaluated",
                    self.after_week,
                    week,
                )
