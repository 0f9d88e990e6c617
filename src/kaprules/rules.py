"""The rules of a protocol: small frozen validators with their own documentation.

Each rule is an attrs class that holds its parameters and is called with a
[`Timeline`][kaprules.Timeline] to yield [`Finding`][kaprules.Finding] objects. It also
carries what an auditor needs: a title, a statement rendered from its actual parameter
values, a rationale, the source sentence it encodes, and worked examples.

Any object with the members of [`Rule`][kaprules.Rule] is a rule: a protocol takes it
without registration. [`BaseRule`][kaprules.BaseRule] is the plumbing kaprules' own rules
share (``id`` and ``severity`` keywords, ``parameters()``, findings with help); rules of
your own may inherit it.
"""

from __future__ import annotations

import datetime as dt
import inspect
import itertools
import json
import re
import reprlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import attrs

from kaprules import _examples, _text, _time
from kaprules._words import number, ordinal, plural
from kaprules.errors import Problem, ProtocolError
from kaprules.model import Course, Integration, JSONValue, Kind, Session, to_kind
from kaprules.report import Finding, Help, Severity, as_severity, rule_help
from kaprules.timeline import TimedSession, Timeline

__all__ = [
    "BUILTIN_RULES",
    "FOUNDING_DOCUMENT",
    "RULE_MEMBERS",
    "SERIES_LENGTH",
    "SERIES_WINDOW",
    "AtMost",
    "BaseRule",
    "BoosterInterval",
    "Bounds",
    "Choices",
    "CourseShape",
    "Escort",
    "Fasting",
    "IntegrationFollowup",
    "KindSet",
    "Parameter",
    "ParameterCheck",
    "Role",
    "Rule",
    "SessionCount",
    "SessionSpacing",
    "Source",
    "Therapist",
    "TreatmentWindow",
    "cited_source",
    "parameter",
    "parameters_of",
    "rationale_of",
    "severity_field",
]

_T = TypeVar("_T")

FOUNDING_DOCUMENT = "'The Power of Ketamine Assisted Psychotherapy', a clinic's blog post"
"""The document the standard protocol's rules are quoted from."""


@attrs.frozen
class Source:
    """Where a rule's requirement comes from.

    Attributes:
        quote: The sentence (or the part of it) the rule encodes, word for word.
        document: The document quoted.
        location: Where the quote stands in the document.
        note: How the rule relates to the quote, when it does not say exactly what the
            quote says (a rule derived from it with other parameters).
    """

    quote: str
    document: str = FOUNDING_DOCUMENT
    location: str = ""
    note: str = ""


@runtime_checkable
class Rule(Protocol):
    """The interface every rule follows; a protocol needs nothing else.

    Write a rule as a frozen attrs class (or any class) with these members, or inherit
    [`BaseRule`][kaprules.BaseRule] for the shared plumbing. A
    [`Protocol`][kaprules.Protocol] checks every member when it is built. Two members are
    optional: ``help_url`` (where your rule is documented, shown in each finding's
    ``help``) and ``examples()`` (worked examples for [`explain`][kaprules.explain]).
    """

    @property
    def id(self) -> str:
        """A stable, unique, kebab-case id such as ``"session-spacing"``."""

    @property
    def severity(self) -> Severity:
        """The severity of this rule's findings."""

    @property
    def title(self) -> str:
        """A short title for people."""

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""

    @property
    def rationale(self) -> str:
        """Why the rule exists and how it reads its source."""

    @property
    def source(self) -> Source:
        """The requirement the rule encodes, quoted."""

    @property
    def names(self) -> str:
        """Which sessions a finding of this rule names."""

    def parameters(self) -> Mapping[str, object]:
        """The rule's parameters as plain data (JSON values), keyword arguments of its class."""

    def __call__(self, timeline: Timeline) -> Iterable[Finding]:
        """Yield a finding for each breach of the rule in ``timeline``."""


RULE_MEMBERS: tuple[str, ...] = (
    "id",
    "severity",
    "title",
    "statement",
    "rationale",
    "source",
    "names",
    "parameters",
    "__call__",
)
"""The members of [`Rule`][kaprules.Rule] that a protocol checks for when it is built."""


# Upper bounds keep every rule's date arithmetic inside datetime's range for instants in
# the supported years (see _time.MAX_YEAR): a century of days or months, a year of hours.
_CENTURY_DAYS = 36_600
_CENTURY_MONTHS = 1_200
_YEAR_HOURS = 8_784
_ID = re.compile(_text.ID_PATTERN)  # the protocol schema states the same pattern


def _bad(instance: object, name: str, what: str, code: str = "range") -> ProtocolError:
    return ProtocolError(Problem((type(instance).__name__, name), what, code))


def refuse_problem(
    check: Any,
    instance: object,
    attribute: attrs.Attribute[Any],
    value: object,
    code: str = "range",
) -> None:
    """A parameter check's attrs validator: raise ``check.problem(value)``, if any.

    Shared by kaprules' checks (`Bounds`, `KindSet`, the phases', the doses'), so that a
    bad value is refused alike whatever the check: a `ProtocolError` at the rule class and
    field.
    """
    what = check.problem(value)
    if what is not None:
        raise _bad(instance, attribute.name, what, code)


@attrs.frozen
class Bounds:
    """A number parameter's type and range, held as data: the validator of a rule's field.

    A rule field declared with ``parameter(6, Bounds(1, 1000))`` refuses anything else
    when the rule is built, and the protocol schema, the protocol file checks and the
    rules page read the same bounds back (see [`parameters_of`][kaprules.parameters_of]).

    Attributes:
        minimum: The smallest value allowed.
        maximum: The largest value allowed.
        whole: Whole numbers only (``True``), or any number (``False``).
        unit: What the number counts, for messages about non-whole numbers (``"hours"``).
    """

    minimum: int | float
    maximum: int | float
    whole: bool = True
    unit: str = ""

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        """Refuse a value outside the bounds (the attrs validator protocol).

        Raises:
            ProtocolError: The value is not a number of the right type within the bounds.
        """
        refuse_problem(self, instance, attribute, value)

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value``, or None when it is allowed.

        Args:
            value: A parameter value.

        Returns:
            A message such as ``must be a whole number from 1 to 1000, got 0``, or None.
        """
        numeric = (int,) if self.whole else (int, float)
        if (
            isinstance(value, bool)
            or not isinstance(value, numeric)
            or not self.minimum <= value <= self.maximum
        ):
            return f"must be {self.describe()}, got {_shown(value)}"
        return None

    def describe(self) -> str:
        """The allowed values in words: ``a whole number from 1 to 1000``.

        Returns:
            The description.
        """
        if self.whole:
            return f"a whole number from {self.minimum} to {self.maximum}"
        of = f" of {self.unit}" if self.unit else ""
        return f"a number{of} from {self.minimum} to {self.maximum}"

    def json_schema(self) -> dict[str, JSONValue]:
        """The allowed values as a JSON Schema.

        Returns:
            ``{"type": "integer" | "number", "minimum": ..., "maximum": ...}``.
        """
        return {
            "type": "integer" if self.whole else "number",
            "minimum": self.minimum,
            "maximum": self.maximum,
        }


@attrs.frozen
class KindSet:
    """A parameter holding a non-empty set of session kinds: the validator of ``kinds``.

    Attributes:
        kinds: The kinds that may be named.
    """

    kinds: tuple[Kind, ...] = (Kind.INDUCTION, Kind.BOOSTER)

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        """Refuse anything but a non-empty set of kinds (the attrs validator protocol).

        Raises:
            ProtocolError: The value is not a non-empty set of kinds.
        """
        refuse_problem(self, instance, attribute, value, "value")

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value``, or None when it is allowed.

        Args:
            value: A parameter value (after conversion: a frozenset of kinds).

        Returns:
            A message, or None.
        """
        if not isinstance(value, frozenset) or not value or not value <= set(self.kinds):
            names = ", ".join(repr(k.value) for k in self.kinds)
            return f"must be a non-empty list of session kinds ({names}), got {_shown(value)}"
        return None

    def describe(self) -> str:
        """The allowed values in words.

        Returns:
            The description.
        """
        names = ", ".join(k.value for k in self.kinds)
        return f"a non-empty list of session kinds ({names})"

    def json_schema(self) -> dict[str, JSONValue]:
        """The allowed values as a JSON Schema.

        Returns:
            An array schema of unique kind names.
        """
        return {
            "description": "Session kinds the rule applies to.",
            "type": "array",
            "items": {"enum": [k.value for k in self.kinds]},
            "minItems": 1,
            "uniqueItems": True,
        }


