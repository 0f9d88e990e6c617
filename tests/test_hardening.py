"""Hostile input: every byte may be an attack. Each test here failed before its fix."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tracemalloc
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import pytest

import kaprules
from kaprules import Course, InputError, Session, _time, evaluate, load_course, parse_course

from conftest import EXAMPLES, ROOT

COMPLIANT = str(EXAMPLES / "compliant.json")
Run = Callable[..., tuple[int, str, str]]


def course_with_id(session_id: str) -> bytes:
    return json.dumps(
        {
            "timezone": "UTC",
            "sessions": [{"id": session_id, "start": "2026-12-01T09:00:00Z"}],
        }
    ).encode()


def starting(start: str) -> str:
    return json.dumps({"timezone": "UTC", "sessions": [{"start": start}]})


def shell(command: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, **env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        check=False,
        timeout=60,
    )


# --- 1. numbers past the digit limit -------------------------------------------------------


@pytest.mark.parametrize("where", ["unknown", "extra", "start"])
def test_huge_integers_are_input_errors(where: str, cli: Run) -> None:
    big = "9" * 5000
    docs = {
        "unknown": '{"timezone": "UTC", "sessions": [], "x": %s}',
        "extra": '{"timezone": "UTC", "sessions": [], "extra": {"n": %s}}',
        "start": '{"timezone": "UTC", "sessions": [{"start": %s}]}',
    }
    text = docs[where] % big
    with pytest.raises(InputError):
        parse_course(text)
    code, out, err = cli("check", "-", stdin=text.encode())
    assert (code, out) == (2, "")
    assert err.startswith("kaprules: error: invalid course in standard input")
    assert big not in err


# --- 2. lone surrogates and unencodable output ---------------------------------------------


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc80", "\\udfff"])
@pytest.mark.parametrize("field", ["id", "escort", "therapist", "kind"])
def test_lone_surrogates_are_rejected_at_load(escape: str, field: str, cli: Run) -> None:
    session = {"id": "s1", "start": "2026-12-01T09:00:00Z"}
    text = json.dumps({"timezone": "UTC", "sessions": [session]})
    text = text.replace('"s1"', f'"s1{escape}"') if field == "id" else text
    if field != "id":
        text = text.replace('"start"', f'"{field}": "x{escape}", "start"')
    with pytest.raises(InputError, match=field):
        parse_course(text)
    code, out, err = cli("check", "-", "--format", "json", stdin=text.encode())
    assert code == 2
    assert json.loads(out)["error"]["problems"][0]["path"].endswith(field)
    assert err.startswith("kaprules: error: invalid course in standard input: sessions[0]")


@pytest.mark.parametrize(
    "doc",
    [
        '{"timezone": "UTC", "patient": "p\\ud800", "sessions": []}',
        '{"timezone": "UTC", "sessions": [], "extra": {"k": "v\\ud800"}}',
        '{"timezone": "UTC", "sessions": [], "extra": {"k\\ud800": 1}}',
        '{"timezone": "UTC\\ud800", "sessions": []}',
        '{"timezone": "UTC", "sessions": [], "integrations": '
        '[{"start": "2026-12-01T09:00:00Z", "therapist": "\\udc00"}]}',
    ],
)
def test_lone_surrogates_anywhere_are_rejected(doc: str) -> None:
    with pytest.raises(InputError, match=r"surrogate|timezone"):
        parse_course(doc)


def test_a_valid_surrogate_pair_is_an_emoji_not_an_error() -> None:
    course = parse_course(course_with_id("s\\ud83d\\ude00").replace(b"\\\\", b"\\"))
    assert course.sessions[0].id == "s\U0001f600"


def test_python_api_refuses_surrogates() -> None:
    start = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    with pytest.raises(InputError, match="id: holds a lone surrogate"):
        Session(start, id="s\ud800")
    with pytest.raises(InputError, match="patient"):
        Course("UTC", [], patient="\udc80")


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize("form", ["text", "json"])
def test_non_ascii_output_on_a_narrow_terminal(encoding: str, form: str) -> None:
    doc = course_with_id("séance-✓").decode()
    proc = shell(f"kaprules check - --format {form} <<'EOF'\n{doc}\nEOF", PYTHONIOENCODING=encoding)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == b""
    text = proc.stdout.decode(encoding)
    if form == "json":
        named = [f["sessions"] for f in json.loads(text)["findings"] if f["sessions"]]
        assert named[0] == ["séance-✓"]
    else:
        assert "s\\xe9ance" in text or "séance" in text


@pytest.mark.parametrize("encoding", ["utf-8", "ascii", "latin-1"])
def test_output_is_valid_utf8_whatever_the_ids(encoding: str) -> None:
    # Whatever the environment's encoding, JSON output is UTF-8 and one whole document,
    # and the id comes back as it went in.
    odd = "s\u2028\u0085\u00e9\U0001f600"
    proc = subprocess.run(
        [sys.executable, "-m", "kaprules", "check", "-", "--format", "json"],
        input=course_with_id(odd),
        capture_output=True,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": encoding},
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout.decode("utf-8"))  # strict UTF-8 and one whole document
    assert any(odd in f["sessions"] for f in report["findings"])


# --- 3. streams and devices ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("kaprules check - <&-", b"standard input is closed"),
        ("kaprules check examples/compliant.json >&-", b"standard output is closed"),
        ("kaprules check examples/compliant.json > /dev/full", b"cannot write the output"),
        ("kaprules check /dev/zero", b"more than 67108864 bytes"),
        ("kaprules check /dev/zero --max-input-bytes 1000", b"more than 1000 bytes"),
        ("kaprules check examples", b"cannot read examples"),
    ],
)
def test_streams_and_devices_exit_2_with_one_line(command: str, message: bytes) -> None:
    proc = shell(command)
    assert proc.returncode == 2
    assert proc.stderr.count(b"\n") == 1, proc.stderr
    assert message in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_closed_stderr_still_exits_2() -> None:
    proc = shell("kaprules check missing.json 2>&-")
    assert proc.returncode == 2
    assert proc.stdout == b""


def test_a_closed_reader_is_not_a_traceback() -> None:
    proc = shell("kaprules explain fasting | head -c 10")
    assert proc.returncode == 0
    assert proc.stderr == b""


def test_an_unexpected_exception_is_exit_2_with_a_report_hint(
    cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise KeyError("internal")

    monkeypatch.setattr("kaprules.cli._check.evaluate", broken)
    code, out, err = cli("check", COMPLIANT)
    assert (code, out) == (2, "")
    assert err.startswith("kaprules: error: internal error (KeyError)")
    assert "report" in err
    assert err.count("\n") == 1


# --- 4. privacy by key name ----------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        '{"timezone": "UTC", "sessions": [{"start": "2026-12-01T09:00:00Z", '
        '"escort": {"Jordan (spouse)": 1, "Jordan (spouse)": 2}}]}',
        '{"timezone": "UTC", "sessions": [], "Jordan (spouse)": 1}',
        '{"timezone": "UTC", "sessions": [{"start": "2026-12-01T09:00:00Z", '
        '"Jordan (spouse)": "P-7"}]}',
        '{"timezone": "UTC", "sessions": [], "extra": {"Jordan (spouse)": 1, '
        '"Jordan (spouse)": 1}}',
    ],
)
def test_key_names_are_never_echoed(doc: str, cli: Run) -> None:
    with pytest.raises(InputError) as info:
        parse_course(doc)
    assert "Jordan" not in str(info.value)
    code, out, err = cli("check", "-", "--format", "json", stdin=doc.encode())
    assert code == 2
    assert "Jordan" not in out + err


# --- 5. memory amplification ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["key", "id", "escort", "kind"])
def test_peak_memory_is_a_small_multiple_of_the_input(field: str) -> None:
    huge = "x" * 5_000_000
    session: dict[str, object] = {"start": "2026-12-01T09:00:00Z"}
    doc: dict[str, object] = {"timezone": "UTC", "sessions": [session]}
    if field == "key":
        doc[huge] = 1
    else:
        session[field] = huge
    text = json.dumps(doc).encode()
    tracemalloc.start()
    with contextlib.suppress(InputError):
        evaluate(parse_course(text))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 3 * len(text)


def test_a_huge_unknown_key_costs_little() -> None:
    key = "x" * 5_000_000
    doc = json.dumps({"timezone": "UTC", "sessions": [], key: 1})
    with pytest.raises(InputError) as info:
        parse_course(doc)
    assert len(str(info.value)) < 300


# --- 6. values that used to be accepted ------------------------------------------------------


@pytest.mark.parametrize("offset", ["+00:99", "+00:60", "+24:00", "-25:00", "+99:00"])
def test_offsets_must_be_real(offset: str) -> None:
    doc = starting(f"2026-12-01T09:00:00{offset}")
    with pytest.raises(InputError, match="start"):
        parse_course(doc)


@pytest.mark.parametrize("offset", ["+00:59", "+23:59", "-12:00", "+14:00", "+05:45"])
def test_real_offsets_are_accepted(offset: str) -> None:
    doc = starting(f"2026-12-01T09:00:00{offset}")
    assert parse_course(doc).sessions[0].start.isoformat().endswith(offset)


@pytest.mark.parametrize(
    "zone",
    [
        *("localtime", "posixrules", "Factory", "right/UTC", "posix/UTC", "UTC ", "/etc/localtime"),
        *("america/denver", "America//Denver", "Etc/../UTC", "America", "zone.tab", "UTC\n"),
    ],
)
def test_host_and_tzcode_files_are_not_zones(zone: str) -> None:
    with pytest.raises(InputError, match="timezone"):
        Course(zone, [])


def test_a_zone_is_exactly_a_listed_name_though_zones_are_not_listed() -> None:
    # Every file and directory of the zone path, respelled: the names opened without listing
    # the zones are the listed ones, on this host's zone files.
    names = _time.zone_names()
    spellings = set(names)
    for root in zoneinfo.TZPATH:
        for directory, subdirectories, files in os.walk(root):
            for entry in (*subdirectories, *files):
                key = os.path.relpath(os.path.join(directory, entry), root).replace(os.sep, "/")
                spellings |= {key, key.lower(), key.swapcase(), f"./{key}", f"{key}/"}
                spellings |= {key.replace("/", "//"), f"../{os.path.basename(root)}/{key}"}

    def accepted(name: str) -> bool:
        try:
            _time.zone(name)
        except ValueError:
            return False
        return True

    assert sorted(n for n in spellings if accepted(n) != (n in names)) == []


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "America/Denver", "US/Pacific", "Asia/Kolkata"])
def test_iana_names_are_zones(zone: str) -> None:
    assert Course(zone, []).timezone == zone


# --- 7. terminal and report injection ------------------------------------------------------


@pytest.mark.parametrize(
    "session_id",
    ["s1\nerror   forged", "s\x1b]0;owned\x07", "s\r\x1b[2J", "x" * 1_000_000, "s\u2028t"],
)
def test_hostile_ids_stay_on_one_line_escaped_and_bounded(session_id: str, cli: Run) -> None:
    code, out, err = cli("check", "-", stdin=course_with_id(session_id))
    assert code == 1
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == len(evaluate(parse_course(course_with_id(session_id))).findings) + 1
    assert all(line.isprintable() for line in lines)
    assert all(len(line) < 400 for line in lines)
    assert "forged" not in "".join(line[:8] for line in lines)


def test_control_characters_in_field_names_are_escaped(cli: Run) -> None:
    doc = b'{"timezone": "UTC", "sessions": [], "st\\u001b]0;x\\u0007art": 1}'
    code, _, err = cli("check", "-", stdin=doc)
    assert code == 2
    assert err.isprintable() or err.rstrip("\n").isprintable()
    assert "\x1b" not in err


def test_a_huge_value_is_echoed_bounded(cli: Run) -> None:
    doc = json.dumps({"timezone": "UTC", "sessions": [{"start": "x" * 1_000_000}]})
    code, _, err = cli("check", "-", stdin=doc.encode())
    assert code == 2
    assert len(err) < 500


def test_several_problems_are_one_line_each(cli: Run) -> None:
    doc = b'{"timezone": "Mars/Base", "sessions": [{"start": 1}, {"kind": "x"}]}'
    code, _, err = cli("check", "-", stdin=doc)
    assert code == 2
    first, *rest = err.splitlines()
    assert first == "kaprules: error: invalid course in standard input (4 problems):"
    assert len(rest) == 4
    assert all(line.startswith("  ") for line in rest)


# --- 8. Python API promises ----------------------------------------------------------------


@pytest.mark.parametrize("path", [None, 1.5, 99, "a\0b", "\ud800", b"examples/compliant.json"])
def test_load_course_raises_input_error_only(path: object) -> None:
    with pytest.raises(InputError):
        load_course(path)  # type: ignore[arg-type]


def test_load_course_does_not_take_a_descriptor() -> None:
    fd = os.open(COMPLIANT, os.O_RDONLY)
    try:
        with pytest.raises(InputError):
            load_course(fd)  # type: ignore[arg-type]
        os.fstat(fd)  # still open: kaprules did not close the caller's descriptor
    finally:
        os.close(fd)


@pytest.mark.parametrize("protocol", [None, "kap-standard", 1])
def test_evaluate_with_a_wrong_protocol_is_an_input_error(protocol: object) -> None:
    with pytest.raises(InputError, match="protocol"):
        evaluate(load_course(COMPLIANT), protocol)  # type: ignore[arg-type]


@pytest.mark.parametrize("sessions", [set(), frozenset(), {"a": 1}, "s1", None])
def test_unordered_or_wrong_sessions_are_refused(sessions: object) -> None:
    with pytest.raises(InputError, match="sessions"):
        Course("UTC", sessions)  # type: ignore[arg-type]


def test_as_of_problems_are_option_errors(cli: Run) -> None:
    code, _, err = cli("check", COMPLIANT, "--as-of", "1800-01-01")
    assert code == 2
    assert "argument --as-of" in err
    assert "invalid course" not in err


def test_json_format_failures_write_a_json_error(cli: Run) -> None:
    code, out, err = cli("check", "-", "--format", "json", stdin=b"{")
    assert code == 2
    assert err.startswith("kaprules: error: invalid course in standard input: not valid JSON")
    error = json.loads(out)["error"]
    assert error["message"].startswith("invalid course in standard input")
    code, out, _ = cli("check", "missing.json", "--format=json")
    assert code == 2
    assert "cannot read" in json.loads(out)["error"]["message"]


def test_kaprules_strategies_zones_are_all_accepted() -> None:
    from kaprules.strategies import _zone_names

    for name in _zone_names():
        kaprules.Course(name, [])


def test_a_utf8_byte_order_mark_is_read_past() -> None:
    text = (EXAMPLES / "compliant.json").read_bytes()
    assert parse_course(b"\xef\xbb\xbf" + text) == parse_course(text)


def test_the_digit_limit_is_said_in_plain_words() -> None:
    with pytest.raises(InputError, match="a number has more than 4300 digits"):
        parse_course('{"timezone": "UTC", "sessions": [], "n": %s}' % ("7" * 4301))


def test_a_rule_with_an_unhashable_severity_is_a_protocol_error() -> None:
    class Odd:
        id = "odd"
        severity: object = []
        title = "t"
        statement = "s"
        rationale = "r"
        source = kaprules.Source("q")
        names = "n"

        def parameters(self) -> dict[str, object]:
            return {}

        def __call__(self, timeline: object) -> tuple[()]:
            return ()

    with pytest.raises(kaprules.ProtocolError, match=r"rules\[0\]\.severity"):
        kaprules.Protocol("x", "1", [Odd()])  # type: ignore[list-item]


@pytest.mark.skipif(sys.platform == "win32", reason="O_NONBLOCK pipes")
def test_a_non_blocking_input_is_waited_for_not_taken_as_ended() -> None:
    # A pipe left non-blocking by whatever started kaprules has "nothing yet", not an end:
    # the audit waits for the rest and reads it all (it was an internal error).
    import fcntl
    import threading
    import time

    data = (EXAMPLES / "audit" / "courses.jsonl").read_bytes()
    read, write = os.pipe()
    fcntl.fcntl(read, fcntl.F_SETFL, fcntl.fcntl(read, fcntl.F_GETFL) | os.O_NONBLOCK)

    def feed() -> None:
        for part in (data[:300], data[300:]):
            time.sleep(0.3)
            os.write(write, part)
        os.close(write)

    feeder = threading.Thread(target=feed)
    feeder.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "kaprules", "audit", "-", "--format", "json"]
    late = subprocess.run(command, stdin=read, env=env, capture_output=True, timeout=60)
    feeder.join()
    os.close(read)
    whole = subprocess.run(command, input=data, env=env, capture_output=True, timeout=60)
    assert (late.returncode, late.stderr) == (whole.returncode, b"") == (1, b"")
    assert json.loads(late.stdout) == json.loads(whole.stdout)
