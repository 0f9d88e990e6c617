"""Judging: a protocol's rules over a course's timeline, into findings, waivers judged.

The engine of [`evaluate`][kaprules.evaluate], below the protocols it runs: `Protocol.evaluate`
and `ProtocolVersions.evaluate` call it as `kaprules.evaluation.evaluate` does, so neither
imports a module above its own. It reads a protocol only through the two small interfaces
below (`Version`, `Versions`), which `Protocol` and `ProtocolVersions` meet. Scheduling and
audits call its pieces instead of copies of them: `evaluate_timeline` for a timeline already
made (a booking check plans the proposed session), `findings_of` without a report (an
audit's hot path); they are importable from `kaprules.evaluation` as well.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from kaprules import report
from kaprules._version import __version__
from kaprules.errors import InputError, KapRulesError, Problem, ProtocolError, echo, shown_id
from kaprules.model import Course, Waiver
from kaprules.report import Finding, Help, Report, Severity
from kaprules.rules import Rule
from kaprules.timeline import Timeline
from kaprules.waivers import judge

__all__ = [
    "COURSE_RULES",
    "NO_VERSION",
    "Version",
    "Versions",
    "check_course",
    "evaluate_timeline",
    "evaluate_version",
    "evaluate_versions",
    "findings_of",
    "judged",
    "versioned_findings",
    "versioned_report",
]


class Version(typing.Protocol):
    """What judging reads of one version of a protocol; a `kaprules.Protocol` is one."""

    @property
    def id(self) -> str:
        """The protocol's id."""

    @property
    def version(self) -> str:
        """This version."""

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The rules, in report order."""

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """The rules' ids, in order."""

    @property
    def waivable_rules(self) -> frozenset[str]:
        """The ids of the rules a waiver may cover."""

    @property
    def reason_codes(self) -> frozenset[str]:
        """The waiver reasons accepted."""

    @property
    def series_length(self) -> int | None:
        """The induction series' length, if a rule holds it."""

    @property
    def derived_from(self) -> tuple[str, str] | None:
        """The protocol this one was derived from, unnamed."""

    @property
    def effective(self) -> dt.date | None:
        """The date from which this version applies."""


V = TypeVar("V", bound=Version)
V_co = TypeVar("V_co", bound=Version, covariant=True)


class Versions(typing.Protocol[V_co]):
    """What judging reads of a protocol's versions; a `kaprules.ProtocolVersions` is one."""

    @property
    def id(self) -> str:
        """The protocol's id."""

    @property
    def versions(self) -> tuple[V_co, ...]:
        """The versions, in effective order."""

    @property
    def latest(self) -> V_co:
        """The last version."""

    def in_force(self, date: dt.date) -> V_co | None:
        """The version in force on a local date, or None before the first."""


def evaluate_version(
    course: Course, protocol: Version, as_of: dt.datetime | dt.date | None
) -> Report:
    """The report of one protocol version on a course (see `kaprules.evaluate`).

    Raises:
        InputError: ``course`` is not a Course, or ``as_of`` is naive or of a wrong type.
    """
    check_course(course)
    timeline = Timeline.of(course, as_of, series_length=protocol.series_length)
    return evaluate_timeline(timeline, protocol)


def evaluate_versions(
    course: Course, versions: Versions[Version], as_of: dt.datetime | dt.date | None
) -> Report:
    """The report of a protocol's versions on a course (see `kaprules.evaluate`).

    Raises:
        InputError: ``course`` is not a Course, or ``as_of`` is naive or of a wrong type.
    """
    check_course(course)
    Timeline.of(course, as_of)  # as_of's checks, before any version is chosen
    return versioned_report(course, versions, as_of)


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


def evaluate_timeline(timeline: Timeline, protocol: Version) -> Report:
    """Evaluate ``protocol`` on a course already placed on a timeline.

    The booking check uses it to evaluate a timeline whose proposed session is planned.
    """
    return Report(
        protocol.id,
        protocol.version,
        judged(timeline, protocol),
        None if timeline.as_of is None else timeline.as_of.isoformat(),
        __version__,
        protocol.derived_from,
    )


def judged(timeline: Timeline, protocol: Version) -> tuple[Finding, ...]:
    """The findings of one protocol version, each stamped with it, waivers judged."""
    version = protocol.version
    found = [attrs.evolve(f, protocol_version=version) for f in findings_of(timeline, protocol)]
    course = timeline.course
    if not course.waivers:
        return tuple(found)
    waivable = protocol.waivable_rules
    kept, invalid = judge(
        found,
        course,
        lambda f: f.rule in waivable,
        lambda _: (frozenset(protocol.rule_ids), waivable, protocol.reason_codes, version),
        timeline.as_of,
    )
    return _ordered(kept + invalid, timeline, {version: protocol})


NO_VERSION = "no-version-in-force"
"""The id of the finding that names sessions held before a protocol's first version."""

# Rules judged once for the whole course, by the version in force on the course's first
# session's date: what they count or measure spans the course, and a change of version
# must not restart it half way.
COURSE_RULES = frozenset(
    ("session-count", "treatment-window", "integration-followup", "rems-enrolment")
)


