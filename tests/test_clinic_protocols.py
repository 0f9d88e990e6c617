"""Protocols a clinic can own: record data, the v2 rules, derivation, files, the extension point."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import tomllib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import attrs
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import (
    STANDARD,
    STANDARD_V2,
    BaseRule,
    BoosterInterval,
    Course,
    Escort,
    Fasting,
    Finding,
    InputError,
    Integration,
    IntegrationFollowup,
    Protocol,
    ProtocolError,
    Session,
    SessionCount,
    SessionSpacing,
    Severity,
    Source,
    Therapist,
    Timeline,
    TreatmentWindow,
    dumps,
    evaluate,
    kap_protocol,
    parse_course,
)
from kaprules.cli import main
from kaprules.strategies import compliant_courses, courses, violating_courses

from conftest import EXAMPLES
from helpers import STANDARD_DATES, at, course, series, session

PROTOCOLS = EXAMPLES / "protocols"
# Checked once, not once per example: jsonschema.validate checks the schema itself each call.
PROTOCOL_SCHEMA = jsonschema.Draft202012Validator(kaprules.protocol_schema())
LAKESIDE = PROTOCOLS / "lakeside-kap.toml"


def v2_course(
    dates: tuple[str, ...] = STANDARD_DATES, meetings: tuple[str, ...] = ("2026-12-20",)
) -> Course:
    sessions = [attrs.evolve(s, therapist="T") for s in series(dates)]
    return Course(
        "America/Denver",
        sessions,
        integrations=[Integration(at(d, "15:00"), f"i{n}") for n, d in enumerate(meetings)],
    )


# --- data on records ------------------------------------------------------------------


def test_sessions_and_courses_carry_therapist_integrations_and_extra() -> None:
    s = Session(at("2026-12-01"), therapist="Dr. Secret", extra={"room": "B", "dose": [1, 2]})
    assert s.therapist == "Dr. Secret"
    assert s.extra["dose"] == (1, 2)  # arrays are frozen as tuples
    with pytest.raises(TypeError):
        s.extra["room"] = "C"  # type: ignore[index]
    assert "Secret" not in repr(s)
    assert "room" not in repr(s)
    c = Course("UTC", [s], integrations=[Integration(at("2026-12-20"), "i1", therapist="X")])
    assert c.integrations[0].id == "i1"
    assert "therapist='<redacted>'" in repr(c.integrations[0])


def test_pretty_printers_show_the_redacted_repr() -> None:
    # hypothesis prints failing examples with its pretty-printer, field by field otherwise.
    from hypothesis.vendor.pretty import pretty

    s = Session(at("2026-12-01"), escort="Jordan", therapist="Dr. Secret", extra={"n": "Sam"})
    c = Course(
        "UTC", [s], "P-42", integrations=[Integration(at("2026-12-20"), therapist="Dr. Secret")]
    )
    text = pretty(c)
    assert text == repr(c)
    for secret in ("Jordan", "Secret", "Sam", "P-42"):
        assert secret not in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"x": math.nan}, r"extra\.<key 0>: must be a finite number"),
        ({"x": object()}, r"extra\.<key 0>: must be JSON data"),
        ({1: "x"}, r"extra: key 0 must be a string, got int"),
        ("not a mapping", r"extra: must be a mapping, got str"),
    ],
)
def test_extra_must_be_json_data(extra: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Session(at("2026-12-01"), extra=extra)


def test_a_read_only_mapping_is_checked_too() -> None:
    # A MappingProxyType is what frozen extra data looks like; one made by hand is not
    # trusted for it.
    with pytest.raises(InputError, match=r"extra\.<key 0>: must be a finite number"):
        Session(at("2026-12-01"), extra=types.MappingProxyType({"x": math.inf}))


def test_loader_lists_extra_problems_beside_the_others() -> None:
    doc = {
        "timezone": "UTC",
        "sessions": [{"start": "nope", "extra": {"a": [1, {"b": None}]}}],
        "integrations": [{"id": None, "start": "2026-12-20T15:00:00Z"}],
        "extra": {"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
    }
    with pytest.raises(InputError) as info:
        parse_course(json.dumps(doc))
    assert [str(p) for p in info.value.problems] == [
        "sessions[0].start: 'nope' is not an ISO 8601 date-time with an offset; write it like "
        "'2026-12-01T09:00:00-07:00' or '2026-12-01T16:00:00Z'",
        "integrations[0].id: must be a string, got null; leave it out",
        "extra.<key 0>" + "[0]" * 32 + ": is nested more than 32 deep",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"timezone": "UTC", "timezone": "UTC", "sessions": []}', "duplicate key 'timezone'"),
        (
            '{"timezone": "UTC", "sessions": [], "extra": {"Jordan S": 1, "Jordan S": 2}}',
            "a JSON object repeats a key; give each field once",
        ),
    ],
)
def test_a_repeated_key_is_named_only_when_it_is_a_field(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        parse_course(text)
    assert "Jordan" not in str(info.value)


def test_integration_times_are_checked_like_session_times() -> None:
    with pytest.raises(InputError, match=r"integration 'i1'\.start: naive datetime"):
        Integration(dt.datetime(2026, 12, 1, 9), "i1")
    with pytest.raises(InputError, match=r"integrations\[1\] \(id 'a'\)\.id: duplicate"):
        Course("UTC", [], integrations=[Integration(at("2026-12-01"), "a")] * 2)


def test_unordered_sessions_are_refused() -> None:
    with pytest.raises(InputError, match="unordered set"):
        Course("UTC", {Session(at("2026-12-01"))})


def test_loader_reads_the_new_fields_and_refuses_others() -> None:
    text = json.dumps(
        {
            "timezone": "America/Denver",
            "extra": {"clinic": {"site": 2}},
            "sessions": [
                {"start": "2026-12-01T09:00:00-07:00", "therapist": "T", "extra": {"a": [1]}}
            ],
            "integrations": [{"id": "i1", "start": "2026-12-20T15:00:00-07:00"}],
        }
    )
    c = parse_course(text)
    assert c.sessions[0].therapist == "T"
    assert c.extra["clinic"]["site"] == 2
    assert c.integrations[0].id == "i1"
    with pytest.raises(InputError) as info:
        parse_course(
            json.dumps(
                {
                    "timezone": "UTC",
                    "sessions": [{"start": "2026-12-01T09:00:00Z", "therapst": "x"}],
                    "integrations": [{"start": "nope", "Jordan Secret": 1}],
                }
            )
        )
    text = str(info.value)
    assert "sessions[0].therapst: unknown field; did you mean 'therapist'?" in text
    assert "integrations[0].start: 'nope' is not an ISO 8601 date-time" in text
    assert "integrations[0]: unknown field (key 2 of the object)" in text
    assert "Secret" not in text


json_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=50)  # each example is large: a course with random extra data
@given(
    compliant_courses(protocol=STANDARD_V2) | courses(max_sessions=6),
    st.dictionaries(st.text(max_size=6), json_data, max_size=3),
    st.data(),
)
def test_dumps_and_parse_course_round_trip(course: Course, extra: Any, data: st.DataObject) -> None:
    sessions = [
        attrs.evolve(
            s, extra=data.draw(st.none() | st.dictionaries(st.text(max_size=4), json_data))
        )
        for s in course.sessions
    ]
    course = attrs.evolve(course, sessions=sessions, extra=extra)
    again = parse_course(dumps(course))
    assert again == course
    assert evaluate(again, STANDARD_V2).to_dict() == evaluate(course, STANDARD_V2).to_dict()


# --- the two new rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("therapist", "as_of", "found"),
    [
        ("T", None, False),
        (None, None, True),
        (" \t", None, True),
        (None, dt.date(2026, 12, 9), True),  # held by then
        (None, dt.date(2026, 12, 8), False),  # planned
    ],
)
def test_therapist_present_table(therapist: str | None, as_of: dt.date | None, found: bool) -> None:
    sessions = [attrs.evolve(s, therapist="T") for s in series(STANDARD_DATES[:4])]
    sessions.append(session("s5", at("2026-12-09")))
    sessions[-1] = attrs.evolve(sessions[-1], therapist=therapist)
    report = evaluate(course(sessions), Protocol("t", "1", [Therapist()]), as_of=as_of)
    assert [f.sessions for f in report.findings] == ([("s5",)] if found else [])


def test_therapist_and_escort_scope_by_kind() -> None:
    booster = session("b1", at("2027-06-14"), kind="booster", escort=None)
    inductions = [attrs.evolve(s, therapist="T") for s in series(STANDARD_DATES)]
    sessions = [*inductions, attrs.evolve(booster, therapist=None)]
    c = course(sessions)
    scoped = Protocol(
        "scoped",
        "1",
        [
            Escort(kinds={"induction"}),
            Escort(kinds={"booster"}, severity="warning", id="escort-booster"),
            Therapist(kinds=["induction"]),
        ],
    )
    report = evaluate(c, scoped)
    assert [(f.rule, f.severity, f.sessions) for f in report.findings] == [
        ("escort-booster", "warning", ("b1",))
    ]
    assert report.ok
    assert str(report.findings[0].help) == "kaprules explain escort; rules/#escort"
    with pytest.raises(ProtocolError, match=r"Escort\.kinds: must be a non-empty list"):
        Escort(kinds=["boost"])
    with pytest.raises(ProtocolError, match=r"Escort\.kinds"):
        Escort(kinds=[])


@pytest.mark.parametrize(
    ("meetings", "as_of", "found"),
    [
        (("2026-12-26",), None, False),  # last induction Dec 12 + 14 days
        (("2026-12-27",), None, True),
        (("2026-12-12",), None, True),  # the same day as the last session does not count
        (("2026-12-13",), None, False),
        ((), dt.date(2026, 12, 26), False),  # still time
        ((), dt.date(2026, 12, 27), True),
        ((), None, True),
    ],
)
def test_integration_followup_table(
    meetings: tuple[str, ...], as_of: dt.date | None, found: bool
) -> None:
    report = evaluate(v2_course(meetings=meetings), STANDARD_V2, as_of=as_of)
    expected = [("integration-followup", ("s6",))] if found else []
    assert [(f.rule, f.sessions) for f in report.findings] == expected


def test_integration_followup_waits_for_a_complete_series() -> None:
    short = v2_course(STANDARD_DATES[:5], meetings=())
    assert evaluate(short, STANDARD_V2).rules_found == {"session-count"}
    alone = Protocol("alone", "1", [IntegrationFollowup(within_days=3, min_meetings=2)])
    report = evaluate(v2_course(STANDARD_DATES[:2], ("2026-12-04", "2026-12-06")), alone)
    assert report.findings == ()  # Dec 6 is 3 days after the last session, Dec 3
    report = evaluate(v2_course(STANDARD_DATES[:2], ("2026-12-04", "2026-12-07")), alone)
    assert [(f.sessions, f.actual) for f in report.findings] == [(("s2",), 1)]


def test_founding_document_gives_no_integration_days() -> None:
    rule = IntegrationFollowup()
    assert "gives no number of days" in rule.rationale
    assert "14" in rule.statement


# --- built-in protocols ---------------------------------------------------------------


def test_standard_is_still_v1_and_v2_adds_two_rules() -> None:
    assert (STANDARD.id, STANDARD.version, len(STANDARD.rules)) == ("kap-standard", "1", 6)
    assert STANDARD.to_dict()["rules"][3] == {
        "id": "fasting",
        "severity": "error",
        "parameters": {"hours": 4},
    }
    assert STANDARD_V2.rules[:6] == STANDARD.rules
    assert STANDARD_V2.rule_ids[6:] == ("therapist-present", "integration-followup")
    assert kaprules.get_protocol("kap-standard", "2") is STANDARD_V2
    assert kaprules.get_protocol("kap-standard@1") is STANDARD
    assert kaprules.get_protocol("kap-standard") is STANDARD_V2
    with pytest.raises(ProtocolError, match="did you mean 'kap-standard'"):
        kaprules.get_protocol("kap-standrd", "1")
    with pytest.raises(ProtocolError, match="has no version '3'"):
        kaprules.get_protocol("kap-standard", "3")


def test_v1_reports_keep_their_shape() -> None:
    data = evaluate(kaprules.load_course(EXAMPLES / "violations.json")).to_dict()
    assert data["protocol"] == {"id": "kap-standard", "version": "1"}
    assert all(
        f["help"] == {"command": f"kaprules explain {f['rule']}", "url": f"rules/#{f['rule']}"}
        for f in data["findings"]
    )


# --- coherent derivation --------------------------------------------------------------


def test_update_keeps_what_it_does_not_name() -> None:
    p = STANDARD.update("session-spacing", min_days=3).update("session-spacing", severity="warning")
    assert p.rule("session-spacing") == SessionSpacing(min_days=3, severity="warning")
    assert STANDARD.rule("session-spacing") == SessionSpacing()


def test_update_moves_coupled_parameters_together() -> None:
    p = STANDARD.update("treatment-window", days=28).update("session-count", count=8)
    assert p.rule("session-count") == SessionCount(count=8, window_days=28)
    assert p.rule("treatment-window") == TreatmentWindow(days=28)
    assert p.rule("booster-interval") == BoosterInterval(min_induction=8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: STANDARD.update("fastin", hours=6), "no rule 'fastin'; did you mean 'fasting'"),
        (
            lambda: STANDARD.update("fasting", hour=6),
            r"fasting\.hour: unknown parameter; did you mean 'hours'",
        ),
        (
            lambda: STANDARD.update("fasting", hours=-1),
            r"fasting\.hours: must be a number of hours",
        ),
    ],
)
def test_update_errors_say_how_to_fix(call: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        call()


def test_contradicting_parameters_are_refused_naming_both_rules() -> None:
    with pytest.raises(ProtocolError) as info:
        STANDARD.replace(TreatmentWindow(days=28))
    assert "session-count.window_days is 14 but treatment-window.days (rules[1]) is 28" in str(
        info.value
    )
    with pytest.raises(
        ProtocolError, match=r"booster-interval\.min_induction is 7 but session-count\.count"
    ):
        STANDARD.replace(BoosterInterval(min_induction=7))


def test_kap_protocol_is_coherent() -> None:
    p = kap_protocol(
        "clinic", "1", count=8, window_days=28, min_days=3, fasting_hours=6, booster_months=3
    )
    assert p.rule("booster-interval") == BoosterInterval(months=3, min_induction=8)
    assert p.rule("session-count") == SessionCount(count=8, window_days=28)
    assert kap_protocol("x", "1").rules == STANDARD.rules
    with pytest.raises(ProtocolError, match=r"SessionCount\.count.*SessionSpacing\.min_days"):
        kap_protocol("x", "1", count=0, min_days=0)


def test_derived_protocols_never_report_the_builtin_identity() -> None:
    c = kaprules.load_course(EXAMPLES / "compliant.json")
    derived = STANDARD.update("fasting", hours=5)
    report = evaluate(c, derived).to_dict()
    assert report["protocol"]["id"] == "kap-standard-derived"
    assert report["protocol"]["version"].startswith("1+")
    assert report["protocol"]["derived_from"] == {"id": "kap-standard", "version": "1"}
    assert derived.without("escort").derived_from == ("kap-standard", "1")
    assert STANDARD.update("fasting", hours=5) == derived  # a derivation is reproducible
    assert STANDARD.update("fasting", hours=6).version != derived.version
    named = derived.replace(id="clinic", version="2026.1")
    assert (named.id, named.version, named.derived_from) == ("clinic", "2026.1", None)
    assert STANDARD.update("fasting", hours=4) is STANDARD  # no change, no new identity
    with pytest.raises(ProtocolError, match="is a built-in protocol with other rules"):
        Protocol("kap-standard", "1", STANDARD.rules[:5])


# --- the extension point --------------------------------------------------------------


@attrs.frozen
class Weekdays(BaseRule):
    """A rule of a clinic's own, on the public base class."""

    default_id: ClassVar[str] = "weekdays"
    title: ClassVar[str] = "Sessions on weekdays"
    rationale: ClassVar[str] = "The clinic is closed at weekends."
    source: ClassVar[Source] = Source("Closed Saturday and Sunday.", "Handbook", "p. 2")
    names: ClassVar[str] = "The session."
    help_url: ClassVar[str | None] = "https://clinic.example/rules#weekdays"

    days: tuple[int, ...] = attrs.field(default=(5, 6), converter=tuple)

    @property
    def statement(self) -> str:
        return f"No session on weekday {self.days}."

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        for t in timeline.sessions:
            if t.date.weekday() in self.days:
                yield self._finding((t,), f"{t.label} is at a weekend")


