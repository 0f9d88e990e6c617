"""The rules' vectorised forms: each built-in rule's findings as column operations.

A form states, over the sessions of many courses at once (`Columns`), at which sessions
its rule has a finding, with the finding's message, expected and actual values written
as the rule's ``__call__`` writes them. Forms are registered by rule class (`FORMS`): a
rule has one when the class whose ``__call__`` it runs has one, so a subclass that
changes ``__call__`` has none, and its courses go the per-record way. A differential test
holds every form's findings byte-identical to its rule's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from kaprules._columnar.columns import Columns, FindingForm
from kaprules._words import number, ordinal, plural
from kaprules.protocol import Protocol
from kaprules.rules import (
    BoosterInterval,
    Escort,
    Fasting,
    IntegrationFollowup,
    SessionCount,
    SessionSpacing,
    Therapist,
    TreatmentWindow,
)

__all__ = ["FORMS", "form_of", "forms_of", "supports", "unvectorised"]


def _session_count(rule: SessionCount, c: Columns) -> list[FindingForm]:
    """The vectorised form: one finding for a series longer or shorter than ``count``."""
    extra = c.induction & (c.inductions_before >= rule.count)
    many = c.inductions > rule.count
    few = c.text("the induction series has ", c.inductions, f" of {rule.count} sessions")
    # With as_of, a short series is a finding once its window closed before as_of:
    # at its first induction, where its date is known (none: no finding).
    given = c.as_of_date.is_not_null()
    closes = c.first_induction_date + (rule.window_days - 1)
    closed = c.induction & (c.inductions_before == 0) & (c.as_of_date > closes)
    return [
        c.finding(
            many & c.induction & (c.inductions_before == rule.count),
            c.text(
                "the induction series has ",
                c.inductions,
                " sessions, ",
                c.inductions - rule.count,
                f" more than the {rule.count} of the protocol: ",
                c.joined(extra, c.label),
                c.choose(c.inductions - rule.count == 1, " comes", " come"),
                f" after the {ordinal(rule.count)}",
            ),
            c.number(rule.count),
            c.number(c.inductions),
            sessions=extra,
        ),
        c.finding(
            (c.inductions < rule.count) & (~given & c.first | given & closed),
            c.choose(
                given,
                c.text(
                    few,
                    f" and its {rule.window_days}-day window closed on ",
                    c.iso(closes),
                    " (as of ",
                    c.iso(c.as_of_date),
                    ")",
                ),
                few,
            ),
            c.number(rule.count),
            c.number(c.inductions),
            sessions=None,
        ),
    ]


def _treatment_window(rule: TreatmentWindow, c: Columns) -> list[FindingForm]:
    """The vectorised form: a finding for each induction session after the window."""
    first = c.first_induction_date
    last = first + (rule.days - 1)
    return [
        c.finding(
            c.induction & (c.date > last),
            c.text(
                c.label,
                " is on day ",
                c.date - first + 1,
                f" of the induction series; the {rule.days}-day window that opened on ",
                c.iso(first),
                " closed on ",
                c.iso(last),
            ),
            c.string(c.iso(last)),
            c.string(c.iso(c.date)),
        )
    ]


def _session_spacing(rule: SessionSpacing, c: Columns) -> list[FindingForm]:
    """The vectorised form: a finding for each adjacent pair closer than ``min_days``."""
    gap = c.date - c.previous_date
    return [
        c.finding(
            ~c.first & (gap < rule.min_days),
            c.text(
                c.previous_label,
                " and ",
                c.label,
                " are ",
                c.days(gap),
                " apart",
                c.choose(gap == 0, " (same day)", c.choose(gap == 1, " (consecutive days)", "")),
                f"; sessions must be at least {plural(rule.min_days, 'day')} apart",
            ),
            c.number(rule.min_days),
            c.number(gap),
            sessions="pair",
        )
    ]


def _fasting(rule: Fasting, c: Columns) -> list[FindingForm]:
    """The vectorised form: a finding for each session with a missing or short fast."""
    limit, expected = rule.shortest_fast
    covered = c.of_kinds(rule.kinds)
    fast = c.utc - c.food  # whole seconds: the engine reads no fractions
    short = fast * 1_000_000 < limit // dt.timedelta(microseconds=1)
    detail = c.choose(
        fast < 0,
        c.text("the last food is recorded ", c.duration(-fast), " after the start"),
        c.text("the fast lasted ", c.duration(fast)),
    )
    return [
        c.finding(
            covered & c.food.is_null() & ~c.planned,
            c.text(c.label, " has no last_food recorded"),
            c.string(expected),
            c.null(),
        ),
        c.finding(
            covered & c.food.is_not_null() & short,
            c.text(c.label, ": ", detail, f"; at least {number(rule.hours)} h are required"),
            c.string(expected),
            c.string(c.iso_duration(fast)),
        ),
    ]


def _escort(rule: Escort, c: Columns) -> list[FindingForm]:
    """The vectorised form: a finding for each session without an escort."""
    return _unrecorded(rule, c)


def _booster_interval(rule: BoosterInterval, c: Columns) -> list[FindingForm]:
    """The vectorised form: the findings of each booster, as ``__call__`` makes them."""
    booster = ~c.induction
    earliest = c.add_months(c.previous_date, rule.months)
    return [
        c.finding(
            booster & c.first,
            c.text(
                "booster ",
                c.label,
                " has no session before it; a booster follows the induction series",
            ),
            c.string(f">= {rule.min_induction} induction sessions before"),
            c.number(0),
        ),
        c.finding(
            booster & ~c.first & (c.inductions_before < rule.min_induction),
            c.text(
                "booster ",
                c.label,
                " has ",
                c.inductions_before,
                f" induction sessions before it; at least {rule.min_induction} are required",
            ),
            c.number(rule.min_induction),
            c.number(c.inductions_before),
        ),
        c.finding(
            booster & ~c.first & (c.date < earliest),
            c.text(
                "booster ",
                c.label,
                " is ",
                c.days(earliest - c.date),
                " early: ",
                c.previous_label,
                f" + {rule.months} months is ",
                c.iso(earliest),
            ),
            c.string(c.iso(earliest)),
            c.string(c.iso(c.date)),
        ),
    ]


def _unrecorded(rule: Escort | Therapist, c: Columns) -> list[FindingForm]:
    # The vectorised form of _unrecorded, from the same words.
    field, article, why = rule.recorded
    name = getattr(c, field)
    covered = c.of_kinds(rule.kinds) & ~c.planned
    return [
        c.finding(
            covered & name.is_null(),
            c.text(c.label, f" has no {field} recorded; {why}"),
            c.string(f"{article} {field}"),
            c.null(),
        ),
        c.finding(
            covered & name.is_not_null() & c.blank(name),
            c.text(c.label, f" has a blank {field}; {why}"),
            c.string(f"{article} {field}"),
            c.string("blank"),
        ),
    ]


def _therapist(rule: Therapist, c: Columns) -> list[FindingForm]:
    """The vectorised form: a finding for each session without a therapist."""
    return _unrecorded(rule, c)


def _integration_followup(rule: IntegrationFollowup, c: Columns) -> list[FindingForm]:
    """The vectorised form: courses read there have no meetings, so a complete series is one."""
    complete = c.inductions > 0
    if c.series_length is not None:
        complete = complete & (c.inductions >= c.series_length)
    closes = c.date + rule.within_days
    # With as_of, not before the meetings' time is up (null: no as_of).
    over = c.as_of_date.is_null() | (c.as_of_date > closes)
    return [
        c.finding(
            complete & c.induction & (c.inductions_before == c.inductions - 1) & over,
            c.text(
                "the induction series ended with ",
                c.label,
                "; 0 integration meetings followed by ",
                c.iso(closes),
                f" ({plural(rule.within_days, 'day')} after it), "
                f"at least {rule.min_meetings} required",
            ),
            c.number(rule.min_meetings),
            c.number(0),
        )
    ]


FORMS: dict[type, Callable[[Any, Columns], list[FindingForm]]] = {
    SessionCount: _session_count,
    TreatmentWindow: _treatment_window,
    SessionSpacing: _session_spacing,
    Fasting: _fasting,
    Escort: _escort,
    BoosterInterval: _booster_interval,
    Therapist: _therapist,
    IntegrationFollowup: _integration_followup,
}
"""The vectorised form of each rule class that has one."""


def form_of(rule: object) -> Callable[[Any, Columns], list[FindingForm]] | None:
    """The vectorised form of ``rule``'s class (the one whose ``__call__`` it runs), or None."""
    owner = next((c for c in type(rule).__mro__ if "__call__" in c.__dict__), None)
    return FORMS.get(owner) if owner is not None else None


def supports(protocol: object) -> bool:
    """Whether every rule of ``protocol`` has a vectorised form (``as_of`` or not).

    A protocol without rules has none to evaluate as columns: its courses go per record;
    so do those of several versions of a protocol.
    """
    if not isinstance(protocol, Protocol):
        return False
    rules = protocol.rules
    return bool(rules) and all(form_of(rule) is not None for rule in rules)


def forms_of(protocol: Protocol, columns: Columns) -> list[tuple[int, FindingForm]]:
    """(rule index, finding form) of every vectorised finding of the protocol's rules."""
    found: list[tuple[int, FindingForm]] = []
    for index, rule in enumerate(protocol.rules):
        form = form_of(rule)
        assert form is not None  # see supports
        found.extend((index, each) for each in form(rule, columns))
    return found


def unvectorised(missing: Sequence[str]) -> str:
    """Why an audit goes course by course: the ids of the rules without a vectorised form."""
    if not missing:
        return "the protocol has no rule to evaluate as columns: every course goes course by course"
    named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return (
        f"rule{'s' if len(missing) > 1 else ''} {named} "
        f"{'have' if len(missing) > 1 else 'has'} no vectorised form: every course goes "
        "course by course"
    )
