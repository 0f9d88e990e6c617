"""Reading and writing courses (JSON), protocols and clinic calendars (TOML or JSON).

[`parse_course`][kaprules.parse_course] and [`load_course`][kaprules.load_course] return a
[`Course`][kaprules.Course] or raise [`InputError`][kaprules.InputError] listing every
problem with its path, such as ``sessions[2] (id 's3').last_meal: unknown field; did you
mean 'last_food'?``; [`dumps`][kaprules.dumps] writes the format back.
[`load_protocol`][kaprules.load_protocol] reads a clinic's protocol file and
[`load_calendar`][kaprules.load_calendar] its calendar. Each format is described by a JSON
Schema shipped with the package ([`course_schema`][kaprules.course_schema],
[`protocol_schema`][kaprules.protocol_schema], [`calendar_schema`][kaprules.calendar_schema]).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from kaprules import _fast, _time
from kaprules.clinic_calendar import ClinicCalendar
from kaprules.errors import (
    InputError,
    PathItem,
    Problem,
    ProtocolError,
    did_you_mean,
    echo,
    json_type,
    shown_id,
    unknown_field,
)
from kaprules.model import (
    KIND_BY_VALUE,
    Course,
    Integration,
    Session,
    freeze_json,
    integration_problems,
    session_problems,
    timezone_problem,
)
from kaprules.protocol import Protocol, builtin_protocols, get_protocol
from kaprules.protocol_files import given_classes, protocol_from_data, protocol_json_schema

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - an interpreter without orjson's wheels (PyPy)
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "calendar_schema",
    "course_schema",
    "dumps",
    "load_calendar",
    "load_course",
    "load_protocol",
    "parse_calendar",
    "parse_course",
    "parse_protocol",
    "parse_session",
    "protocol_schema",
    "resolve_protocol",
]

# ISO 8601 / RFC 3339 date-time with a mandatory offset; the schema carries the same pattern.
# Offset hours 00-23 and minutes 00-59: "+00:99" is not an offset, however Python reads it.
DATETIME_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_DATETIME = re.compile(DATETIME_PATTERN)


@attrs.frozen
class Field:
    """A field of the course format, described once.

    The loader's field lists, the documentation's field tables and the checks of the shipped
    JSON Schema and the audit's CSV columns are derived from these tables or tested against
    them.

    Attributes:
        name: The key.
        required: Whether an object must have it.
        type: Its JSON type in words: ``string``, ``string or null``, ``date-time``,
            ``date-time or null``, ``kind``, ``array`` or ``object``.
        meaning: What it holds, for people.
    """

    name: str
    required: bool
    type: str
    meaning: str


_NEVER_SHOWN = "Never shown in findings or messages."

COURSE_FORMAT: tuple[Field, ...] = (
    Field("$schema", False, "string", "Where the schema lives, for editors. Ignored by kaprules."),
    Field(
        "id",
        False,
        "string",
        "An opaque record id of the course, echoed in audit output (at most 200 characters). "
        "Never a name: it is shown.",
    ),
    Field(
        "timezone",
        True,
        "string",
        "The clinic's IANA zone name, such as `America/Denver`. Local dates are calendar "
        "dates in this zone.",
    ),
    Field("patient", False, "string or null", f"An opaque patient identifier. {_NEVER_SHOWN}"),
    Field("sessions", True, "array", "The sessions, in any order."),
    Field(
        "integrations",
        False,
        "array",
        "The integration meetings with the psychotherapist after the treatments, in any order "
        "(read by `integration-followup`).",
    ),
    Field(
        "extra",
        False,
        "object",
        f"Clinic-defined data for rules of your own: any JSON object, read-only in Python. "
        f"{_NEVER_SHOWN}",
    ),
)
"""The course object's fields."""

