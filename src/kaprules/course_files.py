"""The course format: its fields, described once, and how a document becomes a `Course`.

The format tables (`COURSE_FORMAT`, `SESSION_FORMAT`, `INTEGRATION_FORMAT`) are the one
description of the fields: the loader's field lists and the documentation's tables are
derived from them, and the schema and the audit's CSV columns are tested against them.
`course_from_data` reads a decoded document: a plain record is checked once and built
directly (the fast path), anything else takes the general path, which names every problem.
`kaprules.loading` decodes text and reads files into it.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from kaprules import _fast, _time
from kaprules.errors import (
    InputError,
    PathItem,
    Problem,
    echo,
    json_type,
    unknown_field,
)
from kaprules.model import (
    KIND_BY_VALUE,
    MAX_DOSE_MG,
    MAX_READINGS,
    READING_RANGE,
    Course,
    Integration,
    Session,
    Vital,
    Waiver,
    enrolled_problems,
    freeze_json,
    integration_problems,
    reading_problems,
    readings_count_problems,
    session_problems,
    timezone_problem,
    trusted_course,
    trusted_session,
    vital_problems,
    waiver_problems,
)

__all__ = [
    "COURSE_FIELDS",
    "COURSE_FORMAT",
    "DATETIME_PATTERN",
    "DATE_PATTERN",
    "INTEGRATION_FIELDS",
    "INTEGRATION_FORMAT",
    "MAX_SESSIONS",
    "SESSION_FIELDS",
    "SESSION_FORMAT",
    "VITAL_FIELDS",
    "VITAL_FORMAT",
    "WAIVER_FIELDS",
    "WAIVER_FORMAT",
    "Field",
    "course_from_data",
    "field_table",
    "session_from_data",
]

# ISO 8601 / RFC 3339 date-time with a mandatory offset; the schema carries the same pattern.
# Offset hours 00-23 and minutes 00-59: "+00:99" is not an offset, however Python reads it.
DATETIME_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_DATETIME = re.compile(DATETIME_PATTERN)
# A calendar date, YYYY-MM-DD; the schema carries the same pattern.
DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE = re.compile(DATE_PATTERN)


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
            ``date-time or null``, ``date or null`` (``YYYY-MM-DD``), ``number or null``,
            ``integer``, ``kind``, ``array`` or ``object``.
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
    Field(
        "enrolled",
        False,
        "date or null",
        "The local date the patient was enrolled in the REMS, written `YYYY-MM-DD`; null or "
        "absent when not recorded.",
    ),
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
    Field(
        "waivers",
        False,
        "array",
        "Accepted exceptions to the protocol's rules, each an object "
        "`{rule, sessions, reason, approved_by, approved_at, note}`, in any order (see the "
        "page on waivers and versions in force).",
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
        "When the session starts, which is when dosing begins (the first device, or the "
        "infusion's start): ISO 8601 with a UTC offset or `Z`, such as "
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
    Field(
        "last_liquid",
        False,
        "date-time or null",
        "When the patient last drank before the session, in the same notation as `start`; "
        "null or absent when not recorded.",
    ),
    Field(
        "vitals",
        False,
        "array",
        "The blood-pressure readings taken during the session, each an object "
        f"`{{at, systolic, diastolic}}`, at most {MAX_READINGS}; absent or empty when none are "
        f"recorded. {_NEVER_SHOWN}",
    ),
    Field(
        "ready_to_leave",
        False,
        "date-time or null",
        "When monitoring ended and the patient was assessed ready to leave, in the same "
        "notation as `start`; null or absent when not recorded.",
    ),
    Field(
        "dose_mg",
        False,
        "number or null",
        f"The ketamine dose given, in milligrams: a number above 0 and at most {MAX_DOSE_MG}; "
        f"null or absent when not recorded. {_NEVER_SHOWN}",
    ),
    Field(
        "monitoring_form",
        False,
        "date-time or null",
        "When the REMS Patient Monitoring Form for the session was submitted, in the same "
        "notation as `start`; null or absent when not recorded.",
    ),
)
"""A session object's fields."""

