"""Rules that describe themselves: declared parameters, roles, generation, sources.

A rule defined in the tests only (`helpers.AtMostInDays`, no edit of src/) gets everything
a built-in rule gets: loading from a protocol file, a generated schema entry, explain,
strategies, scheduling and audit.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import kaprules
from kaprules import (
    SERIES_LENGTH,
    SERIES_WINDOW,
    STANDARD,
    STANDARD_V2,
    BaseRule,
    Bounds,
    Course,
    Finding,
    Protocol,
    ProtocolError,
    Source,
    Timeline,
    parameters_of,
)
from kaprules.rules import BUILTIN_RULES
from kaprules.strategies import compliant_courses, course_shape, violating_courses

from helpers import AtMostInDays

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import write_schemas  # type: ignore[import-not-found,unused-ignore]  # noqa: E402


@attrs.frozen(repr=False)
class Quiet(BaseRule):
    default_id: ClassVar[str] = "quiet"
    title: ClassVar[str] = "Quiet"
    rationale: ClassVar[str] = "Never finds anything."
    source: ClassVar[Source] = Source("Nothing.", "Nowhere")
    names: ClassVar[str] = "None."

    @property
    def statement(self) -> str:
        return "Nothing is required."

    def __call__(self, timeline: Timeline) -> Iterator[Finding]:
        return iter(())


SPACED = STANDARD.replace(
    AtMostInDays(sessions=3, days=6), id="spaced", version="1"
)  # gap 2 meets it too


# --- parameters declared as data ----------------------------------------------------


def test_builtin_parameters_read_back_their_bounds_and_roles() -> None:
    count, window = parameters_of(kaprules.SessionCount)
    assert (count.name, count.default, count.role) == ("count", 6, SERIES_LENGTH)
    assert count.check == Bounds(1, 1000)
    assert window.role == SERIES_WINDOW
    (days,) = parameters_of(kaprules.TreatmentWindow)
    assert days.role == SERIES_WINDOW
    months, minimum = parameters_of(kaprules.BoosterInterval)
    assert minimum.at_most is not None
    assert minimum.at_most.role == SERIES_LENGTH
    assert months.at_most is None
    hours, kinds = parameters_of(kaprules.Fasting)
    assert hours.check == Bounds(0, 8784, whole=False, unit="hours")
    assert isinstance(kinds.check, kaprules.KindSet)
    assert [p.name for p in parameters_of(AtMostInDays)] == ["sessions", "days"]


@pytest.mark.parametrize(
    ("bounds", "value", "ok"),
    [
        (Bounds(1, 1000), 1, True),
        (Bounds(1, 1000), 1000, True),
        (Bounds(1, 1000), 0, False),
        (Bounds(1, 1000), 1001, False),
        (Bounds(1, 1000), 2.0, False),
        (Bounds(1, 1000), True, False),
        (Bounds(1, 1000), "3", False),
        (Bounds(0, 8784, whole=False, unit="hours"), 0, True),
        (Bounds(0, 8784, whole=False, unit="hours"), 8784.0, True),
        (Bounds(0, 8784, whole=False, unit="hours"), 8784.5, False),
        (Bounds(0, 8784, whole=False, unit="hours"), -0.1, False),
    ],
)
def test_bounds_pin_their_edges(bounds: Bounds, value: object, ok: bool) -> None:
    assert (bounds.problem(value) is None) is ok
    schema = jsonschema.Draft202012Validator(bounds.json_schema())
    # The schema and the check agree, but for 2.0, which JSON Schema counts as an integer
    # and kaprules refuses (a protocol file writes whole numbers as such).
    if not isinstance(value, str) and value != 2.0:
        assert schema.is_valid(value) is ok


@given(st.integers(-10, 2000) | st.floats(-10, 9000, allow_nan=False))
def test_a_rule_refuses_exactly_what_its_bounds_refuse(value: float) -> None:
    declared = {p.name: p for p in parameters_of(kaprules.SessionCount)}["count"]
    assert declared.check is not None
    refused = declared.check.problem(value) is not None
    if refused:
        with pytest.raises(ProtocolError) as info:
            kaprules.SessionCount(count=value)  # type: ignore[arg-type]
        assert info.value.problems[0].what == declared.check.problem(value)
    else:
        assert kaprules.SessionCount(count=value).count == value  # type: ignore[arg-type]


def test_every_bad_parameter_of_a_rule_is_named_at_once() -> None:
    data = {
        "id": "c",
        "version": "1",
        "rules": [{"id": "session-count", "parameters": {"count": 0, "window_days": -1}}],
    }
    with pytest.raises(ProtocolError) as info:
        Protocol.from_dict(data)
    paths = [p.path for p in info.value.problems]
    assert ("rules", 0, "parameters", "count") in paths
    assert ("rules", 0, "parameters", "window_days") in paths


# --- the protocol schema, generated -------------------------------------------------


def test_the_shipped_protocol_schema_is_the_generated_one() -> None:
    shipped = (ROOT / "src" / "kaprules" / "protocol.schema.json").read_text("utf-8")
    assert shipped == write_schemas.rendered(), "stale: run python scripts/write_schemas.py"


def test_every_builtin_rule_has_a_schema_entry_from_its_parameters() -> None:
    schema = kaprules.protocol_schema()
    entries = schema["$defs"]["rule"]["allOf"]
    for key, cls in BUILTIN_RULES.items():
        then = next(
            e["then"] for e in entries if e["if"]["properties"].get("rule") == {"const": key}
        )
        properties = then["properties"]["parameters"]["properties"]
        assert list(properties) == [p.name for p in parameters_of(cls)]


def test_a_rule_of_a_test_module_gets_a_schema_entry() -> None:
    schema = kaprules.protocol_schema(rule_classes=[AtMostInDays])
    validator = jsonschema.Draft202012Validator(schema)
    good = {"id": "c", "version": "1", "rules": [{"id": "at-most-in-days"}]}
    bad = {
        "id": "c",
        "version": "1",
        "rules": [{"id": "at-most-in-days", "parameters": {"sessions": 0}}],
    }
    assert validator.is_valid(good)
    assert not validator.is_valid(bad)
    # Without the class, the schema knows nothing of its parameters.
    assert jsonschema.Draft202012Validator(kaprules.protocol_schema()).is_valid(bad)


# --- roles: coherence and update ----------------------------------------------------


def test_roles_keep_shared_quantities_coherent() -> None:
    with pytest.raises(ProtocolError) as info:
        STANDARD.replace(kaprules.TreatmentWindow(days=28))
    assert "session-count.window_days is 14 but treatment-window.days (rules[1]) is 28" in str(
        info.value
    )
    with pytest.raises(ProtocolError) as info:
        STANDARD.replace(kaprules.BoosterInterval(min_induction=7))
    assert "could never follow a complete series; use at most 6" in str(info.value)


def test_update_moves_what_shares_a_role() -> None:
    longer = STANDARD.update("treatment-window", days=21)
    assert longer.quantity(SERIES_WINDOW) == 21
    assert longer.rule("session-count").parameters()["window_days"] == 21
    more = STANDARD.update("session-count", count=8, window_days=20)
    assert more.rule("booster-interval").parameters()["min_induction"] == 8
    assert more.rule("treatment-window").parameters()["days"] == 20
    assert more.series_length == 8


def test_a_series_length_is_found_by_role_whatever_the_rule_id() -> None:
    renamed = STANDARD.without("session-count").replace(
        kaprules.SessionCount(count=6, id="my-count")
    )
    assert renamed.series_length == 6
    assert renamed.quantity(SERIES_WINDOW) == 14


def test_coherence_is_linear_in_rules() -> None:
    # Many escort rules and one mismatched window: one problem, not one per pair.
    rules: list[kaprules.Rule] = [kaprules.SessionCount()] + [
        kaprules.Escort(id=f"escort-{n}") for n in range(2000)
    ]
    rules.append(kaprules.TreatmentWindow(days=20))
    with pytest.raises(ProtocolError) as info:
        Protocol("many", "1", rules)
    assert len(info.value.problems) == 1


# --- sources ------------------------------------------------------------------------


def test_a_derived_rule_does_not_quote_its_sentence_as_if_it_said_so() -> None:
    assert kaprules.cited_source(kaprules.Fasting()).note == ""
    five = kaprules.Fasting(hours=5)
    note = kaprules.cited_source(five).note
    assert "derives from the sentence above with changed parameters" in note
    assert "hours is 5 here, 4 as kaprules reads it" in note
    assert note in kaprules.explain(five)


def test_a_protocol_file_gives_a_rule_its_own_source_and_rationale() -> None:
    text = """
