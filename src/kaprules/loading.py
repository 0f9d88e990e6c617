"""Reading courses from JSON.

[`parse_course`][kaprules.parse_course] and [`load_course`][kaprules.load_course] return a
[`Course`][kaprules.Course] or raise [`InputError`][kaprules.InputError] listing every
problem with its path, such as ``sessions[2] (id 's3').last_meal: unknown field; did you
mean 'last_food'?``. The format is described by a JSON Schema shipped with the package
([`course_schema`][kaprules.course_schema]).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
from collections.abc import Callable
from typing import Any

from kaprules.errors import InputError, Problem
from kaprules.model import Course, Session, _label, _session_problems, _timezone_problem

__all__ = ["course_schema", "load_course", "parse_course"]

# ISO 8601 / RFC 3339 date-time with a mandatory offset; the schema carries the same pattern.
DATETIME_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATETIME = re.compile(DATETIME_PATTERN)

COURSE_FIELDS = ("$schema", "timezone", "patient", "sessions")
SESSION_FIELDS = ("id", "kind", "start", "last_food", "escort")


def _kind_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _unknown_fields(obj: dict[str, Any], allowed: tuple[str, ...]) -> list[Problem]:
    problems = []
    for key in obj:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
            problems.append(Problem(key[:40], "unknown field" + hint))
    return problems


def _instant(obj: dict[str, Any], key: str, problems: list[Problem], *, required: bool) -> Any:
    if key not in obj:
        if required:
            problems.append(Problem(key, "is required: an ISO 8601 date-time with an offset"))
        return None
    value = obj[key]
    if value is None and not required:
        return None
    if not isinstance(value, str):
        problems.append(
            Problem(key, f"must be an ISO 8601 date-time string, got {_kind_name(value)}")
        )
        return None
    if not _DATETIME.fullmatch(value):
        problems.append(
            Problem(
                key,
                f"{value[:40]!r} is not an ISO 8601 date-time with an offset; write it like "
                "'2026-12-01T09:00:00-07:00' or '2026-12-01T16:00:00Z'",
            )
        )
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        problems.append(Problem(key, f"{value!r} is not a real date and time"))
        return None


def _session(index: int, obj: object) -> tuple[Session | None, list[Problem]]:
    where = f"sessions[{index}]"
    if not isinstance(obj, dict):
        return None, [Problem(where, f"must be an object, got {_kind_name(obj)}")]
    session_id = obj.get("id")
    if isinstance(session_id, str) and session_id.strip():
        where = f"{where} (id {session_id!r})"
    problems = _unknown_fields(obj, SESSION_FIELDS)
    if "id" in obj and session_id is None:
        problems.append(
            Problem("id", "must be a string, got null; leave it out for a positional id")
        )
    start = _instant(obj, "start", problems, required=True)
    last_food = _instant(obj, "last_food", problems, required=False)
    if problems:
        # Report the model's checks too, but not twice for a field already reported.
        reported = {p.where for p in problems}
        problems += [
            p
            for p in _session_problems(
                start, obj.get("kind", "induction"), session_id, last_food, obj.get("escort")
            )
            if p.where not in reported
        ]
        return None, [p.within(where) for p in problems]
    # The common path: the model checks the values once, as it does for Python callers.
    try:
        return Session(
            start, obj.get("kind", "induction"), session_id, last_food, obj.get("escort")
        ), []
    except InputError as exc:
        label = _label(session_id) + "."
        return None, [
            Problem(where + "." + p.where.removeprefix(label), p.what) for p in exc.problems
        ]


def _course(data: object) -> Course:
    if not isinstance(data, dict):
        raise InputError(f"a course must be a JSON object, got {_kind_name(data)}")
    problems = _unknown_fields(data, COURSE_FIELDS)
    timezone = data.get("timezone")
    if "timezone" not in data:
        problems.append(
            Problem("timezone", "is required: an IANA zone name such as 'America/Denver'")
        )
    elif (zone_problem := _timezone_problem(timezone)) is not None:
        problems.append(zone_problem)
    patient = data.get("patient")
    if patient is not None and not isinstance(patient, str):
        problems.append(Problem("patient", f"must be a string or null, got {_kind_name(patient)}"))
    schema = data.get("$schema")
    if schema is not None and not isinstance(schema, str):
        problems.append(Problem("$schema", f"must be a string, got {_kind_name(schema)}"))
    raw_sessions = data.get("sessions")
    sessions: list[Session] = []
    if "sessions" not in data:
        problems.append(Problem("sessions", "is required: an array of session objects"))
    elif not isinstance(raw_sessions, list):
        problems.append(Problem("sessions", f"must be an array, got {_kind_name(raw_sessions)}"))
    else:
        for index, item in enumerate(raw_sessions):
            session, found = _session(index, item)
            problems += found
            if session is not None:
                sessions.append(session)
    if problems:
        raise InputError(*problems)
    return Course(timezone, sessions, patient)  # type: ignore[arg-type]


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InputError(f"duplicate key {twice[:40]!r} in a JSON object; give each field once")
    return obj


def _reject_constant(name: str) -> Any:
    raise InputError(f"{name} is not valid JSON; give a number or leave the field out")


def parse_course(text: str | bytes | bytearray) -> Course:
    """Read a course from JSON text.

    Args:
        text: The JSON document, as text or as UTF-8 (or UTF-16/32) bytes.

    Returns:
        The course.

    Raises:
        InputError: The text is not JSON, or not a course: every problem is listed, each
            with its path (such as ``sessions[0] (id 's1').start``).
    """
    if not isinstance(text, str | bytes | bytearray):
        raise InputError(f"expected JSON text (str or bytes), got {type(text).__name__}")
    try:
        data = json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except UnicodeDecodeError:
        raise InputError("not valid JSON: the bytes are not UTF-8, UTF-16 or UTF-32 text") from None
    except RecursionError:
        raise InputError("not valid JSON for a course: nested too deeply") from None
    return _course(data)


def load_course(path: str | os.PathLike[str]) -> Course:
    """Read a course from a JSON file.

    Args:
        path: The file's path.

    Returns:
        The course.

    Raises:
        InputError: The file cannot be read, or does not hold a course.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise InputError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    return parse_course(data)


def course_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the course format, as shipped with the package.

    Returns:
        The schema as a dict.
    """
    # Imported here: importlib.resources costs ~7 ms of start-up and only this needs it.
    import importlib.resources

    text = importlib.resources.files("kaprules").joinpath("course.schema.json").read_text("utf-8")
    loaded: Callable[[str], dict[str, Any]] = json.loads
    return loaded(text)
