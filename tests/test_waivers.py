"""Waivers and the protocol version in force: every waiver case and effective-date boundary."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import (
    Course,
    InputError,
    Protocol,
    ProtocolError,
    ProtocolVersions,
    Session,
    Waiver,
    evaluate,
)
from kaprules.strategies import compliant_courses

Run = Callable[..., tuple[int, str, str]]
DENVER = ZoneInfo("America/Denver")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "waivers"
# The phased rules of esketamine-trd alone: weekly-cap and weekly-target are waivable.
PHASED = kaprules.ESKETAMINE_TRD.without(
    *[r for r in kaprules.ESKETAMINE_TRD.rule_ids if r not in ("weekly-cap", "weekly-target")],
    id="phased",
    version="1",
)
APPROVED = dt.datetime(2026, 12, 4, 17, 0, tzinfo=DENVER)


def at(day: int, hour: int = 9, month: int = 12) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=DENVER)


def crowded(*waivers: Waiver) -> Course:
    # Three sessions in treatment week 1: a weekly-cap error naming all three.
    sessions = [Session(at(d), id=f"s{n}") for n, d in enumerate((1, 3, 4), start=1)]
    return Course("America/Denver", sessions, waivers=waivers)


def waiver(**changes: Any) -> Waiver:
    base: dict[str, Any] = {
        "rule": "weekly-cap",
        "sessions": ["s1", "s2", "s3"],
        "reason": "clinical-judgement",
        "approved_by": "Dr A",
        "approved_at": APPROVED,
    }
    return Waiver(**(base | changes))


def rules_of(report: kaprules.Report) -> list[tuple[str, tuple[str, ...], bool]]:
    return [(f.rule, f.sessions, f.waiver is not None) for f in report.findings]


def test_a_valid_waiver_waives_its_finding_and_the_report_is_ok() -> None:
    unwaived = evaluate(crowded(), PHASED)
    report = evaluate(crowded(waiver()), PHASED)
    assert not unwaived.ok
    assert report.ok
    assert rules_of(report) == [("weekly-cap", ("s1", "s2", "s3"), True)]
    (finding,) = report.findings
    assert finding.message == unwaived.findings[0].message
    assert report.errors == ()
    assert report.waived == report.findings
    data = finding.to_dict()
    assert data["waiver"] == {
        "reason": "clinical-judgement",
        "approved_by": "Dr A",
        "approved_at": "2026-12-04T17:00:00-07:00",
    }


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"rule": "weekly-target"}, None),  # valid but covers nothing here
        ({"rule": "min-gap"}, "the protocol has no such rule"),
        ({"rule": "no-such-rule"}, "the protocol has no such rule"),
        ({"sessions": ["s1", "s2", "s9"]}, "the course has no session 's9'"),
        ({"reason": None}, "it gives no reason"),
        ({"reason": "  "}, "it gives no reason"),
        ({"reason": "felt-like-it"}, "is not in the protocol's vocabulary"),
        ({"approved_by": None}, "it names no approver"),
        ({"approved_by": ""}, "it names no approver"),
        ({"approved_at": None}, "it has no approval time"),
    ],
)
def test_each_invalid_waiver_is_a_finding_and_waives_nothing(
    changes: dict[str, Any], why: str | None
) -> None:
    report = evaluate(crowded(waiver(**changes)), PHASED)
    assert ("weekly-cap", ("s1", "s2", "s3"), False) in rules_of(report)
    assert not report.ok
    found = [f for f in report.findings if f.rule == "waiver"]
    if why is None:
        assert found == []
    else:
        (invalid,) = found
        assert why in invalid.message
        assert invalid.message.startswith("waiver 1 (of rule ")
        assert all(s in ("s1", "s2", "s3") for s in invalid.sessions)


def test_a_waiver_must_name_every_session_of_the_finding() -> None:
    report = evaluate(crowded(waiver(sessions=["s1", "s2"])), PHASED)
    assert rules_of(report) == [("weekly-cap", ("s1", "s2", "s3"), False)]


def test_a_protocol_extends_the_reason_vocabulary() -> None:
    own = attrs.evolve(PHASED, reasons={"transport-strike": "Transport was on strike."})
    assert evaluate(crowded(waiver(reason="transport-strike")), own).ok
    assert not evaluate(crowded(waiver(reason="transport-strike")), PHASED).ok
    with pytest.raises(ProtocolError, match="kebab-case"):
        attrs.evolve(PHASED, reasons={"Bad Code": "x"})


@pytest.mark.parametrize(
    ("as_of", "ok"),
    [
        (APPROVED, True),  # approved at as_of: accepted
        (APPROVED - dt.timedelta(seconds=1), False),
        (APPROVED.astimezone(dt.UTC), True),  # the same instant in UTC
        (dt.date(2026, 12, 4), True),  # the approval's local date
        (dt.date(2026, 12, 3), False),
    ],
)
def test_a_waiver_approved_after_as_of_waives_nothing(
    as_of: dt.datetime | dt.date, ok: bool
) -> None:
    report = evaluate(crowded(waiver()), PHASED, as_of=as_of)
    waived = [f for f in report.findings if f.rule == "weekly-cap" and f.waiver is not None]
    assert bool(waived) is ok
    assert any(f.rule == "waiver" and "after the evaluation's as_of" in f.message
               for f in report.findings) is not ok  # fmt: skip


def test_a_course_finding_is_waived_only_by_a_waiver_naming_no_session() -> None:
    protocol = kaprules.STANDARD.update("session-count", waivable=True)
    course = Course("America/Denver", [Session(at(1), id="s1", escort="x", last_food=at(1, 3))])
    assert rules_of(evaluate(course, protocol)) == [("session-count", (), False)]
    named = attrs.evolve(course, waivers=[waiver(rule="session-count", sessions=["s1"])])
    assert rules_of(evaluate(named, protocol)) == [("session-count", (), False)]
    whole = attrs.evolve(course, waivers=[waiver(rule="session-count", sessions=[])])
    assert rules_of(evaluate(whole, protocol)) == [("session-count", (), True)]


def test_kap_standard_waives_nothing_and_esketamine_marks_its_sources() -> None:
    for protocol in (kaprules.STANDARD, kaprules.STANDARD_V2):
        assert protocol.waivable_rules == frozenset()
    assert kaprules.ESKETAMINE_TRD.waivable_rules == {
        "weekly-cap",
        "weekly-target",
        "blood-pressure-limit",
    }
    assert kaprules.ESKETAMINE_MDSI.waivable_rules == {
        "weekly-cap",
        "weekly-target",
        "blood-pressure-limit",
    }


def test_waivers_round_trip_and_match_the_schema() -> None:
    course = crowded(waiver(note="internal"), waiver(rule="weekly-target", reason=None))
    text = kaprules.dumps(course)
    assert kaprules.parse_course(text) == course
    jsonschema.validate(json.loads(text), kaprules.course_schema())


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ({"rule": 5}, "waivers[0].rule"),
        ({"sessions": "s1"}, "waivers[0].sessions"),
        ({"approved_at": "2026-12-04T17:00:00"}, "waivers[0].approved_at"),
        ({"reason": 3}, "waivers[0].reason"),
        ({"colour": "red"}, "waivers[0]"),
    ],
)
def test_a_malformed_waiver_is_an_input_error_naming_the_field(
    item: dict[str, Any], path: str
) -> None:
    data = json.loads(kaprules.dumps(crowded(waiver())))
    data["waivers"][0].update(item)
    with pytest.raises(InputError, match=path.replace("[", r"\[").replace("]", r"\]")):
        kaprules.parse_course(json.dumps(data))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, kaprules.course_schema())


def test_the_note_is_never_shown_unless_asked(cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(kaprules.dumps(crowded(waiver(note="Patient said SECRET"))))
    _, out, _ = cli("check", str(path), "--protocol", "esketamine-trd@1", "--format", "json")
    assert "SECRET" not in out
    report = evaluate(crowded(waiver(note="Patient said SECRET")), PHASED)
    assert "SECRET" in json.dumps(report.to_dict(notes=True))
    assert "SECRET" not in json.dumps(report.to_dict())


def test_check_exits_0_when_every_error_is_waived(cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    protocol = tmp_path / "p.toml"
    protocol.write_text(PHASED.to_toml())
    path.write_text(kaprules.dumps(crowded(waiver())))
    code, out, _ = cli("check", str(path), "--protocol", str(protocol), "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert data["summary"]["waived"] == 1
    assert data["findings"][0]["waiver"]["approved_by"] == "Dr A"
    assert data["findings"][0]["protocol_version"] == "1"
    path.write_text(kaprules.dumps(crowded(waiver(rule="min-gap"))))
    assert cli("check", str(path), "--protocol", str(protocol))[0] == 1


# --- audits -----------------------------------------------------------------------------


def test_audits_count_waived_findings_and_both_engines_agree(cli: Run, tmp_path: Path) -> None:
    pytest.importorskip("polars", reason="the columnar engine needs pip install '.[columnar]'")
    protocol = tmp_path / "p.toml"
    protocol.write_text(PHASED.to_toml())
    lines = [kaprules.dumps(crowded(waiver()), indent=None)] * 3
    lines += [kaprules.dumps(crowded(waiver(approved_by=None)), indent=None)]
    lines += [kaprules.dumps(crowded(), indent=None)]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    outputs = {}
    for engine in ("records", "columnar"):
        for suffix in ("jsonl", "csv"):
            findings = tmp_path / f"{engine}.{suffix}"
            code, out, _ = cli(
                "audit", str(source), "--protocol", str(protocol), "--engine", engine,
                "--findings", str(findings), "--format", "json",
            )  # fmt: skip
            assert code == 1
            # The same summary but for the engine that ran (and why).
            outputs[engine, suffix] = (
                json.dumps({k: v for k, v in json.loads(out).items() if k != "engine"}),
                findings.read_bytes(),
            )
    assert outputs["records", "jsonl"] == outputs["columnar", "jsonl"]
    assert outputs["records", "csv"] == outputs["columnar", "csv"]
    summary = json.loads(outputs["records", "jsonl"][0])
    assert summary["with_errors"] == 2
    assert summary["rules"]["weekly-cap"] == {
        "courses": 5, "findings": 5, "share": 1.0, "waived": 3
    }  # fmt: skip
    assert [w["line"] for w in summary["waived"]] == [1, 2, 3]
    rows = [json.loads(x) for x in outputs["records", "jsonl"][1].decode().splitlines()]
    assert [r["waiver"] is not None for r in rows if r["rule"] == "weekly-cap"] == [
        True, True, True, False, False
    ]  # fmt: skip


def test_the_html_report_lists_waived_findings_apart(cli: Run, tmp_path: Path) -> None:
    pytest.importorskip("jinja2", reason="the HTML report needs pip install '.[audit]'")
    protocol = tmp_path / "p.toml"
    protocol.write_text(PHASED.to_toml())
    source = tmp_path / "in.jsonl"
    source.write_text(kaprules.dumps(crowded(waiver(approved_by="Dr <b>")), indent=None) + "\n")
    page = tmp_path / "r.html"
    cli("audit", str(source), "--protocol", str(protocol), "--html", str(page))
    text = page.read_text()
    assert 'id="waived">Waived findings (1)' in text
    assert "Dr &lt;b&gt;" in text
    assert "clinical-judgement" in text


def test_a_csv_table_cannot_carry_waivers(cli: Run, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("course_id,timezone,session_id,kind,start,waivers\n")
    code, _, err = cli("audit", str(source))
    assert code == 2
    assert "cannot carry waivers" in err


# --- versions ---------------------------------------------------------------------------

V1 = attrs.evolve(kaprules.STANDARD_V2.replace(id="clinic", version="1"), effective=None)


def versions(effective: dt.date = dt.date(2026, 3, 8)) -> ProtocolVersions:
    first = attrs.evolve(V1, effective=dt.date(2026, 1, 1))
    second = attrs.evolve(
        V1.update("fasting", hours=6).replace(id="clinic", version="2"), effective=effective
    )
    return ProtocolVersions([second, first])


def fasting_course(*starts: dt.datetime, fast_hours: float = 5) -> Course:
    return Course(
        "America/Denver",
        [
            Session(s, id=f"s{n}", escort="x", last_food=s - dt.timedelta(hours=fast_hours))
            for n, s in enumerate(starts, start=1)
        ],
    )


@pytest.mark.parametrize(
    ("start", "version"),
    [
        # 2026-03-08 is the day Denver springs forward (02:00 -> 03:00).
        (dt.datetime(2026, 3, 7, 23, 59, tzinfo=DENVER), "1"),
        (dt.datetime(2026, 3, 8, 0, 0, tzinfo=DENVER), "2"),
        (dt.datetime(2026, 3, 8, 3, 30, tzinfo=DENVER), "2"),
        (dt.datetime(2026, 3, 8, 23, 59, tzinfo=DENVER), "2"),
        # The same instant as 2026-03-08 00:30 in Denver, written in UTC.
        (dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC), "2"),
    ],
)
def test_a_session_is_judged_by_the_version_in_force_on_its_local_date(
    start: dt.datetime, version: str
) -> None:
    course = fasting_course(dt.datetime(2026, 3, 1, 9, tzinfo=DENVER), start)
    report = evaluate(course, versions())
    fasting = [f for f in report.findings if f.rule == "fasting"]
    # Five hours meet version 1's four and break version 2's six.
    assert [f.sessions for f in fasting] == ([] if version == "1" else [("s2",)])
    assert all(f.protocol_version == "2" for f in fasting)
    course_rule = next(f for f in report.findings if f.rule == "session-count")
    assert course_rule.protocol_version == "1"  # the first session's version
    assert report.versions == (("1",) if version == "1" else ("1", "2"))


def test_sessions_before_the_first_version_are_one_finding() -> None:
    course = fasting_course(at(30, month=12) - dt.timedelta(days=365), at(2, month=1))
    report = evaluate(course, versions())
    first = report.findings[0]
    assert (first.rule, first.sessions, first.severity) == ("no-version-in-force", ("s1",), "error")
    assert "2026-01-01" in first.message


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([V1.replace(id="other", version="1"), V1.replace(id="clinic", version="2")], "share"),
        ([V1, V1.replace(version="2")], "only the one given first may have none"),
        # A later version whose date was left out is not moved ahead of the first.
        (
            [attrs.evolve(V1, effective=dt.date(2026, 1, 1)), V1.replace(version="2")],
            "only the one given first",
        ),
        (
            [
                attrs.evolve(V1, effective=dt.date(2026, 1, 1)),
                attrs.evolve(V1.replace(version="2"), effective=dt.date(2026, 1, 1)),
            ],
            "strictly increase",
        ),
        ([attrs.evolve(V1, effective=dt.date(2026, 1, 1))] * 2, "given twice"),
        ([], "at least one"),
    ],
)
def test_versions_are_checked_when_loaded(items: list[Protocol], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        ProtocolVersions(items)


def test_an_effective_date_is_in_the_supported_years() -> None:
    with pytest.raises(ProtocolError, match="effective: 0001-01-01 is outside the supported"):
        attrs.evolve(V1, effective=dt.date(1, 1, 1))


def test_versions_from_files_and_from_one_file_agree(cli: Run, tmp_path: Path) -> None:
    paths = [EXAMPLES / "clinic-v1.toml", EXAMPLES / "clinic-v2.toml"]
    loaded = kaprules.load_protocol(*paths)
    assert isinstance(loaded, ProtocolVersions)
    code, out, _ = cli("protocol", "validate", str(paths[1]))
    assert (code, out.splitlines()[0]) == (
        0, "valid: lakeside-phased version 2, effective 2026-03-01, 2 rules"
    )  # fmt: skip
    one = tmp_path / "both.toml"
    entries = [p.to_dict() for p in loaded.versions]
    for entry in entries:
        del entry["id"]
    data = {"id": loaded.id, "versions": entries}
    from kaprules import _toml

    one.write_text(_toml.protocol_versions_toml(data))
    assert kaprules.load_versions(one) == loaded
    course = kaprules.load_course(EXAMPLES / "course.json")
    assert evaluate(course, kaprules.load_versions(one)) == evaluate(course, loaded)
    with pytest.raises(ProtocolError, match="load_versions"):
        kaprules.load_protocol(one)


def test_the_worked_example_through_the_command_line(cli: Run) -> None:
    args = ["--protocol", str(EXAMPLES / "clinic-v1.toml")]
    args += ["--protocol", str(EXAMPLES / "clinic-v2.toml")]
    code, out, _ = cli("check", str(EXAMPLES / "course.json"), *args, "--format", "json")
    data = json.loads(out)
    assert code == 1
    assert data["protocol"]["versions"] == ["1", "2"]
    got = [(f["rule"], f["sessions"], f["protocol_version"], f["waiver"] is not None)
           for f in data["findings"]]  # fmt: skip
    assert got == [
        ("weekly-cap", ["s3", "s4", "s5"], "2", True),
        ("fasting", ["s3"], "2", False),
        ("waiver", ["s3"], "2", False),
    ]
    code, out, _ = cli("explain", "fasting", *args, "--as-of", "2026-02-01")
    assert "4 hours" in out or "4 h" in out
    code, out, _ = cli("explain", "fasting", *args, "--as-of", "2026-03-01")
    assert "6 hours" in out or "6 h" in out
    code, _, err = cli("explain", "fasting", *args, "--as-of", "2025-01-01")
    assert code == 2
    assert "no version" in err


def test_an_audit_stamps_each_version_and_reruns_byte_identical(cli: Run, tmp_path: Path) -> None:
    args = ["--protocol", str(EXAMPLES / "clinic-v1.toml")]
    args += ["--protocol", str(EXAMPLES / "clinic-v2.toml")]
    source = tmp_path / "in.jsonl"
    source.write_text(kaprules.dumps(kaprules.load_course(EXAMPLES / "course.json"), indent=None))
    runs = []
    for _ in range(2):
        findings = tmp_path / "f.csv"
        _, out, _ = cli("audit", str(source), *args, "--format", "json",
                        "--findings", str(findings))  # fmt: skip
        runs.append((out, findings.read_bytes()))
    assert runs[0] == runs[1]
    stamp = json.loads(runs[0][0])["protocol"]
    loaded = kaprules.load_protocol(EXAMPLES / "clinic-v1.toml", EXAMPLES / "clinic-v2.toml")
    assert isinstance(loaded, ProtocolVersions)
    assert stamp["versions"] == [
        {"version": "1", "effective": "2026-01-01", "sha256": loaded.versions[0].digest},
        {"version": "2", "effective": "2026-03-01", "sha256": loaded.versions[1].digest},
    ]
    assert loaded.versions[0].digest != loaded.versions[1].digest


# --- properties -------------------------------------------------------------------------

OPEN = kaprules.STANDARD.update("fasting", waivable=True).update("escort", waivable=True)


@st.composite
def waived_courses(draw: st.DrawFn) -> Course:
    course = draw(compliant_courses(protocol=OPEN))
    ids = [s.id for s in course.sessions]
    # Break some sessions' fasts and escorts, then waive a random part of it.
    broken = draw(st.lists(st.sampled_from(ids), unique=True, max_size=3)) if ids else []
    sessions = [
        attrs.evolve(s, escort=None, last_food=s.start - dt.timedelta(hours=1))
        if s.id in broken
        else s
        for s in course.sessions
    ]
    waivers = draw(
        st.lists(
            st.builds(
                Waiver,
                st.sampled_from(["fasting", "escort", "session-spacing", "x"]),
                st.lists(st.sampled_from([*ids, "ghost"]), unique=True, max_size=3),
                st.sampled_from(["clinical-judgement", "nonsense", None]),
                st.sampled_from(["Dr A", None]),
                st.just(APPROVED),
            ),
            max_size=3,
        )
    )
    return attrs.evolve(course, sessions=sessions, waivers=waivers)


@settings(max_examples=25)
@given(waived_courses())
def test_waivers_change_only_the_waived_state_and_never_hide_a_finding(course: Course) -> None:
    plain = evaluate(attrs.evolve(course, waivers=()), OPEN)
    judged = evaluate(course, OPEN)
    kept = [f for f in judged.findings if f.rule != "waiver"]
    assert [(f.rule, f.sessions, f.message) for f in kept] == [
        (f.rule, f.sessions, f.message) for f in plain.findings
    ]
    invalid = sum(1 for f in judged.findings if f.rule == "waiver")
    assert invalid <= len(course.waivers)
    for f in kept:
        if f.waiver is not None:
            # Only a valid waiver of the finding's own rule covers it, every session named.
            assert f.waiver.rule == f.rule
            assert set(f.sessions) <= set(f.waiver.sessions)
            assert f.rule in OPEN.waivable_rules
            assert f.waiver.reason in kaprules.REASONS
            assert f.waiver.approved_by is not None
            assert "ghost" not in f.waiver.sessions
    assert judged.ok == (not any(f.counts for f in judged.findings))


def test_dask_audits_versions_and_waivers_as_kaprules_does(tmp_path: Path) -> None:
    dask_bag = pytest.importorskip("dask.bag", reason="needs pip install '.[dask]'")
    from kaprules.auditing import read_records
    from kaprules.dask import audit_bag

    loaded = kaprules.load_protocol(EXAMPLES / "clinic-v1.toml", EXAMPLES / "clinic-v2.toml")
    course = kaprules.load_course(EXAMPLES / "course.json")
    lines = [kaprules.dumps(course, indent=None), kaprules.dumps(crowded(waiver()), indent=None)]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines * 3) + "\n")
    bag = dask_bag.from_sequence(lines * 3, npartitions=2)
    run = audit_bag(bag, loaded, source=str(source))
    expected = kaprules.audit(read_records([str(source)]), loaded)
    assert run.results.compute(scheduler="sync") == list(expected)
    summary = run.summary(scheduler="sync").to_dict()
    assert summary == {**expected.summary.to_dict(), "input_sha256": None, "inputs": []}
    assert summary["rules"]["weekly-cap"]["waived"] == 6  # both courses, three times


def worked_report(cli: Run, tmp_path: Path, *options: str) -> str:
    """The HTML report of the worked example's course under both versions."""
    pytest.importorskip("jinja2", reason="the HTML report needs pip install '.[audit]'")
    source = tmp_path / "in.jsonl"
    source.write_text(kaprules.dumps(kaprules.load_course(EXAMPLES / "course.json"), indent=None))
    page = tmp_path / "r.html"
    args = ["--protocol", str(EXAMPLES / "clinic-v1.toml")]
    args += ["--protocol", str(EXAMPLES / "clinic-v2.toml")]
    cli("audit", str(source), *args, "--html", str(page), *options)
    return page.read_text()


