"""Clinic calendars: the days a clinic can hold sessions, for the planner.

A [`ClinicCalendar`][kaprules.ClinicCalendar] is built in Python or read from a small
TOML file with [`load_calendar`][kaprules.load_calendar]. It knows open weekdays, the
clinic's own closed dates, optionally the public holidays of a country (from the
``holidays`` package) and the local time at which proposed sessions start. It knows nothing
of rooms, staff or the patient's own availability.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any

import attrs

from kaprules import _time
from kaprules.errors import InputError, PathItem, Problem, echo, unknown_field

__all__ = ["WEEKDAYS", "ClinicCalendar"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names as calendars spell them, Monday first (``date.weekday()`` order)."""

_FIELDS = ("$schema", "weekdays", "closed", "holidays", "subdivision", "at")


_PLURAL_DAYS = (
    "Mondays",
    "Tuesdays",
    "Wednesdays",
    "Thursdays",
    "Fridays",
    "Saturdays",
    "Sundays",
)

_DAY_NAMES = {
    name: index
    for index, (short, full) in enumerate(
        zip(
            WEEKDAYS,
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
            strict=True,
        )
    )
    for name in (short, full)
}


def _weekday_names(value: Iterable[str | int]) -> tuple[str, ...]:
    # Names ("mon" or "monday", any case) or weekday numbers (Monday = 0) become names in
    # weekday order; anything else is left for the check to name.
    if isinstance(value, str) or not isinstance(value, Iterable):
        return value  # type: ignore[return-value]
    items: list[object] = list(value)
    days: set[int] = set()
    for item in items:
        if isinstance(item, str) and item.lower() in _DAY_NAMES:
            days.add(_DAY_NAMES[item.lower()])
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            days.add(item)
        else:
            return tuple(items)  # type: ignore[arg-type]
    return tuple(WEEKDAYS[d] for d in sorted(days))


