"""Auditor text: what each rule requires, rendered from the rule objects themselves.

[`explain`][kaprules.explain] renders one rule as Markdown: its statement with the actual
parameter values, a parameters table, the rationale, the source it encodes, which sessions
a finding names, and two worked examples evaluated by the rule at the moment of rendering.
``kaprules explain RULE_ID`` prints this text, and the documentation's rules page is built
from it, so neither can drift from the code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import attrs

from kaprules import _time
from kaprules.model import Course, Kind, Session
from kaprules.protocol import STANDARD, Protocol, evaluate
from kaprules.report import Report
from kaprules.rules import (
    BoosterInterval,
    Escort,
    Fasting,
    Rule,
    SessionCount,
    SessionSpacing,
    TreatmentWindow,
)

__all__ = ["WorkedExample", "explain", "rules_page", "worked_examples"]

_ZONE = "America/Denver"


@attrs.frozen
class WorkedExample:
    """A course shown with what one rule, evaluated alone, finds in it.

    Attributes:
        title: What the example shows.
        course: The course.
        report: The report of a protocol holding only the rule.
    """

    title: str
    course: Course
    report: Report


def _at(date: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return _time.at_local(date, dt.time(hour, minute), _time.zone(_ZONE))


def _series(first: dt.date, n: int, step: int = 2) -> list[Session]:
    return [_session(f"s{i + 1}", _at(first + dt.timedelta(days=step * i), 9)) for i in range(n)]


def _session(
    sid: str,
    start: dt.datetime,
    kind: Kind = Kind.INDUCTION,
    fast: dt.timedelta = dt.timedelta(hours=6),
    escort: str | None = "recorded",
    last_food: dt.datetime | None = None,
) -> Session:
    food = last_food if last_food is not None else _time.to_utc(start) - fast
    return Session(start, kind, sid, food, escort)


def _cases(rule: Rule) -> tuple[tuple[str, list[Session]], tuple[str, list[Session]]] | None:
    dec1 = dt.date(2026, 12, 1)
    if isinstance(rule, SessionCount):
        return (
            (f"{rule.count} induction sessions", _series(dec1, rule.count)),
            (f"{rule.count + 1} induction sessions", _series(dec1, rule.count + 1)),
        )
    if isinstance(rule, TreatmentWindow):
        last = dec1 + dt.timedelta(days=rule.days - 1)
        return (
            (
                f"the last session on day {rule.days} ({last.isoformat()})",
                [_session("s1", _at(dec1, 9)), _session("s2", _at(last, 9))],
            ),
            (
                f"the last session on day {rule.days + 1}",
                [_session("s1", _at(dec1, 9)), _session("s2", _at(last + dt.timedelta(days=1), 9))],
            ),
        )
    if isinstance(rule, SessionSpacing):
        # Late evening, then just after midnight: hours do not count, local dates do.
        def pair(days: int) -> list[Session]:
            return [
                _session("s1", _at(dec1, 23, 30)),
                _session("s2", _at(dec1 + dt.timedelta(days=days), 0, 30)),
            ]

        return (
            (
                f"{rule.min_days} local dates apart, 25 hours between the starts",
                pair(rule.min_days),
            ),
            (f"{rule.min_days - 1} local dates apart", pair(rule.min_days - 1)),
        )
    if isinstance(rule, Fasting):
        # Across Denver's spring-forward change: the wall clock shows an hour more.
        food = _time.to_utc(_at(dt.date(2027, 3, 14), 0, 30))
        limit = dt.timedelta(hours=rule.hours)

        def fasted(elapsed: dt.timedelta) -> list[Session]:
            start = (food + elapsed).astimezone(_time.zone(_ZONE))
            return [_session("s1", start, last_food=food.astimezone(_time.zone(_ZONE)))]

        return (
            (f"exactly {rule.hours:g} h of elapsed time across a DST change", fasted(limit)),
            ("one minute less", fasted(limit - dt.timedelta(minutes=1))),
        )
    if isinstance(rule, Escort):
        return (
            ("an escort recorded", [_session("s1", _at(dec1, 9))]),
            ("a blank escort", [_session("s1", _at(dec1, 9), escort=" ")]),
        )
    if isinstance(rule, BoosterInterval):
        last = dt.date(2026, 8, 31)
        first = last - dt.timedelta(days=2 * (rule.min_induction - 1))
        series = _series(first, rule.min_induction) if rule.min_induction else []
        previous = last if series else first
        if not series:
            series = [_session("s1", _at(previous, 9))]
        earliest = _time.add_months(previous, rule.months)

        def booster(date: dt.date) -> list[Session]:
            return [*series, _session("b1", _at(date, 9), Kind.BOOSTER)]

        return (
            (
                f"a booster on {earliest.isoformat()}, the session before + {rule.months} months",
                booster(earliest),
            ),
            ("the same booster one day earlier", booster(earliest - dt.timedelta(days=1))),
        )
    return None


def worked_examples(rule: Rule) -> Sequence[WorkedExample]:
    """A passing and a failing course for one of kaprules' own rules, as the rule judges them.

    The courses are built from the rule's actual parameters, at the boundary of what it
    allows, and evaluated by a protocol holding only this rule.

    Args:
        rule: The rule.

    Returns:
        Two examples (passing first), or none for a rule kaprules does not know.
    """
    cases = _cases(rule)
    if cases is None:
        return ()
    alone = Protocol(f"{rule.id}-alone", "1", [rule])
    examples = []
    for title, sessions in cases:
        course = Course(_ZONE, sessions)
        examples.append(WorkedExample(title, course, evaluate(course, alone)))
    return tuple(examples)


def _course_table(course: Course) -> list[str]:
    rows = [
        "| session | kind | local start | last food | escort |",
        "|---|---|---|---|---|",
    ]
    for s in course.sessions:
        food = (
            "not recorded" if s.last_food is None else _time.format_local(course.local(s.last_food))
        )
        escort = (
            "missing" if s.escort is None else ("blank" if not s.escort.strip() else "recorded")
        )
        start = _time.format_local(course.local(s.start))
        rows.append(f"| {s.id} | {s.kind} | {start} | {food} | {escort} |")
    return rows


def _value(value: object) -> str:
    return f"`{json.dumps(value)}`"


def explain(rule: Rule, *, anchor: bool = False) -> str:
    """The auditor text of one rule, as Markdown.

    Args:
        rule: The rule, one of kaprules' own or any object following [`Rule`][kaprules.Rule].
        anchor: Give the heading an ``{#rule-id}`` anchor (for the documentation site).

    Returns:
        The text: statement, parameters, rationale, source, named sessions and, for
        kaprules' own rules, two worked examples with their real findings.
    """
    heading = f"## `{rule.id}`: {rule.title}" + (f" {{#{rule.id}}}" if anchor else "")
    params = rule.parameters()
    lines = [heading, "", f"**Requirement.** {rule.statement}", "", "**Parameters.**", ""]
    lines += ["| parameter | value |", "|---|---|"]
    lines += [f"| `{name}` | {_value(value)} |" for name, value in params.items()]
    lines += [f"| `severity` | {_value(rule.severity.value)} |", ""]
    lines += [f"**Rationale.** {rule.rationale}", ""]
    source = rule.source
    lines += [
        f"**Source.** {source.document}, {source.location}:"
        if source.location
        else f"**Source.** {source.document}:",
        "",
        f"> {source.quote}",
        "",
        f"**Sessions a finding names.** {rule.names}",
        "",
    ]
    for example, verdict in zip(worked_examples(rule), ("Passing", "Failing"), strict=False):
        lines += [
            f"**{verdict} example: {example.title}.**",
            "",
            *_course_table(example.course),
            "",
        ]
        if not example.report.findings:
            lines += ["No finding.", ""]
        for finding in example.report.findings:
            lines += [
                "```json",
                json.dumps(finding.to_dict(), indent=2, ensure_ascii=False),
                "```",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def rules_page(protocol: Protocol = STANDARD) -> str:
    """Every rule of ``protocol`` explained, with anchors, for the documentation site.

    Args:
        protocol: The protocol; kap-standard v1 by default.

    Returns:
        Markdown: one section per rule, in the protocol's order.
    """
    return "\n".join(explain(rule, anchor=True) for rule in protocol.rules)