def versioned_report(
    course: Course, versions: Versions[Version], as_of: dt.datetime | dt.date | None
) -> Report:
    """The report of a course under a protocol's versions (see `evaluate`)."""
    findings, used, judging = versioned_findings(course, versions, as_of)
    return Report(
        versions.id,
        (judging or versions.versions[0]).version,
        findings,
        None if as_of is None else as_of.isoformat(),
        __version__,
        None,
        versions=tuple(p.version for p in used),
    )


def versioned_findings(
    course: Course, versions: Versions[V], as_of: dt.datetime | dt.date | None
) -> tuple[tuple[Finding, ...], tuple[V, ...], V | None]:
    """Each session judged by the version in force on its local date.

    A finding of a session rule belongs to the version in force on the local date of the
    last session it names (the session that completed the breach); a finding of a
    `COURSE_RULES` rule, or one that names no session, to the version in force on the
    first session's date (for a course without sessions: on ``as_of``'s date, or the
    latest). Sessions before the first effective date are named by one
    ``no-version-in-force`` finding; no other finding names them (one that would is left
    out).

    Returns:
        The findings in report order, the versions used (in effective order), and the
        version that judges the course as a whole (None before the first one).
    """
    local = {s.id: course.local(s.start).date() for s in course.sessions}
    by_session = {sid: versions.in_force(day) for sid, day in local.items()}
    if local:
        first = min(local.values())
        course_version = versions.in_force(first)
    elif isinstance(as_of, dt.datetime):
        course_version = versions.in_force(course.local(as_of).date())
    elif as_of is not None:
        course_version = versions.in_force(as_of)
    else:
        course_version = versions.latest
    used = [v for v in versions.versions if v is course_version or v in by_session.values()]
    timelines: dict[int | None, Timeline] = {}
    found: list[Finding] = []
    by_version = {v.version: v for v in used}
    for version in used:
        length = version.series_length
        if length not in timelines:
            timelines[length] = Timeline.of(course, as_of, series_length=length)
        timeline = timelines[length]
        for f in findings_of(timeline, version):
            if any(by_session.get(sid, version) is None for sid in f.sessions):
                continue  # a session no version judges: no-version-in-force names it
            if f.rule in COURSE_RULES or not f.sessions:
                owner = course_version
            else:
                last = max(f.sessions, key=lambda sid: (local.get(sid, dt.date.min), sid))
                owner = by_session.get(last)
            if owner is version:
                found.append(attrs.evolve(f, protocol_version=version.version))
    timeline = next(iter(timelines.values())) if timelines else Timeline.of(course, as_of)
    before = [t for t in timeline.sessions if by_session.get(t.id) is None]
    if before:
        first_date = versions.versions[0].effective
        shown = ", ".join(t.label for t in before[:3])
        more = f" and {len(before) - 3} more" if len(before) > 3 else ""
        found.append(
            Finding(
                NO_VERSION,
                Severity.ERROR,
                tuple(t.id for t in before),
                f"{shown}{more} {'is' if len(before) == 1 else 'are'} before the first version "
                f"of {echo(versions.id)} took effect"
                + ("" if first_date is None else f" ({first_date.isoformat()})")
                + "; no version of the protocol judges "
                + ("it" if len(before) == 1 else "them"),
                None if first_date is None else first_date.isoformat(),
                None,
                help=Help(f"{report.DOCS_URL}waivers/#no-version-in-force"),
            )
        )
    if course.waivers:

        def version_of_waiver(waiver: Waiver) -> V | None:
            named = [s for s in waiver.sessions if s in by_session]
            if waiver.rule in COURSE_RULES or not named:
                return course_version
            return by_session[max(named, key=lambda sid: (local[sid], sid))]

        def policy(
            waiver: Waiver,
        ) -> tuple[frozenset[str], frozenset[str], frozenset[str], str | None]:
            version = version_of_waiver(waiver)
            if version is None:
                return frozenset(), frozenset(), frozenset(), None
            rules = frozenset(version.rule_ids)
            return rules, version.waivable_rules, version.reason_codes, version.version

        def waivable(f: Finding) -> bool:
            version = by_version.get(f.protocol_version or "")
            return version is not None and f.rule in version.waivable_rules

        kept, invalid = judge(found, course, waivable, policy, as_of)
        found = kept + invalid
    return _ordered(found, timeline, by_version), tuple(used), course_version


def _ordered(
    found: list[Finding], timeline: Timeline, versions: Mapping[str, Version]
) -> tuple[Finding, ...]:
    # Report order across versions: first session named, then the version, the rule's
    # place in it, the sessions and the message.
    position = {t.id: t.position for t in timeline.sessions}
    rank = {v: n for n, v in enumerate(versions)}
    places_of: dict[str, dict[str, int]] = {
        v: {rid: i for i, rid in enumerate(p.rule_ids)} for v, p in versions.items()
    }

    def order(f: Finding) -> tuple[Any, ...]:
        places = tuple(position.get(s, -1) for s in f.sessions)
        version = f.protocol_version or ""
        index = places_of.get(version, {}).get(f.rule, len(places_of.get(version, {})))
        return (places[:1] or (-1,), rank.get(version, len(rank)), index, places, f.message)

    return tuple(sorted(found, key=order))


def findings_of(timeline: Timeline, protocol: Version) -> tuple[Finding, ...]:
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
