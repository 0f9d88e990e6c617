"""The audit's CSV session table, read as strictly and as privately as the input-format page
says: a cell that cannot be read rejects its course naming the line and the column, never
the cell's content; an oversized cell rejects its course, not the audit. (That
`kaprules.dask` reads them alike is tested in test_dask.py.)"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

import kaprules
from kaprules.auditing import CSV_COLUMNS, MAX_CELL_CHARS, Record, read_records
from kaprules.model import MAX_READINGS

Run = Any
HEADER = ",".join(CSV_COLUMNS)
GOOD_START = "2026-12-01T09:00:00-07:00"


def _row(course: str = "c1", session: str = "s1", **cells: str) -> str:
    values = {
        "course_id": course,
        "timezone": "America/Denver",
        "session_id": session,
        "kind": "induction",
        "start": GOOD_START,
        "last_food": "2026-12-01T03:00:00-07:00",
        "escort": "E",
        **cells,
    }
    return ",".join(values.get(name, "") for name in CSV_COLUMNS)


def _table(tmp_path: Path, *rows: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in (HEADER, *rows)), encoding="utf-8")
    return path


def _results(path: Path) -> list[kaprules.CourseResult]:
    return list(kaprules.audit(read_records([str(path)])))


# --- 1. reasons name the line and the column, never the content -------------------------


@pytest.mark.parametrize(
    ("cells", "reason", "secret"),
    [
        ({"enrolled": "2026-13-45"}, "line 2: the enrolled cell is not a real date", "13-45"),
        ({"enrolled": "9999-11-02"}, "line 2: the enrolled cell is outside the supported", "9999"),
        (
            {"vitals": "9999-12-01T08:40:00-07:00 128/82"},
            "line 2: reading 1 of the vitals cell: its time is outside the supported years "
            "1900-9000; check the year",
            "9999",
        ),
        (
            {"vitals": "2026-02-30T08:40:00-07:00 128/82"},
            "line 2: reading 1 of the vitals cell: its time is not a real date and time",
            "02-30",
        ),
        (
            {"start": "2026-02-30T09:00:00-07:00"},
            "line 2: the start cell is not a real date and time",
            "02-30",
        ),
        (
            {"last_food": "yesterday"},
            "line 2: the last_food cell is not an ISO 8601 date-time with an offset",
            "yesterday",
        ),
        ({"kind": "Secretkind"}, "line 2: the kind cell is not a kind: use one of", "Secret"),
        (
            {"timezone": "Mars/Secretbase"},
            "line 2: the timezone cell is not an IANA time zone name",
            "Secret",
        ),
        (
            {"vitals": "2026-12-01T08:40:00-07:00 487/82"},
            "line 2: reading 1 of the vitals cell: its systolic must be a whole number from 1 "
            "to 400 (mmHg), got one outside that range",
            "487",
        ),
        (
            {"vitals": "2026-12-01T08:40:00-07:00 82/128"},
            "line 2: reading 1 of the vitals cell: its diastolic must be at most the systolic",
            "128",
        ),
        ({"dose_mg": "0"}, "line 2: the dose_mg cell must be a number of milligrams above 0", ""),
    ],
)
def test_a_rejection_names_the_line_and_column_without_the_content(
    tmp_path: Path, cells: dict[str, str], reason: str, secret: str
) -> None:
    [result] = _results(_table(tmp_path, _row(**cells)))
    assert result.rejected is not None
    assert result.rejected.startswith(reason), result.rejected
    assert "sessions[" not in result.rejected
    if secret:
        assert secret not in result.rejected


def test_each_problem_names_its_own_row(tmp_path: Path) -> None:
    meeting = _row(session="m1", kind="integration", start="2026-02-30T09:00:00-07:00")
    table = _table(
        tmp_path,
        _row(),
        _row(session="s2", start="2026-12-03T09:00:00-07:00", enrolled="2026-13-45"),
        meeting.replace(",2026-12-01T03:00:00-07:00,E,", ",,,"),
    )
    [result] = _results(table)
    assert result.rejected == (
        "2 problems: line 3: the enrolled cell is not a real date; "
        "line 4: the start cell is not a real date and time"
    )
    table = _table(tmp_path, _row(), _row(session="s2"), _row(session="s1"))
    [result] = _results(table)
    assert result.rejected == (
        "line 4: the session_id cell is a duplicate of the row on line 2; give each session "
        "its own id"
    )


def test_the_reason_is_the_same_in_a_worker_and_through_the_cli(tmp_path: Path, cli: Run) -> None:
    table = _table(tmp_path, _row(enrolled="2026-13-45"))
    [record] = read_records([str(table)])
    # What a worker process receives: the record's data, pickled.
    copy = pickle.loads(pickle.dumps((record.line, record.data, record.source, None)))
    [result] = kaprules.audit([Record(*copy)])
    assert result.rejected == "line 2: the enrolled cell is not a real date"
    code, out, _ = cli("audit", str(table), "--format", "json")
    assert code == 1
    assert json.loads(out)["rejected"] == [
        {"line": 2, "reason": "line 2: the enrolled cell is not a real date"}
    ]


# --- 2. an oversized cell rejects its course; readings are bounded ----------------------


def _readings(count: int) -> str:
    return "; ".join(f"2026-12-01T08:{n % 60:02d}:00-07:00 128/82" for n in range(count))


@pytest.mark.parametrize("engine", ["records", "columnar"])
def test_an_oversized_cell_rejects_only_its_course(tmp_path: Path, cli: Run, engine: str) -> None:
    if engine == "columnar":
        pytest.importorskip("polars")
    huge = _readings(20_000)
    assert len(huge) > max(csv.field_size_limit(), MAX_CELL_CHARS)
    table = _table(
        tmp_path,
        _row("big", vitals=huge),
        # Quoted, over two lines: the reader finds the row's end inside the quotes.
        _row("quoted", vitals='"' + huge[:70_000] + "\n" + huge[70_000:] + '"'),
        _row("ok"),
    )
    code, out, err = cli("audit", str(table), "--format", "json", "--engine", engine)
    assert (code, err) == (1, "")
    summary = json.loads(out)
    assert summary["lines_read"] == 3
    assert summary["courses"] == 1
    assert summary["rejected"] == [
        {
            "line": 2,
            "reason": f"line 2: the vitals cell is longer than {MAX_CELL_CHARS} characters, "
            "the limit of a cell",
        },
        {
            "line": 3,
            "reason": f"line 3: the vitals cell is longer than {MAX_CELL_CHARS} characters, "
            "the limit of a cell",
        },
    ]
    assert csv.field_size_limit() == 128 * 1024  # the csv module's limit is left as it was


def test_a_vitals_cell_of_too_many_readings_names_its_line(tmp_path: Path) -> None:
    [result] = _results(_table(tmp_path, _row(vitals=_readings(MAX_READINGS + 1))))
    assert result.rejected == (
        f"line 2: the vitals cell holds more than {MAX_READINGS} readings, the limit"
    )


# --- 3. cells exactly as documented -------------------------------------------------------

READING_1 = "2026-12-01T08:40:00-07:00 141/91"
READING_2 = "2026-12-01T09:45:00-07:00 139/87"


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ({"dose_mg": " 56"}, "line 2: the dose_mg cell is not a number of milligrams"),
        ({"dose_mg": "56 "}, "line 2: the dose_mg cell is not a number of milligrams"),
        ({"enrolled": " 2026-11-02"}, "line 2: the enrolled cell is not a date written"),
        ({"last_liquid": GOOD_START + " "}, "line 2: the last_liquid cell is not an ISO 8601"),
        ({"vitals": f"{READING_1};; {READING_2}"}, "line 2: reading 1 of the vitals cell is not"),
        ({"vitals": f"{READING_1}; {READING_2};"}, "line 2: reading 2 of the vitals cell is not"),
        ({"vitals": f"{READING_1}; {READING_2}; "}, "line 2: reading 3 of the vitals cell is not"),
        ({"vitals": f"{READING_1};{READING_2}"}, "line 2: reading 1 of the vitals cell is not"),
        ({"vitals": f"{READING_1};  {READING_2}"}, "line 2: reading 2 of the vitals cell is not"),
        ({"vitals": " " + READING_1}, "line 2: reading 1 of the vitals cell is not"),
        ({"vitals": READING_1.replace(" ", "\t")}, "line 2: reading 1 of the vitals cell is not"),
        ({"vitals": READING_1.replace(" ", "\xa0")}, "line 2: reading 1 of the vitals cell is not"),
        ({"vitals": READING_1.replace(" ", "  ")}, "line 2: reading 1 of the vitals cell is not"),
        ({"vitals": READING_1.replace("141/91", "0141/091")}, "line 2: reading 1 of the vitals"),
        ({"vitals": READING_1.replace("/", " / ")}, "line 2: reading 1 of the vitals cell is not"),
        # Digits of other scripts (fullwidth one, four, one) are not digits here.
        ({"vitals": READING_1.replace("141", "\uff11\uff14\uff11")}, "line 2: reading 1 of"),
    ],
)
def test_cells_are_read_exactly_as_documented(
    tmp_path: Path, cells: dict[str, str], reason: str
) -> None:
    [result] = _results(_table(tmp_path, _row(**cells)))
    assert result.rejected is not None
    assert result.rejected.startswith(reason), result.rejected
    for secret in ("141", "56"):
        assert secret not in result.rejected


def test_the_documented_forms_are_read(tmp_path: Path) -> None:
    cells = {"dose_mg": "37.5", "vitals": f"{READING_1}; {READING_2}", "enrolled": "2026-11-02"}
    [result] = _results(_table(tmp_path, _row(**cells), _row(session="s2", dose_mg="   ")))
    assert result.rejected is None
    [record] = read_records([str(_table(tmp_path, _row(**cells)))])
    assert isinstance(record.data, dict)
    [session] = record.data["sessions"]
    assert session["vitals"] == [
        {"at": "2026-12-01T08:40:00-07:00", "systolic": 141, "diastolic": 91},
        {"at": "2026-12-01T09:45:00-07:00", "systolic": 139, "diastolic": 87},
    ]


# --- 4. an empty therapist cell is a blank therapist, as in JSON Lines --------------------


def test_an_empty_therapist_cell_reads_as_json_lines_blank_therapist(
    tmp_path: Path, cli: Run
) -> None:
    rows = [
        _row(session=f"s{n}", start=f"2026-12-{day}T09:00:00-07:00", therapist=therapist)
        for n, (day, therapist) in enumerate([("01", ""), ("03", "Dr T")], start=1)
    ]
    table = _table(tmp_path, *rows)
    [record] = read_records([str(table)])
    assert isinstance(record.data, dict)
    lines = tmp_path / "c.jsonl"
    lines.write_text(json.dumps(dict(record.data)) + "\n", encoding="utf-8")
    assert [s.get("therapist") for s in record.data["sessions"]] == ["", "Dr T"]
    messages = []
    for path in (lines, table):
        out = tmp_path / f"{path.name}.findings.jsonl"
        cli("audit", str(path), "--findings", str(out), "--protocol", "kap-standard@2")
        found = [json.loads(r) for r in out.read_text("utf-8").splitlines()]
        messages.append([f["message"] for f in found if f["rule"] == "therapist-present"])
    assert messages[0] == messages[1]
    assert len(messages[0]) == 1
    assert "blank therapist" in messages[0][0]
