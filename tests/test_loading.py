"""Reading JSON courses; the shipped schema and the loader agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaprules import Course, InputError, course_schema, load_course, parse_course
from kaprules.course_files import DATETIME_PATTERN

from conftest import EXAMPLES

VALID = {
    "timezone": "America/Denver",
    "patient": "p",
    "sessions": [
        {
            "id": "s1",
            "kind": "induction",
            "start": "2026-12-01T09:00:00-07:00",
            "last_food": "2026-12-01T04:30:00-07:00",
            "escort": "E",
        }
    ],
}


def problems(text: str | bytes) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_course(text)
    return [str(p) for p in info.value.problems]


def test_parse_valid_course() -> None:
    course = parse_course(json.dumps(VALID))
    assert course.timezone == "America/Denver"
    [s] = course.sessions
    assert (s.id, s.kind, s.escort) == ("s1", "induction", "E")
    assert s.start.utcoffset().total_seconds() == -7 * 3600  # type: ignore[union-attr]


def test_minimal_session_and_defaults() -> None:
    course = parse_course('{"timezone": "UTC", "sessions": [{"start": "2026-12-01T09:00Z"}]}')
    [s] = course.sessions
    assert (s.id, s.kind, s.last_food, s.escort) == ("1", "induction", None, None)


def test_every_problem_is_listed_with_its_path() -> None:
    doc = {
        "timezone": "Mars/Base",
        "sesions": [],
        "sessions": [
            {"id": "a", "start": "2026-12-01T09:00:00", "last_meal": "x", "kind": "boost"},
            {"start": 5, "escort": 3},
            "not an object",
        ],
    }
    assert problems(json.dumps(doc)) == [
        "sesions: unknown field; did you mean 'sessions'?",
        "timezone: unknown timezone 'Mars/Base'; use an IANA name such as 'America/Denver'",
        "sessions[0] (id 'a').last_meal: unknown field; did you mean 'last_food'?",
        "sessions[0] (id 'a').start: '2026-12-01T09:00:00' is not an ISO 8601 date-time with an "
        "offset; write it like '2026-12-01T09:00:00-07:00' or '2026-12-01T16:00:00Z'",
        "sessions[0] (id 'a').kind: unknown kind 'boost'; use one of 'induction', 'booster'",
        "sessions[1].start: must be an ISO 8601 date-time string, got a number",
        "sessions[1].escort: must be a string or null, got a number",
        "sessions[2]: must be an object, got a string",
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("[]", "a course must be a JSON object, got an array"),
        ('{"timezone": "UTC"}', "sessions: is required"),
        ('{"sessions": []}', "timezone: is required"),
        ('{"timezone": "UTC", "sessions": [], "timezone": "UTC"}', "duplicate key 'timezone'"),
        ('{"timezone": "UTC", "sessions": [{"start": NaN}]}', "NaN is not valid JSON"),
        ('{"timezone": "UTC", "sessions": [{"start": "2026-02-30T09:00Z"}]}', "not a real date"),
        ('{"timezone": "UTC", "sessions": [{"start": "2026-12-01 09:00Z"}]}', "not an ISO 8601"),
        (
            '{"timezone": "UTC", "sessions": [{"start": "2026-12-01T09:00+0700"}]}',
            "not an ISO 8601",
        ),
        ('{"timezone": "UTC", "sessions": [{"id": null, "start": "2026-12-01T09:00Z"}]}', None),
        (
            '{"timezone": "UTC", "sessions": [{"id": "", "start": "2026-12-01T09:00Z"}]}',
            "id: is empty",
        ),
        (
            '{"timezone": "UTC", "sessions": [{"id": "a", "start": "2026-12-01T09:00Z"}, '
            '{"id": "a", "start": "2026-12-03T09:00Z"}]}',
            "duplicate of sessions",
        ),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        (b"\xff\xfe\x00", "not valid JSON"),
    ],
)
def test_bad_documents(text: str | bytes, match: str | None) -> None:
    if match is None:  # id null: the schema refuses it, so the loader must too
        assert problems(text) == [
            "sessions[0].id: must be a string, got null; leave it out for a positional id"
        ]
        return
    assert any(match in p for p in problems(text)), problems(text)


def test_parse_rejects_non_text() -> None:
    with pytest.raises(InputError, match="expected JSON text"):
        parse_course({"timezone": "UTC"})  # type: ignore[arg-type]


def test_load_course_and_unreadable_paths(tmp_path: Path) -> None:
    assert isinstance(load_course(EXAMPLES / "compliant.json"), Course)
    assert isinstance(load_course(str(EXAMPLES / "compliant.json")), Course)
    with pytest.raises(InputError, match="cannot read"):
        load_course(tmp_path / "missing.json")
    with pytest.raises(InputError, match="cannot read"):
        load_course(tmp_path)


def test_bytes_with_bom_and_utf16() -> None:
    text = json.dumps(VALID)
    assert parse_course(text.encode("utf-16")) == parse_course(text)
    assert parse_course(text.encode("utf-8")) == parse_course(text)


# --- the schema and the loader agree --------------------------------------------------

VALIDATOR = jsonschema.Draft202012Validator(course_schema())


def test_schema_is_a_valid_schema_with_the_loader_pattern() -> None:
    jsonschema.Draft202012Validator.check_schema(course_schema())
    pattern = course_schema()["$defs"]["datetime"]["pattern"]
    assert pattern == f"^{DATETIME_PATTERN}$"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_examples_are_valid_against_the_schema(path: Path) -> None:
    VALIDATOR.validate(json.loads(path.read_text()))
    load_course(path)


timestamps = st.sampled_from(
    [
        "2026-12-01T09:00:00-07:00",
        "2026-12-01T16:00Z",
        "2026-12-01T09:00:00.5+05:30",
        "2026-12-01T09:00:00",
        "2026-12-01 09:00Z",
        "2026-13-01T09:00Z",
        "20261201T0900Z",
        "2026-12-01T09:00:00+0700",
    ]
)
any_value = st.none() | st.booleans() | st.integers() | st.text(max_size=5) | timestamps
session_docs = st.dictionaries(
    st.sampled_from(["id", "kind", "start", "last_food", "escort", "last_meal"]),
    st.one_of(any_value, st.sampled_from(["induction", "booster", "s1", "s2", "E"])),
)
course_docs = st.fixed_dictionaries(
    {},
    optional={
        "timezone": st.sampled_from(["UTC", "America/Denver", "Nowhere/Zone", 3]),
        "patient": st.none() | st.text(max_size=3) | st.integers(),
        "sessions": st.lists(session_docs, max_size=3) | any_value,
        "extra": any_value,
    },
)


@given(course_docs)
def test_loader_accepts_only_schema_valid_documents(doc: dict[str, object]) -> None:
    schema_ok = VALIDATOR.is_valid(doc)
    try:
        parse_course(json.dumps(doc))
    except InputError:
        return
    assert schema_ok, f"loader accepted what the schema refuses: {doc}"


@given(course_docs)
def test_schema_valid_documents_load_unless_a_documented_extra_check_fails(
    doc: dict[str, object],
) -> None:
    if not VALIDATOR.is_valid(doc):
        return
    try:
        parse_course(json.dumps(doc))
    except InputError as exc:
        failed = exc
    else:
        return
    # Only what the schema says it cannot express may still fail.
    allowed = (
        "unknown timezone",
        "not a real date",
        "duplicate of",
        "id: is empty",
        "outside the supported years",
    )
    assert all(any(a in str(p) for a in allowed) for p in failed.problems), str(failed)