SESSION_FORMAT: tuple[Field, ...] = (
    Field(
        "id",
        False,
        "string",
        "A non-blank id, unique in the course. Without one, a session's id is its 1-based "
        'position in the array (`"1"`, `"2"`, ...).',
    ),
    Field("kind", False, "kind", "`induction` (the default) or `booster`."),
    Field(
        "start",
        True,
        "date-time",
        "When the session starts: ISO 8601 with a UTC offset or `Z`, such as "
        "`2026-12-01T09:00:00-07:00`.",
    ),
    Field(
        "last_food",
        False,
        "date-time or null",
        "When the patient last ate before the session, in the same notation as `start`; "
        "null or absent when not recorded.",
    ),
    Field(
        "escort",
        False,
        "string or null",
        f"Who drives the patient home; null or absent when nobody is recorded. {_NEVER_SHOWN}",
    ),
    Field(
        "therapist",
        False,
        "string or null",
        f"The psychotherapist who guided the session (read by `therapist-present`). {_NEVER_SHOWN}",
    ),
    Field(
        "extra", False, "object", "Clinic-defined data for rules of your own, as for the course."
    ),
)
"""A session object's fields."""

INTEGRATION_FORMAT: tuple[Field, ...] = (
    Field("id", False, "string", "A non-blank id, unique among the meetings."),
    Field(
        "start",
        True,
        "date-time",
        "When the meeting starts, in the same notation as a session's `start`.",
    ),
    Field("therapist", False, "string or null", f"Who held the meeting. {_NEVER_SHOWN}"),
)
"""An integration meeting object's fields."""

COURSE_FIELDS = tuple(f.name for f in COURSE_FORMAT)
SESSION_FIELDS = tuple(f.name for f in SESSION_FORMAT)
INTEGRATION_FIELDS = tuple(f.name for f in INTEGRATION_FORMAT)


def field_table(fields: tuple[Field, ...]) -> str:
    """A format's fields as a Markdown table, required ones first (for the docs).

    Args:
        fields: One of the format tables, such as `SESSION_FORMAT`.

    Returns:
        The table.
    """
    rows = ["| field | required | type | meaning |", "|---|---|---|---|"]
    for f in sorted(fields, key=lambda f: not f.required):
        shown = {"date-time": "string", "date-time or null": "string or null", "kind": "string"}
        kind = shown.get(f.type, f.type)
        rows.append(f"| `{f.name}` | {'yes' if f.required else 'no'} | {kind} | {f.meaning} |")
    return "\n".join(rows)


def _unknown_fields(obj: dict[str, Any], allowed: tuple[str, ...]) -> list[Problem]:
    return [unknown_field((), n, key, allowed) for n, key in enumerate(obj) if key not in allowed]


def _instant(obj: dict[str, Any], key: str, problems: list[Problem], *, required: bool) -> Any:
    if key not in obj:
        if required:
            problems.append(
                Problem(key, "is required: an ISO 8601 date-time with an offset", "required")
            )
        return None
    value = obj[key]
    if value is None and not required:
        return None
    if not isinstance(value, str):
        problems.append(
            Problem(key, f"must be an ISO 8601 date-time string, got {json_type(value)}", "type")
        )
        return None
    if not _DATETIME.fullmatch(value):
        problems.append(
            Problem(
                key,
                f"{echo(value)} is not an ISO 8601 date-time with an offset; write it like "
                "'2026-12-01T09:00:00-07:00' or '2026-12-01T16:00:00Z'",
                "format",
            )
        )
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        problems.append(Problem(key, f"{echo(value)} is not a real date and time", "value"))
        return None


def _step(index: int, item_id: object) -> PathItem:
    return (index, item_id) if isinstance(item_id, str) and item_id.strip() else index


def _extra(obj: dict[str, Any], problems: list[Problem]) -> Any:
    # The JSON type only: the model freezes (and checks) the content, once.
    if "extra" not in obj:
        return None
    value = obj["extra"]
    if not isinstance(value, dict):
        problems.append(Problem("extra", f"must be an object, got {json_type(value)}", "type"))
        return None
    return value


def _extra_content(value: Any) -> list[Problem]:
    return [] if value is None else freeze_json(value, ("extra",))[1]


_Values = dict[str, Any]


