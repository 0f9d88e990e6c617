"""Phases and session-day rules: every boundary pinned by a table, in the course's zone."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs
import pytest

import kaprules
from kaprules import Course, Session, Vital
from kaprules.errors import ProtocolError
from kaprules.phases import (
    TRD_PHASES,
    BeyondEvaluated,
    MinGap,
    Overdue,
    Phase,
    WeeklyCap,
    WeeklyTarget,
    treatment_week,
    week_dates,
)
from kaprules.protocol import ESKETAMINE_MDSI, ESKETAMINE_TRD, Protocol
from kaprules.session_day import (
    BloodPressureAfter,
    BloodPressureBefore,
    BloodPressureLimit,
    Dose,
    LiquidFasting,
    MonitoringForm,
    PostDoseMonitoring,
    RemsEnrolment,
)

DENVER = ZoneInfo("America/Denver")
ROOT = Path(__file__).resolve().parent.parent


def at(day: dt.date, hour: int = 9, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=DENVER)


def course(days: list[dt.date], **session: object) -> Course:
    return Course(
        "America/Denver",
        [Session(at(d), id=f"s{i + 1}", **session) for i, d in enumerate(days)],  # type: ignore[arg-type]
    )


def found(
    protocol: Protocol, c: Course, as_of: dt.date | dt.datetime | None = None
) -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (f.rule, f.severity.value, f.sessions)
        for f in kaprules.evaluate(c, protocol, as_of=as_of).findings
    ]


D0 = dt.date(2026, 12, 3)  # a Thursday: treatment weeks run Thursday to Wednesday


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


# --- treatment weeks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "week"), [(0, 1), (6, 1), (7, 2), (13, 2), (14, 3), (55, 8), (56, 9)]
)
def test_treatment_weeks_count_from_the_first_session(offset: int, week: int) -> None:
    assert treatment_week(D0, day(offset)) == week
    first, last = week_dates(D0, week)
    assert first <= day(offset) <= last
    assert (last - first).days == 6


def test_weeks_are_local_dates_across_a_dst_change() -> None:
    # Denver falls back on 2026-11-01: a week of local dates still has 7 of them.
    first = dt.date(2026, 10, 29)
    c = course([first, dt.date(2026, 11, 4), dt.date(2026, 11, 5)])
    protocol = Protocol("t", "1", [WeeklyCap(phases=(Phase("p", (1,), at_most=1),))])
    # Nov 4 is day 7 (week 1 with Oct 29), Nov 5 opens week 2.
    assert found(protocol, c) == [("weekly-cap", "error", ("s1", "s2"))]


# --- weekly-cap ---------------------------------------------------------------------


CAP = Protocol("cap", "1", [WeeklyCap()])


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        ([0, 3], []),
        ([0, 3, 6], [("weekly-cap", "error", ("s1", "s2", "s3"))]),
        ([0, 3, 7], []),  # day 7 is week 2
        ([0, 3, 7, 9, 11], [("weekly-cap", "error", ("s3", "s4", "s5"))]),
        ([0, 3, 7, 10, 28, 30], [("weekly-cap", "error", ("s5", "s6"))]),  # week 5: at most 1
        ([0, 56, 58], [("weekly-cap", "error", ("s2", "s3"))]),  # week 9 on: at most 1
    ],
)
def test_weekly_cap(offsets: list[int], expected: list[object]) -> None:
    assert found(CAP, course([day(n) for n in offsets])) == expected


def test_a_planned_session_counts_against_the_cap() -> None:
    c = course([day(0), day(2), day(4)])
    assert found(CAP, c, as_of=day(1)) == [("weekly-cap", "error", ("s1", "s2", "s3"))]


# --- weekly-target ------------------------------------------------------------------

TARGET = Protocol("target", "1", [WeeklyTarget()])


def test_weeks_are_judged_through_the_last_session_without_as_of() -> None:
    c = course([day(0), day(3), day(7), day(15), day(17)])
    assert found(TARGET, c) == [("weekly-target", "warning", ("s3",))]


@pytest.mark.parametrize(
    ("as_of", "weeks"),
    [
        (day(6), []),  # a plain date: week 1 is over at the end of day 6 ... with 2 sessions
        (day(13), [2]),  # plain date on week 2's last day: judged
        (at(day(13), 23, 59), []),  # an aware moment on that day: not yet over
        (at(day(14), 0, 1), [2]),
        (day(27), [2, 3, 4]),  # weeks after the last session are judged too
        (day(34), [2, 3, 4, 5]),
    ],
)
def test_weeks_are_judged_once_over_with_as_of(as_of: dt.date, weeks: list[int]) -> None:
    c = course([day(0), day(3)])
    findings = kaprules.evaluate(c, TARGET, as_of=as_of).findings
    assert [int(f.message.split()[2]) for f in findings] == weeks
    assert all(f.sessions == () for f in findings)


def test_a_target_finding_names_the_week_its_dates_and_count() -> None:
    c = course([day(0), day(3), day(8), day(14), day(16)])
    (finding,) = kaprules.evaluate(c, TARGET).findings
    assert finding.sessions == ("s3",)
    assert "treatment week 2 (2026-12-10 to 2026-12-16) had 1 of the 2" in finding.message
    assert (finding.expected, finding.actual) == (2, 1)


# --- overdue and min-gap ------------------------------------------------------------

PACE = Protocol("pace", "1", [Overdue(), MinGap()])


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        ([0, 49, 56, 70], []),  # 14 days: on time
        ([0, 49, 56, 71], [("overdue", "warning", ("s3",))]),  # 15: naming the one before
        ([0, 49, 64], [("overdue", "warning", ("s2",))]),  # judged by the later one's phase
        ([0, 3, 3 + 15], []),  # week 3 is not open-ended: no every_days there
        ([0, 0], [("min-gap", "error", ("s1", "s2"))]),
        ([0, 1], []),  # 1 day apart is enough for min_gap_days 1
    ],
)
def test_overdue_and_min_gap(offsets: list[int], expected: list[object]) -> None:
    days = [day(n) for n in offsets]
    c = Course(
        "America/Denver",
        [Session(at(d, 9 + i), id=f"s{i + 1}") for i, d in enumerate(days)],
    )
    assert found(PACE, c) == expected


@pytest.mark.parametrize(
    ("as_of", "overdue"),
    [
        (day(69), False),
        (day(70), True),  # a plain date: the last allowed day (day 56 + 14) is over
        (at(day(70), 23), False),  # an aware moment on the last allowed day: not yet
        (at(day(71), 0, 0), True),
        (day(71), True),
    ],
)
def test_overdue_with_as_of(as_of: dt.date, overdue: bool) -> None:
    c = course([day(0), day(49), day(56)])
    want = [("overdue", "warning", ("s3",))] if overdue else []
    assert found(Protocol("o", "1", [Overdue()]), c, as_of=as_of) == want


# --- beyond-evaluated ----------------------------------------------------------------


def test_beyond_evaluated_warns_for_each_session_after_week_4() -> None:
    c = course([day(0), day(27), day(28), day(30)])
    assert found(Protocol("b", "1", [BeyondEvaluated()]), c) == [
        ("beyond-evaluated", "warning", ("s3",)),
        ("beyond-evaluated", "warning", ("s4",)),
    ]


# --- session-day rules ---------------------------------------------------------------


START = at(dt.date(2026, 12, 1))


def one(**fields: object) -> Course:
    return Course("America/Denver", [Session(START, id="a", **fields)])  # type: ignore[arg-type]


def rule_ids(rule: object, c: Course, as_of: dt.date | dt.datetime | None = None) -> list[str]:
    return [f.rule for f in kaprules.evaluate(c, Protocol("x", "1", [rule]), as_of=as_of).findings]  # type: ignore[list-item]


MIN = dt.timedelta(minutes=1)


@pytest.mark.parametrize(("minutes", "ok"), [(29, False), (30, True), (31, True), (-5, False)])
def test_liquid_fasting_boundary(minutes: int, ok: bool) -> None:
    c = one(last_liquid=START - minutes * MIN)
    assert rule_ids(LiquidFasting(), c) == ([] if ok else ["liquid-fasting"])


def test_a_missing_liquid_is_a_finding_unless_planned() -> None:
    assert rule_ids(LiquidFasting(), one()) == ["liquid-fasting"]
    assert rule_ids(LiquidFasting(), one(), as_of=dt.date(2026, 11, 30)) == []


@pytest.mark.parametrize(("before", "ok"), [(0, True), (60, True), (61, False), (-1, False)])
def test_blood_pressure_before_boundary(before: int, ok: bool) -> None:
    c = one(vitals=[Vital(START - before * MIN, 120, 80)])
    assert rule_ids(BloodPressureBefore(), c) == ([] if ok else ["blood-pressure-before"])


@pytest.mark.parametrize(
    ("readings", "ok"),
    [
        ([(140, 90)], True),
        ([(141, 90)], False),
        ([(140, 91)], False),
        ([(150, 95), (130, 80)], True),  # the latest reading counts
        ([(130, 80), (150, 95)], False),
    ],
)
def test_blood_pressure_limit_reads_the_latest_reading(
    readings: list[tuple[int, int]], ok: bool
) -> None:
    vitals = [Vital(START - (30 - 10 * i) * MIN, s, d) for i, (s, d) in enumerate(readings)]
    assert rule_ids(BloodPressureLimit(), one(vitals=vitals)) == (
        [] if ok else ["blood-pressure-limit"]
    )


def test_blood_pressure_messages_never_show_the_reading() -> None:
    c = one(vitals=[Vital(START - 10 * MIN, 187, 123)])
    (finding,) = kaprules.evaluate(c, Protocol("x", "1", [BloodPressureLimit()])).findings
    assert finding.severity == "warning"
    assert "187" not in json.dumps(finding.to_dict())
    assert "123" not in finding.message


@pytest.mark.parametrize(("after", "ok"), [(29, False), (30, True), (60, True), (61, False)])
def test_blood_pressure_after_boundary(after: int, ok: bool) -> None:
    c = one(vitals=[Vital(START + after * MIN, 120, 80)])
    assert rule_ids(BloodPressureAfter(), c) == ([] if ok else ["blood-pressure-after"])


@pytest.mark.parametrize(("minutes", "ok"), [(119, False), (120, True), (240, True)])
def test_post_dose_monitoring_boundary(minutes: int, ok: bool) -> None:
    c = one(ready_to_leave=START + minutes * MIN)
    assert rule_ids(PostDoseMonitoring(), c) == ([] if ok else ["post-dose-monitoring"])


def test_monitoring_across_a_dst_change_is_elapsed_time() -> None:
    # Denver springs forward at 02:00 on 2027-03-14: 00:30 to 03:30 on the clocks is 2 h.
    start = dt.datetime(2027, 3, 14, 0, 30, tzinfo=DENVER)
    c = Course(
        "America/Denver",
        [Session(start, id="a", ready_to_leave=dt.datetime(2027, 3, 14, 3, 30, tzinfo=DENVER))],
    )
    assert rule_ids(PostDoseMonitoring(), c) == []
    assert rule_ids(PostDoseMonitoring(minutes=121), c) == ["post-dose-monitoring"]


@pytest.mark.parametrize(
    ("doses", "bad"),
    [
        ([56, 84, 56], []),
        ([84, 84], ["s1"]),
        ([56, 70], ["s2"]),
        ([56.0, 84.0], []),
        ([None, 56], ["s1"]),
    ],
)
def test_dose(doses: list[float | None], bad: list[str]) -> None:
    c = Course(
        "America/Denver",
        [Session(at(day(2 * i)), id=f"s{i + 1}", dose_mg=d) for i, d in enumerate(doses)],
    )
    findings = kaprules.evaluate(c, Protocol("x", "1", [Dose()])).findings
    assert [f.sessions[0] for f in findings] == bad
    assert all("70" not in f.message for f in findings)


@pytest.mark.parametrize(
    ("enrolled", "ok"),
    [(dt.date(2026, 11, 1), True), (dt.date(2026, 12, 1), True), (dt.date(2026, 12, 2), False)],
)
def test_rems_enrolment(enrolled: dt.date, ok: bool) -> None:
    c = Course("America/Denver", [Session(START, id="a")], enrolled=enrolled)
    assert rule_ids(RemsEnrolment(), c) == ([] if ok else ["rems-enrolment"])
    assert rule_ids(RemsEnrolment(), attrs.evolve(c, enrolled=None)) == ["rems-enrolment"]


@pytest.mark.parametrize(
    ("after", "ok"),
    [
        (dt.timedelta(0), True),
        (dt.timedelta(days=7), True),
        (dt.timedelta(days=7, seconds=1), False),
        (-MIN, False),
    ],
)
def test_monitoring_form_boundary(after: dt.timedelta, ok: bool) -> None:
    c = one(monitoring_form=START + after)
    assert rule_ids(MonitoringForm(), c) == ([] if ok else ["monitoring-form"])


@pytest.mark.parametrize(
    ("as_of", "due"),
    [
        (START + dt.timedelta(days=7), False),
        (START + dt.timedelta(days=7, seconds=1), True),
        (dt.date(2026, 12, 7), False),  # the end of Dec 7 is before Dec 8 09:00
        (dt.date(2026, 12, 8), True),  # the end of Dec 8 is after it
    ],
)
def test_a_missing_form_is_due_once_its_days_have_passed(
    as_of: dt.date | dt.datetime, due: bool
) -> None:
    assert rule_ids(MonitoringForm(), one(), as_of=as_of) == (["monitoring-form"] if due else [])


def test_session_day_rules_exempt_planned_sessions() -> None:
    c = one()
    assert found(ESKETAMINE_TRD, c, as_of=dt.date(2026, 11, 30)) == []


# --- the built-in protocols ---------------------------------------------------------


def compliant_day(d: dt.date, dose: float, n: int) -> Session:
    s = at(d)
    return Session(
        s,
        id=f"s{n}",
        last_food=s - dt.timedelta(hours=3),
        escort="on file",
        last_liquid=s - dt.timedelta(minutes=45),
        vitals=(Vital(s - 15 * MIN, 128, 82), Vital(s + 40 * MIN, 130, 84)),
        ready_to_leave=s + dt.timedelta(hours=2),
        dose_mg=dose,
        monitoring_form=s + dt.timedelta(hours=3),
    )


def test_a_labelled_trd_course_is_compliant() -> None:
    offsets = [0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49, 56, 70, 84]
    sessions = [compliant_day(day(o), 56 if i == 0 else 84, i + 1) for i, o in enumerate(offsets)]
    c = Course("America/Denver", sessions, enrolled=D0)
    assert kaprules.evaluate(c, ESKETAMINE_TRD).findings == ()
    mdsi = kaprules.evaluate(c, ESKETAMINE_MDSI)
    assert {f.rule for f in mdsi.findings} == {"dose", "beyond-evaluated"}
    assert mdsi.ok is False  # the first dose of 56 mg is not mdsi's 84


def test_protocols_are_registered_and_round_trip_through_toml() -> None:
    for protocol in (ESKETAMINE_TRD, ESKETAMINE_MDSI):
        assert kaprules.get_protocol(f"{protocol.id}@1") is protocol
        data = tomllib.loads(protocol.to_toml())
        assert "phases" in data
        assert all("phases" not in r.get("parameters", {}) for r in data["rules"])
        assert Protocol.from_dict(data) == protocol


def test_a_protocol_file_declares_phases_once(tmp_path: Path) -> None:
    path = ROOT / "examples" / "protocols" / "iv-programme.toml"
    protocol = kaprules.load_protocol(path)
    phases = {tuple(getattr(r, "phases", ())) for r in protocol.rules} - {()}
    assert phases == {
        (
            Phase("induction", (1, 3), at_most=2, target=2, min_gap_days=1),
            Phase("maintenance", (4, 7), at_most=1, target=1, min_gap_days=1),
        )
    }


@pytest.mark.parametrize(
    ("phases", "words"),
    [
        ([{"name": "a", "weeks": [1]}, {"name": "b", "weeks": [3]}], "only the last phase"),
        ([{"name": "a", "weeks": [1, 4]}, {"name": "b", "weeks": [4, 6]}], "do not overlap"),
        ([{"name": "a", "weeks": [1, 4], "every_days": 7}], "only an open-ended phase"),
        ([{"name": "a", "weeks": [1, 4], "target": 3, "at_most": 2}], "target"),
        ([{"name": "a\nb", "weeks": [1]}], "name"),
        ([{"name": "a", "weeks": [0]}], "weeks"),
        ([{"name": "a", "weeks": [1], "cap": 2}], "unknown field"),
        ([], "non-empty"),
    ],
)
def test_bad_phases_are_named(phases: list[object], words: str) -> None:
    data = {"id": "c", "version": "1", "phases": phases, "rules": [{"id": "weekly-cap"}]}
    with pytest.raises(ProtocolError) as caught:
        Protocol.from_dict(data)
    assert "phases" in str(caught.value)
    assert words in str(caught.value)
    assert "\nb" not in str(caught.value)


def test_phases_without_a_rule_that_reads_them_are_refused() -> None:
    data = {"id": "c", "version": "1", "phases": [{"name": "a", "weeks": [1]}], "rules": []}
    with pytest.raises(ProtocolError, match="no rule of the protocol reads phases"):
        Protocol.from_dict(data)


def test_phased_rules_share_their_phases() -> None:
    other = (Phase("x", (1,), at_most=3),)
    with pytest.raises(ProtocolError, match="phases"):
        Protocol("c", "1", [WeeklyCap(), WeeklyTarget(phases=other)])
    updated = Protocol("c", "1", [WeeklyCap(), WeeklyTarget()]).update("weekly-cap", phases=other)
    assert all(r.phases == tuple(other) for r in updated.rules)  # type: ignore[attr-defined]
    assert WeeklyCap().phases == TRD_PHASES


def test_the_cli_checks_a_course_against_a_builtin_esketamine_protocol(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    c = course([day(0), day(0)])
    path = tmp_path / "c.json"
    path.write_text(kaprules.dumps(c), encoding="utf-8")
    status, out, _ = cli("check", str(path), "--protocol", "esketamine-trd@1", "--format", "json")
    report = json.loads(out)
    assert status == 1
    assert ("min-gap", ["s1", "s2"]) in [(f["rule"], f["sessions"]) for f in report["findings"]]


def test_both_audit_engines_agree_on_session_day_courses(tmp_path: Path) -> None:
    pytest.importorskip("polars")
    from kaprules.auditing import audit, read_records

    lines = []
    for n in range(40):
        offsets = [0, 3, 7, 10 + n % 3, 14, 16 + n % 5, 21, 24]
        sessions = [
            compliant_day(day(o + n), 56 if i == 0 else (84, 56, 70)[(n + i) % 3], i + 1)
            for i, o in enumerate(offsets)
        ]
        if n % 4 == 0:  # plain sessions: the columnar engine's own reading
            sessions = [Session(s.start, id=s.id, escort="e") for s in sessions]
        c = Course("America/Denver", sessions, id=f"c{n}", enrolled=day(n + (n % 7 == 0)))
        lines.append(kaprules.dumps(c).replace("\n", ""))
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen = []
    for engine in ("records", "columnar", "auto"):
        for protocol in (ESKETAMINE_TRD, ESKETAMINE_MDSI):
            run = audit(read_records([str(path)]), protocol, engine=engine, as_of=day(40))
            seen.append(("".join(run.findings_text()), run.summary.to_dict()))
    assert seen[:2] == seen[2:4] == seen[4:]
    assert seen[0][1]["compliant"] < 40
    assert '"dose"' in seen[0][0]
