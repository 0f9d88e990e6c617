"""Waivers: a clinician's accepted exceptions to a rule, judged against the protocol.

A course carries [`Waiver`][kaprules.Waiver]s; a protocol says which of its rules may be
waived (a rule's ``waivable``) and which reason codes it accepts (`REASONS`, extended by a
protocol's ``reasons``). After the rules have run, `judge` marks each finding a valid
waiver covers as waived, and turns each waiver that cannot be accepted into a ``waiver``
finding of its own, which waives nothing.

A waiver covers a finding when both name the same rule and the finding's sessions are all
among the waiver's (a finding about the course as a whole, naming no session, is covered
only by a waiver naming none). It is valid when its rule is in the protocol and
waivable, every session it names is in the course, it has a reason from the vocabulary and
an approver, and it was approved at or before the evaluation's ``as_of`` (on or before
its local date, for a date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

import attrs

from kaprules import _time, report
from kaprules.errors import echo
from kaprules.model import Course, Waiver
from kaprules.report import Finding, Help, Severity

__all__ = ["REASONS"]

WAIVER_RULE = "waiver"
"""The id of the finding a waiver that cannot be accepted becomes."""

REASONS: Mapping[str, str] = MappingProxyType(
    {
        "clinic-closed": "The clinic was closed on the day the protocol asked for.",
        "clinical-judgement": "The clinician judged the exception right for this patient.",
        "patient-refuses": "The patient declined what the rule asks for.",
        "risk-benefit-ratio": "Following the rule would carry more risk than benefit here.",
        "service-not-available": "What the rule asks for could not be provided in time.",
    }
)
"""The reason codes every protocol accepts, with their meanings.

``patient-refuses``, ``risk-benefit-ratio`` and ``service-not-available`` follow the
non-adherence reasons of CDS Hooks' override taxonomy; ``clinical-judgement`` and
``clinic-closed`` are kaprules' own. A protocol adds codes of its own with ``reasons``."""


Policy = Callable[[Waiver], tuple[frozenset[str], frozenset[str], frozenset[str], str | None]]
"""For a waiver: the rules of its protocol version, those it lets be waived, the reason
codes it accepts, and the version's name."""


def judge(
    findings: Iterable[Finding],
    course: Course,
    waivable: Callable[[Finding], bool],
    policy: Policy,
    as_of: dt.datetime | dt.date | None,
) -> tuple[list[Finding], list[Finding]]:
    """The findings with each covered one waived, and the invalid waivers' findings.

    Args:
        findings: The rules' findings.
        course: The course, whose waivers are judged.
        waivable: Whether the protocol version that judged a finding lets its rule be
            waived.
        policy: What the protocol version in force for a waiver allows (see `Policy`).
        as_of: The evaluation's ``as_of``, or None.

    Returns:
        ``(findings, invalid)``: the findings in their order, those covered waived; and a
        ``waiver`` finding (an error) for each waiver that cannot be accepted.
    """
    found = list(findings)
    if not course.waivers:
        return found, []
    sessions = {s.id for s in course.sessions}
    ordered = sorted(course.sessions, key=lambda s: (s.instant, s.id or ""))
    valid: list[Waiver] = []
    invalid: list[Finding] = []
    for index, waiver in enumerate(course.waivers):
        known, rules, reasons, version = policy(waiver)
        problem = _problem(waiver, sessions, known, rules, reasons, as_of, course)
        if problem is None:
            valid.append(waiver)
            continue
        invalid.append(
            Finding(
                WAIVER_RULE,
                Severity.ERROR,
                tuple(s.id for s in ordered if s.id in set(waiver.sessions)),
                f"waiver {index + 1} (of rule {echo(waiver.rule)}) waives nothing: {problem}",
                None,
                None,
                help=Help(f"{report.DOCS_URL}waivers/#what-makes-a-waiver-valid"),
                protocol_version=version,
            )
        )
    if not valid:
        return found, invalid
    for position, finding in enumerate(found):
        if finding.waiver is not None or not waivable(finding):
            continue
        for waiver in valid:
            if waiver.rule == finding.rule and _covers(waiver, finding):
                found[position] = attrs.evolve(finding, waiver=waiver)
                break
    return found, invalid


def _covers(waiver: Waiver, finding: Finding) -> bool:
    if not finding.sessions:
        return not waiver.sessions
    return set(finding.sessions).issubset(waiver.sessions)


def _problem(
    waiver: Waiver,
    sessions: set[str | None],
    known: frozenset[str],
    rules: frozenset[str],
    reasons: frozenset[str],
    as_of: dt.datetime | dt.date | None,
    course: Course,
) -> str | None:
    # The first reason a waiver cannot be accepted, in the order an auditor checks it.
    if waiver.rule not in known:
        return "the protocol has no such rule"
    if waiver.rule not in rules:
        return "the protocol does not let this rule be waived"
    missing = [s for s in waiver.sessions if s not in sessions]
    if missing:
        shown = ", ".join(echo(s) for s in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return f"the course has no session {shown}{more}"
    if waiver.reason is None or not waiver.reason.strip():
        return "it gives no reason"
    if waiver.reason not in reasons:
        return f"its reason {echo(waiver.reason)} is not in the protocol's vocabulary"
    if waiver.approved_by is None or not waiver.approved_by.strip():
        return "it names no approver"
    if waiver.approved_at is None:
        return "it has no approval time"
    if as_of is not None and _after(waiver.approved_at, as_of, course):
        return "it was approved after the evaluation's as_of"
    return None


def _after(approved: dt.datetime, as_of: dt.datetime | dt.date, course: Course) -> bool:
    if isinstance(as_of, dt.datetime):
        return _time.to_utc(approved) > _time.to_utc(as_of)
    return course.local(approved).date() > as_of