_FAST_KEYS = frozenset(("id", "kind", "start", "last_food", "escort", "therapist"))
_FAST_COURSE_KEYS = frozenset(("$schema", "id", "timezone", "patient", "sessions"))


_MIN_YEAR, _MAX_YEAR = _time.MIN_YEAR, _time.MAX_YEAR
# The separators of the two layouts nearly every exporter writes, '2026-12-01T09:00:00-07:00'
# and '2026-12-01T16:00:00Z', at every third character from the fifth.
_WITH_OFFSET = frozenset(("--T::+:", "--T::-:"))


def _fast_time(value: object) -> dt.datetime | None:
    """The instant of a date-time in the course format, or None to take the full path.

    The two layouts nearly every exporter writes are told by their separators: with them
    in place, a text that ``fromisoformat`` accepts has ASCII digits everywhere else (it
    reads each field digit by digit), so it matches `DATETIME_PATTERN`. Two slices cost
    half of the pattern, which reads every other layout.
    """
    if type(value) is not str:
        return None
    size = len(value)
    if size == 25:
        laid_out = value[4:23:3] in _WITH_OFFSET and value[23] in "012345"
    else:
        laid_out = size == 20 and value[4:20:3] == "--T::Z"
    if not laid_out and not _DATETIME.fullmatch(value):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if _MIN_YEAR < moment.year < _MAX_YEAR or _time.in_range(moment):
        return moment
    return None


def _fast_session(obj: object, index: int | None) -> Session | None:
    """The session of a plain, valid record, checked once; None to take the full path.

    Only for text known to hold no lone surrogate (see `_decoded`): every check of
    ``Session.__init__`` is made here, in the loader's terms, and anything unusual goes the
    full way, which names every problem. ``index`` gives a session without an id its
    1-based position as id; None leaves that to `Course`.
    """
    if type(obj) is not dict or not obj.keys() <= _FAST_KEYS:
        return None
    start = _fast_time(obj.get("start"))
    if start is None:
        return None
    food = obj.get("last_food")
    last_food = None
    if food is not None and (last_food := _fast_time(food)) is None:
        return None
    kind = obj.get("kind", "induction")
    if type(kind) is not str or (kind := KIND_BY_VALUE.get(kind)) is None:
        return None
    if "id" in obj:
        record_id = obj["id"]
        if type(record_id) is not str or not record_id.strip():
            return None
    else:
        record_id = None if index is None else str(index + 1)
    escort, therapist = obj.get("escort"), obj.get("therapist")
    if (escort is not None and type(escort) is not str) or (
        therapist is not None and type(therapist) is not str
    ):
        return None
    return Session._checked(start, kind, record_id, last_food, escort, therapist)


def _fast_course(data: object) -> Course | None:
    """The course of a plain, valid document (sessions only), or None for the full path.

    As `_fast_session`, for text without lone surrogates: the checks of ``Course.__init__``
    are made here, once, and the course is built without repeating them.
    """
    if type(data) is not dict or not data.keys() <= _FAST_COURSE_KEYS:
        return None
    timezone, raw = data.get("timezone"), data.get("sessions")
    patient, course_id, schema = data.get("patient"), data.get("id"), data.get("$schema")
    if (
        type(timezone) is not str
        or type(raw) is not list
        or (patient is not None and type(patient) is not str)
        or (schema is not None and type(schema) is not str)
        or ("id" in data and (type(course_id) is not str or not course_id.strip()))
    ):
        return None
    try:
        zone = _time.zone(timezone)
    except ValueError:
        return None
    sessions = []
    for index, obj in enumerate(raw):
        session = _fast_session(obj, index)
        if session is None:
            return None
        sessions.append(session)
    if len({s.id for s in sessions}) != len(sessions):
        return None  # the full path names the duplicate
    return Course._checked(timezone, zone, tuple(sessions), patient, course_id)


