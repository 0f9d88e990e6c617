"""Calendar files: the clinic calendar format, read into `ClinicCalendar` objects.

The one home of the format's reading: dates as ``YYYY-MM-DD`` text (JSON has no dates),
closures ``{from, to, reason}``, the opening time as ``HH:MM``; every problem named with its
path. `ClinicCalendar.from_dict` is this module's door on the class, and
`ClinicCalendar.to_dict` writes the same format back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from kaprules.clinic_calendar import (
    CALENDAR_FIELDS,
    CLOSURE_FIELDS,
    ClinicCalendar,
    Closure,
    closure_problems,
    type_name,
)
from kaprules.errors import InputError, PathItem, Problem, unknown_field

__all__ = ["calendar_from_data"]


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
