"""Protocol files and rules that misbehave: every entry a rule or a problem, never a traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import attrs
import pytest

import kaprules
from kaprules import STANDARD, BaseRule, Protocol, ProtocolError, Source, Timeline


@pytest.mark.parametrize("value", [5, "", True, [], {}, None, 1.5])
def test_a_rule_entry_whose_class_is_not_a_name_is_a_problem(value: object) -> None:
    data = {"id": "c", "version": "1", "rules": [{"id": "escort", "rule": value}]}
    with pytest.raises(ProtocolError) as info:
        Protocol.from_dict(data)
    assert [p.path for p in info.value.problems] == [("rules", 0, "rule")]


def test_deeply_nested_parameters_are_a_problem_not_a_recursion_error() -> None:
    nested: list[Any] = []
    inner = nested
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    data = {"id": "c", "version": "1", "rules": [{"id": "escort", "parameters": {"kinds": nested}}]}
    with pytest.raises(ProtocolError) as info:
        Protocol.from_dict(data)
    assert info.value.problems[0].path == ("rules", 0, "parameters", "kinds")
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    "call",
    [
        lambda: kaprules.parse_protocol(5),  # type: ignore[arg-type]
        lambda: kaprules.parse_protocol(None),  # type: ignore[arg-type]
        lambda: STANDARD.replace(None),  # type: ignore[arg-type]
        lambda: STANDARD.replace(5, kaprules.Escort()),  # type: ignore[arg-type]
    ],
)
def test_wrong_arguments_are_protocol_errors(call: Callable[[], object]) -> None:
    with pytest.raises(ProtocolError):
        call()


def test_parse_calendar_of_a_number_is_an_input_error() -> None:
    with pytest.raises(kaprules.InputError, match="must be text"):
        kaprules.parse_calendar(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("toml", "reason"),
    [
        ("[JaneDoeSSN123456789]\n[JaneDoeSSN123456789]\n", "a table or key is declared twice"),
        ("x = {JaneDoeSSN123456789 = 1, JaneDoeSSN123456789 = 2}\n", "repeats a key"),
        ("JaneDoeSSN123456789 = 1\nJaneDoeSSN123456789 = 2\n", "Cannot overwrite a value"),
    ],
)
def test_toml_messages_never_echo_key_names(toml: str, reason: str) -> None:
    text = 'id = "c"\nversion = "1"\nrules = []\n' + toml
    with pytest.raises(ProtocolError) as info:
        kaprules.parse_protocol(text)
    message = str(info.value)
    assert reason in message
    assert "JaneDoe" not in message
    assert "line" in message


def test_every_problem_of_a_protocol_file_in_one_run() -> None:
    data = {
        "id": "c",
        "version": "1",
        "rules": [
            {"id": "session-count"},
            {"id": "fastin"},
            {"id": "treatment-window", "parameters": {"days": 20}},
        ],
    }
    with pytest.raises(ProtocolError) as info:
        Protocol.from_dict(data)
    codes = {p.code for p in info.value.problems}
    assert {"unknown-rule", "coherence"} <= codes
    assert any("(rules[2])" in p.what for p in info.value.problems)


@attrs.frozen(repr=False)
class Misbehaving(BaseRule):
    default_id: ClassVar[str] = "misbehaving"
    title: ClassVar[str] = "A rule that misbehaves"
    rationale: ClassVar[str] = "For tests."
    source: ClassVar[Source] = Source("Nothing.", "Nowhere")
    names: ClassVar[str] = "None."
    how: str = "none"

    @property
    def statement(self) -> str:
        return "Nothing."

    def __call__(self, timeline: Timeline) -> Iterator[Any]:
        if self.how == "none":
            return None  # type: ignore[return-value]
        if self.how == "string":
            return iter(["a finding, as text"])
        return iter([1 / 0])


@pytest.mark.parametrize(
    ("how", "why"),
    [("none", "TypeError"), ("string", "yielded a str"), ("raises", "ZeroDivisionError")],
)
def test_a_misbehaving_rule_is_named_with_the_course(how: str, why: str) -> None:
    course = kaprules.load_course("examples/compliant.json")
    course = attrs.evolve(course, patient="Jane Doe", id="c-0012")
    protocol = STANDARD.replace(Misbehaving(how=how))
    with pytest.raises(ProtocolError) as info:
        kaprules.evaluate(course, protocol)
    message = str(info.value)
    assert "rule 'misbehaving' (Misbehaving) failed on course c-0012 of 7 sessions" in message
    assert why in message
    assert "Jane" not in message


def test_a_bare_protocol_id_suggests_its_versions() -> None:
    with pytest.raises(ProtocolError, match="use kap-standard@1 or kap-standard@2"):
        kaprules.resolve_protocol("kap-standard")
    with pytest.raises(ProtocolError, match="did you mean 'kap-standard@"):
        kaprules.resolve_protocol("kap-standar")