def _dates(value: Iterable[dt.date]) -> tuple[dt.date, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return value
    items = list(value)
    if all(type(v) is dt.date for v in items):
        return tuple(sorted(set(items)))
    return tuple(items)


@functools.lru_cache(maxsize=256)
def _holiday_dates(country: str, subdivision: str | None, year: int) -> frozenset[dt.date]:
    import holidays  # an optional dependency, imported only when a calendar names a country

    found = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return frozenset(found)


def _holiday_problem(country: object, subdivision: object) -> Problem | None:
    if country is None:
        if subdivision is not None:
            return Problem("subdivision", "needs holidays: the country it belongs to", "missing")
        return None
    if not isinstance(country, str):
        return Problem("holidays", f"must be a country code string, got {_kind(country)}", "type")
    if subdivision is not None and not isinstance(subdivision, str):
        return Problem(
            "subdivision", f"must be a subdivision code string, got {_kind(subdivision)}", "type"
        )
    try:
        import holidays
    except ImportError:
        return Problem(
            "holidays",
            "public holidays need the holidays package: pip install 'kaprules[calendar]'",
            "missing",
        )
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:
        supported = holidays.list_supported_countries()
        if country not in supported:
            return Problem(
                "holidays",
                f"{echo(country)} is not a country code the holidays package knows "
                "(ISO 3166-1 alpha-2, such as 'US')",
                "value",
            )
        return Problem(
            "subdivision",
            f"{echo(subdivision or '')} is not a subdivision of {country} the holidays package "
            f"knows; use one of: {', '.join(supported[country][:12])}"
            + (", ..." if len(supported[country]) > 12 else ""),
            "value",
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        return Problem("holidays", f"{echo(country)} is not a usable country code", "value")
    return None


def _kind(value: object) -> str:
    return type(value).__name__


@attrs.frozen
class ClinicCalendar:
    """The days on which a clinic can hold sessions, and when proposed sessions start.

    Args:
        weekdays: The open weekdays, as names (``"mon"`` to ``"sun"``, any case) or numbers
            (Monday = 0); Monday to Friday by default. At least one.
        closed: The clinic's own closed dates (local dates), in any order.
        holidays: A country code of the ``holidays`` package (ISO 3166-1 alpha-2, such as
            ``"US"``) whose public holidays are closed days; None for none. Needs
            ``pip install 'kaprules[calendar]'``.
        subdivision: A subdivision of that country, such as ``"CO"``, or None.
        at: The local wall time at which proposed sessions start (default 09:00). A time
            skipped by a DST change moves forward by the change, as clocks do.

    Raises:
        InputError: A field has a wrong type or value; every problem is listed.
    """

    weekdays: tuple[str, ...] = attrs.field(default=WEEKDAYS[:5], converter=_weekday_names)
    closed: tuple[dt.date, ...] = attrs.field(default=(), converter=_dates)
    holidays: str | None = None
    subdivision: str | None = None
    at: dt.time = dt.time(9)
    _open: frozenset[int] = attrs.field(init=False, eq=False, repr=False)
    _closed: frozenset[dt.date] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        if not isinstance(self.weekdays, tuple) or not all(
            isinstance(d, str) and d in WEEKDAYS for d in self.weekdays
        ):
            problems.append(
                Problem(
                    "weekdays",
                    "must be a list of weekday names (mon, tue, wed, thu, fri, sat, sun) or "
                    "numbers from 0 (Monday) to 6",
                    "type",
                )
            )
        elif not self.weekdays:
            problems.append(
                Problem("weekdays", "names no open weekday; a calendar needs one", "value")
            )
        if not isinstance(self.closed, tuple):
            problems.append(Problem("closed", "must be a list of dates", "type"))
        else:
            for index, value in enumerate(self.closed):
                if type(value) is not dt.date:
                    problems.append(
                        Problem(("closed", index), f"must be a date, got {_kind(value)}", "type")
                    )
                elif not _time.MIN_YEAR <= value.year <= _time.MAX_YEAR:
                    problems.append(
                        Problem(
                            ("closed", index),
                            f"is outside the years {_time.MIN_YEAR} to {_time.MAX_YEAR}",
                            "range",
                        )
                    )
        holiday = _holiday_problem(self.holidays, self.subdivision)
        if holiday is not None:
            problems.append(holiday)
        if type(self.at) is not dt.time or self.at.tzinfo is not None:
            problems.append(
                Problem("at", "must be a local wall time such as 09:00, without an offset", "type")
            )
        if problems:
            raise InputError(*problems)
        object.__setattr__(self, "_open", frozenset(WEEKDAYS.index(d) for d in self.weekdays))
        object.__setattr__(self, "_closed", frozenset(self.closed))

    def is_open(self, date: dt.date) -> bool:
        """Whether the clinic can hold a session on a local date.

        Args:
            date: A local date.

        Returns:
            True on an open weekday that is neither a closed date nor a public holiday:
            exactly when [`closure`][kaprules.ClinicCalendar.closure] is None.
        """
        if date.weekday() not in self._open or date in self._closed:
            return False
        if self.holidays is None:
            return True
        return date not in _holiday_dates(self.holidays, self.subdivision, date.year)

    def closure(self, date: dt.date) -> str | None:
        """Why the clinic is closed on a local date, or None when it is open.

        Args:
            date: A local date.

        Returns:
            None on an open day; otherwise a short reason for people, such as "the clinic
            is closed on Sundays", "closed on 2026-12-24" or "Christmas Day (public
            holiday)" (a holiday's name escaped and bounded).
        """
        if date.weekday() not in self._open:
            return f"the clinic is closed on {_PLURAL_DAYS[date.weekday()]}"
        if date in self._closed:
            return f"closed on {date.isoformat()}"
        if self.holidays is None:
            return None
        if date not in _holiday_dates(self.holidays, self.subdivision, date.year):
            return None
        import holidays

        name = holidays.country_holidays(self.holidays, subdiv=self.subdivision, years=date.year)
        return f"{echo(name.get(date) or 'a holiday', 80)} (public holiday)"

    def to_dict(self) -> dict[str, Any]:
        """This calendar as plain data, in the calendar file format.

        Returns:
            A dict with ``weekdays``, ``closed`` (``YYYY-MM-DD`` strings) and ``at``
            (``HH:MM``), plus ``holidays`` and ``subdivision`` when set.
        """
        data: dict[str, Any] = {
            "weekdays": list(self.weekdays),
            "closed": [d.isoformat() for d in self.closed],
            "at": self.at.isoformat("minutes" if not self.at.second else "seconds"),
        }
        if self.holidays is not None:
            data["holidays"] = self.holidays
        if self.subdivision is not None:
            data["subdivision"] = self.subdivision
        return data

    @classmethod
    def from_dict(cls, data: object) -> ClinicCalendar:
        """Build a calendar from plain data in the calendar file format.

        Args:
            data: A mapping with the optional keys ``weekdays``, ``closed`` (dates, or
                ``YYYY-MM-DD`` strings), ``holidays``, ``subdivision`` and ``at`` (a time,
                or ``HH:MM`` text).

        Returns:
            The calendar.

        Raises:
            InputError: An unknown key, or a value of a wrong type or form; every problem
                is listed with its path.
        """
        if not isinstance(data, dict):
            raise InputError(Problem((), f"a calendar must be an object, got {_kind(data)}"))
        problems: list[Problem] = [
            unknown_field((), position, key, _FIELDS)
            for position, key in enumerate(data)
            if key not in _FIELDS
        ]
        values: dict[str, Any] = {}
        if "weekdays" in data:
            values["weekdays"] = data["weekdays"]
        if "closed" in data:
            values["closed"] = _read_dates(data["closed"], problems)
        for key in ("holidays", "subdivision"):
            if key in data:
                values[key] = data[key]
        if "at" in data:
            values["at"] = _read_time(data["at"], problems)
        try:
            calendar = cls(**values)
        except InputError as exc:
            problems += exc.problems
        if problems:
            raise InputError(*problems)
        return calendar


def _read_dates(value: object, problems: list[Problem]) -> object:
    if not isinstance(value, list):
        return value
    out: list[object] = []
    for index, item in enumerate(value):
        where: tuple[PathItem, ...] = ("closed", index)
        if isinstance(item, str):
            try:
                if len(item) != 10:
                    raise ValueError
                out.append(dt.date.fromisoformat(item))
            except ValueError:
                problems.append(Problem(where, "must be a date YYYY-MM-DD", "value"))
        else:
            out.append(item)
    return out


def _read_time(value: object, problems: list[Problem]) -> object:
    if isinstance(value, str):
        try:
            if len(value) != 5 or value[2] != ":":
                raise ValueError
            return dt.time.fromisoformat(value)
        except ValueError:
            problems.append(Problem("at", "must be a local time HH:MM, such as 09:00", "value"))
            return dt.time(9)
    return value