def _record(
    name: str,
    fields: tuple[str, ...],
    null_id: str,
    check: Callable[[dict[str, Any], _Values], list[Problem]],
    build: Callable[[dict[str, Any], _Values], Any],
    index: int,
    obj: object,
) -> tuple[Any, list[Problem]]:
    """One session or meeting of a course: the record, or every problem with its path."""
    if not isinstance(obj, dict):
        return None, [Problem((name, index), f"must be an object, got {json_type(obj)}", "type")]
    value, problems = _fields(fields, null_id, check, build, obj)
    if problems:
        where = (name, _step(index, obj.get("id")))
        return None, [p.within(*where) for p in problems]
    return value, []


def _fields(
    fields: tuple[str, ...],
    null_id: str,
    check: Callable[[dict[str, Any], _Values], list[Problem]],
    build: Callable[[dict[str, Any], _Values], Any],
    obj: dict[str, Any],
) -> tuple[Any, list[Problem]]:
    """One record read from its object: the record, or every problem pathed from it."""
    record_id = obj.get("id")
    problems = _unknown_fields(obj, fields)
    if "id" in obj and record_id is None:
        problems.append(Problem("id", f"must be a string, got null; {null_id}", "type"))
    values: _Values = {"start": _instant(obj, "start", problems, required=True)}
    if "last_food" in fields:
        values["last_food"] = _instant(obj, "last_food", problems, required=False)
    if "extra" in fields:
        values["extra"] = _extra(obj, problems)
    # Text fields' JSON types, in JSON's words (the model would say NoneType or list).
    for field in ("id", "kind", "escort", "therapist"):
        value = obj.get(field)
        wrong = not isinstance(value, str) and (value is not None or field == "kind")
        if field in fields and field in obj and wrong:
            expected = "a string or null" if field in ("escort", "therapist") else "a string"
            problems.append(Problem(field, f"must be {expected}, got {json_type(value)}", "type"))
    if problems:
        # Report the model's checks too, but not twice for a field already reported.
        reported = {p.path for p in problems}
        problems += [p for p in check(obj, values) if p.path not in reported]
        problems += _extra_content(values.get("extra"))
        return None, problems
    # The common path: the model checks the values once, as it does for Python callers.
    try:
        return build(obj, values), []
    except InputError as exc:
        # The model's paths start with its own label for the record: the record's own
        # paths follow it.
        return None, [Problem(p.path[1:], p.what, p.code) for p in exc.problems]


def _session_check(obj: dict[str, Any], values: _Values) -> list[Problem]:
    return session_problems(
        values["start"],
        obj.get("kind", "induction"),
        obj.get("id"),
        values["last_food"],
        obj.get("escort"),
        obj.get("therapist"),
    )


def _session_build(obj: dict[str, Any], values: _Values) -> Session:
    return Session(
        values["start"],
        obj.get("kind", "induction"),
        obj.get("id"),
        values["last_food"],
        obj.get("escort"),
        therapist=obj.get("therapist"),
        extra=values["extra"],
    )


def _integration_check(obj: dict[str, Any], values: _Values) -> list[Problem]:
    return integration_problems(values["start"], obj.get("id"), obj.get("therapist"))


def _integration_build(obj: dict[str, Any], values: _Values) -> Integration:
    return Integration(values["start"], obj.get("id"), therapist=obj.get("therapist"))


_session = functools.partial(
    _record,
    "sessions",
    SESSION_FIELDS,
    "leave it out for a positional id",
    _session_check,
    _session_build,
)
_session_fields = functools.partial(
    _fields, SESSION_FIELDS, "leave it out for none", _session_check, _session_build
)
_integration = functools.partial(
    _record,
    "integrations",
    INTEGRATION_FIELDS,
    "leave it out",
    _integration_check,
    _integration_build,
)


def _items(
    data: dict[str, Any],
    name: str,
    read: Callable[[int, object], tuple[Any, list[Problem]]],
    problems: list[Problem],
    *,
    required: bool,
    fast: Callable[[object, None], Any] | None = None,
) -> list[Any]:
    raw = data.get(name)
    if name not in data:
        if required:
            problems.append(Problem(name, "is required: an array of objects", "required"))
        return []
    if not isinstance(raw, list):
        problems.append(Problem(name, f"must be an array, got {json_type(raw)}", "type"))
        return []
    items = []
    for index, item in enumerate(raw):
        if fast is not None and (value := fast(item, None)) is not None:
            items.append(value)
            continue
        value, found = read(index, item)
        problems += found
        if value is not None:
            items.append(value)
    return items


