"""Builders for the worked examples that built-in rules carry (private).

Examples are courses in America/Denver, built from a rule's actual parameters at the
boundary of what it allows; [`explain`][kaprules.explain] evaluates them with the rule.
"""

from __future__ import annotations

import datetime as dt

from kaprules import _time
from kaprules.model import Course, Integration, Kind, Session

ZONE = "America/Denver"
DEC1 = dt.date(2026, 12, 1)


def at(date: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """Wall time on a local date in the examples' zone."""
    return _time.at_local(date, dt.time(hour, minute), _time.zone(ZONE))


def session(
    sid: str,
    start: dt.datetime,
    kind: Kind = Kind.INDUCTION,
    fast: dt.timedelta = dt.timedelta(hours=6),
    escort: str | None = "recorded",
    last_food: dt.datetime | None = None,
    therapist: str | None = "recorded",
) -> Session:
    """A session that meets every built-in rule unless told otherwise."""
    food = last_food if last_food is not None else _time.to_utc(start) - fast
    return Session(start, kind, sid, food, escort, therapist=therapist)


def series(first: dt.date, n: int, step: int = 2) -> list[Session]:
    """``n`` induction sessions ``s1``.. from ``first``, ``step`` days apart, at 09:00."""
    return [session(f"s{i + 1}", at(first + dt.timedelta(days=step * i), 9)) for i in range(n)]


def course(sessions: list[Session], integrations: list[Integration] | None = None) -> Course:
    """A course in the examples' zone."""
    return Course(ZONE, sessions, integrations=integrations or ())