@runtime_checkable
class ParameterCheck(Protocol):
    """What a parameter's validator holds as data: `Bounds`, `KindSet` and the like.

    A field declared with [`parameter`][kaprules.parameter] and such a check refuses bad
    values when the rule is built; protocol files, their schema and the rules page read the
    same check back, so the allowed values are described once.
    """

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        """Refuse a bad value (the attrs validator protocol)."""

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` (after the field's converter), or None."""

    def describe(self) -> str:
        """The allowed values in words."""

    def json_schema(self) -> dict[str, JSONValue]:
        """The allowed values as a JSON Schema."""


@attrs.frozen
class Role:
    """A quantity of the protocol that parameters of several rules may share.

    Rules declare which of their parameters hold a role (see
    [`parameter`][kaprules.parameter]); a protocol then keeps them coherent, `update`
    moves them together, and scheduling reads the quantity without knowing which rule
    holds it.

    Attributes:
        name: A kebab-case name, such as ``"series-window"``.
        meaning: What the quantity is, for messages: ``"the series' window"``.
    """

    name: str
    meaning: str


SERIES_LENGTH = Role("series-length", "the number of induction sessions in the series")
"""The role of the induction series' number of sessions (`SessionCount.count`)."""

SERIES_WINDOW = Role("series-window", "the series' window")
"""The role of the series' window in local calendar days (`TreatmentWindow.days`)."""


@attrs.frozen
class AtMost:
    """A bound by a role: a parameter declared with ``at_most=AtMost(role, why)``.

    Attributes:
        role: The role whose value the parameter may not exceed.
        why: What would go wrong above it, for the coherence message.
    """

    role: Role
    why: str


@attrs.frozen
class Parameter:
    """A rule parameter as declared, read back by [`parameters_of`][kaprules.parameters_of].

    Attributes:
        name: The keyword the rule's class and protocol files take.
        default: Its default value, or ``attrs.NOTHING`` when it has none.
        check: Its validator holding the allowed values (a `Bounds`, a `KindSet` or
            another `ParameterCheck`; None when the rule does not declare one).
        role: The protocol quantity it holds, shared with other rules (or None).
        at_most: The role its value may not exceed (or None).
    """

    name: str
    default: object
    check: ParameterCheck | None = None
    role: Role | None = None
    at_most: AtMost | None = None

    def json_schema(self) -> dict[str, JSONValue]:
        """The parameter's values as a JSON Schema (``{}`` when undeclared).

        Returns:
            The schema.
        """
        return {} if self.check is None else self.check.json_schema()


_META = "kaprules.parameter"


def parameter(
    default: Any,
    check: ParameterCheck,
    *,
    role: Role | None = None,
    at_most: AtMost | None = None,
    kw_only: bool = False,
    omit_default: bool = False,
    repr: Any = True,
    converter: Any = None,
) -> Any:
    """Declare a rule parameter: an attrs field whose bounds and role can be read back.

    Args:
        default: The default value.
        check: The allowed values (also the field's validator).
        role: The protocol quantity the parameter holds, shared with other rules.
        at_most: The role whose value the parameter may not exceed.
        kw_only: Keyword-only in ``__init__``.
        omit_default: Left out of ``parameters()`` at its default, so that a protocol's
            data stays as it was when a parameter is added to a rule.
        repr: The attrs ``repr`` setting.
        converter: An attrs converter, run before the check: it should pass a value it
            cannot convert through unchanged, for the check to name.

    Returns:
        An attrs field, for a class body: ``count: int = parameter(6, Bounds(1, 1000))``.
    """
    return attrs.field(
        default=default,
        validator=check,
        converter=converter,
        kw_only=kw_only,
        repr=repr,
        metadata={_META: (role, at_most), "omit_default": omit_default},
    )


# Keywords of BaseRule that are not parameters: identity and documentation.
_NOT_PARAMETERS = frozenset(("id", "severity", "source", "rationale", "waivable", "self"))


def parameters_of(cls: type[Any]) -> tuple[Parameter, ...]:
    """The parameters a rule class takes, as declared: names, defaults, bounds and roles.

    ``id`` and ``severity``, and the documentation keywords ``source`` and ``rationale``
    of [`BaseRule`][kaprules.BaseRule], are not parameters. For a class that is not an
    attrs class: the keyword arguments of its constructor, without bounds.

    Args:
        cls: A rule class.

    Returns:
        The parameters, in the order the class declares them.
    """
    found = _DECLARED.get(cls)
    if found is None:
        found = _DECLARED[cls] = _declared(cls)
    return found


# A class declares its parameters once; protocols read them on every build and update.
_DECLARED: dict[type[Any], tuple[Parameter, ...]] = {}


def _declared(cls: type[Any]) -> tuple[Parameter, ...]:
    if attrs.has(cls):
        found = []
        for a in attrs.fields(cls):
            if not a.init or a.alias in _NOT_PARAMETERS:
                continue
            role, at_most = a.metadata.get(_META, (None, None))
            check = a.validator if isinstance(a.validator, ParameterCheck) else None
            found.append(Parameter(a.alias, a.default, check, role, at_most))
        return tuple(found)
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return ()
    return tuple(
        Parameter(name, attrs.NOTHING if p.default is p.empty else p.default)
        for name, p in signature.parameters.items()
        if name not in _NOT_PARAMETERS
    )


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 2, 30, 30


def _shown(value: object) -> str:
    # Parameters come from protocol files a person edits: a bounded, escaped value, at any
    # nesting depth (a plain repr recurses without end).
    text = _SHOWN.repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _lenient_severity(value: object) -> object:
    # A converter cannot name the rule; the validator below does.
    return as_severity(value) or value


def _check_severity(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Severity):
        choices = ", ".join(repr(s.value) for s in Severity)
        raise _bad(
            instance, "severity", f"unknown severity {_shown(value)}; use one of {choices}", "value"
        )


def _severity_repr(value: object) -> str:
    return repr(getattr(value, "value", value))


def severity_field(default: Severity) -> Any:
    """Declare a rule class's ``severity`` keyword with another default than ``"error"``.

    For a rule whose findings are warnings unless a protocol says otherwise:
    ``severity: Severity = severity_field(Severity.WARNING)`` in the class body.

    Args:
        default: The severity of the rule's findings by default.

    Returns:
        An attrs field, checked as `BaseRule`'s ``severity`` is.
    """
    return attrs.field(
        default=default,
        converter=_lenient_severity,
        validator=_check_severity,
        kw_only=True,
        repr=_severity_repr,
    )


def _default_id(instance: BaseRule) -> str:
    return type(instance).default_id


def _check_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise _bad(
            instance,
            "id",
            f"must be a kebab-case id (lower-case letters, digits, '-', '.', '_'; at most 64 "
            f"characters), got {_shown(value)}",
            "value",
        )


def _check_waivable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise _bad(
            instance, "waivable", f"must be True or False, got {type(value).__name__}", "type"
        )


def _lenient_kinds(value: Iterable[Kind | str]) -> frozenset[Kind]:
    # Typed for callers; anything else passes through for the validator to name the rule.
    if isinstance(value, str) or not isinstance(value, Iterable):
        return value  # type: ignore[return-value]
    items = list(value)
    kinds = [to_kind(k) for k in items]
    if all(isinstance(k, Kind) for k in kinds):
        return frozenset(kinds)
    return items  # type: ignore[return-value]


def _check_own_source(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not (
        isinstance(value, Source)
        and all(_one_line(getattr(value, f)) for f in ("quote", "document"))
        and all(not getattr(value, f) or _one_line(getattr(value, f)) for f in ("location", "note"))
    ):
        raise _bad(
            instance,
            "source",
            "must be a Source whose quote and document (and location and note, when given) are "
            "lines of at most 1000 printable characters",
            "value",
        )


def _check_own_rationale(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not (
        isinstance(value, str) and _one_line(value, _text.RATIONALE_LIMIT)
    ):
        raise _bad(
            instance,
            "rationale",
            "must be one line of at most 4000 printable characters",
            "value",
        )


def _one_line(text: object, limit: int = _text.LINE_LIMIT) -> bool:
    # The loader's rule for a line of text, which the protocol schema states too.
    return _text.is_line(text, limit)


def _kinds_repr(kinds: frozenset[Kind]) -> str:
    return repr([k.value for k in Kind if k in kinds])


def _plain(value: object) -> JSONValue:
    if isinstance(value, frozenset):
        return [k.value for k in Kind if k in value]
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):  # a structured parameter, such as a phase
        return to_dict()  # type: ignore[no-any-return]
    return value  # type: ignore[return-value]


def _scope(kinds: frozenset[Kind]) -> str:
    # "" for every kind, so that the default statements read as they always have.
    return (
        "" if kinds == frozenset(Kind) else " and ".join(k.value for k in Kind if k in kinds) + " "
    )


def _iso_duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    body = (
        (f"{hours}H" if hours else "")
        + (f"{minutes}M" if minutes else "")
        + (f"{secs}S" if secs else "")
    )
    return f"{sign}PT{body or '0S'}"


@attrs.frozen
class CourseShape:
    """What generated courses look like; each rule narrows it so that they meet it.

    [`kaprules.strategies.compliant_courses`][kaprules.strategies.compliant_courses]
    starts from this default (six sessions in 14 days, otherwise the loosest bounds) and
    asks every rule of the protocol to narrow it (`BaseRule.course_shape`), then generates
    courses of that shape:
    exactly ``count`` induction sessions within ``window`` local days, adjacent sessions
    at least ``gap`` local days apart, fasts of at least ``fast_hours`` of elapsed time,
    boosters ``booster_months`` calendar months or more after the session before, and at
    least ``meetings`` integration meetings within ``meetings_within`` days after the
    series.

    With ``phases`` set (by the phased rules, such as `weekly-cap`), a phased course is
    generated instead of the induction series: treatment weeks from the first session's
    local date, each week of a phase with its target to its cap of sessions, then a few
    sessions of an open-ended last phase. With ``session_day`` set (by the session-day
    rules, such as `liquid-fasting`), every session records its session-day data
    (``last_liquid``, ``vitals``, ``ready_to_leave``, ``dose_mg``, ``monitoring_form``)
    within the bounds below. The defaults are the loosest bounds, and leave both off.

    Attributes:
        count: Induction sessions in the series.
        window: Local calendar days the series fits in (the first date being day 1).
        gap: The fewest local calendar days between adjacent sessions.
        fast_hours: The shortest fast, in hours of elapsed time.
        booster_months: The fewest calendar months before a booster.
        meetings: The fewest integration meetings after the series.
        meetings_within: The last day for them, in days after the last induction date.
        phases: The protocol's phases (`kaprules.Phase` objects, in week order), or None
            for an induction series.
        weeks: The last treatment week a session may fall in (counted from the first
            session's local date, as `kaprules.phases.treatment_week` does), or None.
        session_day: Whether sessions record session-day data.
        liquid_minutes: The shortest time without liquids before the start, in minutes
            of elapsed time.
        bp_before_minutes: How long before the start the reading before dosing is taken,
            at most, in minutes.
        bp_limit: The highest ``(systolic, diastolic)`` pressure of that reading, in mmHg.
        bp_after: ``(from, to)``: minutes after the start between which a reading after
            dosing is taken, both included.
        monitoring_minutes: The shortest monitoring after the start, in minutes of
            elapsed time, before ``ready_to_leave``.
        doses: ``(first, then)``: the doses in mg the first session may have, and those
            every later one may have; None for any dose.
        form_days: The most days of elapsed time from the start to ``monitoring_form``.
        enrolled: Whether the course records ``enrolled`` on or before its first
            session's local date.
    """

    count: int = 6
    window: int = 14
    gap: int = 1
    fast_hours: float = 0
    booster_months: int = 1
    meetings: int = 0
    meetings_within: int = 14
    phases: tuple[Any, ...] | None = None
    weeks: int | None = None
    session_day: bool = False
    liquid_minutes: float = 0
    bp_before_minutes: int = 24 * 60
    bp_limit: tuple[int, int] = (400, 400)
    bp_after: tuple[int, int] = (0, 24 * 60)
    monitoring_minutes: float = 0
    doses: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    form_days: int = 366
    enrolled: bool = False


class Choices(Protocol):
    """Where a mutation's choices come from: hypothesis draws them in `kaprules.strategies`.

    `BaseRule.break_course` receives one, so that a rule says how to break a course without
    importing hypothesis; the strategy shrinks the choices like any other draw.
    """

    def integer(self, low: int, high: int) -> int:
        """A whole number from ``low`` to ``high``, both included."""

    def choice(self, options: Sequence[_T]) -> _T:
        """One of ``options`` (a non-empty sequence)."""

    def duration(self, low: dt.timedelta, high: dt.timedelta) -> dt.timedelta:
        """A duration from ``low`` to ``high``, both included."""


WorkedCase = tuple[str, Course]
"""A worked example: what it shows, and the course."""


@attrs.frozen(repr=False)
class BaseRule:
    """The shared plumbing of a rule: inherit it for a rule of your own (optional).

    A subclass is a frozen attrs class that sets the class variables below, defines
    ``statement`` and ``__call__``, and holds its parameters as attrs fields. It gets:

    - ``id`` and ``severity`` keywords: ``id`` defaults to the class's ``default_id`` and
      may be overridden to hold two rules of one class in a protocol (for example
      ``Escort(kinds={"booster"}, severity="warning", id="escort-booster")`` beside
      ``Escort(kinds={"induction"})``);
    - ``parameters()``: every attrs field but ``id`` and ``severity``;
    - ``help``: ``help_url`` if set; for kaprules' own rules, the rules page;
    - ``finding(sessions, message, expected, actual)`` to build findings;
    - ``source=`` and ``rationale=`` keywords: a clinic's own source and rationale for
      this rule (see [`cited_source`][kaprules.cited_source]);
    - ``course_shape`` and ``break_course``, which tell
      [`kaprules.strategies`][kaprules.strategies] how to generate courses that meet or break
      the rule (by default: it cannot).

    Attributes:
        default_id: The id a rule of this class has unless given one.
        title: A short title for people.
        rationale: Why the rule exists and how it reads its source.
        source: The requirement the rule encodes, quoted.
        names: Which sessions a finding names.
        help_url: Where the rule is documented (None: kaprules' rules page for its own
            rules, nothing for others).
        id: This rule's id (keyword ``id=``).
        severity: The severity of its findings (keyword ``severity=``).
        own_source: The source a clinic gives this rule (keyword ``source=``), or None
            for the class's.
        own_rationale: The rationale a clinic gives this rule (keyword ``rationale=``),
            or None for the class's.
        waivable: Whether a clinician's [`Waiver`][kaprules.Waiver] may cover this rule's
            findings (keyword ``waivable=``; False by default). A rule of your own that
            does not inherit BaseRule may define ``waivable`` too.
    """

    default_id: ClassVar[str]
    title: ClassVar[str]
    rationale: ClassVar[str]
    source: ClassVar[Source]
    names: ClassVar[str]
    help_url: ClassVar[str | None] = None

    id: str = attrs.field(
        default=attrs.Factory(_default_id, takes_self=True), kw_only=True, validator=_check_id
    )
    severity: Severity = attrs.field(
        default=Severity.ERROR,
        converter=_lenient_severity,
        validator=_check_severity,
        kw_only=True,
        repr=_severity_repr,
    )

    own_source: Source | None = attrs.field(
        default=None, kw_only=True, alias="source", validator=_check_own_source, repr=False
    )
    own_rationale: str | None = attrs.field(
        default=None, kw_only=True, alias="rationale", validator=_check_own_rationale, repr=False
    )
    waivable: bool = attrs.field(default=False, kw_only=True, validator=_check_waivable)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        raise NotImplementedError

    def __call__(self, timeline: Timeline) -> Iterable[Finding]:
        """Yield a finding for each breach of the rule in ``timeline``."""
        raise NotImplementedError

    def course_shape(self, shape: CourseShape) -> CourseShape | None:
        """Narrow ``shape`` so that every course generated from it meets this rule.

        [`kaprules.strategies.compliant_courses`][kaprules.strategies.compliant_courses]
        starts from the default shape and asks each rule of the protocol in turn. A rule
        that cannot say returns None (the default), and the strategy refuses the
        protocol, naming the rule, instead of generating courses that may break it.

        Args:
            shape: The shape so far.

        Returns:
            The narrowed shape (``attrs.evolve(shape, ...)``), or None.
        """
        return None

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """A copy of a compliant ``course`` that breaks this rule, and no other rule.

        [`kaprules.strategies.violating_courses`][kaprules.strategies.violating_courses]
        calls it on courses that meet ``protocol``. Return None when this course cannot
        be broken so (the strategy then draws another), or leave the method out: the
        strategy then refuses the rule, naming it.

        Args:
            course: A course that meets ``protocol``.
            choose: Where the mutation's choices come from (hypothesis draws them).
            protocol: The protocol the course meets, holding this rule.

        Returns:
            The mutated course, or None.
        """
        return None

    @property
    def help(self) -> Help | None:
        """Where this rule is documented, as shown in its findings' ``help``."""
        if self.help_url is not None:
            return Help(self.help_url)
        if BUILTIN_RULES.get(self.default_id) is type(self):
            return rule_help(self.default_id)
        return None

    def parameters(self) -> dict[str, JSONValue]:
        """The rule's parameters as plain data (``id`` and ``severity`` are kept apart).

        Returns:
            Parameter names and values, keyword arguments of the rule's class.
        """
        return {
            a.alias: _plain(getattr(self, a.name))
            for a in attrs.fields(type(self))
            if a.alias not in _NOT_PARAMETERS
            and a.init
            and not (a.metadata.get("omit_default") and getattr(self, a.name) == a.default)
        }

    def examples(self) -> Sequence[WorkedCase]:
        """Worked examples: a passing course, then a failing one, at the rule's boundary.

        Returns:
            ``(title, course)`` pairs; none unless the class defines them.
        """
        return ()

    def __repr__(self) -> str:
        # The id only when overridden, and parameters as parameters() shows them.
        parts = [] if self.id == self.default_id else [f"id={self.id!r}"]
        parts.append(f"severity={getattr(self.severity, 'value', self.severity)!r}")
        if self.waivable:
            parts.append("waivable=True")
        parts += [f"{name}={value!r}" for name, value in self.parameters().items()]
        return f"{type(self).__name__}({', '.join(parts)})"

    def finding(
        self,
        sessions: Iterable[TimedSession],
        message: str,
        expected: JSONValue = None,
        actual: JSONValue = None,
    ) -> Finding:
        """A finding of this rule, with its id, severity and help.

        Args:
            sessions: The sessions the finding names (from the timeline).
            message: What is wrong, for a person. Name sessions by ``t.label``, never by
                escort or patient text.
            expected: What the rule expected, as a JSON value.
            actual: What the course has, as a JSON value.

        Returns:
            The finding.
        """
        return Finding(
            self.id,
            self.severity,
            tuple(t.id for t in sessions),
            message,
            expected,
            actual,
            help=self.help,
        )

    # The name the guide used before finding() was public; rules written then keep working.
    _finding = finding


BUILTIN_RULES: dict[str, type[BaseRule]] = {}
"""kaprules' own rule classes, by ``default_id`` (what `Protocol.from_dict` knows without
being told)."""

_R = TypeVar("_R", bound=type[BaseRule])


def _builtin(cls: _R) -> _R:
    # The one registration line a built-in rule needs.
    BUILTIN_RULES[cls.default_id] = cls
    return cls


def cited_source(rule: Rule) -> Source:
    """The source a rule encodes, as an auditor should read it.

    A clinic's own source (``source=`` on the rule, ``source`` in a protocol file) comes
    first. Otherwise the rule's class cites its sentence; when the rule's parameters
    differ from those the class reads in that sentence, the source carries a ``note``
    saying that the rule derives from it with changed parameters, so that a 5-hour fast
    is never shown as if the sentence said five.

    Args:
        rule: A rule.

    Returns:
        The source, with a note when the rule is derived.
    """
    own = getattr(rule, "own_source", None)
    if isinstance(own, Source):
        return own
    source = rule.source
    changed = _changed_parameters(rule)
    if not changed:
        return source
    said = "; ".join(
        f"{name} is {now} here, {then} as kaprules reads it" for name, now, then in changed
    )
    return attrs.evolve(
        source,
        note=f"This rule derives from the sentence above with changed parameters: {said}.",
    )


def rationale_of(rule: Rule) -> str:
    """The rationale of a rule: a clinic's own (``rationale=``), else its class's.

    Args:
        rule: A rule.

    Returns:
        The rationale.
    """
    own = getattr(rule, "own_rationale", None)
    return own if isinstance(own, str) else rule.rationale


def _changed_parameters(rule: Rule) -> list[tuple[str, str, str]]:
    # (name, value, default) for each declared parameter away from its class default.
    changed = []
    for p in parameters_of(type(rule)):
        if p.default is attrs.NOTHING or isinstance(p.default, attrs.Factory):  # type: ignore[arg-type]
            continue
        now = getattr(rule, p.name, p.default)
        if now != p.default:
            changed.append((p.name, _json_text(_plain(now)), _json_text(_plain(p.default))))
    return changed


def _json_text(value: JSONValue) -> str:
    return json.dumps(value, ensure_ascii=False)


@_builtin
@attrs.frozen(repr=False)
class SessionCount(BaseRule):
    """The induction series has ``count`` sessions; more or fewer is a finding.

    Args:
        count: How many induction sessions the series has (1 to 1000).
        window_days: Days from the first induction session (counted as day 1) within which
            an unfinished series may still be completed when ``as_of`` is given (at most
            36600).
        id: The rule's id (default ``"session-count"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "session-count"
    title: ClassVar[str] = "Number of induction sessions"
    rationale: ClassVar[str] = (
        "The protocol names a fixed number of infusions for the induction series. A series "
        "with more sessions is over the protocol at once; a series with fewer is incomplete. "
        "A course still in progress (evaluated with as_of) is not faulted for sessions it can "
        "still book: while no induction session exists yet, or while the local date of as_of "
        "is within the treatment window."
    )
    source: ClassVar[Source] = Source(
        "The standard protocol consists of six infusions over a 14-day period.",
        location="section 'Considering Ketamine Treatment', second sentence",
    )
    names: ClassVar[str] = (
        "For too many sessions: each induction session after the count-th, in start order. "
        "For too few: none (the finding is about the course)."
    )

    count: int = parameter(6, Bounds(1, 1_000), role=SERIES_LENGTH)
    window_days: int = parameter(14, Bounds(1, _CENTURY_DAYS), role=SERIES_WINDOW)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"The induction series has exactly {self.count} sessions. More than {self.count} "
            f"is a finding. Fewer than {self.count} is a finding, except when as_of is given "
            f"and either no induction session exists yet or the local date of as_of is on or "
            f"before the first induction date + {self.window_days - 1} days (day "
            f"{self.window_days} of the series)."
        )

    def examples(self) -> Sequence[WorkedCase]:
        """A series of exactly ``count`` sessions, and one of ``count + 1``."""
        dec1 = _examples.DEC1
        return (
            (
                f"{self.count} induction sessions",
                _examples.course(_examples.series(dec1, self.count)),
            ),
            (
                f"{self.count + 1} induction sessions",
                _examples.course(_examples.series(dec1, self.count + 1)),
            ),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Courses with exactly ``count`` induction sessions."""
        return attrs.evolve(shape, count=self.count)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for a series longer or shorter than ``count``."""
        series = timeline.inductions
        n = len(series)
        if n > self.count:
            extra = series[self.count :]
            yield self.finding(
                extra,
                f"the induction series has {n} sessions, {n - self.count} more than the "
                f"{self.count} of the protocol: "
                + ", ".join(t.label for t in extra)
                + (" comes" if len(extra) == 1 else " come")
                + f" after the {ordinal(self.count)}",
                self.count,
                n,
            )
        elif n < self.count:
            if timeline.as_of_date is not None:
                if n == 0:
                    return
                closes = series[0].date + dt.timedelta(days=self.window_days - 1)
                if timeline.as_of_date <= closes:
                    return
                message = (
                    f"the induction series has {n} of {self.count} sessions and its "
                    f"{self.window_days}-day window closed on {closes.isoformat()} "
                    f"(as of {timeline.as_of_date.isoformat()})"
                )
            else:
                message = f"the induction series has {n} of {self.count} sessions"
            yield self.finding((), message, self.count, n)


@_builtin
@attrs.frozen(repr=False)
class TreatmentWindow(BaseRule):
    """Every induction session falls within ``days`` calendar days of the first.

    Args:
        days: The window's length in local calendar days, the first induction date being
            day 1 (Dec 1 opens a 14-day window that ends Dec 14); at most 36600.
        id: The rule's id (default ``"treatment-window"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "treatment-window"
    title: ClassVar[str] = "Treatment window of the induction series"
    rationale: ClassVar[str] = (
        "The protocol gives the induction series a fixed period. The period is counted in "
        "local calendar days of the clinic, starting on the date of the first induction "
        "session, which counts as day 1."
    )
    source: ClassVar[Source] = SessionCount.source
    names: ClassVar[str] = "Each induction session outside the window, one finding each."

    days: int = parameter(14, Bounds(1, _CENTURY_DAYS), role=SERIES_WINDOW)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every induction session's local date is on or before the first induction date "
            f"+ {self.days - 1} days: the series fits in {plural(self.days, 'day')}, the first "
            f"induction date being day 1 (a series that starts on Dec 1 ends by Dec "
            f"{self.days})."
            if self.days <= 31
            else f"Every induction session's local date is on or before the first induction "
            f"date + {self.days - 1} days: the series fits in {plural(self.days, 'day')}, "
            f"the first "
            f"induction date being day 1."
        )

    def examples(self) -> Sequence[WorkedCase]:
        """The last session on the window's last day, and on the day after."""
        dec1, at, session = _examples.DEC1, _examples.at, _examples.session
        last = dec1 + dt.timedelta(days=self.days - 1)
        after = last + dt.timedelta(days=1)
        return (
            (
                f"the last session on day {self.days} ({last.isoformat()})",
                _examples.course([session("s1", at(dec1, 9)), session("s2", at(last, 9))]),
            ),
            (
                f"the last session on day {self.days + 1}",
                _examples.course([session("s1", at(dec1, 9)), session("s2", at(after, 9))]),
            ),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Courses whose series fits in ``days`` local days."""
        return attrs.evolve(shape, window=self.days)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each induction session after the window."""
        series = timeline.inductions
        if not series:
            return
        first = series[0].date
        last = first + dt.timedelta(days=self.days - 1)
        for t in series:
            if t.date > last:
                yield self.finding(
                    (t,),
                    f"{t.label} is on day {(t.date - first).days + 1} of the induction series; "
                    f"the {self.days}-day window that opened on {first.isoformat()} closed on "
                    f"{last.isoformat()}",
                    last.isoformat(),
                    t.date.isoformat(),
                )


@_builtin
@attrs.frozen(repr=False)
class SessionSpacing(BaseRule):
    """Adjacent sessions are at least ``min_days`` local calendar days apart.

    Args:
        min_days: The fewest days between the local dates of two sessions adjacent in start
            order (at most 36600). With 2, sessions on the same day or on consecutive days
            are findings.
        id: The rule's id (default ``"session-spacing"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "session-spacing"
    title: ClassVar[str] = "No sessions on consecutive days"
    rationale: ClassVar[str] = (
        "The protocol forbids infusions on consecutive days. Days are local calendar days of "
        "the clinic, so two sessions are 'consecutive' when their local dates differ by one, "
        "whatever the hours between them. The rule applies to sessions of any kind."
    )
    source: ClassVar[Source] = Source(
        "Infusions cannot be administered consecutively",
        location="section 'Considering Ketamine Treatment', fourth sentence",
    )
    names: ClassVar[str] = "Both sessions of each pair too close together, one finding a pair."

    min_days: int = parameter(2, Bounds(1, _CENTURY_DAYS))

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        text = (
            f"Any two sessions adjacent in start order, of any kind, are at least "
            f"{plural(self.min_days, 'day')} apart: the difference of their local dates is "
            f"{self.min_days} or more."
        )
        if self.min_days == 2:
            text += " Sessions on the same day or on consecutive days are findings."
        return text

    def examples(self) -> Sequence[WorkedCase]:
        """Two sessions ``min_days`` local dates apart, and one date closer."""
        dec1, at, session = _examples.DEC1, _examples.at, _examples.session

        # Late evening, then just after midnight: hours do not count, local dates do.
        def pair(days: int) -> Course:
            later = dec1 + dt.timedelta(days=days)
            return _examples.course(
                [session("s1", at(dec1, 23, 30)), session("s2", at(later, 0, 30))]
            )

        hours = 24 * (self.min_days - 1) + 1
        apart = "local date" if self.min_days - 1 == 1 else "local dates"
        return (
            (
                f"{plural(self.min_days, 'day')} apart by local date, "
                f"{hours} hours between the starts",
                pair(self.min_days),
            ),
            (f"{self.min_days - 1} {apart} apart", pair(self.min_days - 1)),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Courses whose adjacent sessions are at least ``min_days`` apart."""
        return attrs.evolve(shape, gap=max(shape.gap, self.min_days))

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """An induction session moved to ``min_days - 1`` days after the one before it.

        It moves earlier, so no other gap shrinks and the series stays in its window; the
        last one stays put when integration meetings must follow it in time.
        """
        series = Timeline.of(course).inductions
        keep_last = any(isinstance(r, IntegrationFollowup) for r in protocol.rules)
        last = len(series) - 1 if keep_last else len(series)
        if last <= 1:
            return None
        i = choose.integer(1, last - 1)
        day = series[i - 1].date + dt.timedelta(days=self.min_days - 1)
        return _moved(course, series[i].session, day)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each adjacent pair closer than ``min_days``."""
        for a, b in itertools.pairwise(timeline.sessions):
            gap = (b.date - a.date).days
            if gap < self.min_days:
                yield self.finding(
                    (a, b),
                    f"{a.label} and {b.label} are {plural(gap, 'day')} apart"
                    + (" (same day)" if gap == 0 else " (consecutive days)" if gap == 1 else "")
                    + f"; sessions must be at least {plural(self.min_days, 'day')} apart",
                    self.min_days,
                    gap,
                )


@_builtin
@attrs.frozen(repr=False)
class Fasting(BaseRule):
    """At least ``hours`` of elapsed time pass between the last food and the start.

    Args:
        hours: The shortest fast, in hours of real elapsed time (a DST change counts as it
            happens), from 0 to 8784 (a leap year). Exactly ``hours`` passes.
        kinds: The kinds of session the rule applies to (default: both).
        id: The rule's id (default ``"fasting"``); give another to hold two in a protocol.
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "fasting"
    title: ClassVar[str] = "Fasting before a session"
    rationale: ClassVar[str] = (
        "The protocol asks the patient not to eat for a set time before treatment. The fast "
        "is measured as real elapsed time between the two instants, so a clock change during "
        "the fast counts as the hour it really is. A session without a recorded last meal is "
        "a finding, unless it is still planned; food after the start is a finding."
    )
    source: ClassVar[Source] = Source(
        "abstaining from eating four hours before the treatment is essential",
        location="section 'Considering Ketamine Treatment', fourth sentence",
    )
    names: ClassVar[str] = "The session, one finding each."

    hours: float = parameter(4, Bounds(0, _YEAR_HOURS, whole=False, unit="hours"))
    kinds: frozenset[Kind] = (
        attrs.field(  # not parameter(): mypy reads the converter's type only from attrs.field
            default=frozenset(Kind),
            converter=_lenient_kinds,
            validator=KindSet(),
            kw_only=True,
            repr=_kinds_repr,
            metadata={"omit_default": True},
        )
    )

    _limit: tuple[dt.timedelta, str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # The shortest fast and its ISO text, made once rather than on every course.
        limit = dt.timedelta(hours=self.hours)
        object.__setattr__(self, "_limit", (limit, _iso_duration(limit)))

    @property
    def shortest_fast(self) -> tuple[dt.timedelta, str]:
        """The shortest fast the rule allows, and its ISO 8601 text (made once)."""
        return self._limit

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        h = number(self.hours)
        return (
            f"Every {_scope(self.kinds)}session records last_food, and at least {h} hours of "
            f"elapsed time pass from last_food to the start (exactly {h} h passes; food after "
            "the start does not). "
            f"A missing last_food is a finding unless the session is planned."
        )

    def examples(self) -> Sequence[WorkedCase]:
        """Exactly ``hours`` of elapsed time across a DST change, and a minute less."""
        zone = _time.zone(_examples.ZONE)
        kind = next(k for k in Kind if k in self.kinds)
        # Across Denver's spring-forward change: the wall clock shows an hour more.
        food = _time.to_utc(_examples.at(dt.date(2027, 3, 14), 0, 30))
        limit = dt.timedelta(hours=self.hours)
        before = _examples.series(dt.date(2026, 8, 1), 6) if kind is Kind.BOOSTER else []

        def fasted(elapsed: dt.timedelta) -> Course:
            start = (food + elapsed).astimezone(zone)
            last = _examples.session("s7", start, kind, last_food=food.astimezone(zone))
            return _examples.course([*before, last])

        return (
            (f"exactly {self.hours:g} h of elapsed time across a DST change", fasted(limit)),
            ("one minute less", fasted(limit - dt.timedelta(minutes=1))),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Courses whose fasts last at least ``hours``."""
        return attrs.evolve(shape, fast_hours=max(shape.fast_hours, self.hours))

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One covered session's fast cut short (or its food moved after the start)."""
        target = _covered(self, course, choose, protocol)
        if target is None:
            return None
        short = choose.duration(
            dt.timedelta(hours=-3), dt.timedelta(hours=self.hours) - dt.timedelta(seconds=1)
        )
        changed = attrs.evolve(target, last_food=_time.to_utc(target.start) - short)
        return _swapped(course, target, changed)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each session with a missing or short fast."""
        limit, expected = self._limit
        kinds = self.kinds
        for t in timeline.sessions:
            if t.kind not in kinds:
                continue
            food = t.session.last_food
            if food is None:
                if not t.planned:
                    yield self.finding((t,), f"{t.label} has no last_food recorded", expected, None)
                continue
            # t.instant is plain UTC; a plain aware datetime subtracts from it as an instant,
            # a subclass (pendulum's) is made plain first.
            fast = t.instant - (food if type(food) is dt.datetime else _time.to_utc(food))
            if fast < limit:
                if fast < dt.timedelta(0):
                    detail = (
                        f"the last food is recorded {_time.format_duration(-fast)} after the start"
                    )
                else:
                    detail = f"the fast lasted {_time.format_duration(fast)}"
                yield self.finding(
                    (t,),
                    f"{t.label}: {detail}; at least {number(self.hours)} h are required",
                    expected,
                    _iso_duration(fast),
                )


@_builtin
@attrs.frozen(repr=False)
class Escort(BaseRule):
    """Every session records someone to drive the patient home.

    Args:
        kinds: The kinds of session the rule applies to (default: both).
        id: The rule's id (default ``"escort"``); give another to hold two in a protocol,
            such as ``Escort(kinds={"booster"}, severity="warning", id="escort-booster")``.
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "escort"
    title: ClassVar[str] = "Escort home"
    rationale: ClassVar[str] = (
        "The protocol requires someone to drive the patient home. A session whose escort is "
        "missing or blank is a finding, unless it is still planned. The escort's name is "
        "never shown."
    )
    source: ClassVar[Source] = Source(
        "you’ll need someone to drive you home",  # noqa: RUF001 (quoted verbatim)
        location="section 'Considering Ketamine Treatment', fourth sentence",
    )
    names: ClassVar[str] = "The session, one finding each."
    recorded: ClassVar[tuple[str, str, str]] = (
        "escort",
        "an",
        "someone must drive the patient home",
    )
    """The session field, its article and why it is needed: read by every form of the rule."""

    kinds: frozenset[Kind] = (
        attrs.field(  # not parameter(): mypy reads the converter's type only from attrs.field
            default=frozenset(Kind),
            converter=_lenient_kinds,
            validator=KindSet(),
            kw_only=True,
            repr=_kinds_repr,
            metadata={"omit_default": True},
        )
    )

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every {_scope(self.kinds)}session records a non-blank escort, the person who "
            "drives the patient home. "
            "A missing or blank escort is a finding unless the session is planned."
        )

    def examples(self) -> Sequence[WorkedCase]:
        """An escort recorded, and a blank one."""
        return _presence_examples(self.kinds, "escort", "an escort recorded", "a blank escort")

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated sessions always record an escort."""
        return shape

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One covered session's escort missing or blank."""
        return _blanked(self, course, choose, protocol)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each session without an escort."""
        return _unrecorded(self, timeline)


@_builtin
@attrs.frozen(repr=False)
class BoosterInterval(BaseRule):
    """A booster follows a full induction series, ``months`` after the session before it.

    Args:
        months: The fewest calendar months from the local date of the previous session
            (of any kind) to the booster's, at most 1200. The day is kept and clamped to the
            month's end.
        min_induction: The fewest induction sessions before a booster (0 to 1000).
        id: The rule's id (default ``"booster-interval"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "booster-interval"
    title: ClassVar[str] = "Booster interval"
    rationale: ClassVar[str] = (
        "After the induction series the protocol continues with a booster infusion every six "
        "months. A booster therefore needs a completed induction series before it and is no "
        "earlier than the set number of calendar months after the session before it. Months "
        "are added to local dates keeping the day and clamping to the month's last day "
        "(Aug 31 + 6 months = Feb 28, or Feb 29 in a leap year): the rule of CQL, not the "
        "CDC CDSi roll to the first of the next month."
    )
    source: ClassVar[Source] = Source(
        "If they do, it is a booster infusion every 6 months.",
        location="section 'The Ketamine Advantage', second paragraph",
    )
    names: ClassVar[str] = "The booster, one finding for each condition it breaks."

    months: int = parameter(6, Bounds(1, _CENTURY_MONTHS))
    min_induction: int = parameter(
        6,
        Bounds(0, 1_000),
        at_most=AtMost(SERIES_LENGTH, "a booster could never follow a complete series"),
    )

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every booster has at least {self.min_induction} induction sessions and at least "
            f"one session before it, and its local date is on or after the local date of the "
            f"session just before it + {self.months} months (day kept, clamped to the month's "
            f"last day)."
        )

    def examples(self) -> Sequence[WorkedCase]:
        """A booster on the earliest date it may have, and one day earlier."""
        at, session = _examples.at, _examples.session
        last = dt.date(2026, 8, 31)
        first = last - dt.timedelta(days=2 * (self.min_induction - 1))
        series = _examples.series(first, self.min_induction) if self.min_induction else []
        previous = last if series else first
        if not series:
            series = [session("s1", at(previous, 9))]
        earliest = _time.add_months(previous, self.months)

        def booster(date: dt.date) -> Course:
            return _examples.course([*series, session("b1", at(date, 9), Kind.BOOSTER)])

        return (
            (
                f"a booster on {earliest.isoformat()}, the session before + {self.months} months",
                booster(earliest),
            ),
            ("the same booster one day earlier", booster(earliest - dt.timedelta(days=1))),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Courses whose boosters come at least ``months`` after the session before."""
        return attrs.evolve(shape, booster_months=max(shape.booster_months, self.months))

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """A booster moved to the day before its earliest date.

        Only where that day is still far enough from the session before it for every
        spacing rule of the protocol.
        """
        spacing = max(
            (r.min_days for r in protocol.rules if isinstance(r, SessionSpacing)), default=0
        )
        moves = []
        for previous, t in itertools.pairwise(Timeline.of(course).sessions):
            day = _time.add_months(previous.date, self.months) - dt.timedelta(days=1)
            if t.kind is Kind.BOOSTER and (day - previous.date).days >= spacing:
                moves.append((t, day))
        if not moves:
            return None
        target, day = choose.choice(moves)
        return _moved(course, target.session, day)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield findings for each booster too early or without a full series before it."""
        inductions = 0
        previous: TimedSession | None = None
        for t in timeline.sessions:
            if t.kind is Kind.INDUCTION:
                inductions += 1
            elif previous is None:
                yield self.finding(
                    (t,),
                    f"booster {t.label} has no session before it; a booster follows the "
                    "induction series",
                    f">= {self.min_induction} induction sessions before",
                    0,
                )
            else:
                if inductions < self.min_induction:
                    yield self.finding(
                        (t,),
                        f"booster {t.label} has {inductions} induction sessions before it; "
                        f"at least {self.min_induction} are required",
                        self.min_induction,
                        inductions,
                    )
                earliest = _time.add_months(previous.date, self.months)
                if t.date < earliest:
                    yield self.finding(
                        (t,),
                        f"booster {t.label} is {plural((earliest - t.date).days, 'day')} early: "
                        f"{previous.label} + {self.months} months is {earliest.isoformat()}",
                        earliest.isoformat(),
                        t.date.isoformat(),
                    )
            previous = t


def _presence_examples(
    kinds: frozenset[Kind], field: str, present: str, blank: str
) -> Sequence[WorkedCase]:
    # One held session of a kind the rule covers, with `field` recorded, then blank.
    kind = next(k for k in Kind if k in kinds)
    before = _examples.series(dt.date(2026, 5, 1), 6) if kind is Kind.BOOSTER else []
    start = _examples.at(_examples.DEC1, 9)

    def one(value: str) -> Course:
        last = _examples.session("s7", start, kind)
        changes: dict[str, Any] = {field: value}
        return _examples.course([*before, attrs.evolve(last, **changes)])

    return ((present, one("recorded")), (blank, one(" ")))


def _unrecorded(rule: Escort | Therapist, timeline: Timeline) -> Iterator[Finding]:
    # Escort and therapist alike: each held session of a kind the rule covers names
    # someone. Only whether a name is there is ever shown, never the name.
    field, article, why = rule.recorded
    for t in timeline.sessions:
        if t.planned or t.kind not in rule.kinds:
            continue
        name = getattr(t.session, field)
        if name is None or not name.strip():
            state = f"no {field} recorded" if name is None else f"a blank {field}"
            yield rule.finding(
                (t,),
                f"{t.label} has {state}; {why}",
                f"{article} {field}",
                None if name is None else "blank",
            )


@_builtin
@attrs.frozen(repr=False)
class Therapist(BaseRule):
    """Every held session records the psychotherapist who guided it.

    Args:
        kinds: The kinds of session the rule applies to (default: both).
        id: The rule's id (default ``"therapist-present"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "therapist-present"
    title: ClassVar[str] = "A trained psychotherapist guides each session"
    rationale: ClassVar[str] = (
        "The founding document has a trained psychotherapist guide the client through the "
        "treatment. A record can show only that someone was named: a held session whose "
        "therapist is missing or blank is a finding; a planned session is not, because it "
        "has not happened yet. The therapist's name is never shown. Whether the person is "
        "trained is for the clinic's staff records, not for kaprules."
    )
    source: ClassVar[Source] = Source(
        "A trained psychotherapist guides the client through the treatment",
        location="section 'The Impact of Ketamine Assisted Psychotherapy (KAP)', second sentence",
    )
    names: ClassVar[str] = "The session, one finding each."
    recorded: ClassVar[tuple[str, str, str]] = (
        "therapist",
        "a",
        "a psychotherapist guides each session",
    )
    """The session field, its article and why it is needed: read by every form of the rule."""

    kinds: frozenset[Kind] = (
        attrs.field(  # not parameter(): mypy reads the converter's type only from attrs.field
            default=frozenset(Kind),
            converter=_lenient_kinds,
            validator=KindSet(),
            kw_only=True,
            repr=_kinds_repr,
            metadata={"omit_default": True},
        )
    )

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every held {_scope(self.kinds)}session records a non-blank therapist, the "
            "psychotherapist who guided it. A planned session is exempt."
        )

    def examples(self) -> Sequence[WorkedCase]:
        """A therapist recorded, and a blank one."""
        return _presence_examples(
            self.kinds, "therapist", "a therapist recorded", "a blank therapist"
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Generated sessions always record a therapist."""
        return shape

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """One covered session's therapist missing or blank."""
        return _blanked(self, course, choose, protocol)

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each held session without a therapist."""
        return _unrecorded(self, timeline)


@_builtin
@attrs.frozen(repr=False)
class IntegrationFollowup(BaseRule):
    """Integration meetings follow a complete induction series within ``within_days``.

    Args:
        within_days: The last local date for the meetings, counted in days after the last
            induction session's local date (at most 36600). The founding document gives
            no number: 14 is kaprules' default, a clinic parameter.
        min_meetings: How many meetings at least (1 to 1000).
        id: The rule's id (default ``"integration-followup"``).
        severity: The severity of its findings.
    """

    default_id: ClassVar[str] = "integration-followup"
    title: ClassVar[str] = "Integration meetings after the treatments"
    rationale: ClassVar[str] = (
        "The founding document has integration meetings with the psychotherapist follow "
        "the treatments, but gives no number of days and no number of meetings: "
        "within_days (default 14) and min_meetings (default 1) are kaprules' defaults, for "
        "each clinic to set. The series is complete when it has as many induction sessions "
        "as the protocol's session-count rule asks (any number, when the protocol has no "
        "such rule); a series that is not complete is session-count's finding, not this "
        "rule's. Meetings count from the day after the last induction session's local date. "
        "A course evaluated with as_of is not faulted while there is still time."
    )
    source: ClassVar[Source] = Source(
        "Integration meetings with the psychotherapist after the treatments",
        location="section 'The Impact of Ketamine Assisted Psychotherapy (KAP)', third sentence",
    )
    names: ClassVar[str] = "The last induction session of the series."

    within_days: int = parameter(14, Bounds(1, _CENTURY_DAYS))
    min_meetings: int = parameter(1, Bounds(1, 1_000))

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Once the induction series is complete, at least "
            f"{plural(self.min_meetings, 'integration meeting')} "
            f"{'takes' if self.min_meetings == 1 else 'take'} place with a local date "
            f"after the last induction session's local date and on or before it + "
            f"{plural(self.within_days, 'day')}. With as_of, this is not a finding until the local "
            f"date of as_of is after that last day."
        )

    def examples(self) -> Sequence[WorkedCase]:
        """Meetings ending on the last allowed day, and one day later."""
        sessions = _examples.series(_examples.DEC1, 6)
        last = _examples.DEC1 + dt.timedelta(days=10)
        days = [last + dt.timedelta(days=self.within_days - k) for k in range(self.min_meetings)]

        def meetings(shift: int) -> Course:
            return _examples.course(
                sessions,
                [
                    Integration(_examples.at(d + dt.timedelta(days=shift), 15), f"i{n + 1}")
                    for n, d in enumerate(sorted(days))
                ],
            )

        n = plural(self.min_meetings, "meeting")
        return (
            (f"{n}, the last {plural(self.within_days, 'day')} after the series", meetings(0)),
            ("the same one day later", meetings(1)),
        )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        """Courses with ``min_meetings`` meetings within ``within_days`` of the series."""
        return attrs.evolve(
            shape,
            meetings=max(shape.meetings, self.min_meetings),
            meetings_within=min(shape.meetings_within, self.within_days),
        )

    def break_course(self, course: Course, choose: Choices, protocol: Any) -> Course | None:
        """Every integration meeting dropped (None when another such rule would see it)."""
        if not alone_of_its_class(self, protocol):
            return None
        return attrs.evolve(course, integrations=())

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding when too few meetings follow a complete series in time."""
        series = timeline.inductions
        if not series or (
            timeline.series_length is not None and len(series) < timeline.series_length
        ):
            return
        last = series[-1]
        closes = last.date + dt.timedelta(days=self.within_days)
        if timeline.as_of_date is not None and timeline.as_of_date <= closes:
            return
        held = sum(1 for m in timeline.integrations if last.date < m.date <= closes)
        if held < self.min_meetings:
            yield self.finding(
                (last,),
                f"the induction series ended with {last.label}; "
                f"{plural(held, 'integration meeting')} followed by {closes.isoformat()} "
                f"({plural(self.within_days, 'day')} after it), "
                f"at least {self.min_meetings} required",
                self.min_meetings,
                held,
            )


def _swapped(course: Course, old: Session, new: Session) -> Course:
    return attrs.evolve(course, sessions=[new if s is old else s for s in course.sessions])


def alone_of_its_class(rule: Any, protocol: Any) -> bool:
    """Whether no other rule of ``protocol`` is of ``rule``'s class (for ``break_course``).

    A mutation meant to trip one rule would trip its twin too (two `Escort` rules, say), so
    a rule with a twin cannot be broken alone.
    """
    return not any(r is not rule and type(r) is type(rule) for r in protocol.rules)


def session_changed(course: Course, session: Session, **changes: Any) -> Course:
    """A copy of ``course`` with one of its sessions changed (for ``break_course``).

    Args:
        course: The course.
        session: One of its sessions (the object itself).
        **changes: Fields of `Session` to change.

    Returns:
        The new course; the others sessions are the same objects, in the same order.
    """
    return _swapped(course, session, attrs.evolve(session, **changes))


def _moved(course: Course, session: Session, date: dt.date) -> Course | None:
    # The same wall time on another local date; the fast keeps its elapsed length. No move
    # to a date the zone skipped (Pacific/Apia's 2011-12-30): the course cannot be broken so.
    try:
        start = _time.at_local(date, course.local(session.start).time(), course.zone)
    except _time.NoSuchDay:
        return None
    fast = None if session.food_instant is None else session.instant - session.food_instant
    food = None if fast is None else _time.to_utc(start) - fast
    return _swapped(course, session, attrs.evolve(session, start=start, last_food=food))


def _covered(
    rule: Fasting | Escort | Therapist, course: Course, choose: Choices, protocol: Any
) -> Session | None:
    # A session of a kind this rule covers and no other rule of its class does, so that
    # the mutation trips this rule alone.
    kinds = set(rule.kinds)
    for other in protocol.rules:
        if other is not rule and type(other) is type(rule):
            kinds -= other.kinds
    covered = [s for s in course.sessions if s.kind in kinds]
    return choose.choice(covered) if covered else None


def _blanked(
    rule: Escort | Therapist, course: Course, choose: Choices, protocol: Any
) -> Course | None:
    target = _covered(rule, course, choose, protocol)
    if target is None:
        return None
    blank = choose.choice([None, "", " ", "\t\n", "\u3000"])
    changes: dict[str, Any] = {rule.recorded[0]: blank}
    return session_changed(course, target, **changes)