def test_the_html_report_stamps_each_version(cli: Run, tmp_path: Path) -> None:
    text = worked_report(cli, tmp_path)
    loaded = kaprules.load_protocol(EXAMPLES / "clinic-v1.toml", EXAMPLES / "clinic-v2.toml")
    for version in loaded.versions:
        assert version.digest in text
    assert "in force from 2026-03-01" in text
    assert "versions 1, 2</b>, each session by the version in force" in text
    assert "(version 2)</small>" in text


def test_three_versions_each_judge_their_own_dates(tmp_path: Path) -> None:
    # Fasting of 4, then 5, then 6 hours; every session fasts 4.5 hours.
    text = 'id = "three"\n'
    for version, (hours, effective) in enumerate(
        [(4, "2026-01-01"), (5, "2026-02-01"), (6, "2026-03-01")], start=1
    ):
        text += f'\n[[versions]]\nversion = "{version}"\neffective = {effective}\n'
        text += (
            f'\n[[versions.rules]]\nid = "fasting"\n[versions.rules.parameters]\nhours = {hours}\n'
        )
        text += '\n[[versions.rules]]\nid = "session-spacing"\n'
    path = tmp_path / "three.toml"
    path.write_text(text)
    loaded = kaprules.load_versions(path)
    starts = [
        dt.datetime(2026, 1, 31, 23, 30, tzinfo=DENVER),  # v1
        dt.datetime(2026, 2, 1, 0, 0, tzinfo=DENVER),  # v2: the effective date's first minute
        dt.datetime(2026, 2, 28, 23, 59, tzinfo=DENVER),  # v2: the day before v3
        dt.datetime(2026, 3, 1, 0, 0, tzinfo=DENVER),  # v3
    ]
    report = evaluate(fasting_course(*starts, fast_hours=4.5), loaded)
    got = [(f.rule, f.sessions, f.protocol_version) for f in report.findings]
    assert got == [
        ("session-spacing", ("s1", "s2"), "2"),  # judged by its later session's version
        ("fasting", ("s2",), "2"),
        ("fasting", ("s3",), "2"),
        ("session-spacing", ("s3", "s4"), "3"),
        ("fasting", ("s4",), "3"),
    ]
    assert report.versions == ("1", "2", "3")


