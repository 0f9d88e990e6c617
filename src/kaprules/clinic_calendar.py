"""Clinic calendars: the days a clinic can hold sessions, for the planner.

A [`ClinicCalendar`][kaprules.ClinicCalendar] is built in Python or read from a small
TOML file with [`load_calendar`][kaprules.load_calendar]. It knows open weekdays, the
clinic's own closed dates and closures ([`Closure`][kaprules.Closure], a span of dates with
an optional reason), optionally the public holidays of a country (from the ``holidays``
package), the local time at which proposed sessions start, and optionally their length and
place. It knows nothing of rooms, staff or the patient's own availability.

The calendar file format lives here with the class: its fields (`CALENDAR_FIELDS`), how a
document is read into a calendar (`calendar_from_data`, behind `ClinicCalendar.from_dict`:
dates as ``YYYY-MM-DD`` text, as JSON has no dates, closures ``{from, to, reason}``, the
opening time as ``HH:MM``, every problem named with its path) and how a calendar is written
back (`ClinicCalendar.to_dict`).
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from kaprules import _time
from kaprules.errors import InputError, PathItem, Problem, echo, shown_id, unknown_field

__all__ = ["WEEKDAYS", "ClinicCalendar", "Closure"]
# calendar_from_data is internal (ClinicCalendar.from_dict is its door), and kept importable
# from kaprules.calendar_files, where it lived.

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names as calendars spell them, Monday first (``date.weekday()`` order)."""

# The most characters of a closure's reason and of a calendar's location; the longest
# session, a day in minutes. The schema carries the same bounds (a test compares them).
_MAX_TEXT = 200
_MAX_DURATION_MINUTES = 1440

CALENDAR_FIELDS = (
    "$schema",
    "weekdays",
    "closed",
    "holidays",
    "subdivision",
    "at",
    "duration_minutes",
    "location",
)
CLOSURE_FIELDS = ("from", "to", "reason")
# Closures spanning at most this many days are looked up by date; longer ones by comparison.
_EXPANDED_DAYS = 400
_EXPANDED_BUDGET = 100_000


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


def weekday_hint(name: str) -> str:
    """``"; did you mean 'fri'?"`` for the weekday nearest a wrong name, or an empty string.

    The name is compared with the short and the full names ("fry" is near "fri", "funday"
    near "sunday"), case ignored; the hint gives the short name, as calendars spell it.
    """
    import difflib  # on the error path only: start-up does not pay for it

    # Only the first 64 characters: a huge name must not cost a huge match.
    close = difflib.get_close_matches(name[:64].lower(), list(_DAY_NAMES), n=1, cutoff=0.5)
    return f"; did you mean {WEEKDAYS[_DAY_NAMES[close[0]]]!r}?" if close else ""


def _weekday_problems(value: object) -> list[Problem]:
    # Each wrong name in a list of names, with its index and the nearest weekday; a value
    # that is not such a list at all gets one problem.
    kinds = "weekday names (mon, tue, wed, thu, fri, sat, sun) or numbers from 0 (Monday) to 6"
    if not isinstance(value, tuple):
        return [Problem("weekdays", f"must be a list of {kinds}", "type")]
    problems = []
    for index, item in enumerate(value):
        if isinstance(item, str) and item.lower() not in _DAY_NAMES:
            problems.append(
                Problem(
                    ("weekdays", index),
                    f"{echo(item)} is not a weekday name (mon to sun){weekday_hint(item)}",
                    "value",
                )
            )
        elif not isinstance(item, str) and not (
            isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6
        ):
            problems.append(Problem(("weekdays", index), f"must be one of the {kinds}", "type"))
    return problems or [Problem("weekdays", f"must be a list of {kinds}", "type")]


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


def _closed_key(item: dt.date | Closure) -> tuple[dt.date, dt.date, int, str]:
    if isinstance(item, Closure):
        return (item.start, item.end, 1, item.reason or "")
    return (item, item, 0, "")


def _closed_items(value: Iterable[dt.date | Closure]) -> tuple[dt.date | Closure, ...]:
    # Dates and closures in date order without repeats, so that equal calendars compare
    # equal and to_dict round-trips; anything else is left for the check to name.
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return value
    items = list(value)
    if all(type(v) is dt.date or isinstance(v, Closure) for v in items):
        return tuple(sorted(dict.fromkeys(items), key=_closed_key))
    return tuple(items)


