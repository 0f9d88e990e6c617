"""The course format is described once (kaprules.loading's format tables): the schema, the
loader, the CSV columns and the model's checks are held to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import kaprules
from kaprules import InputError, course_files
from kaprules.auditing import CSV_COLUMNS
from kaprules.course_files import (
    COURSE_FORMAT,
    INTEGRATION_FORMAT,
    SESSION_FORMAT,
    WAIVER_FORMAT,
    Field,
)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = kaprules.course_schema()
DATETIME = {"$ref": "#/$defs/datetime"}
# How each type in words reads in JSON Schema.
SCHEMA_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "string or null": {"type": ["string", "null"]},
    "array": {"type": "array"},
    "object": {"type": "object"},
    "date-time": DATETIME,
    "date-time or null": {"anyOf": [DATETIME, {"type": "null"}]},
    "date or null": {"anyOf": [{"$ref": "#/$defs/date"}, {"type": "null"}]},
    "number or null": {"type": ["number", "null"]},
    "integer": {"type": "integer"},
    "kind": {"enum": ["induction", "booster"]},
}
# A JSON value of the wrong type for each type in words.
WRONG: dict[str, object] = {
    "string": 5,
    "string or null": 5,
    "array": "x",
    "object": [1],
    "date-time": 5,
    "date-time or null": 5,
    "date or null": 5,
    "number or null": "x",
    "integer": "x",
    "kind": 5,
}


def _schema_of(part: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return part["properties"], part.get("required", [])


@pytest.mark.parametrize(
    ("fields", "part"),
    [
        (COURSE_FORMAT, SCHEMA),
        (SESSION_FORMAT, SCHEMA["$defs"]["session"]),
        (INTEGRATION_FORMAT, SCHEMA["$defs"]["integration"]),
        (WAIVER_FORMAT, SCHEMA["$defs"]["waiver"]),
    ],
    ids=["course", "session", "integration", "waiver"],
)
def test_the_schema_has_the_format_fields(fields: tuple[Field, ...], part: dict[str, Any]) -> None:
    properties, required = _schema_of(part)
    assert set(properties) == {f.name for f in fields}
    assert set(required) == {f.name for f in fields if f.required}
    for f in fields:
        expected = SCHEMA_TYPES[f.type]
        got = {k: v for k, v in properties[f.name].items() if k in expected}
        if f.name not in ("sessions", "integrations", "waivers"):
            assert got == expected, f.name
        else:
            assert properties[f.name]["type"] == "array"


def test_the_loader_knows_exactly_the_format_fields() -> None:
    assert tuple(f.name for f in COURSE_FORMAT) == course_files.COURSE_FIELDS
    assert tuple(f.name for f in SESSION_FORMAT) == course_files.SESSION_FIELDS
    assert tuple(f.name for f in INTEGRATION_FORMAT) == course_files.INTEGRATION_FIELDS


def test_the_csv_columns_are_course_and_session_fields() -> None:
    # course_id and session_id are the course's and the session's id; the rest by name.
    renamed = {"course_id": ("course", "id"), "session_id": ("session", "id")}
    course_names = {f.name for f in COURSE_FORMAT}
    session_names = {f.name for f in SESSION_FORMAT}
    for column in CSV_COLUMNS:
        part, name = renamed.get(column, ("", column))
        if part == "course":
            assert name in course_names
        else:
            assert name in session_names or name in course_names, column


def _document(session: dict[str, Any]) -> dict[str, Any]:
    return {"timezone": "UTC", "sessions": [session]}


@pytest.mark.parametrize("field", SESSION_FORMAT, ids=lambda f: f.name)
def test_the_loader_refuses_a_wrong_type_for_each_session_field(field: Field) -> None:
    session: dict[str, Any] = {"start": "2026-12-01T09:00:00Z", field.name: WRONG[field.type]}
    with pytest.raises(InputError) as info:
        kaprules.parse_course(json.dumps(_document(session)))
    assert any(p.path[-1] == field.name for p in info.value.problems), info.value


@pytest.mark.parametrize("field", [f for f in SESSION_FORMAT if f.required], ids=lambda f: f.name)
def test_the_loader_requires_each_required_session_field(field: Field) -> None:
    session: dict[str, Any] = {"start": "2026-12-01T09:00:00Z"}
    del session[field.name]
    with pytest.raises(InputError) as info:
        kaprules.parse_course(json.dumps(_document(session)))
    assert any(p.path[-1] == field.name for p in info.value.problems)


@pytest.mark.parametrize("field", COURSE_FORMAT, ids=lambda f: f.name)
def test_the_loader_refuses_a_wrong_type_for_each_course_field(field: Field) -> None:
    document: dict[str, Any] = {"timezone": "UTC", "sessions": []}
    document[field.name] = WRONG[field.type]
    with pytest.raises(InputError) as info:
        kaprules.parse_course(json.dumps(document))
    assert any(p.path[:1] == (field.name,) for p in info.value.problems), info.value


def test_the_docs_tables_are_printed_from_the_format() -> None:
    table = course_files.field_table(SESSION_FORMAT)
    for f in SESSION_FORMAT:
        assert f"| `{f.name}` | {'yes' if f.required else 'no'} |" in table
        assert f.meaning in table
    page = (ROOT / "docs" / "input-format.md").read_text(encoding="utf-8")
    for name in ("COURSE_FORMAT", "SESSION_FORMAT", "INTEGRATION_FORMAT", "WAIVER_FORMAT"):
        assert f"course_files.field_table(course_files.{name})" in page
