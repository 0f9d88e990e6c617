"""The audit for its readers: escaping, the report a board reads, rejected rows, rough edges."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

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