def test_a_base_rule_subclass_is_a_full_rule() -> None:
    clinic = STANDARD.replace(Weekdays(), id="clinic", version="1")
    report = evaluate(course(series(STANDARD_DATES)), clinic)
    assert {f.help for f in report.findings} == {
        kaprules.Help("https://clinic.example/rules#weekdays")
    }
    assert "| `days` | `[5, 6]` |" in kaprules.explain(clinic.rule("weekdays"))
    again = Protocol.from_dict(json.loads(json.dumps(clinic.to_dict())), rule_classes=[Weekdays])
    assert again == clinic


class Partial:
    id = "partial"

    def __call__(self, timeline: Timeline) -> list[Finding]:
        return []


def test_protocol_checks_the_whole_rule_interface() -> None:
    with pytest.raises(ProtocolError) as info:
        Protocol("p", "1", [Partial()])  # type: ignore[list-item]
    assert "lacks severity, title, statement, rationale, source, names, parameters" in str(
        info.value
    )


# --- protocol files -------------------------------------------------------------------


@st.composite
def protocols(draw: st.DrawFn) -> Protocol:
    count = draw(st.integers(1, 12))
    min_days = draw(st.integers(1, 5))
    base = kap_protocol(
        draw(st.sampled_from(["clinic", "lakeside-kap"])),
        draw(st.sampled_from(["1", "2026.1"])),
        count=count,
        # Wide enough for a course to meet it: strategies need one.
        window_days=(count - 1) * min_days + 1 + draw(st.integers(0, 30)),
        min_days=min_days,
        fasting_hours=draw(st.integers(0, 12) | st.floats(0, 12)),
        booster_months=draw(st.integers(1, 12)),
        title=draw(
            st.none()
            | st.text(st.characters(min_codepoint=32), min_size=1, max_size=20).filter(
                lambda t: bool(t.strip()) and t.isprintable()
            )
        ),
        status=draw(st.none() | st.sampled_from(["draft", "active", "retired"])),
        effective=draw(st.none() | st.dates(dt.date(2000, 1, 1), dt.date(2100, 1, 1))),
    )
    extra = draw(
        st.lists(
            st.sampled_from(
                [
                    Therapist(),
                    IntegrationFollowup(within_days=7, min_meetings=2),
                    Escort(kinds={"booster"}, severity="warning", id="escort-booster"),
                    Fasting(hours=2, kinds={"booster"}, id="fasting-booster", severity="info"),
                ]
            ),
            unique_by=lambda r: r.id,
        )
    )
    severities = draw(st.lists(st.sampled_from(Severity), min_size=6, max_size=6))
    rules = [
        attrs.evolve(cast(BaseRule, r), severity=s)
        for r, s in zip(base.rules, severities, strict=True)
    ]
    return attrs.evolve(base, rules=(*rules, *extra))


