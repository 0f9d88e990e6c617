"""Evaluation: every rule of a protocol over a course's timeline, collected into a report.

[`evaluate`][kaprules.evaluate] is the middle of the data flow: a built
[`Course`][kaprules.Course] is placed on a [`Timeline`][kaprules.Timeline] once, each rule
of the [`Protocol`][kaprules.Protocol] yields its [`Finding`][kaprules.Finding]s, and a
[`Report`][kaprules.Report] lists them in a deterministic order. The engine that does the work
is `kaprules._judging`, below the protocols (whose `evaluate` methods call it too);
scheduling and audits call its pieces, importable from here as well, instead of copies of
them: `evaluate_timeline` for a timeline already made (a booking check plans the proposed
session), `findings_of` without a report (an audit's hot path).
"""

from __future__ import annotations

import datetime as dt

from kaprules._judging import COURSE_RULES as COURSE_RULES
from kaprules._judging import NO_VERSION as NO_VERSION
from kaprules._judging import check_course as check_course
from kaprules._judging import evaluate_timeline as evaluate_timeline
from kaprules._judging import evaluate_version, evaluate_versions
from kaprules._judging import findings_of as findings_of
from kaprules._judging import judged as judged
from kaprules._judging import versioned_findings as versioned_findings
from kaprules._judging import versioned_report as versioned_report
from kaprules.errors import InputError
from kaprules.model import Course
from kaprules.protocol import STANDARD, Protocol, ProtocolVersions
from kaprules.report import Report

__all__ = ["evaluate"]


def evaluate(
    course: Course,
    protocol: Protocol | ProtocolVersions = STANDARD,
    *,
    as_of: dt.datetime | dt.date | None = None,
) -> Report:
    """Evaluate every rule of ``protocol`` on ``course`` and collect all findings.

    The course's waivers are then judged: a finding a valid waiver covers is marked
    waived, and a waiver that cannot be accepted becomes a ``waiver`` finding (see
    [Waivers and versions](waivers.md)).

    Args:
        course: The course.
        protocol: The protocol, kap-standard v1 by default; or `ProtocolVersions`, whose
            version in force on each session's local date judges it.
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
    if isinstance(protocol, ProtocolVersions):
        return evaluate_versions(course, protocol, as_of)
    return evaluate_version(course, protocol, as_of)


def check_protocol(protocol: object) -> None:
    """Refuse anything but a `Protocol`.

    Raises:
        InputError: ``protocol`` is not a Protocol.
    """
    if not isinstance(protocol, Protocol | ProtocolVersions):
        raise InputError(f"protocol: must be a Protocol, got {type(protocol).__name__}")
