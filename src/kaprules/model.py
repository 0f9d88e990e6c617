"""The course model: a patient's sessions in a clinic's timezone.

A [`Course`][kaprules.Course] holds [`Session`][kaprules.Session] objects. Both are frozen
and check themselves when built: a course that exists is structurally sound, so the rules
never meet a naive datetime, an unknown timezone or a duplicate id.
"""

from __future__ import annotations

import datetime as dt
import enum
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from kaprules import _time
from kaprules.errors import InputError, Problem

__all__ = ["Course", "Kind", "Session"]


class Kind(enum.StrEnum):
    """What a session is in the protocol. Compares equal to its plain string."""

    INDUCTION = "induction"
    """One session of the induction series."""
    BOOSTER = "booster"
    """A session after the induction series, to maintain it."""


def _redacted(value: str | None) -> str:
    # Escort names and patient ids are clinical data: keep them out of logs and tracebacks.
    return "None" if value is None else "'<redacted>'"


def _label(session_id: object) -> str:
    if isinstance(session_id, str) and session_id.strip():
        return f"session {session_id!r}"
    return "session (no id)"


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_instant(name: str, value: object, *, required: bool) -> list[Problem]:
    if value is None:
        return [Problem(name, "is required")] if required else []
    if not isinstance(value, dt.datetime):
        return [Problem(name, f"must be a datetime.datetime, got {_type_name(value)}")]
    if not _time.is_aware(value):
        return [
            Problem(
                name,
                f"naive datetime {value.isoformat()} has no UTC offset; "
                "give a timezone-aware datetime (for example with tzinfo=ZoneInfo(...))",
            )
        ]
    if not _time.in_range(value):
        return [Problem(name, _out_of_range(value))]
    return []


def _out_of_range(value: dt.date) -> str:
    return (
        f"{value.isoformat()} is outside the supported years "
        f"{_time.MIN_YEAR}-{_time.MAX_YEAR}; check the year"
    )


def _session_problems(
    start: object, kind: object, id: object, last_food: object, escort: object
) -> list[Problem]:
    """Every structural problem with one session's values, by field name (private helper)."""
    problems = _check_instant("start", start, required=True)
    if not isinstance(kind, str):
        problems.append(Problem("kind", f"must be a string, got {_type_name(kind)}"))
    elif kind not in _KINDS:
        problems.append(
            Problem(
                "kind", f"unknown kind {kind[:40]!r}; use one of {', '.join(map(repr, _KINDS))}"
            )
        )
    if id is not None:
        if not isinstance(id, str):
            problems.append(Problem("id", f"must be a string, got {_type_name(id)}"))
        elif not id.strip():
            problems.append(Problem("id", "is empty; give a non-blank id or leave it out"))
    problems += _check_instant("last_food", last_food, required=False)
    if escort is not None and not isinstance(escort, str):
        problems.append(Problem("escort", f"must be a string or None, got {_type_name(escort)}"))
    return problems


_KINDS = tuple(k.value for k in Kind)


def _timezone_problem(value: object) -> Problem | None:
    """The problem with a timezone value, or None when it names an IANA zone (private)."""
    if not isinstance(value, str):
        return Problem("timezone", f"must be a string, got {_type_name(value)}")
    try:
        _time.zone(value)
    except ValueError:
        return Problem(
            "timezone",
            f"unknown timezone {value[:60]!r}; use an IANA name such as 'America/Denver'",
        )
    return None


def _to_kind(value: Kind | str) -> Kind:
    # An unknown value passes through so that the post-init check can name the session.
    try:
        return Kind(value)
    except ValueError:
        return value  # type: ignore[return-value]


