"""The rules of a protocol: small frozen validators with their own documentation.

Each rule is an attrs class that holds its parameters and is called with a
[`Timeline`][kaprules.Timeline] to yield [`Finding`][kaprules.Finding] objects. It also
carries what an auditor needs: a title, a statement rendered from its actual parameter
values, a rationale, and the source sentence it encodes.

Any object with the members of [`Rule`][kaprules.Rule] is a rule: a protocol takes it
without registration.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from kaprules import _time
from kaprules.errors import ProtocolError
from kaprules.model import Kind
from kaprules.report import Finding, JSONValue, Severity, to_severity
from kaprules.timeline import TimedSession, Timeline

__all__ = [
    "BUILTIN_RULES",
    "FOUNDING_DOCUMENT",
    "BoosterInterval",
    "Escort",
    "Fasting",
    "Rule",
    "SessionCount",
    "SessionSpacing",
    "Source",
    "TreatmentWindow",
]

FOUNDING_DOCUMENT = "'The Power of Ketamine Assisted Psychotherapy', a clinic's blog post"
"""The document the standard protocol's rules are quoted from."""


@attrs.frozen
class Source:
    """Where a rule's requirement comes from.

    Attributes:
        quote: The sentence (or the part of it) the rule encodes, word for word.
        document: The document quoted.
        location: Where the quote stands in the document.
    """

    quote: str
    document: str = FOUNDING_DOCUMENT
    location: str = ""


@runtime_checkable
class Rule(Protocol):
    """The interface every rule follows; a protocol needs nothing else.

    Write a rule as a frozen attrs class (or any class) with these members. kaprules'
    own rules are built this way; see the guide for one written from scratch.
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

    def parameters(self) -> dict[str, JSONValue]:
        """The rule's parameters as plain data, keyword arguments of its class."""

    def __call__(self, timeline: Timeline) -> Iterable[Finding]:
        """Yield a finding for each breach of the rule in ``timeline``."""


# Upper bounds keep every rule's date arithmetic inside datetime's range for instants in
# the supported years (see _time.MAX_YEAR): a century of days or months, a year of hours.
_CENTURY_DAYS = 36_600
_CENTURY_MONTHS = 1_200
_YEAR_HOURS = 8_784


def _whole(minimum: int, maximum: int | None = None) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise ProtocolError(
                f"{type(instance).__name__}.{attribute.name} must be a whole number "
                f"{bound}, got {value!r}"
            )

    return check