VITAL_FORMAT: tuple[Field, ...] = (
    Field(
        "at",
        True,
        "date-time",
        "When the reading was taken, in the same notation as a session's `start`.",
    ),
    Field("systolic", True, "integer", f"The systolic pressure: {READING_RANGE}."),
    Field(
        "diastolic",
        True,
        "integer",
        f"The diastolic pressure: {READING_RANGE}, at most the systolic.",
    ),
)
"""A blood-pressure reading object's fields (an item of a session's ``vitals``)."""

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

WAIVER_FORMAT: tuple[Field, ...] = (
    Field("rule", True, "string", "The id of the rule waived, as its findings name it."),
    Field(
        "sessions",
        True,
        "array",
        "The ids of the sessions it covers (strings); empty for a finding about the course "
        "as a whole.",
    ),
    Field(
        "reason",
        True,
        "string or null",
        "A reason code from the protocol's vocabulary, such as `clinical-judgement`; null "
        "or blank is reported as a `waiver` finding.",
    ),
    Field(
        "approved_by",
        True,
        "string or null",
        "Who approved it: a clinician's name or staff id; null or blank is reported as a "
        "`waiver` finding. Shown in reports, so that a board sees who accepted each "
        "exception.",
    ),
    Field(
        "approved_at",
        True,
        "date-time or null",
        "When it was approved, in the same notation as a session's `start`; null is "
        "reported as a `waiver` finding.",
    ),
    Field(
        "note",
        False,
        "string or null",
        "Free text for the clinic's record. Never shown in shared outputs unless asked for.",
    ),
)
"""A waiver object's fields (an item of a course's ``waivers``)."""

COURSE_FIELDS = tuple(f.name for f in COURSE_FORMAT)
SESSION_FIELDS = tuple(f.name for f in SESSION_FORMAT)
INTEGRATION_FIELDS = tuple(f.name for f in INTEGRATION_FORMAT)
VITAL_FIELDS = tuple(f.name for f in VITAL_FORMAT)
WAIVER_FIELDS = tuple(f.name for f in WAIVER_FORMAT)


def field_table(fields: tuple[Field, ...]) -> str:
    """A format's fields as a Markdown table, required ones first (for the docs).

    Args:
        fields: One of the format tables, such as `SESSION_FORMAT`.

    Returns:
        The table.
    """
    rows = ["| field | required | type | meaning |", "|---|---|---|---|"]
    for f in sorted(fields, key=lambda f: not f.required):
        shown = {
            "date-time": "string",
            "date-time or null": "string or null",
            "date or null": "string or null",
            "kind": "string",
        }
        kind = shown.get(f.type, f.type)
        rows.append(f"| `{f.name}` | {'yes' if f.required else 'no'} | {kind} | {f.meaning} |")
    return "\n".join(rows)


# Keys whose closest spelling is not the field they mean: "last_meal" reads nearer to
# "last_liquid" than to "last_food".
_MEANT = {"last_meal": "last_food", "last_eaten": "last_food", "last_drink": "last_liquid"}


def _unknown_fields(obj: dict[str, Any], allowed: tuple[str, ...]) -> list[Problem]:
    return [_unknown(n, key, allowed) for n, key in enumerate(obj) if key not in allowed]


def _unknown(position: int, key: object, allowed: tuple[str, ...]) -> Problem:
    if isinstance(key, str) and (meant := _MEANT.get(key.lower())) in allowed:
        return Problem(key, f"unknown field; did you mean {meant!r}?", "unknown-field")
    return unknown_field((), position, key, allowed)


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