@attrs.frozen
class Session:
    """One session of a course, as recorded or planned.

    Args:
        start: When the session starts: a timezone-aware ``datetime.datetime``
            (pendulum's ``DateTime`` is one) in the years 1900 to 9000 (UTC).
        kind: ``"induction"`` or ``"booster"`` (or a [`Kind`][kaprules.Kind]).
        id: A non-blank identifier, unique in its course. Left as None, the course gives
            the session its 1-based position in the given order (``"1"``, ``"2"``, ...).
        last_food: When the patient last ate before the session: an aware datetime, or
            None when not recorded.
        escort: Who drives the patient home, or None when nobody is recorded. Never shown
            in findings, messages or this object's repr.

    Raises:
        InputError: A naive datetime or one outside the supported years, an unknown kind,
            an empty id or a wrong type; the message names the session and the field.
    """

    start: dt.datetime
    kind: Kind = attrs.field(
        default=Kind.INDUCTION, converter=_to_kind, repr=lambda k: repr(str(k))
    )
    id: str | None = None
    last_food: dt.datetime | None = None
    escort: str | None = attrs.field(default=None, repr=_redacted)
    _instant: dt.datetime = attrs.field(init=False, eq=False, repr=False)
    _food_instant: dt.datetime | None = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems = _session_problems(self.start, self.kind, self.id, self.last_food, self.escort)
        if problems:
            raise InputError(*(p.within(_label(self.id)) for p in problems))
        object.__setattr__(self, "_instant", _time.to_utc(self.start))
        food = None if self.last_food is None else _time.to_utc(self.last_food)
        object.__setattr__(self, "_food_instant", food)

    @property
    def instant(self) -> dt.datetime:
        """The start as a plain ``datetime`` in UTC."""
        return self._instant

    @property
    def food_instant(self) -> dt.datetime | None:
        """``last_food`` as a plain ``datetime`` in UTC, or None."""
        return self._food_instant


def _as_sessions(value: Iterable[Session]) -> tuple[Session, ...]:
    # Accept any iterable of sessions, but leave strings, mappings and non-iterables for
    # the post-init check to name.
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        return value  # type: ignore[return-value]
    return tuple(value)


@attrs.frozen
class Course:
    """A patient's course of sessions, in the clinic's timezone.

    Args:
        timezone: The clinic's IANA zone name, such as ``"America/Denver"``. Local dates
            are calendar dates in this zone.
        sessions: The sessions, in any order. A session without an id is given its
            1-based position in this order as id.
        patient: An opaque patient identifier, or None. Never shown in findings or
            messages.

    Raises:
        InputError: An unknown timezone, a session that is not a `Session`, a duplicate id,
            or a wrong type; every problem is listed.
    """

    timezone: str
    sessions: tuple[Session, ...] = attrs.field(converter=_as_sessions)
    patient: str | None = attrs.field(default=None, repr=_redacted)
    _zone: zoneinfo.ZoneInfo = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        zone_problem = _timezone_problem(self.timezone)
        if zone_problem is None:
            object.__setattr__(self, "_zone", _time.zone(self.timezone))
        else:
            problems.append(zone_problem)
        if self.patient is not None and not isinstance(self.patient, str):
            problems.append(
                Problem("patient", f"must be a string or None, got {_type_name(self.patient)}")
            )
        if not isinstance(self.sessions, tuple):
            problems.append(
                Problem(
                    "sessions", f"must be an iterable of Session, got {_type_name(self.sessions)}"
                )
            )
        else:
            sessions, session_problems_found = _number_sessions(self.sessions)
            problems += session_problems_found
            object.__setattr__(self, "sessions", sessions)
        if problems:
            raise InputError(*problems)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The course timezone as a ``zoneinfo.ZoneInfo``."""
        return self._zone

    def local(self, value: dt.datetime) -> dt.datetime:
        """``value`` as a local datetime in the course timezone.

        Args:
            value: An aware datetime.

        Returns:
            The same instant, as a plain ``datetime`` in the course zone.
        """
        return _time.to_utc(value).astimezone(self._zone)


def _number_sessions(items: tuple[Any, ...]) -> tuple[tuple[Session, ...], list[Problem]]:
    problems: list[Problem] = []
    numbered: list[Session] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"sessions[{index}]"
        if not isinstance(item, Session):
            problems.append(Problem(where, f"must be a Session, got {_type_name(item)}"))
            continue
        if item.id is None:
            item = attrs.evolve(item, id=str(index + 1))
        assert item.id is not None
        if item.id in seen:
            problems.append(
                Problem(
                    f"{where} (id {item.id!r}).id",
                    f"duplicate of sessions[{seen[item.id]}]; give each session its own id",
                )
            )
        else:
            seen[item.id] = index
        numbered.append(item)
    return tuple(numbered), problems
