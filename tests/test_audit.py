"""kaprules audit and kaprules.audit: accounting, order, formats, privacy, the HTML report."""

from __future__ import annotations

import csv
import gzip
import html.parser
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kaprules
from kaprules import Course, InputError, evaluate, parse_course
from kaprules.auditing import read_records

from conftest import EXAMPLES
from helpers import make_audit_data, write_lines

COURSES = EXAMPLES / "audit" / "courses.jsonl"
SESSIONS = EXAMPLES / "audit" / "sessions.csv"
SECRETS = (make_audit_data.SECRET_PATIENT, make_audit_data.SECRET_ESCORT, "Jordan")
Run = Callable[..., tuple[int, str, str]]


# --- accounting and agreement with check ----------------------------------------------


def test_every_line_is_accounted_for_and_agrees_with_check(tmp_path: Path, cli: Run) -> None:
    data = write_lines(tmp_path / "d.jsonl", 1200)
    findings = tmp_path / "f.jsonl"
    code, out, err = cli("audit", str(data), "--format", "json", "--findings", str(findings))
    assert code == 1
    assert err == ""
    summary = json.loads(out)
    lines = data.read_text().splitlines()
    assert summary["lines_read"] == len(lines)
    assert summary["courses"] + summary["rejected_count"] == summary["lines_read"]
    assert summary["rejected_count"] == len(summary["rejected"]) + summary["rejected_omitted"]
    assert summary["compliant"] + summary["with_errors"] == summary["courses"]
    assert [r["line"] for r in summary["rejected"]] == [500]
    written = [json.loads(line) for line in findings.read_text().splitlines()]
    by_line: dict[int, list[dict[str, Any]]] = {}
    for row in written:
        by_line.setdefault(row["line"], []).append(row)
    # The rejected record is a row of the findings file too, without a rule.
    assert [set(r) for r in by_line[500]] == [{"line", "course", "rejected"}]
    for number, text in enumerate(lines, start=1):
        if number == 500:
            continue
        report = evaluate(parse_course(text))
        expected = [(f.rule, list(f.sessions), f.message) for f in report.findings]
        got = [(r["rule"], r["sessions"], r["message"]) for r in by_line.get(number, [])]
        assert got == expected, number
        assert all(r["course"] == json.loads(text)["id"] for r in by_line.get(number, []))
    counts = {rule: sum(1 for r in written if r.get("rule") == rule) for rule in summary["rules"]}
    assert {rule: v["findings"] for rule, v in summary["rules"].items()} == counts
    assert list(summary) == [
        "lines_read",
        "courses",
        "compliant",
        "with_errors",
        "rejected_count",
        "rejected",
        "rejected_omitted",
        "rules",
        "waived",
        "waived_omitted",
        "protocol",
        "kaprules_version",
        "as_of",
        "input_sha256",
        "inputs",
        "engine",
    ]
    assert summary["protocol"] == {
        "id": "kap-standard",
        "version": "1",
        "sha256": kaprules.STANDARD.digest,
        "files": [],
        "plugins": [],
    }


def test_output_is_the_same_whatever_the_jobs(tmp_path: Path, cli: Run) -> None:
    data = write_lines(tmp_path / "d.jsonl", 1300, seed=5)
    outputs = []
    for jobs in ("1", "2", "3"):
        findings = tmp_path / f"f{jobs}.csv"
        code, out, _ = cli(
            "audit", str(data), "--jobs", jobs, "--findings", str(findings), "--format", "json"
        )
        assert code == 1
        outputs.append((out, findings.read_bytes()))
    assert outputs[0] == outputs[1] == outputs[2]


def test_secrets_never_reach_any_output(tmp_path: Path, cli: Run) -> None:
    data = write_lines(tmp_path / "d.jsonl", 300)
    report = tmp_path / "r.html"
    findings = tmp_path / "f.jsonl"
    for form in ("text", "json"):
        _, out, err = cli(
            "audit", str(data), "--html", str(report), "--findings", str(findings), "--format", form
        )
        text = out + err + report.read_text() + findings.read_text()
        assert not any(secret in text for secret in SECRETS)