def _date_problems(where: tuple[PathItem, ...], value: object) -> list[Problem]:
    if type(value) is not dt.date:
        return [Problem(where, f"must be a date, got {type_name(value)}", "type")]
    if not _time.MIN_YEAR <= value.year <= _time.MAX_YEAR:
        return [
            Problem(where, f"is outside the years {_time.MIN_YEAR} to {_time.MAX_YEAR}", "range")
        ]
    return []


def _text_problems(where: tuple[PathItem, ...], value: object) -> list[Problem]:
    # Clinic text shown in messages and calendar files: one printable line, bounded.
    if value is None:
        return []
    if not isinstance(value, str):
        return [Problem(where, f"must be a string, got {type_name(value)}", "type")]
    if not value.strip():
        return [Problem(where, "must not be blank; leave it out for none", "value")]
    if len(value) > _MAX_TEXT:
        return [Problem(where, f"must be at most {_MAX_TEXT} characters", "range")]
    if not value.isprintable():
        return [Problem(where, "must be one line of printable text", "value")]
    return []


def closure_problems(
    start: object, end: object, reason: object, names: tuple[str, str, str]
) -> list[Problem]:
    """Every problem with a closure's values, by the names the caller uses for them."""
    problems = _date_problems((names[0],), start) + _date_problems((names[1],), end)
    if not problems and end < start:  # type: ignore[operator]
        problems.append(
            Problem(
                names[1],
                f"{end} is before {names[0]} {start}; a closure ends on or after its first day",
                "range",
            )
        )
    return problems + _text_problems((names[2],), reason)


@attrs.frozen
class Closure:
    """A span of local dates on which the clinic is closed, both ends included.

    In a calendar file, a table ``{from = 2026-12-24, to = 2027-01-02, reason = "Winter
    break"}`` in ``closed``.

    Args:
        start: The first closed date.
        end: The last closed date: ``start`` or later.
        reason: Why, for people reading a plan or a booking check, such as ``"Winter
            break"``: one printable line of at most 200 characters; None for none.

    Raises:
        InputError: A value has a wrong type, ``end`` is before ``start``, or ``reason`` is
            not one short printable line; every problem is listed.
    """

    start: dt.date
    end: dt.date
    reason: str | None = None

    def __attrs_post_init__(self) -> None:
        problems = closure_problems(self.start, self.end, self.reason, ("start", "end", "reason"))
        if problems:
            raise InputError(*problems)

    def __contains__(self, date: object) -> bool:
        return isinstance(date, dt.date) and self.start <= date <= self.end

    def to_dict(self) -> dict[str, Any]:
        """This closure as plain data, in the calendar file format.

        Returns:
            A dict with ``from`` and ``to`` (``YYYY-MM-DD``), and ``reason`` when given.
        """
        data: dict[str, Any] = {"from": self.start.isoformat(), "to": self.end.isoformat()}
        if self.reason is not None:
            data["reason"] = self.reason
        return data


@functools.lru_cache(maxsize=256)
def _holiday_names(country: str, subdivision: str | None, year: int) -> dict[dt.date, str] | str:
    """The public holidays of a year by date, or why the holidays package does not know them.

    Read-only once cached: callers only look dates up. A year outside the package's range
    for the country (it returns nothing), or one it warns about (India outside 2001-2035:
    part of its holidays missing), is not known: no holidays would be a wrong answer, and
    the package's warning would reach stderr.
    """
    import holidays  # an optional dependency, imported only when a calendar names a country

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = holidays.country_holidays(country, subdiv=subdivision, years=year)
    if not found.start_year <= year <= found.end_year:
        return (
            f"the holidays package knows the public holidays of {country} from "
            f"{found.start_year} to {found.end_year}, not in {year}"
        )
    told = [w for w in caught if not issubclass(w.category, DeprecationWarning | FutureWarning)]
    if told:
        # The package's own words (such as "available only from 2001 to 2035"), bounded.
        return (
            f"the holidays package does not know all public holidays of {country} in {year}: "
            f"{echo(str(told[0].message), 120)}"
        )
    return {date: str(name) for date, name in found.items()}


def _holidays_in(country: str, subdivision: str | None, year: int) -> dict[dt.date, str]:
    names = _holiday_names(country, subdivision, year)
    if isinstance(names, str):
        raise InputError(Problem("holidays", names, "range"))
    return names