def _date(obj: dict[str, Any], key: str, problems: list[Problem]) -> dt.date | None:
    # An optional calendar date, YYYY-MM-DD, in the supported years.
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(
            Problem(
                key, f"must be a date string (YYYY-MM-DD) or null, got {json_type(value)}", "type"
            )
        )
        return None
    if not _DATE.fullmatch(value):
        problems.append(
            Problem(
                key,
                f"{echo(value)} is not a date written YYYY-MM-DD, such as '2026-11-02'",
                "format",
            )
        )
        return None
    try:
        date = dt.date.fromisoformat(value)
    except ValueError:
        problems.append(Problem(key, f"{echo(value)} is not a real date", "value"))
        return None
    found = enrolled_problems(date)
    problems += [Problem(key, p.what, p.code) for p in found]
    return None if found else date


def _dose(obj: dict[str, Any], problems: list[Problem]) -> Any:
    # The JSON type only: the model checks the value (positive, finite), once.
    value = obj.get("dose_mg")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        problems.append(
            Problem("dose_mg", f"must be a number or null, got {json_type(value)}", "type")
        )
        return None
    return value


def _reading(obj: dict[str, Any], key: str, problems: list[Problem]) -> int | None:
    # A blood-pressure reading: a JSON integer (1.0e2 is one, as for JSON Schema) in range.
    # Never shown: a problem says what is wrong, not the value.
    if key not in obj:
        problems.append(Problem(key, f"is required: {READING_RANGE}", "required"))
        return None
    value = obj[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(Problem(key, f"must be {READING_RANGE}, got {json_type(value)}", "type"))
        return None
    if isinstance(value, float):
        problems.append(Problem(key, f"must be {READING_RANGE}, got a fraction", "type"))
        return None
    found = reading_problems(key, value)
    problems += found
    return None if found else value


def _vitals(obj: dict[str, Any], problems: list[Problem]) -> tuple[Vital, ...]:
    # The readings of a session, each checked here with its path (vitals[0].systolic).
    if "vitals" not in obj:
        return ()
    value = obj["vitals"]
    if not isinstance(value, list):
        problems.append(
            Problem("vitals", f"must be an array of readings, got {json_type(value)}", "type")
        )
        return ()
    if too_many := readings_count_problems(len(value)):
        problems += too_many  # before reading any: the list may be long
        return ()
    readings = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            problems.append(
                Problem(
                    ("vitals", index),
                    f"must be an object {{at, systolic, diastolic}}, got {json_type(item)}",
                    "type",
                )
            )
            continue
        found = _unknown_fields(item, VITAL_FIELDS)
        at = _instant(item, "at", found, required=True)
        systolic = _reading(item, "systolic", found)
        diastolic = _reading(item, "diastolic", found)
        if not found:
            found = vital_problems(at, systolic, diastolic)
        if found:
            problems += [p.within("vitals", index) for p in found]
        else:
            readings.append(Vital(at, systolic, diastolic))  # type: ignore[arg-type]
    return tuple(readings)


def _waiver(index: int, item: object) -> tuple[Waiver | None, list[Problem]]:
    # One waiver, its problems pathed from it (waivers[0].approved_at).
    if not isinstance(item, dict):
        problems = [Problem(("waivers", index), f"must be an object, got {json_type(item)}")]
        return None, problems
    found = _unknown_fields(item, WAIVER_FIELDS)
    for key in ("rule", "sessions", "reason", "approved_by", "approved_at"):
        if key not in item:
            what = {
                "rule": "a rule id",
                "sessions": "an array of session ids (empty for the course as a whole)",
            }.get(key, "null where not recorded")
            found.append(Problem(key, f"is required: {what}", "required"))
    rule = item.get("rule")
    if "rule" in item and not isinstance(rule, str):
        found.append(Problem("rule", f"must be a string, got {json_type(rule)}", "type"))
    sessions = item.get("sessions", [])
    if not isinstance(sessions, list):
        found.append(
            Problem("sessions", f"must be an array of session ids, got {json_type(sessions)}")
        )
        sessions = []
    elif len(sessions) > MAX_SESSIONS:
        found.append(Problem("sessions", f"holds more than {MAX_SESSIONS} ids, the limit"))
        sessions = []
    for key in ("reason", "approved_by", "note"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            found.append(Problem(key, f"must be a string or null, got {json_type(value)}", "type"))
    approved_at = _instant(item, "approved_at", found, required=False)
    if not found:
        found = waiver_problems(
            rule,
            tuple(sessions),
            item["reason"],
            item["approved_by"],
            approved_at,
            item.get("note"),
        )
    if found:
        return None, [p.within("waivers", index) for p in found]
    waiver = Waiver(
        rule,  # type: ignore[arg-type]
        sessions,
        item["reason"],
        item["approved_by"],
        approved_at,
        item.get("note"),
    )
    return waiver, []


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
    return trusted_session(start, kind, record_id, last_food, escort, therapist)


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
    return trusted_course(timezone, zone, tuple(sessions), patient, course_id)


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


_OPTIONAL_INSTANTS = ("last_food", "last_liquid", "ready_to_leave", "monitoring_form")


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
    for key in _OPTIONAL_INSTANTS:
        if key in fields:
            values[key] = _instant(obj, key, problems, required=False)
    if "extra" in fields:
        values["extra"] = _extra(obj, problems)
    if "vitals" in fields:
        values["vitals"] = _vitals(obj, problems)
    if "dose_mg" in fields:
        values["dose_mg"] = _dose(obj, problems)
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
        **_session_day(values),
    )


def _session_day(values: _Values) -> dict[str, Any]:
    # The session-day data, as read, by the model's keyword names.
    return {
        "last_liquid": values["last_liquid"],
        "vitals": values["vitals"],
        "ready_to_leave": values["ready_to_leave"],
        "dose_mg": values["dose_mg"],
        "monitoring_form": values["monitoring_form"],
    }


def _session_build(obj: dict[str, Any], values: _Values) -> Session:
    return Session(
        values["start"],
        obj.get("kind", "induction"),
        obj.get("id"),
        values["last_food"],
        obj.get("escort"),
        therapist=obj.get("therapist"),
        extra=values["extra"],
        **_session_day(values),
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
"""The most sessions (and, apart, integration meetings, waivers, and the sessions one
waiver names) a course may hold: a longer list is an `InputError`, so that one record
cannot take minutes and gigabytes to check."""


def course_from_data(data: object, *, clean: bool = False) -> Course:
    """A course from a decoded document of the format.

    Args:
        data: The document (``json.loads``' result).
        clean: The text it came from surely holds no lone surrogate (orjson read it, or
            it was looked for): a plain record may then take the fast path.

    Returns:
        The course.

    Raises:
        InputError: The document is not a course; every problem is listed with its path.
    """
    for key in ("sessions", "integrations", "waivers"):  # before any work on them
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
    enrolled = _date(data, "enrolled", problems)
    # Text without lone surrogates takes the fast path for plain sessions.
    fast = _fast_session if clean and _fast.ENABLED else None
    sessions = _items(data, "sessions", _session, problems, required=True, fast=fast)
    integrations = _items(data, "integrations", _integration, problems, required=False)
    extra = _extra(data, problems)
    waivers = _items(data, "waivers", _waiver, problems, required=False)
    if problems:
        raise InputError(*problems, *_extra_content(extra))
    return Course(
        timezone,  # type: ignore[arg-type]
        sessions,
        patient,
        integrations=integrations,
        extra=extra,
        id=course_id,
        enrolled=enrolled,
        waivers=waivers,
    )


def session_from_data(document: object) -> Session:
    """One session of the format from a decoded object, problems pathed from the session.

    Args:
        document: The session object (a mapping).

    Returns:
        The session; without an ``id`` in the object, its id is None.

    Raises:
        InputError: The object is not a session; every problem is listed.
    """
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