def test_exit_status(tmp_path: Path, cli: Run) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text((EXAMPLES / "compliant.json").read_text().replace("\n", "") + "\n")
    assert cli("audit", str(good))[0] == 0
    assert cli("audit", str(COURSES))[0] == 1
    code, out, err = cli("audit", str(tmp_path / "missing.jsonl"))
    assert (code, out) == (2, "")
    assert err.startswith("kaprules: error: cannot audit: cannot read")


def test_an_endless_line_stops_the_audit(cli: Run) -> None:
    code, _, err = cli("audit", "/dev/zero")
    assert code == 2
    assert "is it JSON Lines" in err


# --- inputs -----------------------------------------------------------------------------


def test_gzip_and_standard_input(tmp_path: Path, cli: Run) -> None:
    plain = COURSES.read_bytes()
    packed = tmp_path / "c.jsonl.gz"
    packed.write_bytes(gzip.compress(plain))
    a = json.loads(cli("audit", str(COURSES), "--format", "json")[1])
    b = json.loads(cli("audit", str(packed), "--format", "json")[1])
    c = json.loads(cli("audit", "-", "--format", "json", stdin=plain)[1])
    for summary in (b, c):
        assert {k: v for k, v in summary.items() if k not in ("input_sha256", "inputs")} == {
            k: v for k, v in a.items() if k not in ("input_sha256", "inputs")
        }
    assert a["input_sha256"] == c["input_sha256"] != b["input_sha256"]


def test_csv_courses_equal_their_json(tmp_path: Path) -> None:
    rows = list(csv.reader(SESSIONS.read_text().splitlines()))
    results = list(kaprules.audit(read_records([str(SESSIONS)])))
    assert sum(1 for _ in results) == len({row[0] for row in rows[1:]})
    assert results[0].line == 2
    for result, text in zip(results, make_audit_data.lines(12, 3), strict=False):
        course = parse_course(text)
        assert result.course_id == course.id
        assert list(result.findings) == [f.to_dict() for f in evaluate(course).findings]


def test_csv_rows_of_a_course_must_be_together(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    header = "course_id,timezone,session_id,kind,start,last_food,escort\n"
    a1 = "a,UTC,s1,induction,2026-12-01T09:00:00Z,2026-12-01T04:00:00Z,E\n"
    b1 = "b,UTC,s1,induction,2026-12-01T09:00:00Z,2026-12-01T04:00:00Z,E\n"
    table.write_text(header + a1 + b1 + a1)
    results = list(kaprules.audit(read_records([str(table)])))
    assert [r.line for r in results] == [2, 3, 4]
    assert results[2].rejected == (
        "the rows of course 'a' are not together: it started on line 2 and appears again on line 4"
    )


def test_csv_header_problems_stop_the_audit(tmp_path: Path, cli: Run) -> None:
    table = tmp_path / "t.csv"
    table.write_text("course_id,timezone,start\n")
    code, _, err = cli("audit", str(table))
    assert code == 2
    assert "lacks the column(s) session_id, kind, last_food, escort" in err
    table.write_text(
        "course_id,timezone,session_id,kind,start,last_food,escort,Jordan Secretperson\n"
    )
    code, _, err = cli("audit", str(table))
    assert code == 2
    assert "unknown column(s) (at positions 8)" in err
    assert "Jordan" not in err


def test_csv_ragged_rows_and_zones_are_rejected_records(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text(
        "course_id,timezone,session_id,kind,start,last_food,escort\n"
        "a,UTC,s1,induction,2026-12-01T09:00:00Z\n"
        "b,UTC,s1,induction,2026-12-01T09:00:00Z,,E\n"
        "b,Europe/Paris,s2,induction,2026-12-03T09:00:00Z,,E\n"
    )
    results = list(kaprules.audit(read_records([str(table)])))
    assert results[0].rejected == "line 2: 7 cells expected in each row"
    assert results[1].rejected == "the rows of one course give different timezones"


# --- the Python API --------------------------------------------------------------------


def test_audit_takes_courses_and_texts() -> None:
    texts = list(make_audit_data.lines(30, 2))
    items: list[Course | str] = [parse_course(t) if i % 2 else t for i, t in enumerate(texts)]
    run = kaprules.audit(items, kaprules.STANDARD_V2, as_of=None)
    results = list(run)
    assert [r.line for r in results] == list(range(1, 31))
    assert run.summary.courses == 30
    assert run.summary.protocol_version == "2"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"jobs": 0}, "jobs"),
        ({"jobs": True}, "jobs"),
        ({"as_of": "2026-01-01"}, "as_of"),
        ({"sample": -1}, "sample"),
        ({"sample": 1.5}, "sample"),
    ],
)
def test_audit_refuses_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        kaprules.audit([], **kwargs)