id = "clinic"
version = "1"

[[rules]]
id = "fasting"
parameters = { hours = 5 }
rationale = "Our anaesthetist asks for five hours."

[rules.source]
text = "Patients fast for five hours before an infusion."
document = "Lakeside clinic handbook"
location = "page 4"
"""
    protocol = kaprules.parse_protocol(text)
    rule = protocol.rule("fasting")
    source = kaprules.cited_source(rule)
    assert source == Source(
        "Patients fast for five hours before an infusion.", "Lakeside clinic handbook", "page 4"
    )
    assert kaprules.rationale_of(rule) == "Our anaesthetist asks for five hours."
    page = kaprules.explain(rule)
    assert "Patients fast for five hours" in page
    assert "four hours" not in page
    assert Protocol.from_dict(protocol.to_dict()) == protocol
    assert kaprules.parse_protocol(protocol.to_toml()) == protocol
    assert jsonschema.Draft202012Validator(kaprules.protocol_schema()).is_valid(protocol.to_dict())


@pytest.mark.parametrize(
    ("entry", "path"),
    [
        ({"source": "a string"}, ("rules", 0, "source")),
        ({"source": {}}, ("rules", 0, "source", "text")),
        ({"source": {"text": "x", "page": 3}}, ("rules", 0, "source")),
        ({"source": {"text": "line\nbreak"}}, ("rules", 0, "source", "text")),
        ({"rationale": 5}, ("rules", 0, "rationale")),
        ({"rationale": ""}, ("rules", 0, "rationale")),
    ],
)
def test_bad_sources_are_named(entry: dict[str, Any], path: tuple[Any, ...]) -> None:
    data = {"id": "c", "version": "1", "rules": [{"id": "escort", **entry}]}
    with pytest.raises(ProtocolError) as info:
        Protocol.from_dict(data)
    paths = [p.path for p in info.value.problems]
    assert path in paths, paths


# --- a rule of a test module, everywhere --------------------------------------------


def test_a_test_module_rule_loads_from_a_protocol_file(tmp_path: Path) -> None:
    path = tmp_path / "clinic.toml"
    path.write_text(SPACED.to_toml())
    loaded = kaprules.load_protocol(path, rule_classes=(AtMostInDays,))
    assert loaded == SPACED
    with pytest.raises(ProtocolError) as info:
        Protocol.from_dict(
            {
                "id": "c",
                "version": "1",
                "rules": [{"id": "at-most-in-days", "parameters": {"sessions": 0, "days": 0}}],
            },
            rule_classes=[AtMostInDays],
        )
    assert len(info.value.problems) == 2


def test_a_test_module_rule_is_explained() -> None:
    page = kaprules.explain(AtMostInDays(sessions=2))
    assert "At most 2 sessions in any 7 consecutive local days." in page
    assert "| `sessions` | `2` | a whole number from 1 to 50 |" in page


@settings(max_examples=30)
@given(compliant_courses(protocol=SPACED))
def test_a_test_module_rule_generates_compliant_courses(course: Course) -> None:
    assert kaprules.evaluate(course, SPACED).ok


def test_strategies_name_a_rule_that_cannot_say_how_to_generate() -> None:
    with pytest.raises(InvalidArgument, match="rule quiet \\(Quiet\\) does not say"):
        course_shape(STANDARD.replace(Quiet()))
    with pytest.raises(InvalidArgument, match="cannot target at-most-in-days"):
        violating_courses("at-most-in-days", SPACED)
    assert course_shape(SPACED).gap == 2
    assert course_shape(STANDARD_V2).meetings == 1


def test_a_test_module_rule_is_audited() -> None:
    crowded = kaprules.Course(
        "UTC",
        [
            kaprules.Session(
                dt.datetime(2026, 12, d, 9, tzinfo=dt.UTC),
                last_food=dt.datetime(2026, 12, d, 1, tzinfo=dt.UTC),
                escort="x",
            )
            for d in (1, 3, 5, 7, 9, 11)
        ],
    )
    line = kaprules.dumps(crowded, indent=None)
    tight = STANDARD.replace(AtMostInDays(sessions=3, days=7), id="tight", version="1")
    results = list(kaprules.audit([line], protocol=tight))
    (result,) = results
    # Dec 7, 9 and 11 each end a 7-day stretch with four sessions.
    assert [(f["rule"], f["sessions"]) for f in result.findings] == [
        ("at-most-in-days", [n]) for n in ("4", "5", "6")
    ]


def _all_orders(values: list[int]) -> Iterator[tuple[int, ...]]:
    return itertools.permutations(values)


def test_the_finding_order_of_a_test_module_rule_ignores_input_order() -> None:
    dates = [1, 3, 5, 7, 9, 11]
    reports = set()
    for order in itertools.islice(_all_orders(dates), 24):
        course = kaprules.Course(
            "UTC",
            [
                kaprules.Session(
                    dt.datetime(2026, 12, d, 9, tzinfo=dt.UTC),
                    id=f"s{d}",
                    last_food=dt.datetime(2026, 12, d, 1, tzinfo=dt.UTC),
                    escort="x",
                )
                for d in order
            ],
        )
        reports.add(json.dumps(kaprules.evaluate(course, SPACED).to_dict()["findings"]))
    assert len(reports) == 1


def test_a_test_module_rule_is_honoured_by_scheduling() -> None:
    # The transfer: Tue/Thu/Sat so far, a Mon/Wed/Fri clinic, at most 3 in 7 days.
    tight = STANDARD.replace(AtMostInDays(sessions=3, days=7), id="tight", version="1")
    held = [
        kaprules.Session(
            dt.datetime(2026, 12, d, 9, tzinfo=dt.UTC),
            id=f"s{n}",
            last_food=dt.datetime(2026, 12, d, 1, tzinfo=dt.UTC),
            escort="x",
        )
        for n, d in enumerate((1, 3, 5), start=1)
    ]
    course = kaprules.Course("UTC", held)
    calendar = kaprules.ClinicCalendar(weekdays=("mon", "wed", "fri"))
    today = dt.date(2026, 12, 6)
    proposal = kaprules.plan(course, today, calendar, tight)
    assert [s.start.date().day for s in proposal.sessions] == [9, 11, 14]  # not Dec 7
    assert kaprules.evaluate(proposal.planned_course, tight, as_of=today).ok
    upcoming = kaprules.forecast(course, today, tight, calendar).next
    assert upcoming is not None
    assert upcoming.bookable_from == dt.date(2026, 12, 9)
    dec7 = kaprules.Session(dt.datetime(2026, 12, 7, 9, tzinfo=dt.UTC), id="p")
    report = kaprules.check_booking(course, dec7, today, tight, calendar)
    assert [f.rule for f in report.findings] == ["at-most-in-days"]


def test_a_new_builtin_rule_is_one_class_and_one_registration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The design page's promise: registered as kaprules registers its own rules, a class
    # is known to protocol files and the schema, and scheduling never assumes that the
    # closed forms cover it.
    monkeypatch.setitem(BUILTIN_RULES, AtMostInDays.default_id, AtMostInDays)
    data = {"id": "c", "version": "1", "rules": [{"id": "at-most-in-days"}]}
    assert Protocol.from_dict(data).rules == (AtMostInDays(),)
    entries = kaprules.protocol_schema()["$defs"]["rule"]["allOf"]
    assert any(e["if"]["properties"].get("id") == {"const": "at-most-in-days"} for e in entries)
    tight = STANDARD.replace(AtMostInDays(sessions=3, days=7), id="tight", version="1")
    held = [
        kaprules.Session(
            dt.datetime(2026, 12, d, 9, tzinfo=dt.UTC),
            last_food=dt.datetime(2026, 12, d, 1, tzinfo=dt.UTC),
            escort="x",
        )
        for d in (1, 3, 5)
    ]
    upcoming = kaprules.forecast(kaprules.Course("UTC", held), dt.date(2026, 12, 6), tight).next
    assert upcoming is not None
    assert upcoming.bookable_from == dt.date(2026, 12, 8)  # Dec 7 would be 4 in 7 days