MAX_SESSIONS = 10_000
"""The most sessions (and, apart, integration meetings) a course may hold: a longer list
is an `InputError`, so that one record cannot take minutes and gigabytes to check."""


def course_from_data(data: object, *, clean: bool = False) -> Course:
    for key in ("sessions", "integrations"):  # before any work on them
        items = data.get(key) if isinstance(data, dict) else None
        if isinstance(items, list) and len(items) > MAX_SESSIONS:
            raise InputError(Problem(key, f"holds more than {MAX_SESSIONS} items, the limit"))
    if clean and _fast.ENABLED and (course := _fast_course(data)) is not None:
        return course
    if not isinstance(data, dict):
        raise InputError(Problem((), f"a course must be a JSON object, got {json_type(data)}"))
    problems = _unknown_fields(data, COURSE_FIELDS)
    timezone = data.get("timezone")
    if "timezone" not in data:
        problems.append(
            Problem(
                "timezone", "is required: an IANA zone name such as 'America/Denver'", "required"
            )
        )
    elif not isinstance(timezone, str):
        problems.append(Problem("timezone", f"must be a string, got {json_type(timezone)}", "type"))
    elif (zone_problem := timezone_problem(timezone)) is not None:
        problems.append(zone_problem)
    patient = data.get("patient")
    if patient is not None and not isinstance(patient, str):
        problems.append(
            Problem("patient", f"must be a string or null, got {json_type(patient)}", "type")
        )
    course_id = data.get("id")
    if "id" in data and not isinstance(course_id, str):
        problems.append(Problem("id", f"must be a string, got {json_type(course_id)}", "type"))
    schema = data.get("$schema")
    if schema is not None and not isinstance(schema, str):
        problems.append(Problem("$schema", f"must be a string, got {json_type(schema)}", "type"))
    # Text without lone surrogates takes the fast path for plain sessions.
    fast = _fast_session if clean and _fast.ENABLED else None
    sessions = _items(data, "sessions", _session, problems, required=True, fast=fast)
    integrations = _items(data, "integrations", _integration, problems, required=False)
    extra = _extra(data, problems)
    if problems:
        raise InputError(*problems, *_extra_content(extra))
    return Course(
        timezone,  # type: ignore[arg-type]
        sessions,
        patient,
        integrations=integrations,
        extra=extra,
        id=course_id,
    )


class _Duplicate(Exception):
    pass


# Field names of both formats: a repeated key is named only when it is one of these.
_KNOWN_KEYS = frozenset(
    (*COURSE_FIELDS, *SESSION_FIELDS, *INTEGRATION_FIELDS, "version", "rules", "parameters")
)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key if key in _KNOWN_KEYS else None)
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise InputError(f"{name} is not valid JSON; give a number or leave the field out")


_SLOW: Any = object()
# orjson reserves about 13 times its input while parsing: only course-sized texts take it,
# so that a large document costs what the standard library costs (about twice its size).
_FAST_JSON_LIMIT = 64 * 1024


def _strings(document: Any) -> int:
    """How many strings (keys and values) a decoded document holds; -1 if it holds a float."""
    count = 0
    stack = [[document]]
    while stack:
        for value in stack.pop():
            kind = type(value)
            if kind is str:
                count += 1
            elif kind is dict:
                count += len(value)
                stack.append(value.values())
            elif kind is list:
                stack.append(value)
            elif kind is float:
                return -1
    return count