def test_check_booking_shows_the_waiver_but_a_search_never_relies_on_one() -> None:
    sessions = [Session(at(1), id="s1"), Session(at(3), id="s2")]
    covering = waiver(sessions=["s1", "s2", "p"], approved_at=at(3, 11))
    course = Course("America/Denver", sessions, waivers=[covering])
    as_of = at(3, 12)
    booked = kaprules.check_booking(course, Session(at(4), id="p"), as_of, PHASED)
    assert [(f.rule, f.waiver) for f in booked.findings] == [("weekly-cap", covering)]
    assert booked.ok
    bare = kaprules.check_booking(attrs.evolve(course, waivers=()), Session(at(4), id="p"),
                                  as_of, PHASED)  # fmt: skip
    assert not bare.ok
    # The forecast and the plan follow the rules: week 1 is full, whatever the waiver.
    upcoming = kaprules.forecast(course, as_of, PHASED).next
    assert upcoming is not None
    assert upcoming.bookable_from == dt.date(2026, 12, 8)
    planned = kaprules.plan(course, as_of, kaprules.ClinicCalendar(weekdays=range(7)), PHASED)
    assert all(s.start.date() >= dt.date(2026, 12, 8) for s in planned.sessions)


def test_a_built_in_version_is_followed_by_a_later_one(cli: Run, tmp_path: Path) -> None:
    # esketamine-trd@1 has no effective date: in force from the start, until version 2.
    later = kaprules.ESKETAMINE_TRD.update("weekly-cap", waivable=False)
    later = later.replace(id="esketamine-trd", version="2")
    later = attrs.evolve(later, effective=dt.date(2026, 12, 4))
    path = tmp_path / "trd-2.toml"
    path.write_text(later.to_toml())
    course = tmp_path / "c.json"
    course.write_text(kaprules.dumps(crowded(waiver())))
    args = ["--protocol", "esketamine-trd@1", "--protocol", str(path), "--format", "json"]
    code, out, _ = cli("check", str(course), *args)
    found = {(f["rule"], f["protocol_version"]) for f in json.loads(out)["findings"]}
    # s3 (Dec 4) is judged by version 2, which does not let the weekly cap be waived.
    assert ("weekly-cap", "2") in found
    assert ("waiver", "2") in found
    assert code == 1