def _hours(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= _YEAR_HOURS
    ):
        raise ProtocolError(
            f"{type(instance).__name__}.{attribute.name} must be a number of hours from 0 to "
            f"{_YEAR_HOURS}, got {value!r}"
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


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _number(value: float) -> str:
    return f"{value:g}"


@attrs.frozen
class _StandardRule:
    # Shared plumbing of kaprules' own rules; user rules need not inherit it.
    id: ClassVar[str]
    title: ClassVar[str]
    rationale: ClassVar[str]
    source: ClassVar[Source]
    names: ClassVar[str]

    severity: Severity = attrs.field(
        default=Severity.ERROR, converter=to_severity, kw_only=True, repr=lambda s: repr(s.value)
    )

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        raise NotImplementedError

    def parameters(self) -> dict[str, JSONValue]:
        """The rule's parameters as plain data (severity is kept apart).

        Returns:
            Parameter names and values, keyword arguments of the rule's class.
        """
        return {
            a.name: getattr(self, a.name) for a in attrs.fields(type(self)) if a.name != "severity"
        }

    def _finding(
        self,
        sessions: Iterable[TimedSession],
        message: str,
        expected: JSONValue = None,
        actual: JSONValue = None,
    ) -> Finding:
        return Finding(
            self.id, self.severity, tuple(t.id for t in sessions), message, expected, actual
        )


@attrs.frozen
class SessionCount(_StandardRule):
    """The induction series has ``count`` sessions; more or fewer is a finding.

    Args:
        count: How many induction sessions the series has.
        window_days: Days from the first induction session (counted as day 1) within which
            an unfinished series may still be completed when ``as_of`` is given (at most
            36600).
        severity: The severity of its findings.
    """

    id: ClassVar[str] = "session-count"
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

    count: int = attrs.field(default=6, validator=_whole(1))
    window_days: int = attrs.field(default=14, validator=_whole(1, _CENTURY_DAYS))

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

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for a series longer or shorter than ``count``."""
        series = timeline.inductions
        n = len(series)
        if n > self.count:
            extra = series[self.count :]
            yield self._finding(
                extra,
                f"the induction series has {n} sessions, {n - self.count} more than the "
                f"{self.count} of the protocol: "
                + ", ".join(t.label for t in extra)
                + f" come after the {self.count}th",
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
            yield self._finding((), message, self.count, n)


@attrs.frozen
class TreatmentWindow(_StandardRule):
    """Every induction session falls within ``days`` calendar days of the first.

    Args:
        days: The window's length in local calendar days, the first induction date being
            day 1 (Dec 1 opens a 14-day window that ends Dec 14); at most 36600.
        severity: The severity of its findings.
    """

    id: ClassVar[str] = "treatment-window"
    title: ClassVar[str] = "Treatment window of the induction series"
    rationale: ClassVar[str] = (
        "The protocol gives the induction series a fixed period. The period is counted in "
        "local calendar days of the clinic, starting on the date of the first induction "
        "session, which counts as day 1."
    )
    source: ClassVar[Source] = SessionCount.source
    names: ClassVar[str] = "Each induction session outside the window, one finding each."

    days: int = attrs.field(default=14, validator=_whole(1, _CENTURY_DAYS))

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every induction session's local date is on or before the first induction date "
            f"+ {self.days - 1} days: the series fits in {_days(self.days)}, the first "
            f"induction date being day 1 (a series that starts on Dec 1 ends by Dec "
            f"{self.days})."
            if self.days <= 31
            else f"Every induction session's local date is on or before the first induction "
            f"date + {self.days - 1} days: the series fits in {_days(self.days)}, the first "
            f"induction date being day 1."
        )

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each induction session after the window."""
        series = timeline.inductions
        if not series:
            return
        first = series[0].date
        last = first + dt.timedelta(days=self.days - 1)
        for t in series:
            if t.date > last:
                yield self._finding(
                    (t,),
                    f"{t.label} is on day {(t.date - first).days + 1} of the induction series; "
                    f"the {self.days}-day window that opened on {first.isoformat()} closed on "
                    f"{last.isoformat()}",
                    last.isoformat(),
                    t.date.isoformat(),
                )


@attrs.frozen
class SessionSpacing(_StandardRule):
    """Adjacent sessions are at least ``min_days`` local calendar days apart.

    Args:
        min_days: The fewest days between the local dates of two sessions adjacent in start
            order (at most 36600). With 2, sessions on the same day or on consecutive days
            are findings.
        severity: The severity of its findings.
    """

    id: ClassVar[str] = "session-spacing"
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

    min_days: int = attrs.field(default=2, validator=_whole(1, _CENTURY_DAYS))

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        text = (
            f"Any two sessions adjacent in start order, of any kind, are at least "
            f"{_days(self.min_days)} apart: the difference of their local dates is "
            f"{self.min_days} or more."
        )
        if self.min_days == 2:
            text += " Sessions on the same day or on consecutive days are findings."
        return text

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each adjacent pair closer than ``min_days``."""
        for a, b in itertools.pairwise(timeline.sessions):
            gap = (b.date - a.date).days
            if gap < self.min_days:
                yield self._finding(
                    (a, b),
                    f"{a.label} and {b.label} are {_days(gap)} apart"
                    + (" (same day)" if gap == 0 else " (consecutive days)" if gap == 1 else "")
                    + f"; sessions must be at least {_days(self.min_days)} apart",
                    self.min_days,
                    gap,
                )


@attrs.frozen
class Fasting(_StandardRule):
    """At least ``hours`` of elapsed time pass between the last food and the start.

    Args:
        hours: The shortest fast, in hours of real elapsed time (a DST change counts as it
            happens), from 0 to 8784 (a leap year). Exactly ``hours`` passes.
        severity: The severity of its findings.
    """

    id: ClassVar[str] = "fasting"
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

    hours: float = attrs.field(default=4, validator=_hours)

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        h = _number(self.hours)
        return (
            f"Every session records last_food, and at least {h} hours of elapsed time pass from "
            f"last_food to the start (exactly {h} h passes; food after the start does not). "
            f"A missing last_food is a finding unless the session is planned."
        )

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each session with a missing or short fast."""
        limit = dt.timedelta(hours=self.hours)
        expected = _iso_duration(limit)
        for t in timeline.sessions:
            food = t.session.food_instant
            if food is None:
                if not t.planned:
                    yield self._finding(
                        (t,), f"{t.label} has no last_food recorded", expected, None
                    )
                continue
            fast = t.instant - food
            if fast < limit:
                if fast < dt.timedelta(0):
                    detail = (
                        f"the last food is recorded {_time.format_duration(-fast)} after the start"
                    )
                else:
                    detail = f"the fast lasted {_time.format_duration(fast)}"
                yield self._finding(
                    (t,),
                    f"{t.label}: {detail}; at least {_number(self.hours)} h are required",
                    expected,
                    _iso_duration(fast),
                )


@attrs.frozen
class Escort(_StandardRule):
    """Every session records someone to drive the patient home.

    Args:
        severity: The severity of its findings.
    """

    id: ClassVar[str] = "escort"
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

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            "Every session records a non-blank escort, the person who drives the patient home. "
            "A missing or blank escort is a finding unless the session is planned."
        )

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield a finding for each session without an escort."""
        for t in timeline.sessions:
            escort = t.session.escort
            if (escort is None or not escort.strip()) and not t.planned:
                state = "no escort recorded" if escort is None else "a blank escort"
                yield self._finding(
                    (t,),
                    f"{t.label} has {state}; someone must drive the patient home",
                    "an escort",
                    None if escort is None else "blank",
                )


@attrs.frozen
class BoosterInterval(_StandardRule):
    """A booster follows a full induction series, ``months`` after the session before it.

    Args:
        months: The fewest calendar months from the local date of the previous session
            (of any kind) to the booster's, at most 1200. The day is kept and clamped to the
            month's end.
        min_induction: The fewest induction sessions before a booster.
        severity: The severity of its findings.
    """

    id: ClassVar[str] = "booster-interval"
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

    months: int = attrs.field(default=6, validator=_whole(1, _CENTURY_MONTHS))
    min_induction: int = attrs.field(default=6, validator=_whole(0))

    @property
    def statement(self) -> str:
        """What the rule requires, with its actual parameter values."""
        return (
            f"Every booster has at least {self.min_induction} induction sessions and at least "
            f"one session before it, and its local date is on or after the local date of the "
            f"session just before it + {self.months} months (day kept, clamped to the month's "
            f"last day)."
        )

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        """Yield findings for each booster too early or without a full series before it."""
        inductions = 0
        previous: TimedSession | None = None
        for t in timeline.sessions:
            if t.kind is Kind.INDUCTION:
                inductions += 1
            elif previous is None:
                yield self._finding(
                    (t,),
                    f"booster {t.label} has no session before it; a booster follows the "
                    "induction series",
                    f">= {self.min_induction} induction sessions before",
                    0,
                )
            else:
                if inductions < self.min_induction:
                    yield self._finding(
                        (t,),
                        f"booster {t.label} has {inductions} induction sessions before it; "
                        f"at least {self.min_induction} are required",
                        self.min_induction,
                        inductions,
                    )
                earliest = _time.add_months(previous.date, self.months)
                if t.date < earliest:
                    yield self._finding(
                        (t,),
                        f"booster {t.label} is {_days((earliest - t.date).days)} early: "
                        f"{previous.label} + {self.months} months is {earliest.isoformat()}",
                        earliest.isoformat(),
                        t.date.isoformat(),
                    )
            previous = t


BUILTIN_RULES: Mapping[str, type[Rule]] = {
    cls.id: cls
    for cls in (SessionCount, TreatmentWindow, SessionSpacing, Fasting, Escort, BoosterInterval)
}
"""kaprules' own rule classes, by id (what `Protocol.from_dict` knows without being told)."""