def _fast_json(text: str | bytes | bytearray) -> Any:
    """The document as ``json.loads`` reads it, through orjson; `_SLOW` when unsure.

    orjson keeps the last of repeated keys and reads integers past 64 bits as floats, where
    the standard library (with our hook) refuses and keeps them whole. Both are ruled out
    without a second parse: a document without floats whose strings, counted after
    decoding, account for every quote character of the text cannot have lost a key
    (each string in the text has two unescaped quotes, and a dropped key is a string).
    Anything else is read again by the standard library, which also words every error.
    """
    if _orjson is None or not _fast.ENABLED or len(text) > _FAST_JSON_LIMIT:
        return _SLOW
    try:
        document = _orjson.loads(text)
    except _orjson.JSONDecodeError:
        return _SLOW
    if type(text) is bytes and _orjson.dumps(document) == text:
        return document  # compact JSON Lines, written back byte for byte: nothing was lost
    quotes = text.count('"') if isinstance(text, str) else text.count(b'"')
    if 2 * _strings(document) != quotes:
        return _SLOW
    return document


def _json(text: str | bytes | bytearray, what: str) -> Any:
    return _decoded(text, what)[0]


def _decoded(text: str | bytes | bytearray, what: str) -> tuple[Any, bool]:
    """The JSON document, and whether orjson read it (then no lone surrogate is in it)."""
    if not isinstance(text, str | bytes | bytearray):
        raise InputError(f"expected JSON text (str or bytes), got {type(text).__name__}")
    if isinstance(text, bytes | bytearray) and text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]  # a UTF-8 byte order mark, as spreadsheet exports write
    document = _fast_json(text)
    if document is not _SLOW:
        return document, True
    return _stdlib_json(text, what), False


def _stdlib_json(text: str | bytes | bytearray, what: str) -> Any:
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except _Duplicate as exc:
        # Any other key may be clinical data (a name): only known field names are echoed.
        what = (
            f"duplicate key {exc.args[0]!r} in a JSON object"
            if exc.args[0]
            else "a JSON object repeats a key"
        )
        raise InputError(Problem((), f"{what}; give each field once", "duplicate")) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except UnicodeDecodeError:
        raise InputError("not valid JSON: the bytes are not UTF-8, UTF-16 or UTF-32 text") from None
    except RecursionError:
        raise InputError(f"not valid JSON for {what}: nested too deeply") from None
    except ValueError as exc:  # past the integer digit limit, and the like
        if "integer string conversion" in str(exc):
            raise InputError(
                f"not usable JSON for {what}: a number has more than "
                f"{sys.get_int_max_str_digits()} digits"
            ) from None
        raise InputError(f"not valid JSON for {what}: {echo(str(exc), 120)}") from None


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
    document, by_orjson = _decoded(text, "a course")
    # orjson refuses lone surrogates, in the text and in its escapes; otherwise look.
    return course_from_data(document, clean=by_orjson or _clean(text))


def parse_session(data: Mapping[str, Any] | str | bytes | bytearray) -> Session:
    """Read one session in the course format, such as a booking screen receives.

    The object is one item of a course's ``sessions`` (see the input format), read by the
    same code as a course's sessions; problems are pathed from the session itself
    (``start``, ``last_food``), not from a course.

    Args:
        data: The session as an object read from JSON (a mapping), or as JSON text (or
            UTF-8, UTF-16 or UTF-32 bytes) of one object.

    Returns:
        The session; without an ``id`` in the object, its id is None.

    Raises:
        InputError: The text is not JSON, or the object is not a session: every problem
            is listed, each with its path (such as ``last_food``).
    """
    document = _json(data, "a session") if isinstance(data, str | bytes | bytearray) else data
    if isinstance(document, Mapping) and not isinstance(document, dict):
        document = dict(document)
    if not isinstance(document, dict):
        raise InputError(
            Problem((), f"a session must be a JSON object, got {json_type(document)}", "type")
        )
    session, problems = _session_fields(document)
    if problems:
        raise InputError(*problems)
    result: Session = session
    return result


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _clean(text: str | bytes | bytearray) -> bool:
    """Whether JSON text can hold no lone surrogate: no surrogate escape, valid Unicode."""
    if isinstance(text, str):
        return _time.valid_text(text) and _SURROGATE_ESCAPE.search(text.encode()) is None
    return _SURROGATE_ESCAPE.search(text) is None