def test_a_drawn_course_marks_its_waived_finding(cli: Run, tmp_path: Path) -> None:
    text = worked_report(cli, tmp_path, "--sample", "5")
    assert 'class="sev-waived"><code>weekly-cap</code> error, waived' in text
    assert "Waived: clinical-judgement, approved by Dr. R. Okafor" in text


def test_forecast_check_booking_and_plan_take_versions() -> None:
    # Each uses the version in force then: forecast and plan on as_of's date, check_booking
    # on the proposed session's; before the first version, an InputError names protocol.
    both = kaprules.ProtocolVersions(
        [
            attrs.evolve(PHASED, effective=dt.date(2026, 11, 1)),
            attrs.evolve(
                PHASED.replace(version="2")
                .update("weekly-cap", waivable=False)
                .replace(id="phased", version="2"),
                effective=dt.date(2026, 12, 4),
            ),
        ]
    )
    course = crowded(waiver(sessions=["s1", "s2", "p"], approved_at=at(3, 11)))
    course = attrs.evolve(course, sessions=course.sessions[:2])
    # Dec 4 is version 2's: the weekly cap may not be waived there.
    booked = kaprules.check_booking(course, Session(at(4), id="p"), at(3, 12), both)
    assert not booked.ok
    assert {f.protocol_version for f in booked.findings} == {"2"}
    assert kaprules.forecast(course, at(3, 12), both).next is not None
    assert kaprules.plan(course, at(3, 12), None, both).sessions
    with pytest.raises(InputError, match="no version of 'phased' is in force on 2026-10-01"):
        kaprules.forecast(course, dt.date(2026, 10, 1), both)


