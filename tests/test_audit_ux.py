"""The audit for its readers: escaping, the report a board reads, rejected rows, rough edges."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import kaprules
from kaprules import InputError, auditing
from kaprules.auditing import read_records

from conftest import EXAMPLES

Run = Callable[..., tuple[int, str, str]]
VIOLATIONS = EXAMPLES / "violations.json"


def _course_line(course_id: str) -> str:
    data = json.loads(VIOLATIONS.read_text())
    data["id"] = course_id
    return json.dumps(data)


# --- escaping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,x", "ftp://h/", "../", "", "https://", "http://a b/"],
)
def test_docs_url_takes_only_web_addresses(tmp_path: Path, cli: Run, url: str) -> None:
    code, out, err = cli("audit", str(EXAMPLES / "audit" / "courses.jsonl"), "--docs-url", url)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert "http(s) URL" in err


def test_file_names_cannot_forge_summary_lines(tmp_path: Path, cli: Run) -> None:
    hostile = tmp_path / "a\nForged: 0 records rejected"
    hostile.write_text("\n")  # one rejected record, listed with its input's name
    other = tmp_path / "b.jsonl"
    other.write_text("\n")
    code, out, _ = cli("audit", str(hostile), str(other))
    assert code == 1
    assert not any(line.startswith("Forged") for line in out.splitlines())
    assert "\\nForged" in out


@pytest.mark.parametrize(
    "course_id", ["=HYPERLINK(1)", "+cmd|x", "-2+3", "@SUM(1+1)", "\tx", "\rx"]
)
def test_findings_csv_neutralises_formulas(tmp_path: Path, cli: Run, course_id: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(_course_line(course_id) + "\n" + _course_line("plain") + "\n")
    findings = tmp_path / "f.csv"
    code, _, _ = cli("audit", str(source), "--findings", str(findings))
    assert code == 1
    with findings.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    courses = {row["course"] for row in rows}
    assert courses == {"'" + course_id, "plain"}
    # The JSON Lines findings keep the value as it is.
    jsonl = tmp_path / "f.jsonl"
    cli("audit", str(source), "--findings", str(jsonl))
    assert {json.loads(line)["course"] for line in jsonl.read_text().splitlines()} == {
        course_id,
        "plain",
    }


def test_findings_csv_of_several_inputs_names_the_input_column(tmp_path: Path, cli: Run) -> None:
    one, two = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    one.write_text(_course_line("a") + "\n")
    two.write_text(_course_line("b") + "\n")
    findings = tmp_path / "f.csv"
    cli("audit", str(one), str(two), "--findings", str(findings))
    with findings.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["input"] for row in rows} == {str(one), str(two)}
    assert {row["course"] for row in rows} == {"a", "b"}


# --- rejected records -------------------------------------------------------------------


def test_rejected_records_carry_their_course_id() -> None:
    good = json.loads(VIOLATIONS.read_text())
    lines = [
        json.dumps({**good, "id": "c-1", "timezone": "Mars/Olympus"}),  # parsed, has an id
        json.dumps({**good, "id": 5, "timezone": "Mars/Olympus"}),  # an id, not a string
        '{"id": "c-3", "timezone": ',  # not JSON
        "",
        json.dumps({**good, "id": "c-5"}),
    ]
    results = list(kaprules.audit(lines))
    assert [(r.course_id, r.rejected is not None) for r in results] == [
        ("c-1", True),
        (None, True),
        (None, True),
        (None, True),
        ("c-5", False),
    ]


def test_csv_rejected_records_carry_their_course_id(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text(
        "course_id,timezone,session_id,kind,start,last_food,escort\n"
        "a,UTC,s1,induction,2026-12-01T09:00:00Z\n"
        "b,UTC,s1,induction,2026-12-01T09:00:00Z,,E\n"
        "b,Europe/Paris,s2,induction,2026-12-03T09:00:00Z,,E\n"
        "c,UTC,s1,induction,2026-12-01T09:00:00Z,,E\n"
        "a,UTC,s1,induction,2026-12-01T09:00:00Z,,E\n"
    )
    results = list(kaprules.audit(read_records([str(table)])))
    assert [(r.course_id, r.rejected is not None) for r in results] == [
        ("a", True),
        ("b", True),
        ("c", False),
        ("a", True),
    ]
    with pytest.raises(InputError, match="cells expected"):
        next(iter(read_records([str(table)]))).course()


@pytest.mark.parametrize("form", ["jsonl", "csv"])
def test_the_findings_file_lists_every_problem_record(
    tmp_path: Path, cli: Run, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    # More rejected records than the summary keeps: every one is a row of the file.
    monkeypatch.setattr(auditing, "MAX_REJECTED_KEPT", 3)
    bad = json.dumps({"id": "=bad", "timezone": "Mars/Olympus", "sessions": []})
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([_course_line("ok"), bad, "", "x", "", bad]) + "\n")
    findings = tmp_path / f"f.{form}"
    code, out, _ = cli("audit", str(source), "--findings", str(findings), "--format", "json")
    assert code == 1
    summary = json.loads(out)
    assert summary["rejected_count"] == 5
    assert summary["rejected_omitted"] == 2
    if form == "jsonl":
        rows = [json.loads(line) for line in findings.read_text().splitlines()]
        rejected = [row for row in rows if "rejected" in row]
        assert all("rule" not in row for row in rejected)
        assert all("rejected" not in row for row in rows if "rule" in row)
    else:
        with findings.open(newline="") as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == [
                "line", "course", "rule", "severity", "sessions", "message", "rejected"
            ]  # fmt: skip
            rows = list(reader)
        rejected = [row for row in rows if row["rejected"]]
        assert all(row["rule"] == "" for row in rejected)
        for row in rejected:
            row["line"] = int(row["line"])
            row["course"] = row["course"] or None
    assert [(r["line"], r["course"]) for r in rejected] == [
        (2, "=bad" if form == "jsonl" else "'=bad"),
        (3, None),
        (4, None),
        (5, None),
        (6, "=bad" if form == "jsonl" else "'=bad"),
    ]
    assert [r["rejected"] for r in rejected][1] == "empty line"
    assert len(rows) > len(rejected)  # the findings of "ok" too