@given(protocols())
def test_protocol_data_round_trips_to_an_equal_protocol(protocol: Protocol) -> None:
    data = protocol.to_dict()
    PROTOCOL_SCHEMA.validate(data)
    assert Protocol.from_dict(json.loads(json.dumps(data))) == protocol
    assert kaprules.parse_protocol(protocol.to_toml()) == protocol
    assert kaprules.parse_protocol(json.dumps(data), format="json") == protocol


@pytest.mark.parametrize("path", sorted(PROTOCOLS.iterdir()), ids=lambda p: p.name)
def test_shipped_protocol_files_load_and_match_the_schema(path: Path) -> None:
    protocol = kaprules.load_protocol(path)
    data = (
        tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    )
    data = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in data.items()}
    PROTOCOL_SCHEMA.validate(data)
    assert protocol.to_dict()["id"] == data["id"]


def test_the_v2_file_is_v2() -> None:
    assert kaprules.load_protocol(PROTOCOLS / "kap-standard-2.toml") == STANDARD_V2


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            'id = "c"\nversion = 1\n[[rules]]\nid = "fasting"\n[rules.parameters]\nhour = 3\n'
            '[[rules]]\nid = "escrt"\n[[rules]]\nid = "spacing"\nseverity = "fatal"\n',
            [
                "rules[0].parameters.hour: unknown parameter; did you mean 'hours'?",
                "rules[1].id: unknown rule 'escrt'; did you mean 'escort'?",
                "rules[2].id: unknown rule 'spacing'; did you mean 'session-spacing'?",
                "rules[2].severity: must be one of 'error', 'warning', 'info'",
            ],
        ),
        (
            'id = "c"\nversion = "1"\nefective = 2027-01-01\nrules = []\n"Jordan Secret" = 1\n',
            [
                "efective: unknown field; did you mean 'effective'?",
                "unknown field (key 5 of the object); allowed: $schema, id, version, title, "
                "status, effective, citation, derived_from, reasons, phases, rules",
            ],
        ),
        (
            'id = "c"\nversion = "1"\nrules = [{ id = "fasting", parameters = { hours = -1 } }]\n',
            ["rules[0].parameters.hours: must be a number of hours from 0 to 8784, got -1"],
        ),
        ("id = ", None),
    ],
)
def test_protocol_file_errors_name_the_path(text: str, problems: list[str] | None) -> None:
    with pytest.raises(ProtocolError) as info:
        kaprules.parse_protocol(text)
    if problems is None:
        assert str(info.value).startswith("not valid TOML")
    else:
        assert [str(p) for p in info.value.problems] == problems