def test_a_finding_never_names_a_session_no_version_judges() -> None:
    early = [Session(at(29, month=12) - dt.timedelta(days=365), id="s1")]
    later = [Session(at(31, month=12) - dt.timedelta(days=365), id="s2")]
    course = Course(
        "America/Denver", [*early, *later, Session(at(2, month=1) + dt.timedelta(days=0), id="s3")]
    )
    one = kaprules.ProtocolVersions([attrs.evolve(PHASED, effective=dt.date(2025, 12, 31))])
    report = evaluate(course, one)
    assert [(f.rule, f.sessions) for f in report.findings] == [("no-version-in-force", ("s1",))]


def test_a_rule_the_protocol_holds_but_does_not_let_be_waived() -> None:
    fixed = PHASED.update("weekly-cap", waivable=False)
    report = evaluate(crowded(waiver()), fixed)
    assert ("weekly-cap", ("s1", "s2", "s3"), False) in rules_of(report)
    (invalid,) = [f for f in report.findings if f.rule == "waiver"]
    assert invalid.message.endswith("the protocol does not let this rule be waived")
    assert invalid.sessions == ("s1", "s2", "s3")  # in start order


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"note": "line one\nline two"}, None),  # a note may have lines
        ({"note": "a\x1b[31m b"}, "note: must be at most 2000 printable characters"),
        ({"note": "\x9b2J"}, "note: must be at most 2000 printable characters"),
        ({"rule": "a\udfff"}, "rule: holds a lone surrogate"),
    ],
)
def test_waiver_text_is_checked_field_by_field(
    changes: dict[str, Any], message: str | None
) -> None:
    if message is None:
        assert waiver(**changes).note == changes["note"]
        return
    with pytest.raises(InputError, match=message):
        waiver(**changes)


def test_a_protocol_adds_reason_codes_but_redefines_none() -> None:
    with pytest.raises(ProtocolError, match="adds codes, it does not redefine them"):
        attrs.evolve(PHASED, reasons={"clinical-judgement": "Anything goes."})
    with pytest.raises(ProtocolError, match="versions: must hold at least one version"):
        kaprules.protocol_files.versions_from_data({"id": "x", "versions": []})