def load_course(path: str | os.PathLike[str]) -> Course:
    """Read a course from a JSON file.

    Args:
        path: The file's path.

    Returns:
        The course.

    Raises:
        InputError: The file cannot be read, or does not hold a course.
    """
    return parse_course(_read(path, InputError))


MAX_FILE_BYTES = 64 * 1024 * 1024
"""The most bytes `load_course`, `load_protocol` and `load_calendar` read from a file (64
MiB): a device such as ``/dev/zero`` is refused instead of filling memory."""


def _read(path: str | os.PathLike[str], error: type[InputError | ProtocolError]) -> bytes:
    if not isinstance(path, str | os.PathLike):
        raise error(f"expected a file path (str or os.PathLike), got {type(path).__name__}")
    shown = echo(os.fspath(path), 200)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:
        strerror = getattr(exc, "strerror", None) or "not a usable path"
        raise error(f"{shown}: cannot read: {strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise error(f"{shown}: holds more than {MAX_FILE_BYTES} bytes, the limit")
    return data


def dumps(course: Course, *, indent: int | None = 2) -> str:
    """A course as JSON text in the course format, which `parse_course` reads back.

    Args:
        course: The course.
        indent: JSON indentation; None for one line.

    Returns:
        The text. ``parse_course(dumps(course)) == course``.
    """
    return json.dumps(course.to_dict(), indent=indent, ensure_ascii=False)


def _schema(name: str) -> dict[str, Any]:
    # Imported here: importlib.resources costs ~7 ms of start-up and only this needs it.
    import importlib.resources

    text = importlib.resources.files("kaprules").joinpath(name).read_text("utf-8")
    loaded: Callable[[str], dict[str, Any]] = json.loads
    return loaded(text)


def course_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the course format, as shipped with the package.

    Returns:
        The schema as a dict.
    """
    return _schema("course.schema.json")


def protocol_schema(rule_classes: Iterable[type[Any]] = ()) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the protocol file format.

    Generated from the rule classes' declared parameters (`parameters_of`): for
    kaprules' own rules it is the shipped ``protocol.schema.json``. Applies to TOML
    protocol files too, read as data (a TOML date for ``effective`` is the schema's
    ``YYYY-MM-DD`` string).

    Args:
        rule_classes: Classes of your own rules, whose parameters the schema describes too.

    Returns:
        The schema as a dict.
    """
    return protocol_json_schema(rule_classes)


# tomllib's messages that name a key: the key may be clinical data or a secret, so only
# what happened is said, with the line and column.
_TOML_KEY_MESSAGES = (
    (re.compile(r"Cannot declare .* twice"), "a table or key is declared twice"),
    (re.compile(r"Cannot (?:mutate immutable|redefine) namespace .*"), "a table is defined twice"),
    (re.compile(r"Duplicate inline table key .*"), "an inline table repeats a key"),
)
_TOML_WHERE = re.compile(r" \((?:at line \d+, column \d+|at end of document)\)$")


def _toml_reason(message: str) -> str:
    where = _TOML_WHERE.search(message)
    head = message[: where.start()] if where else message
    for pattern, reason in _TOML_KEY_MESSAGES:
        if pattern.fullmatch(head):
            head = reason
            break
    return shown_id(head, 120) + (where.group(0) if where else "")


def _document(text: str | bytes, format: str, what: str) -> Any:
    # TOML or JSON text as data; InputError for text that is neither.
    if not isinstance(text, str | bytes):
        raise InputError(f"{what} must be text (str or bytes), got {type(text).__name__}")
    if format == "json":
        return _json(text, what)
    if format != "toml":
        raise InputError(f"unknown format {echo(str(format))}; use 'toml' or 'json'")
    import tomllib

    try:
        source = text.decode("utf-8") if isinstance(text, bytes) else text
        return tomllib.loads(source)
    except UnicodeDecodeError:
        raise InputError("not valid TOML: the bytes are not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {_toml_reason(str(exc))}") from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise InputError(f"not valid TOML: {type(exc).__name__}") from None


def parse_protocol(
    text: str | bytes, *, format: str = "toml", rule_classes: Iterable[type[Any]] | None = None
) -> Protocol:
    """Read a protocol from TOML or JSON text.

    Args:
        text: The protocol file's text (or UTF-8 bytes).
        format: ``"toml"`` or ``"json"``.
        rule_classes: Classes of your own rules (any iterable; None for none), as for
            [`Protocol.from_dict`][kaprules.Protocol.from_dict]; a rule named by neither
            kaprules nor these is looked for among the installed
            [rule plugins][kaprules.plugins].

    Returns:
        The protocol.

    Raises:
        ProtocolError: The text cannot be read in that format, or is not a protocol;
            every problem is listed with its path.
    """
    classes = given_classes(rule_classes).values()  # refused before the text is read
    try:
        data = _document(text, format, "a protocol")
    except InputError as exc:
        raise ProtocolError(*exc.problems) from None
    return protocol_from_data(data, rule_classes=classes)


def load_protocol(
    path: str | os.PathLike[str], *, rule_classes: Iterable[type[Any]] | None = None
) -> Protocol:
    """Read a protocol file: TOML (``.toml``) or JSON (any other name).

    Args:
        path: The file's path.
        rule_classes: Classes of your own rules (any iterable; None for none), as for
            [`Protocol.from_dict`][kaprules.Protocol.from_dict]; a rule named by neither
            kaprules nor these is looked for among the installed
            [rule plugins][kaprules.plugins].

    Returns:
        The protocol.

    Raises:
        ProtocolError: The file cannot be read, or does not hold a protocol.
    """
    classes = given_classes(rule_classes).values()  # refused before the file is read
    data = _read(path, ProtocolError)
    format = "toml" if os.fspath(path).lower().endswith(".toml") else "json"
    return parse_protocol(data, format=format, rule_classes=classes)


def resolve_protocol(spec: str) -> Protocol:
    """A protocol named as on the command line: ``NAME@VERSION`` or a protocol file's path.

    Args:
        spec: ``kap-standard@2`` (a built-in), or the path of a ``.toml`` or ``.json`` file.

    Returns:
        The protocol.

    Raises:
        ProtocolError: No such built-in protocol, or the file does not hold one.
    """
    if "@" in spec and not os.path.exists(spec):
        return get_protocol(spec)
    if not os.path.exists(spec):
        names = sorted({f"{p.id}@{p.version}" for p in builtin_protocols()})
        ids = {p.id for p in builtin_protocols()}
        if spec in ids:
            raise ProtocolError(
                f"{echo(spec)} names no version and is no file; use "
                + " or ".join(n for n in names if n.startswith(spec + "@"))
            )
        hint = did_you_mean(spec, names)
        if hint:
            raise ProtocolError(f"no protocol file {echo(spec)}{hint}")
    return load_protocol(spec)


def calendar_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the clinic calendar file format, as shipped.

    Applies to TOML calendar files read as data (TOML dates and times are the schema's
    ``YYYY-MM-DD`` and ``HH:MM`` strings).

    Returns:
        The schema as a dict.
    """
    return _schema("calendar.schema.json")


def parse_calendar(text: str | bytes, *, format: str = "toml") -> ClinicCalendar:
    """Read a clinic calendar from TOML or JSON text.

    Args:
        text: The calendar file's text (or UTF-8 bytes).
        format: ``"toml"`` or ``"json"``.

    Returns:
        The calendar.

    Raises:
        InputError: The text cannot be read in that format, or is not a calendar; every
            problem is listed with its path.
    """
    return ClinicCalendar.from_dict(_document(text, format, "a calendar"))


def load_calendar(path: str | os.PathLike[str]) -> ClinicCalendar:
    """Read a clinic calendar file: TOML (``.toml``) or JSON (any other name).

    Args:
        path: The file's path.

    Returns:
        The calendar.

    Raises:
        InputError: The file cannot be read, or does not hold a calendar.
    """
    data = _read(path, InputError)
    format = "toml" if os.fspath(path).lower().endswith(".toml") else "json"
    return parse_calendar(data, format=format)