# --- command line ---------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_with_kap_standard_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "check",
        str(EXAMPLES / "v2-compliant.json"),
        "--protocol",
        "kap-standard@2",
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out)["protocol"] == {"id": "kap-standard", "version": "2"}
    code, out, _ = run(
        capsys,
        "check",
        str(EXAMPLES / "compliant.json"),
        "--protocol",
        "kap-standard@2",
        "--format",
        "json",
    )
    assert code == 1
    assert {f["rule"] for f in json.loads(out)["findings"]} == {
        "therapist-present",
        "integration-followup",
    }
    assert "Jordan" not in out


def test_check_with_a_protocol_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "check", str(EXAMPLES / "v2-compliant.json"), "--protocol", str(LAKESIDE)
    )
    assert code == 1  # eight sessions, three days apart: this course has six, two apart
    assert "protocol lakeside-kap v2026.1" in out
    assert "session-count" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("check", "examples/compliant.json", "--protocol", "kap-standard@9"),
        ("check", "examples/compliant.json", "--protocol", "missing.toml"),
        ("rules", "--protocol", "nope@1"),
        ("explain", "escrt", "--protocol", "kap-standard@2"),
        ("protocol", "validate", "examples/compliant.json"),
    ],
)
def test_protocol_problems_exit_2_one_line_each(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    first, *rest = err.splitlines()
    assert first.startswith("kaprules: ")
    # Several problems: a summary line, then one indented line for each.
    if rest:
        assert first.endswith("problems):")
        assert all(line.startswith("  ") for line in rest)


@pytest.mark.parametrize("command", [("protocol", "show", "kap-standard@2"), ("rules",)])
def test_a_closed_stdout_is_exit_2_with_one_line(command: tuple[str, ...]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kaprules", *command],
        stdout=subprocess.DEVNULL,
        check=False,
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),
    )
    assert proc.returncode == 2
    assert proc.stderr == "kaprules: error: standard output is closed; nothing can be written\n"