def test_the_summary_is_complete_even_unread() -> None:
    run = kaprules.audit(list(make_audit_data.lines(10)))
    assert run.summary.lines_read == 10


# --- the HTML report --------------------------------------------------------------------


class _Collect(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k == "href"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_report_parses_and_says_what_was_checked(tmp_path: Path, cli: Run) -> None:
    report = tmp_path / "r.html"
    code, _, _ = cli(
        "audit", str(COURSES), "--html", str(report), "--sample", "4", "--docs-url", "https://d/"
    )
    assert code == 1
    page = _Collect()
    page.feed(report.read_text())
    text = " ".join(page.text)
    assert "script" not in page.tags
    assert page.tags.count("svg") == len(kaprules.STANDARD.rules) + 4
    assert [link for link in page.links if link.startswith("https://d/rules/#")] == [
        f"https://d/rules/#{rule}" for rule in kaprules.STANDARD.rule_ids
    ]
    for expected in ("kap-standard version 1", "Input SHA-256", "Rejected records (2)"):
        assert expected in text
    assert not any(secret in text for secret in SECRETS)


def test_html_escapes_hostile_ids(tmp_path: Path, cli: Run) -> None:
    data = json.loads((EXAMPLES / "violations.json").read_text())
    data["id"] = "<script>alert(1)</script>"
    data["sessions"][0]["id"] = '"><img src=x onerror=alert(1)>'
    source = tmp_path / "x.jsonl"
    source.write_text(json.dumps(data) + "\n")
    report = tmp_path / "r.html"
    cli("audit", str(source), "--html", str(report))
    text = report.read_text()
    assert "<script>" not in text
    assert "<img" not in text


def test_jobs_work_from_a_script_without_a_main_guard(tmp_path: Path) -> None:
    script = (
        "import kaprules\n"
        f"text = open({str(EXAMPLES / 'compliant.json')!r}).read()\n"
        "print(kaprules.audit([text] * 1200, jobs=2).summary.compliant)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "1200\n", "")


@given(st.lists(st.sampled_from(["compliant", "violating", "rejected"]), max_size=30), st.data())
def test_summaries_merge_as_one_summary_counts(kinds: list[str], data: st.DataObject) -> None:
    # An audit split anywhere (Dask partitions) sums to the summary of the whole.
    from kaprules.auditing import AuditSummary, CourseResult

    finding = {"rule": "escort", "severity": "error", "sessions": ["1"], "message": "m"}
    results = [
        CourseResult(
            n,
            "in",
            None,
            0 if kind == "rejected" else 6,
            (finding,) if kind == "violating" else (),
            "not a course" if kind == "rejected" else None,
        )
        for n, kind in enumerate(kinds, start=1)
    ]
    cut = data.draw(st.integers(0, len(results)))
    whole, first, second = (AuditSummary("p", "1", None, ("escort",)) for _ in range(3))
    for r in results:
        whole.add(r)
    for r in results[:cut]:
        first.add(r)
    for r in results[cut:]:
        second.add(r)
    first.merge(second)
    assert first.to_dict() == whole.to_dict()
