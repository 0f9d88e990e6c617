"""Composing protocols, rules written by users, and reports."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import ClassVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kaprules
from kaprules import (
    STANDARD,
    BoosterInterval,
    Fasting,
    Finding,
    Protocol,
    ProtocolError,
    Rule,
    SessionCount,
    SessionSpacing,
    Severity,
    Source,
    Timeline,
    TreatmentWindow,
    evaluate,
)

from helpers import STANDARD_DATES, at, course, series, session


@attrs.frozen
class NoWeekends:
    """A rule written from scratch: it follows kaprules.Rule and inherits nothing."""

    id: ClassVar[str] = "no-weekends"
    title: ClassVar[str] = "No sessions at weekends"
    rationale: ClassVar[str] = "The clinic is closed at weekends."
    source: ClassVar[Source] = Source(
        "We are closed on Saturdays and Sundays.", "Clinic handbook", "p. 2"
    )
    names: ClassVar[str] = "The session."

    severity: Severity = Severity.WARNING
    days: tuple[int, ...] = (5, 6)

    @property
    def statement(self) -> str:
        return f"No session starts on weekday {', '.join(map(str, self.days))} (Monday is 0)."

    def parameters(self) -> dict[str, object]:
        return {"days": list(self.days)}

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        for t in timeline.sessions:
            if t.date.weekday() in self.days:
                yield Finding(
                    self.id,
                    self.severity,
                    (t.id,),
                    f"{t.label} is at a weekend",
                    "weekday",
                    t.date.isoformat(),
                )


def test_standard_protocol_identity() -> None:
    assert (STANDARD.id, STANDARD.version) == ("kap-standard", "1")
    assert STANDARD.rule_ids == (
        "session-count",
        "treatment-window",
        "session-spacing",
        "fasting",
        "escort",
        "booster-interval",
    )
    assert all(isinstance(r, Rule) for r in STANDARD.rules)


def test_replace_swaps_in_place_and_appends_new_ids() -> None:
    clinic = STANDARD.replace(Fasting(hours=6), NoWeekends(), id="clinic", version="2026.1")
    assert clinic.rule_ids == (*STANDARD.rule_ids, "no-weekends")
    assert clinic.rule("fasting") == Fasting(hours=6)
    assert (clinic.id, clinic.version) == ("clinic", "2026.1")
    assert STANDARD.rule("fasting") == Fasting()  # unchanged
    assert STANDARD.replace().rules == STANDARD.rules


def test_without_drops_rules_and_refuses_unknown_ids() -> None:
    lean = STANDARD.without("escort", "fasting")
    assert "escort" not in lean.rule_ids
    assert len(STANDARD.rules) == 6
    with pytest.raises(ProtocolError, match="has no rule 'escrot'"):
        STANDARD.without("escrot")
    with pytest.raises(ProtocolError, match="has no rule"):
        STANDARD.rule("nope")


def test_protocols_flatten_and_refuse_duplicates() -> None:
    combined = Protocol("c", "1", [STANDARD.without("escort"), NoWeekends()])
    assert combined.rule_ids[-1] == "no-weekends"
    assert len(combined.rules) == 6
    with pytest.raises(ProtocolError, match="two rules have the id 'fasting'"):
        Protocol("d", "1", [Fasting(), Fasting(hours=2)])
    with pytest.raises(ProtocolError, match="is not a rule"):
        Protocol("d", "1", [lambda t: []])  # type: ignore[list-item]


def test_custom_rule_runs_beside_the_standard_ones() -> None:
    clinic = STANDARD.replace(NoWeekends())
    # 2026-12-05 and 2026-12-12 are Saturdays.
    report = evaluate(course(series(STANDARD_DATES)), clinic)
    assert [(f.rule, f.severity, f.sessions) for f in report.findings] == [
        ("no-weekends", "warning", ("s3",)),
        ("no-weekends", "warning", ("s6",)),
    ]
    assert report.ok  # a warning does not fail the report
    assert report.warnings == report.findings
    assert report.to_dict()["findings"][0]["severity"] == "warning"


def test_severity_of_a_standard_rule_can_change() -> None:
    soft = STANDARD.replace(SessionSpacing(severity="info"))
    c = course(series(["2026-12-01", "2026-12-02", *STANDARD_DATES[2:]]))
    report = evaluate(c, soft)
    assert report.ok
    assert [f.severity for f in report.findings] == [Severity.INFO]
    assert not evaluate(c).ok


def test_severity_compares_to_plain_strings() -> None:
    assert Severity.ERROR == "error"  # type: ignore[comparison-overlap]  # a StrEnum is its string
    assert Finding("r", "warning", (), "m").severity is Severity.WARNING


def test_to_dict_round_trip_with_user_rules() -> None:
    clinic = STANDARD.replace(Fasting(hours=6.5, severity="warning"), NoWeekends(days=(6,)))
    data = clinic.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain data
    assert data["rules"][3] == {
        "id": "fasting",
        "severity": "warning",
        "parameters": {"hours": 6.5},
    }
    with pytest.raises(ProtocolError, match="unknown rule 'no-weekends'"):
        Protocol.from_dict(data)
    rebuilt = Protocol.from_dict(json.loads(json.dumps(data)), rule_classes=[NoWeekends])
    assert attrs.evolve(rebuilt, rules=rebuilt.rules[:-1]) == attrs.evolve(
        clinic, rules=clinic.rules[:-1]
    )
    assert rebuilt.rule("no-weekends").parameters() == {"days": [6]}


@given(
    st.integers(1, 20),
    st.integers(1, 60),
    st.builds(
        Fasting, hours=st.integers(0, 24) | st.floats(0, 24), severity=st.sampled_from(Severity)
    ),
    st.integers(1, 24),
    st.data(),
)
def test_standard_rules_round_trip_through_plain_data(
    count: int, days: int, c: Rule, months: int, data: st.DataObject
) -> None:
    a = SessionCount(count=count, window_days=days)
    d = BoosterInterval(months=months, min_induction=data.draw(st.integers(0, count)))
    protocol = STANDARD.replace(a, TreatmentWindow(days=days), c, d, version="x")
    assert Protocol.from_dict(json.loads(json.dumps(protocol.to_dict()))) == protocol


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, r"id: is required.*version: is required.*rules: is required"),
        ({"id": "x", "version": "1"}, r"^rules: is required: a list of rules$"),
        ({"id": "x", "version": "1", "rules": [{}]}, r"^rules\[0\]\.id: is required: a rule id$"),
    ],
)
def test_from_dict_malformed(data: dict[str, object], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        Protocol.from_dict(data)


def test_rule_reprs_are_useful() -> None:
    assert repr(Fasting()) == "Fasting(severity='error', hours=4)"
    assert (
        repr(SessionSpacing(min_days=3, severity="warning"))
        == "SessionSpacing(severity='warning', min_days=3)"
    )


def test_statements_render_actual_parameters() -> None:
    assert "at least 6 hours" in Fasting(hours=6).statement
    assert "at least 4 hours" in Fasting().statement
    assert "+ 20 days" in TreatmentWindow(days=21).statement
    assert "ends by Dec 14" in TreatmentWindow().statement
    assert "+ 3 months" in BoosterInterval(months=3).statement


# --- reports --------------------------------------------------------------------------


def messy() -> kaprules.Course:
    sessions = series(["2026-12-01", "2026-12-02", "2026-12-20"])
    sessions.append(session("s4", at("2026-12-22"), escort=None, fast=dt.timedelta(hours=1)))
    return course(sessions)


def test_report_to_dict_shape() -> None:
    data = evaluate(messy(), as_of=dt.date(2026, 12, 25)).to_dict()
    assert list(data) == ["ok", "protocol", "as_of", "kaprules_version", "findings"]
    assert data["ok"] is False
    assert data["protocol"] == {"id": "kap-standard", "version": "1"}
    assert data["as_of"] == "2026-12-25"
    assert data["kaprules_version"] == kaprules.__version__
    first = data["findings"][0]
    assert list(first) == [
        "rule",
        "severity",
        "sessions",
        "message",
        "expected",
        "actual",
        "help",
        "waiver",
        "protocol_version",
    ]
    assert (first["waiver"], first["protocol_version"]) == (None, "1")
    assert first["help"] == {
        "command": f"kaprules explain {first['rule']}",
        "url": f"rules/#{first['rule']}",
    }


def test_findings_order_course_first_then_by_session_then_rule() -> None:
    report = evaluate(messy())
    assert [(f.rule, f.sessions) for f in report.findings] == [
        ("session-count", ()),
        ("session-spacing", ("s1", "s2")),
        ("treatment-window", ("s3",)),
        ("treatment-window", ("s4",)),
        ("fasting", ("s4",)),
        ("escort", ("s4",)),
    ]
    assert report.errors == report.findings
    assert report.rules_found == {
        "session-count",
        "session-spacing",
        "treatment-window",
        "fasting",
        "escort",
    }


def test_evaluate_refuses_what_is_not_a_course() -> None:
    with pytest.raises(kaprules.InputError, match="must be a Course"):
        evaluate({"timezone": "UTC"})  # type: ignore[arg-type]


def test_protocol_evaluate_is_evaluate() -> None:
    # The method is the function: the same findings for a messy course, under the
    # protocol it is called on (not the default), with as_of passed through.
    c = messy()
    v2 = kaprules.STANDARD_V2
    assert v2.evaluate(c).to_dict() == evaluate(c, v2).to_dict()
    assert v2.evaluate(c).to_dict() != evaluate(c).to_dict()  # v2 finds more
    day = dt.date(2026, 12, 2)
    assert STANDARD.evaluate(c, as_of=day).to_dict() == evaluate(c, as_of=day).to_dict()