def _holiday_problem(country: object, subdivision: object) -> Problem | None:
    if country is None:
        if subdivision is not None:
            return Problem("subdivision", "needs holidays: the country it belongs to", "missing")
        return None
    if not isinstance(country, str):
        return Problem(
            "holidays", f"must be a country code string, got {type_name(country)}", "type"
        )
    if subdivision is not None and not isinstance(subdivision, str):
        return Problem(
            "subdivision",
            f"must be a subdivision code string, got {type_name(subdivision)}",
            "type",
        )
    try:
        import holidays
    except ImportError:
        return Problem(
            "holidays",
            "public holidays need the holidays package: pip install '.[calendar]' in a "
            "checkout of kaprules",
            "missing",
        )
    # Only a country code the package lists: it looks names up as attributes of its
    # module, so "HolidayBase" or "__init__" would pass as countries with no holidays.
    supported = holidays.list_supported_countries()
    if country not in supported:
        return Problem(
            "holidays",
            f"{echo(country)} is not a country code the holidays package knows "
            "(ISO 3166-1 alpha-2, such as 'US')",
            "value",
        )
    try:
        with warnings.catch_warnings():
            # A deprecated subdivision still works: its warning is the package's business.
            warnings.simplefilter("ignore")
            holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:
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


def type_name(value: object) -> str:
    """The Python type's name of a value, for messages about calendar values."""
    return type(value).__name__


