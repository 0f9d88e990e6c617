"""Builders for hand-written test courses."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from kaprules import Course, Kind, Session

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