def test_protocol_validate_and_show(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "protocol", "validate", str(LAKESIDE))
    assert code == 0
    assert out.startswith("valid: lakeside-kap version 2026.1, effective 2027-01-01, 9 rules")
    code, out, _ = run(capsys, "protocol", "show", "kap-standard@2")
    assert code == 0
    assert kaprules.parse_protocol(out) == STANDARD_V2
    code, out, _ = run(capsys, "protocol", "show", str(LAKESIDE), "--format", "json")
    assert Protocol.from_dict(json.loads(out)) == kaprules.load_protocol(LAKESIDE)
    code, out, _ = run(capsys, "rules", "--protocol", "kap-standard@2")
    assert "therapist-present (error)" in out
    code, out, _ = run(capsys, "explain", "escort-booster", "--protocol", str(LAKESIDE))
    assert code == 0
    assert out.startswith("escort-booster: Escort home\n")


# --- strategies for any protocol ------------------------------------------------------


@settings(max_examples=40)
@given(st.data())
def test_generated_courses_meet_any_builtin_protocol(data: st.DataObject) -> None:
    protocol = data.draw(
        st.sampled_from([STANDARD_V2, kaprules.load_protocol(LAKESIDE)]) | protocols()
    )
    c = data.draw(compliant_courses(protocol=protocol))
    report = evaluate(c, protocol)
    assert report.findings == (), [f.message for f in report.findings]


@pytest.mark.parametrize(
    ("protocol", "rule_id"),
    [
        (STANDARD_V2, "fasting"),
        (STANDARD_V2, "therapist-present"),
        (STANDARD_V2, "integration-followup"),
        (kaprules.load_protocol(LAKESIDE), "escort"),
        (kaprules.load_protocol(LAKESIDE), "escort-booster"),
        (STANDARD, "session-spacing"),
        (STANDARD_V2, "session-spacing"),
        (kaprules.load_protocol(LAKESIDE), "session-spacing"),
        (STANDARD_V2, "booster-interval"),
        (kaprules.load_protocol(LAKESIDE), "booster-interval"),
    ],
    ids=lambda x: getattr(x, "id", x),
)
def test_each_targeted_mutation_trips_exactly_its_rule(protocol: Protocol, rule_id: str) -> None:
    @settings(max_examples=30)
    @given(violating_courses(rule_id, protocol))
    def check(c: Course) -> None:
        assert evaluate(c, protocol).rules_found == {rule_id}

    check()