@attrs.frozen
class ClinicCalendar:
    """The days on which a clinic can hold sessions, and when and where proposed sessions are.

    Args:
        weekdays: The open weekdays, as names (``"mon"`` to ``"sun"``, any case) or numbers
            (Monday = 0); Monday to Friday by default. At least one.
        closed: The clinic's own closed dates (local dates) and closures (a
            [`Closure`][kaprules.Closure] is a span of dates with an optional reason), in
            any order; kept in date order without repeats.
        holidays: A country code of the ``holidays`` package (ISO 3166-1 alpha-2, such as
            ``"US"``, as its ``list_supported_countries()`` lists them) whose public
            holidays are closed days; None for none. Needs ``pip install '.[calendar]'``
            (in a checkout of kaprules). A day in a year whose holidays the package does
            not know for the country is an `InputError` when looked up.
        subdivision: A subdivision of that country, such as ``"CO"``, or None.
        at: The local wall time at which proposed sessions start (default 09:00). A time
            skipped by a DST change moves forward by the change, as clocks do.
        duration_minutes: How long a proposed session lasts, in whole minutes from 1 to
            1440, for the end of calendar events; None (the default) for events without an
            end.
        location: Where proposed sessions are held, for calendar events: one printable
            line of at most 200 characters; None for none.

    Raises:
        InputError: A field has a wrong type or value; every problem is listed.
    """

    weekdays: tuple[str, ...] = attrs.field(default=WEEKDAYS[:5], converter=_weekday_names)
    closed: tuple[dt.date | Closure, ...] = attrs.field(default=(), converter=_closed_items)
    holidays: str | None = None
    subdivision: str | None = None
    at: dt.time = dt.time(9)
    duration_minutes: int | None = None
    location: str | None = None
    _open: frozenset[int] = attrs.field(init=False, eq=False, repr=False)
    _closed_on: dict[dt.date, str | None] = attrs.field(init=False, eq=False, repr=False)
    _long: tuple[Closure, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        if not isinstance(self.weekdays, tuple) or not all(
            isinstance(d, str) and d in WEEKDAYS for d in self.weekdays
        ):
            problems += _weekday_problems(self.weekdays)
        elif not self.weekdays:
            problems.append(
                Problem("weekdays", "names no open weekday; a calendar needs one", "value")
            )
        if not isinstance(self.closed, tuple):
            problems.append(Problem("closed", "must be a list of dates and closures", "type"))
        else:
            for index, value in enumerate(self.closed):
                if not isinstance(value, Closure):
                    problems += _date_problems(("closed", index), value)
        holiday = _holiday_problem(self.holidays, self.subdivision)
        if holiday is not None:
            problems.append(holiday)
        if type(self.at) is not dt.time or self.at.tzinfo is not None:
            problems.append(
                Problem("at", "must be a local wall time such as 09:00, without an offset", "type")
            )
        minutes = self.duration_minutes
        if minutes is not None and type(minutes) is not int:
            problems.append(
                Problem(
                    "duration_minutes",
                    f"must be a whole number of minutes, got {type_name(minutes)}",
                    "type",
                )
            )
        elif minutes is not None and not 1 <= minutes <= _MAX_DURATION_MINUTES:
            problems.append(
                Problem(
                    "duration_minutes",
                    f"must be from 1 to {_MAX_DURATION_MINUTES} minutes (a day)",
                    "range",
                )
            )
        problems += _text_problems(("location",), self.location)
        if problems:
            raise InputError(*problems)
        object.__setattr__(self, "_open", frozenset(WEEKDAYS.index(d) for d in self.weekdays))
        # Closed dates by date, with the reason of a closure that gives one; long closures
        # (and any past a budget of days) apart, compared on each lookup, so that a span of
        # centuries or a file of many closures costs no memory.
        closed_on: dict[dt.date, str | None] = {}
        long: list[Closure] = []
        budget = _EXPANDED_BUDGET
        for item in self.closed:
            if not isinstance(item, Closure):
                closed_on.setdefault(item, None)
            elif (days := (item.end - item.start).days) >= min(_EXPANDED_DAYS, budget):
                long.append(item)
            else:
                budget -= days + 1
                for k in range(days + 1):
                    day = item.start + dt.timedelta(days=k)
                    if closed_on.get(day) is None:
                        closed_on[day] = item.reason
        object.__setattr__(self, "_closed_on", closed_on)
        object.__setattr__(self, "_long", tuple(long))

    def closure(self, date: dt.date) -> str | None:
        """Why the clinic is closed on a local date, for a person; None when it is open.

        Args:
            date: A local date.

        Returns:
            None on an open weekday that is neither a closed date nor a public holiday;
            otherwise one reason, the first that applies of: ``"the clinic is closed on
            Sundays"``, ``"closed: Winter break"`` (a closure with a reason), ``"the clinic
            is closed on 2026-12-24"`` (a closed date, or a closure without a reason),
            ``"Christmas Day (public holiday)"``.

        Raises:
            InputError: The calendar's ``holidays`` are needed on ``date`` and the holidays
                package does not know them in its year (see `is_open`).
        """
        weekday = date.weekday()
        if weekday not in self._open:
            return f"the clinic is closed on {_PLURAL_DAYS[weekday]}"
        spans = [c for c in self._long if c.start <= date <= c.end]
        if not spans and date not in self._closed_on:
            return self._holiday(date)
        reasons = [self._closed_on.get(date), *(c.reason for c in spans)]
        reason = next((r for r in reasons if r is not None), None)
        if reason is None:
            return f"the clinic is closed on {date.isoformat()}"
        return f"closed: {reason}"

    def _holiday(self, date: dt.date) -> str | None:
        if self.holidays is None:
            return None
        name = _holidays_in(self.holidays, self.subdivision, date.year).get(date)
        if name is None:
            return None
        # The holidays package's text, not ours: escaped and bounded like any input.
        return f"{shown_id(name, 80)} (public holiday)"

    def is_open(self, date: dt.date) -> bool:
        """Whether the clinic can hold a session on a local date.

        Args:
            date: A local date.

        Returns:
            True on an open weekday that is neither a closed date nor a public holiday:
            exactly when [`closure`][kaprules.ClinicCalendar.closure] is None.

        Raises:
            InputError: The calendar's ``holidays`` are needed on ``date`` (an open weekday,
                not a closed date) and the holidays package does not know them in its
                year: outside its range for the country, or a year it warns it knows only
                in part (India outside 2001-2035). "No holidays" would be a wrong answer.
        """
        if date.weekday() not in self._open or date in self._closed_on:
            return False
        if self._long and any(c.start <= date <= c.end for c in self._long):
            return False
        if self.holidays is None:
            return True
        return date not in _holidays_in(self.holidays, self.subdivision, date.year)

    def to_dict(self) -> dict[str, Any]:
        """This calendar as plain data, in the calendar file format.

        Returns:
            A dict with ``weekdays``, ``closed`` (``YYYY-MM-DD`` strings for dates,
            ``{"from", "to", "reason"}`` objects for closures) and ``at`` (``HH:MM``), plus
            ``holidays``, ``subdivision``, ``duration_minutes`` and ``location`` when set.
        """
        data: dict[str, Any] = {
            "weekdays": list(self.weekdays),
            "closed": [
                c.to_dict() if isinstance(c, Closure) else c.isoformat() for c in self.closed
            ],
            "at": self.at.isoformat("minutes" if not self.at.second else "seconds"),
        }
        for key in ("holidays", "subdivision", "duration_minutes", "location"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: object) -> ClinicCalendar:
        """Build a calendar from plain data in the calendar file format.

        Args:
            data: A mapping with the optional keys ``weekdays``, ``closed`` (dates, or
                ``YYYY-MM-DD`` strings, and closures ``{"from", "to", "reason"}`` whose
                ends are dates or such strings), ``holidays``, ``subdivision``, ``at`` (a
                time, or ``HH:MM`` text), ``duration_minutes`` and ``location``.

        Returns:
            The calendar.

        Raises:
            InputError: An unknown key, or a value of a wrong type or form; every problem
                is listed with its path (such as ``closed[2].to``).
        """
        return calendar_from_data(data, build=cls)


def calendar_from_data(
    data: object, *, build: Callable[..., ClinicCalendar] = ClinicCalendar
) -> ClinicCalendar:
    """A calendar from plain data in the calendar file format.

    See [`ClinicCalendar.from_dict`][kaprules.ClinicCalendar.from_dict].

    Args:
        data: The calendar file's data.
        build: The class to build (a subclass given to ``from_dict``).

    Returns:
        The calendar.

    Raises:
        InputError: Every problem, each with its path.
    """
    if not isinstance(data, dict):
        raise InputError(Problem((), f"a calendar must be an object, got {type_name(data)}"))
    problems: list[Problem] = [
        unknown_field((), position, key, CALENDAR_FIELDS)
        for position, key in enumerate(data)
        if key not in CALENDAR_FIELDS
    ]
    values: dict[str, Any] = {}
    if "weekdays" in data:
        values["weekdays"] = data["weekdays"]
    if "closed" in data:
        values["closed"] = _read_closed(data["closed"], problems)
    for key in ("holidays", "subdivision", "location"):
        if key in data:
            values[key] = data[key]
    if "duration_minutes" in data:
        values["duration_minutes"] = data["duration_minutes"]
    if "at" in data:
        values["at"] = _read_time(data["at"], problems)
    try:
        calendar = build(**values)
    except InputError as exc:
        problems += exc.problems
    if problems:
        raise InputError(*problems)
    return calendar


def _read_date(value: object, where: tuple[PathItem, ...], problems: list[Problem]) -> object:
    # A YYYY-MM-DD string as a date (JSON has no dates); anything else for the check.
    if not isinstance(value, str):
        return value
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        problems.append(Problem(where, "must be a date YYYY-MM-DD", "value"))
        return None


def _read_closure(
    item: dict[str, Any], where: tuple[PathItem, ...], problems: list[Problem]
) -> Closure | None:
    found = [
        unknown_field(where, n, key, CLOSURE_FIELDS)
        for n, key in enumerate(item)
        if key not in CLOSURE_FIELDS
    ]
    ends: list[object] = []
    for key in ("from", "to"):
        if key not in item:
            found.append(Problem((*where, key), "is required: a date YYYY-MM-DD", "required"))
            ends.append(None)
        else:
            ends.append(_read_date(item[key], (*where, key), found))
    # The one check of a closure, named in the file's words, for what is not yet reported.
    reported = {p.path for p in found}
    found += [
        checked
        for p in closure_problems(ends[0], ends[1], item.get("reason"), CLOSURE_FIELDS)
        if (checked := p.within(*where)).path not in reported
    ]
    problems += found
    if found:
        return None
    return Closure(ends[0], ends[1], item.get("reason"))  # type: ignore[arg-type]


def _read_closed(value: object, problems: list[Problem]) -> object:
    if not isinstance(value, list):
        return value
    out: list[object] = []
    for index, item in enumerate(value):
        where: tuple[PathItem, ...] = ("closed", index)
        if isinstance(item, dict):
            closure = _read_closure(item, where, problems)
            if closure is not None:
                out.append(closure)
        elif isinstance(item, str):
            date = _read_date(item, where, problems)
            if date is not None:
                out.append(date)
        elif type(item) is dt.date:
            out.append(item)
        else:
            problems.append(
                Problem(
                    where,
                    f"must be a date YYYY-MM-DD or a closure {{from, to, reason}}, "
                    f"got {type_name(item)}",
                    "type",
                )
            )
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
