"""Fuzzing: arbitrary documents and bytes through the loader and the command line.

The promises: the API raises only `InputError` on bad input, and `evaluate` never raises on
what it accepts; the command exits 0, 1 or 2, says every failure in lines that start with
``kaprules:`` (problems indented under it), never prints a traceback, writes either nothing
or one whole JSON document to stdout with ``--format json``, and never shows a secret
planted in an escort, therapist or patient value, in a key name or in a repeated key.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kaprules import InputError, evaluate, forecast, parse_course, plan
from kaprules.cli import main

from conftest import SLOW

SECRET = "Qz7 Jordan Secret"
FIELDS = ("id", "kind", "start", "last_food", "escort", "therapist", "extra")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "2026-12-01T09:00:00Z",
            "2026-12-01T09:00:00+00:99",
            "2026-12-03T09:00:00-07:00",
            "2026-12-01T09:00:00",
            "9999-12-31T23:59:59+14:00",
            "induction",
            "booster",
            "s\ud800",
            "\x1b]0;x\x07",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def sessions(draw: st.DrawFn) -> dict[str, Any]:
    session: dict[str, Any] = {}
    # Mostly few random fields, so that a fair share of documents is accepted and evaluated.
    if draw(st.booleans()):
        for field in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=2)):
            session[field] = draw(json_values)
    if draw(st.integers(0, 3)):
        session["start"] = draw(
            st.sampled_from(["2026-12-01T09:00:00Z", "2026-12-05T09:00:00-07:00"])
        )
    if draw(st.booleans()):
        session[draw(st.sampled_from(["escort", "therapist"]))] = SECRET
    if draw(st.integers(0, 7)) == 7:
        session[SECRET] = draw(json_values)  # a key named after the patient
    return session


@st.composite
def documents(draw: st.DrawFn) -> str:
    doc: dict[str, Any] = {
        "timezone": draw(
            st.sampled_from(["UTC", "America/Denver", "Europe/London", "UTC", "Mars/Base", 7])
        ),
        "sessions": draw(st.lists(sessions(), max_size=4)),
    }
    if draw(st.booleans()):
        doc["patient"] = SECRET
    if draw(st.booleans()):
        doc["extra"] = {SECRET: draw(json_values)}
    if draw(st.integers(0, 3)) == 3:
        key = draw(st.sampled_from(["integrations", "x", "$schema"]))
        doc[key] = draw(json_values)
    text = json.dumps(doc)
    if draw(st.integers(0, 3)) == 3:
        # A repeated key, named after a person, in the first object of the document.
        text = text.replace("{", f'{{"{SECRET}": 1, "{SECRET}": 2, ', 1)
    return text


def check_accepts_or_input_error(text: str | bytes) -> None:
    try:
        course = parse_course(text)
    except InputError as exc:
        message = str(exc)
    else:
        message = ""
    assert SECRET not in message
    if message:
        return
    report = evaluate(course, as_of=None)
    assert SECRET not in json.dumps(report.to_dict()) + repr(course) + repr(report)


# Each document is large to draw: 100 examples keep the suite inside its minute.
FUZZ = settings(max_examples=100, suppress_health_check=SLOW)


@FUZZ
@given(documents())
def test_documents_give_a_course_or_an_input_error(text: str) -> None:
    check_accepts_or_input_error(text)


@given(st.binary(max_size=300))
def test_bytes_give_a_course_or_an_input_error(data: bytes) -> None:
    check_accepts_or_input_error(data)


@given(st.text(max_size=200))
def test_text_gives_a_course_or_an_input_error(text: str) -> None:
    check_accepts_or_input_error(text)


ARGUMENTS = [
    ("check", "-"),
    ("check", "-", "--format", "json"),
    ("check", "-", "--as-of", "2026-12-04"),
    ("next", "-", "--as-of", "2026-12-04", "--format", "json"),
    ("plan", "-", "--as-of", "2026-12-04", "--format", "json"),
    ("plan", "-", "--as-of", "2026-12-04"),
]


def check_cli_run(code: int, out: str, err: str, arguments: tuple[str, ...]) -> None:
    assert code in (0, 1, 2)
    assert "Traceback" not in out + err
    assert SECRET not in out + err
    lines = err.splitlines()
    if code == 2:
        assert lines
        assert lines[0].startswith("kaprules: ")
        assert all(line.startswith("  ") for line in lines[1:])
    else:
        assert err == ""
    if "json" in arguments:
        json.loads(out)  # one whole document, answer or error
    elif code == 2:
        assert out == ""
    assert all(line.isprintable() for line in (out + err).splitlines())


@settings(FUZZ, suppress_health_check=[*SLOW, HealthCheck.function_scoped_fixture])
@given(text=documents(), arguments=st.sampled_from(ARGUMENTS))
def test_the_command_keeps_its_promises(
    text: str,
    arguments: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8", "surrogatepass")))
    )
    code = main(list(arguments))
    out, err = capsys.readouterr()
    check_cli_run(code, out, err, arguments)


@settings(max_examples=8, deadline=None)
@given(
    documents() | st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.sampled_from(ARGUMENTS),
)
def test_the_installed_command_keeps_its_promises(text: str, arguments: tuple[str, ...]) -> None:
    # A few runs in a process of its own: the real entry point, streams and encodings.
    proc = subprocess.run(
        [sys.executable, "-m", "kaprules", *arguments],
        input=text.encode("utf-8", "surrogatepass"),
        capture_output=True,
        check=False,
        timeout=60,
    )
    check_cli_run(
        proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"), arguments
    )


@FUZZ
@given(documents(), st.dates())
def test_scheduling_never_raises_on_an_accepted_course(text: str, today: object) -> None:
    try:
        course = parse_course(text)
    except InputError:
        return
    event("accepted")
    if not 1900 <= today.year <= 9000:  # type: ignore[attr-defined]
        with pytest.raises(InputError, match="as_of"):
            forecast(course, today)  # type: ignore[arg-type]
        return
    forecast(course, today)  # type: ignore[arg-type]
    plan(course, today)  # type: ignore[arg-type]
