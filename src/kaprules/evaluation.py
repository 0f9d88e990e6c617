"""Evaluation: every rule of a protocol over a course's timeline, collected into a report.

[`evaluate`][kaprules.evaluate] is the middle of the data flow: a built
[`Course`][kaprules.Course] is placed on a [`Timeline`][kaprules.Timeline] once, each rule
of the [`Protocol`][kaprules.Protocol] yields its [`Finding`][kaprules.Finding]s, and a
[`Report`][kaprules.Report] lists them in a deterministic order. Scheduling and audits call
the pieces below instead of copies of them: `evaluate_timeline` for a timeline already
made (a booking check plans the proposed session), `findings_of` without a report (an
audit's hot path).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kaprules._version import __version__
from kaprules.errors import InputError, KapRulesError, Problem, ProtocolError, echo, shown_id
from kaprules.model import Course
from kaprules.protocol import STANDARD, Protocol
from kaprules.report import Finding, Report
from kaprules.timeline import Timeline

__all__ = ["evaluate"]


def evaluate(
    course: Course,
    protocol: Protocol = STANDARD,
    *,
    as_of: dt.datetime | dt.date | None = None,
) -> Report:
    """Evaluate every rule of ``protocol`` on ``course`` and collect all findings.

    Args:
        course: The course.
        protocol: The protocol; kap-standard v1 by default.
        as_of: None to treat the record as final (nothing is planned). Otherwise the
            moment of evaluation: an aware datetime (sessions starting after it are
            planned) or a date, read as a local date in the course timezone (sessions on
            later dates are planned).

    Returns:
        The report, with findings in a deterministic order.

    Raises:
        InputError: ``course`` is not a Course, or ``as_of`` is naive or of a wrong type.
    """
    check_course(course)
    check_protocol(protocol)
    timeline = Timeline.of(course, as_of, series_length=protocol.series_length)
    return evaluate_timeline(timeline, protocol)


def check_course(course: object) -> None:
    """Refuse anything but a `Course`: the argument check of `evaluate` and scheduling.

    Raises:
        InputError: ``course`` is not a Course.
    """
    if not isinstance(course, Course):
        raise InputError(
            f"course: must be a Course, got {type(course).__name__}; read JSON with "
            "kaprules.parse_course or kaprules.load_course"
        )


def check_protocol(protocol: object) -> None:
    """Refuse anything but a `Protocol`.

    Raises:
        InputError: ``protocol`` is not a Protocol.
    """
    if not isinstance(protocol, Protocol):
        raise InputError(f"protocol: must be a Protocol, got {type(protocol).__name__}")


def evaluate_timeline(timeline: Timeline, protocol: Protocol) -> Report:
    """Evaluate ``protocol`` on a course already placed on a timeline.

    The booking check uses it to evaluate a timeline whose proposed session is planned.
    """
    return Report(
        protocol.id,
        protocol.version,
        findings_of(timeline, protocol),
        None if timeline.as_of is None else timeline.as_of.isoformat(),
        __version__,
        protocol.derived_from,
    )


def findings_of(timeline: Timeline, protocol: Protocol) -> tuple[Finding, ...]:
    """Every finding of ``protocol``'s rules on ``timeline``, in report order."""
    found: list[tuple[int, Finding]] = []
    for index, rule in enumerate(protocol.rules):
        try:
            for finding in rule(timeline):
                if not isinstance(finding, Finding):
                    raise _Misbehaved(f"yielded a {type(finding).__name__}, not a Finding")
                found.append((index, finding))
        except KapRulesError:
            raise
        except Exception as exc:  # a user's rule may raise anything: name it and the course
            raise ProtocolError(
                Problem(
                    ("rules", index),
                    f"rule {echo(rule.id)} ({type(rule).__name__}) failed on "
                    f"{_course_name(timeline.course)}: "
                    + (str(exc) if isinstance(exc, _Misbehaved) else type(exc).__name__),
                    "rule-failed",
                )
            ) from None
    if len(found) > 1:
        position = {t.id: t.position for t in timeline.sessions}

        def order(item: tuple[int, Finding]) -> tuple[Any, ...]:
            index, f = item
            places = tuple(position.get(s, -1) for s in f.sessions)
            return (places[:1] or (-1,), index, places, f.message)

        found.sort(key=order)
    return tuple(f for _, f in found)


class _Misbehaved(Exception):
    """A rule returned something that is not a finding."""


def _course_name(course: Course) -> str:
    # By id and size only: never patient or escort text.
    named = f"course {shown_id(course.id)}" if course.id is not None else "a course"
    return f"{named} of {len(course.sessions)} sessions"
