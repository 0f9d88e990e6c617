"""Builders for hand-written test courses, and a clinic's own rule defined in the tests."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import attrs

from kaprules import (
    BaseRule,
    Bounds,
    Course,
    CourseShape,
    Finding,
    Kind,
    Session,
    Source,
    Timeline,
    parameter,
)

DENVER = "America/Denver"


def at(date: str, time: str = "09:00", zone: str = DENVER) -> dt.datetime:
    """Wall time on a local date in a zone (fold=0)."""
    return dt.datetime.fromisoformat(f"{date}T{time}").replace(tzinfo=ZoneInfo(zone))


def session(
    sid: str,
    start: dt.datetime,
    *,
    kind: Kind | str = Kind.INDUCTION,
    fast: dt.timedelta | None = dt.timedelta(hours=5),
    escort: str | None = "E",
) -> Session:
    """A session with a fast of `fast` (elapsed time) before it (None: no last_food)."""
    # In UTC: aware arithmetic within one ZoneInfo is wall-clock arithmetic.
    food = None if fast is None else start.astimezone(dt.UTC) - fast
    return Session(start, kind, sid, food, escort)


def series(dates: Sequence[str], zone: str = DENVER, time: str = "09:00") -> list[Session]:
    """Compliant induction sessions s1.. on the given local dates."""
    return [session(f"s{i}", at(d, time, zone)) for i, d in enumerate(dates, start=1)]


STANDARD_DATES = (
    "2026-12-01",
    "2026-12-03",
    "2026-12-05",
    "2026-12-08",
    "2026-12-10",
    "2026-12-12",
)


# The esketamine label's induction from 2026-12-01: two sessions in each of weeks 1 to 4.
TWICE_WEEKLY_DATES = (
    "2026-12-01",
    "2026-12-03",
    "2026-12-08",
    "2026-12-10",
    "2026-12-15",
    "2026-12-17",
    "2026-12-22",
    "2026-12-24",
)


def course(sessions: Iterable[Session], zone: str = DENVER) -> Course:
    return Course(zone, list(sessions))


def rule_ids(report: object) -> list[str]:
    return [f.rule for f in report.findings]  # type: ignore[attr-defined]


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import make_audit_data as make_audit_data  # type: ignore[import-not-found]  # noqa: E402


def write_lines(path: Path, count: int, seed: int = 1) -> Path:
    """The benchmark's audit data set of ``count`` courses, as a JSON Lines file."""
    path.write_text("".join(line + "\n" for line in make_audit_data.lines(count, seed)))
    return path


@attrs.frozen(repr=False)
class AtMostInDays(BaseRule):
    """At most ``sessions`` sessions in any ``days`` consecutive local days."""

    default_id: ClassVar[str] = "at-most-in-days"
    title: ClassVar[str] = "Not too many sessions in a short time"
    rationale: ClassVar[str] = "The clinic spreads sessions out."
    source: ClassVar[Source] = Source(
        "No more than three sessions in any week.", "Lakeside clinic handbook", "page 3"
    )
    names: ClassVar[str] = "The session that makes one too many, one finding each."

    sessions: int = parameter(3, Bounds(1, 50))
    days: int = parameter(7, Bounds(1, 366))

    @property
    def statement(self) -> str:
        return f"At most {self.sessions} sessions in any {self.days} consecutive local days."

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        dates = [t.date for t in timeline.sessions]
        for i, t in enumerate(timeline.sessions):
            since = t.date - dt.timedelta(days=self.days - 1)
            if sum(1 for d in dates[: i + 1] if d >= since) > self.sessions:
                yield self.finding(
                    (t,),
                    f"{t.label} is one of more than {self.sessions} sessions in {self.days} days",
                    self.sessions,
                )

    def course_shape(self, shape: CourseShape) -> CourseShape:
        # Sessions at least ceil(days / sessions) apart never crowd a window of `days`.
        return attrs.evolve(shape, gap=max(shape.gap, -(-self.days // self.sessions)))

    # No break_course: this rule only says how to meet it.
