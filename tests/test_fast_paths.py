"""The fast paths give exactly what the general paths give.

orjson decoding against ``json.loads`` with the duplicate-key hook; the loader's plain-record
path against its full path; JSON Lines read in blocks against JSON Lines read line by line;
an audit's samples whatever the number of jobs.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kaprules
from kaprules import Course, InputError, _fast, auditing, course_files, loading
from kaprules._text import json_text
from kaprules.auditing import files, read_records
from kaprules.auditing import records as audit_records
from kaprules.course_files import course_from_data
from kaprules.findings_files import rows as findings_rows
from kaprules.loading import _SLOW, _fast_json, _stdlib_json
from kaprules.strategies import compliant_courses, courses
from test_fuzz import documents

from helpers import write_lines

needs_fast_paths = pytest.mark.skipif(
    not _fast.ENABLED, reason="KAPRULES_NO_FAST_PATHS is set: no fast path fires"
)

# --- orjson or json.loads ----------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from('"\\'))
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 5, max_value=2**64 + 5).map(lambda n: n * (-1) ** n)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_writers = st.sampled_from(
    [
        lambda v: json.dumps(v),
        lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False),
        lambda v: json.dumps(v, indent=1),
        lambda v: json.dumps(v, separators=(" ,", " : ")),
    ]
)


def _with_a_repeated_key(text: str) -> str:
    # Repeat the first key of the outermost object, as a hostile writer could.
    return text.replace("{", '{"k": 1, "k" : 2,', 1)


@given(_values, _writers, st.booleans(), st.booleans())
def test_fast_json_reads_what_json_loads_reads(
    value: Any, write: Any, repeat: bool, as_bytes: bool
) -> None:
    text: str | bytes = write(value)
    assert isinstance(text, str)
    if repeat:
        text = _with_a_repeated_key(text)
    if as_bytes:
        text = text.encode("utf-8")
    fast = _fast_json(text)
    try:
        slow = _stdlib_json(text, "a document")
    except InputError:
        assert fast is _SLOW  # a repeated key: only the standard library says which
        return
    assert fast is _SLOW or same(fast, slow)


_plain_scalars = st.none() | st.booleans() | st.integers(-(2**62), 2**62) | _text
_plain_values = st.recursive(
    _plain_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


@needs_fast_paths
@given(_plain_values)
def test_fast_json_takes_what_it_surely_reads(value: Any) -> None:
    # Without floats or huge integers, compact JSON is written back by orjson byte for byte:
    # the fast path must fire (the property above passes when it never does).
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    fast = _fast_json(text)
    assert fast is not _SLOW
    assert same(fast, json.loads(text))


def _general(text: str | bytes) -> Course | tuple[str, ...]:
    # The general path alone: the standard library's decoder, every field checked by the
    # model's __init__ (clean=False never takes a plain-record constructor).
    try:
        return course_from_data(_stdlib_json(text, "a course"), clean=False)
    except InputError as exc:
        return tuple(str(p) for p in exc.problems)


def _parsed(text: str | bytes) -> Course | tuple[str, ...]:
    try:
        return kaprules.parse_course(text)
    except InputError as exc:
        return tuple(str(p) for p in exc.problems)


@given(documents(), st.booleans())
def test_hostile_documents_read_the_same_on_every_path(text: str, as_bytes: bool) -> None:
    # The fuzz suite's documents: secrets in key names, repeated keys, lone surrogates,
    # impossible offsets, wrong types. A fast path that accepts too much fails here.
    data: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    fast, general = _parsed(data), _general(data)
    assert fast == general
    if isinstance(fast, Course) and isinstance(general, Course):
        assert [s.instant for s in fast.sessions] == [s.instant for s in general.sessions]
        assert fast.zone == general.zone


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1,"a":2}',
        b'{"a" :1,"a":2}',
        b'{"a":1, "a" : 2}',
        b'{"\\u0061":1,"a":2}',
        b'{"s":[{"id":"x","id":"x"}]}',
        b'{"a":"\\"","a":"\\""}',
        '{"é":1,"é":2}'.encode(),
    ],
)
def test_a_repeated_key_never_takes_the_fast_path(text: bytes) -> None:
    assert _fast_json(text) is _SLOW
    with pytest.raises(InputError, match="key"):
        kaprules.parse_course(text)


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
def test_integers_past_64_bits_keep_their_value(number: int) -> None:
    text = json.dumps({"a": number}).encode()
    assert _fast_json(text) is _SLOW
    assert loading._json(text, "a document") == {"a": number}


@needs_fast_paths
def test_only_course_sized_texts_take_orjson() -> None:
    # orjson reserves about 13 times its input; a large document is read by json.loads.
    small = json.dumps({"a": "x" * 1000}).encode()
    large = json.dumps({"a": "x" * loading._FAST_JSON_LIMIT}).encode()
    assert _fast_json(small) == {"a": "x" * 1000}
    assert _fast_json(large) is _SLOW


# --- the loader's plain-record path ------------------------------------------------------


def _full(course: Course) -> list[Any]:
    # Everything a course holds, derived values included.
    return [
        course,
        course.zone,
        [(s.id, s.instant, s.food_instant, type(s.kind)) for s in course.sessions],
    ]


@given(compliant_courses() | courses(max_sessions=6), st.data())
def test_the_fast_path_builds_what_the_full_path_builds(
    course: Course, data: st.DataObject
) -> None:
    document = course.to_dict()
    # Positional ids, and the course-level fields the fast path reads.
    for session in document["sessions"]:
        if data.draw(st.booleans(), label="drop the id"):
            del session["id"]
    document["id"] = data.draw(st.sampled_from(["c-1", " x ", None]), label="id")
    if document["id"] is None:
        del document["id"]
    document["$schema"] = "https://example.org/course.schema.json"
    text = json.dumps(document)
    outcomes = []
    for clean in (False, True):
        try:
            outcomes.append(_full(course_from_data(json.loads(text), clean=clean)))
        except InputError as exc:  # a positional id equal to another session's id
            outcomes.append([str(exc)])
    assert outcomes[0] == outcomes[1]
    if len(outcomes[0]) > 1:
        assert _full(kaprules.parse_course(text)) == outcomes[0]


def test_a_positional_id_equal_to_a_given_id_is_named() -> None:
    text = json.dumps(
        {
            "timezone": "UTC",
            "sessions": [
                {"id": "2", "start": "2026-12-01T09:00:00Z"},
                {"start": "2026-12-03T09:00:00Z"},
            ],
        }
    )
    with pytest.raises(InputError, match="duplicate"):
        kaprules.parse_course(text)


@pytest.mark.parametrize(
    "start",
    [
        "2026-12-01T09:00:00+00:99",
        "2026-12-01T09:00:00+24:00",
        "2026-12-01 09:00:00+00:00",
        "2026-12-01T09:00:00",
        "20261201T090000Z",
        "2026-12-01T09:00:00-07:00:00",
        "2026-12-01T09:00:00.5-07:00x",
        "1899-12-31T23:00:00+07:00",
        "9000-12-31T23:00:00-07:00",
    ],
)
def test_times_outside_the_format_take_the_full_path(start: str) -> None:
    session = {"start": start}
    assert course_files._fast_session(session, 0) is None
    with pytest.raises(InputError, match=r"sessions\[0\]"):
        kaprules.parse_course(json.dumps({"timezone": "America/Denver", "sessions": [session]}))


@needs_fast_paths
@pytest.mark.parametrize(
    ("start", "utc"),
    [
        ("2026-12-01T09:00:00-07:00", dt.datetime(2026, 12, 1, 16, 0, tzinfo=dt.UTC)),
        ("2026-12-01T16:00:00Z", dt.datetime(2026, 12, 1, 16, 0, tzinfo=dt.UTC)),
        (
            "2026-12-01T09:00:00.25+05:45",
            dt.datetime(2026, 12, 1, 3, 15, 0, 250_000, tzinfo=dt.UTC),
        ),
    ],
)
def test_times_in_the_format_take_the_fast_path(start: str, utc: dt.datetime) -> None:
    # The expected instants are written out, not computed by the parser under test.
    session = course_files._fast_session({"start": start}, 0)
    assert session is not None
    assert session.start == utc
    assert session.instant == utc
    assert session.id == "1"


# --- JSON Lines in blocks ----------------------------------------------------------------

_lines = st.lists(
    st.tuples(
        st.sampled_from([b"", b" ", b"{}", b'{"timezone": "UTC"}', b"x" * 9]),
        st.sampled_from([b"\n", b"\r\n"]),
    ),
    max_size=12,
)


def _by_lines(data: bytes) -> list[tuple[Any, ...]]:
    records = files.jsonl_records(io.BytesIO(data), "in")
    return [(r.line, r.data, r.rejected) for r in records]


def _by_blocks(data: bytes) -> list[tuple[Any, ...]]:
    blocks = files.jsonl_blocks(io.BytesIO(data), "in")
    return [(line, text, rejected) for b in blocks for line, text, _, rejected in b.items()]


@given(_lines, st.booleans(), st.integers(1, 40))
def test_blocks_hold_the_lines_read_one_by_one(
    lines: list[tuple[bytes, bytes]], cut_last: bool, size: int
) -> None:
    data = b"".join(text + end for text, end in lines)
    if cut_last and data:
        data = data.rstrip(b"\r\n")  # a last line without its end
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files, "BLOCK_BYTES", size)
        assert _by_blocks(data) == _by_lines(data)


@pytest.mark.parametrize(
    ("data", "too_long"),
    [
        (b"a\n" + b"x" * 10 + b"\nb\n", None),
        (b"a\n" + b"x" * 11 + b"\nb\n", 2),
        (b"a\n" + b"x" * 10, None),
        (b"a\n" + b"x" * 11, 2),
        (b"x" * 30, 1),
    ],
)
# Blocks are read far smaller than the limit (1 MiB and 16 MiB): only a line carried over
# from earlier reads can pass it, and that is what the reader checks.
@pytest.mark.parametrize("size", [1, 3, 10])
def test_the_line_limit_is_the_same_in_blocks(data: bytes, too_long: int | None, size: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for module in (files, audit_records):  # the reader's bound, and its message's
            patch.setattr(module, "MAX_LINE_BYTES", 10)
        patch.setattr(files, "BLOCK_BYTES", size)
        for read in (_by_lines, _by_blocks):
            if too_long is None:
                assert [line for line, *_ in read(data)] == list(
                    range(1, len(data.splitlines()) + 1)
                )
            else:
                with pytest.raises(InputError, match=f"line {too_long} is longer than 10 bytes"):
                    read(data)


def test_jobs_take_the_blocks_and_give_the_same_results(tmp_path: Path) -> None:
    data = write_lines(tmp_path / "d.jsonl", 700, seed=3)
    one = kaprules.audit(read_records([str(data)]), sample=5)
    two = kaprules.audit(read_records([str(data)]), jobs=2, sample=5)
    assert list(one) == list(two)
    assert one.summary == two.summary
    assert one.samples == two.samples
    lines = data.read_text().splitlines()
    # The samples are the first courses with an error finding, as read from their lines.
    first = [r for r in kaprules.audit(lines) if r.rejected is None and not r.ok][:5]
    assert [(r.line, c) for r, c in one.samples] == [
        (r.line, kaprules.parse_course(lines[r.line - 1])) for r in first
    ]


def test_a_reader_already_read_from_is_read_on_record_by_record(tmp_path: Path) -> None:
    data = write_lines(tmp_path / "d.jsonl", 40)
    records = read_records([str(data)])
    first = next(records)
    results = list(kaprules.audit(records, jobs=2))
    assert first.line == 1
    assert [r.line for r in results] == list(range(2, 41))


def test_a_reader_taken_by_an_audit_yields_nothing_more(tmp_path: Path) -> None:
    data = write_lines(tmp_path / "d.jsonl", 3000)  # several blocks
    records = read_records([str(data)])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files, "BLOCK_BYTES", 100_000)
        run = kaprules.audit(records, jobs=2)
        assert next(iter(run)).line == 1
        assert list(records) == []
        assert run.summary.lines_read == 3000


# --- findings rows -----------------------------------------------------------------------

_row_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


_waiver = st.none() | st.fixed_dictionaries(
    {"reason": _row_text, "approved_by": _row_text, "approved_at": _row_text, "note": _row_text}
)


@given(
    st.integers(1, 10**9),
    st.none() | _row_text,
    st.lists(
        st.tuples(
            _row_text,
            _row_text,
            st.lists(_row_text, max_size=3),
            _row_text,
            st.none() | _row_text,
            _waiver,
        )
    ),
    st.booleans(),
)
def test_findings_rows_are_what_json_dumps_writes(
    line: int,
    course_id: str | None,
    findings: list[tuple[str, str, list[str], str, str | None, dict[str, str] | None]],
    several: bool,
) -> None:
    result = auditing.CourseResult(
        line,
        "in.jsonl",
        course_id,
        1,
        tuple(
            {"rule": r, "severity": s, "sessions": ids, "message": m}
            | {"protocol_version": v, "waiver": w}
            for r, s, ids, m, v, w in findings
        ),
    )
    expected = "".join(
        json.dumps(
            {
                **({"input": "in.jsonl"} if several else {}),
                "line": line,
                "course": course_id,
                **{k: f[k] for k in ("rule", "severity", "sessions", "message")},
                "protocol_version": f["protocol_version"],
                # A waiver's note is never written.
                "waiver": None
                if f["waiver"] is None
                else {k: f["waiver"][k] for k in ("reason", "approved_by", "approved_at")},
            },
            ensure_ascii=False,
        )
        + "\n"
        for f in result.findings
    )
    # With DEL and C1 controls as JSON's escapes, as every JSON kaprules writes.
    assert findings_rows([result], "jsonl", inputs=several) == json_text(expected)


# --- date-times by layout ----------------------------------------------------------------

_edits = st.lists(
    st.tuples(
        st.sampled_from(["put", "insert", "delete"]),
        st.integers(0, 30),
        st.sampled_from([*"0123456789-:T+Z. ,xWt", "\u0661", "\uff10", "\u2212"]),
    ),
    min_size=1,
    max_size=3,
)


@given(
    st.sampled_from(
        ["2024-05-13T08:30:00-07:00", "2024-05-13T16:30:00Z", "2024-05-13T08:30:00+05:45"]
    ),
    _edits,
)
def test_a_time_taken_by_its_layout_matches_the_pattern(
    text: str, edits: list[tuple[str, int, str]]
) -> None:
    chars = list(text)
    for edit, at, char in edits:
        at %= len(chars) + (edit == "insert")
        if edit == "put" and chars:
            chars[at % len(chars)] = char
        elif edit == "insert":
            chars.insert(at, char)
        elif chars:
            del chars[at % len(chars)]
    value = "".join(chars)
    moment = course_files._fast_time(value)
    if moment is not None:
        assert course_files._DATETIME.fullmatch(value)
        # An independent reading: the fields by position, the offset by hand.
        date, clock = value[:10], value[11:]
        zone = clock[-1:] if clock.endswith("Z") else clock[-6:]
        hours, minutes = (0, 0) if zone == "Z" else (int(zone[1:3]), int(zone[4:6]))
        sign = -1 if zone.startswith("-") else 1
        wall = clock[: -len(zone)]
        seconds = int(wall[6:8]) if len(wall) > 5 else 0
        micro = int((wall[9:] + "000000")[:6]) if len(wall) > 9 else 0
        local = dt.datetime(
            int(date[:4]), int(date[5:7]), int(date[8:10]), int(wall[:2]), int(wall[3:5])
        ) + dt.timedelta(seconds=seconds, microseconds=micro)
        utc = local - sign * dt.timedelta(hours=hours, minutes=minutes)
        assert moment.astimezone(dt.UTC).replace(tzinfo=None) == utc


@pytest.mark.parametrize(("value", "fast"), [("1", False), ("0", True), ("", True)])
def test_one_switch_turns_the_fast_paths_off(value: str, fast: bool) -> None:
    import os
    import subprocess
    import sys

    probe = (
        "from kaprules import loading\n"
        "print(loading._fast_json(b'{\"a\":1}') is not loading._SLOW)\n"
    )
    env = {**os.environ, "KAPRULES_NO_FAST_PATHS": value}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == str(fast)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_reader_is_the_audits_as_soon_as_it_is_given(tmp_path: Path, jobs: int) -> None:
    # Fast paths on or off (CI runs both): the audit's records are never read twice.
    data = write_lines(tmp_path / "d.jsonl", 40)
    records = read_records([str(data)])
    run = kaprules.audit(records, jobs=jobs, engine="records")
    assert list(records) == []
    assert [r.line for r in run] == list(range(1, 41))
