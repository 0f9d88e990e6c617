"""The columnar audit engine against the per-record one: the same outputs, byte for byte."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaprules import (
    STANDARD,
    BoosterInterval,
    Course,
    Escort,
    Fasting,
    InputError,
    KapRulesError,
    Protocol,
    SessionCount,
    SessionSpacing,
    Therapist,
    TreatmentWindow,
    _fast,
    _time,
    auditing,
    dumps,
    findings_files,
    get_protocol,
)
from kaprules._columnar import columns, decode, forms
from kaprules._columnar import engine as columnar_engine
from kaprules._columnar import findings as columnar_findings
from kaprules._columnar import zones as columnar_zones
from kaprules.auditing import LineBlock, Record, audit, files, pipeline, read_records
from kaprules.strategies import compliant_courses, violating_courses

from conftest import ROOT
from helpers import make_audit_data

pytest.importorskip("polars", reason="the columnar engine needs the columnar extra (Polars)")

Run = Callable[..., tuple[int, str, str]]


def _session(start: str, **more: Any) -> dict[str, Any]:
    return {"start": start, "last_food": _minus(start, hours=5), "escort": "E", **more}


def _minus(start: str, **delta: float) -> str:
    return (dt.datetime.fromisoformat(start) - dt.timedelta(**delta)).isoformat()


def _series(zone: str, first: dt.datetime, gaps: list[int], **more: Any) -> str:
    sessions = []
    day = first
    for n, gap in enumerate([0, *gaps]):
        day += dt.timedelta(days=gap)
        sessions.append({"id": f"s{n + 1}", **_session(day.isoformat(), **more)})
    return json.dumps({"id": "c", "timezone": zone, "sessions": sessions}, separators=(",", ":"))


def _hostile() -> list[str | bytes]:
    """Lines the columnar reader must hand over, or read exactly as the loader does."""
    ok = make_audit_data.lines(3, seed=7)
    good = next(ok)
    doc = json.loads(good)
    start = doc["sessions"][0]["start"]
    utc = dt.datetime.fromisoformat(start).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines: list[str | bytes] = [
        good,
        json.dumps(doc),  # json.dumps's own separators
        json.dumps(doc, indent=None, separators=(", ", ":")),
        good.replace('"timezone"', '"timezone":"UTC","timezone"', 1),  # a repeated key
        good.replace('"escort"', '"escort":"A","escort"', 1),  # a session's repeated key
        good.replace('"sessions":[', '"sessions":[],"sessions":[', 1),
        good.replace('"patient"', '"patients"', 1),  # an unknown field
        good.replace('"patient":"P-SECRET-4471"', '"patient":null', 1),
        good.replace('"patient":"P-SECRET-4471"', '"patient":12', 1),
        good.replace('"patient":"P-SECRET-4471"', '"patient":' + "9" * 5000, 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":"J\\u00e9"', 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":"Jé"', 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":"\u3000"', 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":"\\t"', 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":"a\\"b"', 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":"\\ud800"', 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":null', 1),
        good.replace('"escort":"Jordan Secretperson"', '"therapist":"T"', 1),
        good.replace('"id":"s1"', '"id":" "', 1),
        good.replace('"id":"s1"', '"id":"s2"', 1),
        good.replace('"id":"s1",', "", 1),
        good.replace('"id":"c-', '"id":"\\n', 1),
        good.replace('"id":"c-0000001"', '"id":"\u3000"', 1),
        # Ids a spreadsheet would run as formulas, or a CSV cell would have to quote.
        good.replace('"id":"c-0000001"', '"id":"=HYPERLINK(1,2)"', 1),
        good.replace('"id":"c-0000001"', '"id":"@c\r1"', 1),
        good.replace('"id":"s1"', '"id":"-s1"', 1).replace('"id":"s2"', '"id":"+2,3"', 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":""', 1),
        good.replace(start, start.replace("T", " "), 1),
        good.replace(start, start[:19] + ".5" + start[19:], 1),
        good.replace(start, utc, 1),
        good.replace(start, utc.replace("Z", "z"), 1),
        good.replace(start, utc[:19] + "+24:00", 1),
        good.replace(start, "2025-02-29" + start[10:], 1),
        good.replace(start, start[:11] + "24:00:00" + start[19:], 1),
        good.replace(start, start[:17] + "60" + start[19:], 1),
        good.replace(start, "1900" + start[4:], 1),
        good.replace(start, "8999" + start[4:], 1),
        good.replace(start, "2300" + start[4:], 1),
        good.replace(start, "\uff11" + start[1:], 1),  # a digit, not an ASCII one
        good.replace('"sessions":[', '"sessions":[{"start":"2026-01-01T00:00:00Z"},', 1),
        good.replace('"sessions":[', '"sessions":[null,', 1),
        good.replace('"sessions":[', '"sessions":[[],', 1),
        good.replace('"sessions":[', '"sessions":[1e999,', 1),
        good.replace('"sessions":[', '"sessions":[{},', 1),
        good.replace("}]}", "},]}", 1),
        good.replace('"timezone":"', '"timezone":"Mars/', 1),
        good.replace('"timezone":"', '"timezone":"posix/', 1),
        good[:-1],
        good + " ",
        " " + good,
        good + "\r",
        good.replace("{", "{\r", 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":"J\ro"', 1),
        good.replace('"escort":"Jordan Secretperson"', '"escort":"J\u2028\x85\x0bo"', 1),
        "\ufeff" + good,
        good.encode()[:40] + b"\xff" + good.encode()[41:],
        "",
        "   ",
        "[]",
        "null",
        '{"timezone":"UTC","sessions":[]}',
        '{"timezone":"UTC","sessions":{}}',
        '{"timezone":"UTC","sessions":"x"}',
        '{"timezone":["UTC"],"sessions":[{"start":"2026-01-01T00:00:00Z"}]}',
        '{"timezone":"UTC","sessions":[{"start":"2026-01-01T00:00:00Z","kind":"Booster"}]}',
        '{"timezone":"UTC","sessions":[{"start":"2026-01-01T00:00:00Z","kind":"booster"}]}',
        '{"timezone":"UTC","sessions":[{"start":"2026-01-01T00:00:00Z","id":"2"},'
        '{"start":"2026-01-05T00:00:00Z"}]}',
        '{"timezone":"UTC","sessions":[{"start":"2026-01-01T00:00:00Z","extra":{}}]}',
        '{"timezone":"UTC","sessions":[{"start":"2026-01-01T00:00:00Z","id":"b","escort":"E"},'
        '{"start":"2026-01-01T01:00:00+01:00","id":"a","last_food":"2025-12-31T00:00:00Z"}]}',
        '{"timezone":"UTC","integrations":[],"sessions":[{"start":"2026-01-01T00:00:00Z"}]}',
        '{"$schema":"x","timezone":"UTC","sessions":[{"start":"2026-01-01T00:00:00Z"}]}',
    ]
    # DST folds and gaps, half-hour changes, odd offsets, old and far years, month ends.
    for zone, first in [
        ("America/Denver", dt.datetime(2026, 3, 1, 23, 30)),
        ("America/Denver", dt.datetime(2026, 10, 25, 0, 30)),
        ("Australia/Lord_Howe", dt.datetime(2026, 3, 28, 1, 45)),
        ("Australia/Lord_Howe", dt.datetime(2026, 9, 26, 23, 50)),
        ("Europe/London", dt.datetime(1901, 1, 1, 0, 0)),
        ("America/St_Johns", dt.datetime(2180, 10, 25, 23, 0)),
        ("Asia/Kathmandu", dt.datetime(1985, 12, 25, 23, 50)),
        ("Pacific/Apia", dt.datetime(2011, 12, 25, 23, 0)),
        ("UTC", dt.datetime(2024, 2, 20, 23, 59, 59)),
    ]:
        tz = __import__("zoneinfo").ZoneInfo(zone)
        aware = first.replace(tzinfo=tz)
        for gaps in ([2, 2, 2, 2, 2], [1, 3, 2, 2, 2], [2, 2, 2, 2, 2, 2], [3, 3, 3, 3, 3]):
            lines.append(_series(zone, aware, gaps))
        lines.append(_series(zone, aware.astimezone(dt.UTC), [2, 2, 2, 2, 2]))
        series = json.loads(_series(zone, aware, [2, 2, 2, 2, 2]))
        for months, day in ((6, 0), (5, 0), (6, -1), (6, 3)):
            last = dt.datetime.fromisoformat(series["sessions"][-1]["start"])
            month = last.month - 1 + months
            booster = dt.datetime(
                last.year + month // 12, month % 12 + 1, 28, last.hour, tzinfo=tz
            ) + dt.timedelta(days=day)
            series["sessions"].append(
                {"id": "b", "kind": "booster", **_session(booster.isoformat())}
            )
            lines.append(json.dumps(series, separators=(",", ":")))
        month_end = dt.datetime(2026, 8, 31, 9, tzinfo=tz)
        series = json.loads(_series(zone, month_end - dt.timedelta(days=10), [2, 2, 2, 2, 2]))
        for target in (dt.datetime(2027, 2, 28, 9), dt.datetime(2027, 2, 27, 9)):
            series["sessions"].append(
                {"id": "b", "kind": "booster", **_session(target.replace(tzinfo=tz).isoformat())}
            )
            lines.append(json.dumps(series, separators=(",", ":")))
            series["sessions"].pop()
    short = json.loads(good)
    short["sessions"][0]["last_food"] = _minus(short["sessions"][0]["start"], hours=4)
    lines.append(json.dumps(short, separators=(",", ":")))
    short["sessions"][0]["last_food"] = _minus(short["sessions"][0]["start"], hours=3.9999)
    lines.append(json.dumps(short, separators=(",", ":")))
    short["sessions"][0]["last_food"] = _minus(short["sessions"][0]["start"], hours=-1)
    lines.append(json.dumps(short, separators=(",", ":")))
    for fast in ((3, 59, 30), (-1, 0, -5), (0, 0, 0), (0, 0, 7), (-2, -30, 0)):
        start = short["sessions"][0]["start"]
        food = _minus(start, hours=fast[0], minutes=fast[1], seconds=fast[2])
        short["sessions"][0]["last_food"] = food
        lines.append(json.dumps(short, separators=(",", ":")))
    return lines


class _Custom(Fasting):
    # A subclass that changes what the rule does has no vectorised form of its own.
    def __call__(self, timeline: Any) -> Any:
        return iter(())


PROTOCOLS = [
    STANDARD,
    get_protocol("kap-standard@2"),
    Protocol(
        "clinic",
        "1",
        (
            SessionCount(count=6, window_days=15),
            TreatmentWindow(days=15),
            SessionSpacing(min_days=2, severity="warning"),
            Fasting(hours=4.5, kinds={"booster"}),
            Escort(kinds={"induction"}, severity="info"),
            Therapist(kinds={"booster"}),
            BoosterInterval(months=5, min_induction=0),
        ),
    ),
    Protocol("custom", "1", (_Custom(), Escort())),
    # Hardly any course breaks it: a line read wrongly shows as a result, not as a finding.
    Protocol("lenient", "1", (Escort(kinds={"booster"}),)),
    # No rule reads the session before: nothing makes a chunk's first course doubtful.
    Protocol("fasting", "1", (Fasting(),)),
]


def _outputs(path: Path, protocol: Protocol, engine: str, jobs: int = 1, as_of: Any = None) -> Any:
    def run_of() -> Any:
        return audit(
            read_records([str(path)]), protocol, engine=engine, jobs=jobs, sample=5, as_of=as_of
        )

    run = run_of()
    results = list(run)
    outputs = results, run.summary.to_dict(), run.samples
    if engine == "records":  # its flagged() and findings_text() are plain filters of this
        return outputs
    # flagged() is the same audit without the compliant results.
    run = run_of()
    flagged = list(run.flagged())
    assert flagged == [r for r in results if r.findings or r.rejected is not None]
    assert (run.summary.to_dict(), run.samples) == outputs[1:]
    # findings_text(), the CLI's way through: the rows of those results, the same counts.
    forms: list[tuple[findings_files.FindingsForm | None, bool]]
    forms = [("jsonl", False), ("jsonl", True), ("csv", False), ("csv", True), (None, False)]
    for form, inputs in forms:
        run = run_of()
        text = "".join(run.findings_text(form, inputs=inputs))
        if form is None:
            assert text == ""
        else:
            head = findings_files.header(form, inputs=inputs)
            assert text == head + findings_files.rows(results, form, inputs=inputs)
        assert (run.summary.to_dict(), run.samples) == outputs[1:]
        assert run.counted == len(results)
    return outputs


def _fresh(script: str, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``script`` run in a fresh process.

    Polars is not loaded there, so its audits fork their workers as the command line's do.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return process.returncode, process.stdout, process.stderr


def _write(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return path


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: f"{p.id}@{p.version}")
def test_hostile_and_generated_lines_give_the_same_results(
    protocol: Protocol, tmp_path: Path
) -> None:
    lines = [*_hostile(), *make_audit_data.lines(400, seed=3)]
    path = _write(tmp_path / "in.jsonl", lines)
    records = _outputs(path, protocol, "records")
    # (auto is records here, the input being small: the CLI test runs it.)
    assert _outputs(path, protocol, "columnar") == records
    # Some lines must have been taken by the columnar path, or this test proves nothing.
    if protocol.id in ("kap-standard", "clinic", "lenient") and protocol.version == "1":
        data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
        found, (rows, ids, counts) = columnar_findings.evaluated(data, protocol)
        assert len(found) + len(rows) > 200
        assert len(found) > 40 or protocol.id == "lenient"
        assert not set(found) & set(rows)
        for index, (course_id, count, findings) in found.items():
            assert findings
            assert records[0][index][2:5] == (course_id, count, findings)
        for index, course_id, count in zip(rows, ids, counts, strict=True):
            assert records[0][index][2:6] == (course_id, count, (), None)


def _gathered(lines: list[str], day: dt.date) -> list[str]:
    # Each course moved by whole days, its first session to `day`: every course then
    # runs across the dates around it. Every fifth loses its last two sessions: short
    # series, whose window closes (or not) by as_of.
    moved = []
    for number, text in enumerate(lines):
        course = json.loads(text) if text.startswith("{") else None
        if not course or not course.get("sessions"):
            moved.append(text)
            continue
        if number % 5 == 0:
            course["sessions"] = sorted(course["sessions"], key=lambda s: s["start"])[:-2]
        first = min(dt.datetime.fromisoformat(s["start"]) for s in course["sessions"])
        shift = dt.timedelta(days=(day - first.date()).days)
        for session in course["sessions"]:
            for key in ("start", "last_food"):
                if session.get(key):
                    session[key] = (dt.datetime.fromisoformat(session[key]) + shift).isoformat()
        moved.append(json.dumps(course))
    return moved


_AS_OF = [
    dt.date(2025, 3, 3),
    dt.date(2025, 3, 10),
    dt.date(2025, 3, 16),
    dt.date(2025, 3, 30),
    dt.datetime(2025, 3, 9, 14, 30, 0, 1, tzinfo=dt.UTC),
    dt.datetime(2025, 3, 14, 23, 59, 59, tzinfo=_time.zone("Pacific/Auckland")),
    "today",
    "a start",  # the instant a session starts: not yet planned
]


@pytest.mark.parametrize("as_of", _AS_OF, ids=str)
@pytest.mark.parametrize("protocol", PROTOCOLS[:3], ids=lambda p: f"{p.id}@{p.version}")
def test_as_of_gives_the_same_results(protocol: Protocol, as_of: Any, tmp_path: Path) -> None:
    # Courses all running around as_of: sessions still planned (no fast, escort or
    # therapist asked), series still open or closed, meetings still due.
    # (Around today for "today": its sessions of today are held, those of tomorrow not.)
    day = dt.date.today() - dt.timedelta(days=7) if as_of == "today" else dt.date(2025, 3, 3)
    lines = _gathered(list(make_audit_data.lines(150, seed=7)), day)
    path = _write(tmp_path / "in.jsonl", [*_hostile(), *lines])
    if as_of == "a start":
        as_of = dt.datetime.fromisoformat(json.loads(lines[1])["sessions"][3]["start"])
    if as_of in _AS_OF[1:5:3]:  # the engines' every way of reading, for two of them
        assert _outputs(path, protocol, "columnar", as_of=as_of) == _outputs(
            path, protocol, "records", as_of=as_of
        )
    seen = []
    for engine in ("records", "columnar"):
        run = audit(read_records([str(path)]), protocol, engine=engine, as_of=as_of, sample=5)
        results = list(run)
        summary = run.summary.to_dict()
        if as_of == "today":  # each audit's own start, to the second: they may differ
            assert summary.pop("as_of").startswith("today (each course's local date at ")
        seen.append((results, summary, run.samples))
    assert seen[1] == seen[0]
    if not isinstance(as_of, str):  # the columnar path took most courses, with and without findings
        data = path.read_bytes()
        found, (rows, _, _) = columnar_findings.evaluated(data, protocol, as_of)
        assert len(found) > 10
        assert len(found) + len(rows) > 100


def test_the_slow_way_in_gives_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When Polars refuses a chunk's bytes, its lines go into a frame one by one.
    import polars as pl

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise pl.exceptions.ComputeError("refused")

    path = _write(tmp_path / "in.jsonl", [*_hostile(), *make_audit_data.lines(200, seed=3)])
    records = _outputs(path, STANDARD, "records")
    monkeypatch.setattr(pl, "scan_lines", refuse)
    assert _outputs(path, STANDARD, "columnar") == records


def _timeless(html: bytes) -> bytes:
    # The report states when the run started, how long it took and which engine ran (and
    # why): nothing else may differ.
    html = re.sub(rb"<td>Engine</td><td>[^<]*</td>", b"<td>Engine</td><td></td>", html)
    return re.sub(rb"started [0-9T:+-]+, took [0-9.]+ s", b"started, took", html)


def _engineless(summary: str) -> str:
    # The summary less the engine that ran: the same, byte for byte, whichever it was.
    data = json.loads(summary)
    assert data.pop("engine")["name"] in ("records", "columnar")
    return json.dumps(data)


def test_cli_outputs_are_byte_identical(tmp_path: Path, cli: Run) -> None:
    path = _write(tmp_path / "in.jsonl", [*_hostile(), *make_audit_data.lines(300, seed=4)])
    seen = []
    for engine in ("records", "columnar", "auto"):
        for suffix in ("jsonl", "csv"):
            out, html = tmp_path / f"{engine}.{suffix}", tmp_path / f"{engine}.html"
            more = ("--html", str(html), "--sample", "8") if suffix == "csv" else ()
            code, summary, err = cli(
                "audit", str(path), "--engine", engine, "--findings", str(out), "--format",
                "json", *more,
            )  # fmt: skip
            assert (code, err) == (1, "")
            seen.append((suffix, _engineless(summary), out.read_bytes()))
        seen.append(("html", "", _timeless(html.read_bytes())))
    assert b"<table" in seen[2][2]
    assert seen[0::3] == [seen[0]] * 3
    assert seen[1::3] == [seen[1]] * 3
    assert seen[2::3] == [seen[2]] * 3


def test_worker_processes_give_the_same_outputs(tmp_path: Path) -> None:
    # --jobs 2 in a fresh process: the columnar chunks go to real workers (forked before
    # Polars is loaded), whose results must match the per-record workers' byte for byte.
    path = _write(tmp_path / "in.jsonl", [*_hostile(), *make_audit_data.lines(300, seed=5)])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    seen = []
    for engine in ("records", "columnar", "auto"):
        out = tmp_path / f"{engine}.jsonl"
        process = subprocess.run(
            [sys.executable, "-m", "kaprules", "audit", str(path), "--jobs", "2",
             "--engine", engine, "--findings", str(out), "--format", "json"],
            env=env, capture_output=True, timeout=60,
        )  # fmt: skip
        assert (process.returncode, process.stderr) == (1, b"")
        seen.append((_engineless(process.stdout.decode()), out.read_bytes()))
    assert seen == [seen[0]] * 3
    assert json.loads(seen[0][0])["input_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


# Every rule with a vectorised form: kap-standard v2 has all eight.
EIGHT = get_protocol("kap-standard@2")


def _breaking(rule_id: str) -> st.SearchStrategy[Course]:
    """Courses of kap-standard v2 that break ``rule_id`` (with a therapist on each session).

    The strategies break six of the rules; the series' length and window are broken here:
    an induction session more or fewer, or the last one moved past the window.
    """
    if rule_id not in ("session-count", "treatment-window"):
        return violating_courses(rule_id, EIGHT)

    def broken(course: Course, more: bool) -> Course:
        inductions = sorted(
            (s for s in course.sessions if s.kind == "induction"), key=lambda s: s.start
        )
        last = inductions[-1]
        others = [s for s in course.sessions if s is not last]
        if rule_id == "session-count" and not more:
            return attrs.evolve(course, sessions=tuple(others))
        days = dt.timedelta(days=1 if rule_id == "session-count" else 20)
        moved = attrs.evolve(
            last,
            id="extra" if rule_id == "session-count" else last.id,
            start=last.start + days,
            last_food=None if last.last_food is None else last.last_food + days,
        )
        kept = course.sessions if rule_id == "session-count" else others
        return attrs.evolve(course, sessions=(*kept, moved))

    return st.builds(broken, compliant_courses(protocol=EIGHT), st.booleans())


@settings(
    max_examples=8,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    courses=st.lists(
        st.one_of(compliant_courses(), st.sampled_from(EIGHT.rule_ids).flatmap(_breaking)),
        min_size=5,
        max_size=25,
    ),
    separators=st.sampled_from([(",", ":"), (", ", ": ")]),
    as_of=st.one_of(
        st.none(),
        st.tuples(st.integers(-2, 200), st.booleans(), st.sampled_from(["UTC", "Asia/Kolkata"])),
    ),
)
def test_generated_courses_give_the_same_results(
    courses: list[Any],
    separators: tuple[str, str],
    as_of: tuple[int, bool, str] | None,
    tmp_path: Path,
) -> None:
    lines: list[str | bytes] = [
        json.dumps(c.to_dict(), separators=separators, ensure_ascii=False) for c in courses
    ]
    lines += [dumps(c, indent=None) for c in courses[:3]]
    path = _write(tmp_path / "gen.jsonl", lines)
    moment: dt.date | dt.datetime | None = None
    if as_of is not None:  # within or after the first course: some sessions still planned
        days, instant, zone = as_of
        first = min(s.start for s in courses[0].sessions)
        at = (first + dt.timedelta(days=days, seconds=1)).astimezone(_time.zone(zone))
        moment = at if instant else at.date()
    for protocol in PROTOCOLS[:2]:
        assert _outputs(path, protocol, "columnar", as_of=moment) == _outputs(
            path, protocol, "records", as_of=moment
        )
    assert any(s.therapist is not None for c in courses for s in c.sessions)  # recorded ones


def test_the_engine_is_chosen_and_checked(tmp_path: Path) -> None:
    # auto: the fast path, taken only when the fast paths are on (KAPRULES_NO_FAST_PATHS).
    assert auditing.engine_for("auto", STANDARD, True) is _fast.ENABLED
    assert auditing.engine_for("columnar", STANDARD, True)
    assert not auditing.engine_for("auto", PROTOCOLS[3], True)
    assert not auditing.engine_for("auto", STANDARD, False)
    assert not auditing.engine_for("records", STANDARD, True)
    with pytest.raises(InputError, match="engine: must be one of auto, columnar, records"):
        audit([], engine="fast")


@pytest.mark.parametrize(
    ("jobs", "limit"), [(1, 4 << 20), (2, 8 << 20), (4, 16 << 20), (64, 16 << 20)]
)
def test_a_small_input_is_small_per_worker_up_to_four(jobs: int, limit: int) -> None:
    assert auditing.small_input(jobs) == limit


def _columnar_runs(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The units of each audit the columnar engine takes from here on, as it takes them."""
    runs: list[object] = []
    run = pipeline.run

    def watched(units: Any, job: pipeline.Job, *args: Any, **kwargs: Any) -> Any:
        if job.engine is columnar_engine.COLUMNAR:
            runs.append(units)
        return run(units, job, *args, **kwargs)

    monkeypatch.setattr(auditing, "run", watched)
    return runs


@pytest.mark.parametrize(("over", "engine"), [(0, "columnar"), (1, "records")])
@pytest.mark.parametrize("jobs", [1, 2])
def test_auto_audits_an_input_smaller_than_its_bound_course_by_course(
    over: int, engine: str, jobs: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bound set to the input's size (plus `over`): at it, the columnar engine; one
    # byte short of it, course by course. Either way the results of both engines.
    lines = [*_hostile(), *make_audit_data.lines(40, seed=2)]
    path = _write(tmp_path / "in.jsonl", lines)
    if path.stat().st_size % jobs:  # a bound of whole bytes a worker
        path = _write(tmp_path / "in.jsonl", [*lines, "[]"])
    expected = _outputs(path, STANDARD, "records")
    assert _outputs(path, STANDARD, "columnar") == expected
    monkeypatch.setattr(auditing, "_SMALL_PER_JOB", (path.stat().st_size + over * jobs) // jobs)
    assert auditing.small_input(jobs) == path.stat().st_size + over * jobs
    taken = _columnar_runs(monkeypatch)
    assert _outputs(path, STANDARD, "auto", jobs) == expected
    assert bool(taken) == (engine == "columnar" and _fast.ENABLED)  # else always records


def test_auto_reads_no_csv_course_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A CSV course's size is unknown: the columnar engine takes the input from there,
    # without reading on (a CSV of large courses was once read ahead whole).
    path = tmp_path / "in.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(make_audit_data.csv_rows(30, 4))
    read = _columnar_runs(monkeypatch)
    expected = _outputs(path, STANDARD, "records")
    assert _outputs(path, STANDARD, "auto") == expected
    assert len(read) == 7 if _fast.ENABLED else read == []


def test_auto_does_not_load_polars_for_a_small_input(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.jsonl", list(make_audit_data.lines(200, seed=6)))
    script = (
        "import sys\n"
        "from kaprules import STANDARD, audit\n"
        "from kaprules.auditing import read_records\n"
        "run = audit(read_records([sys.argv[1]]), STANDARD, engine=sys.argv[2])\n"
        "text = ''.join(run.findings_text())\n"
        "print('polars' in sys.modules, run.summary.compliant, len(text))\n"
    )
    code, auto, err = _fresh(script, str(path), "auto")
    assert (code, err) == (0, "")
    assert auto.split()[0] == "False"
    code, forced, err = _fresh(script, str(path), "columnar")
    assert (code, err) == (0, "")
    assert forced.split() == ["True", *auto.split()[1:]]


def test_without_polars_auto_takes_records_and_columnar_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auditing, "available", lambda: False)
    path = _write(tmp_path / "in.jsonl", list(make_audit_data.lines(5)))
    assert not auditing.engine_for("auto", STANDARD, True)
    with pytest.raises(InputError, match=r"pip install '\.\[columnar\]' in a checkout"):
        audit(read_records([str(path)]), engine="columnar")


def test_whitespace_is_what_strip_removes() -> None:
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert every == columns.WHITESPACE


def test_zone_tables_agree_with_zoneinfo_at_every_change() -> None:
    import zoneinfo

    for name in ("America/Denver", "Australia/Lord_Howe", "Europe/Dublin", "Pacific/Apia"):
        table = columnar_zones.zone_table(name)
        assert table is not None
        zone = zoneinfo.ZoneInfo(name)
        starts, offsets = table
        for k in range(1, len(starts)):
            for t in (starts[k] - 1, starts[k], (starts[k - 1] + starts[k]) // 2):
                moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=t)
                offset = moment.astimezone(zone).utcoffset()
                assert offset is not None
                expected = offsets[k] if t >= starts[k] else offsets[k - 1]
                assert int(offset.total_seconds()) == expected, (name, t)


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_zone_offsets_agree_with_zoneinfo_anywhere(seed: int) -> None:
    # Instants across the whole range, and hourly ones over DST seasons, in zones with
    # odd rules: the table lookup answers as zoneinfo does.
    import random
    import zoneinfo

    import polars as pl

    names = [
        "America/Denver", "America/St_Johns", "Australia/Lord_Howe", "Europe/Dublin",
        "Africa/Casablanca", "Pacific/Apia", "Asia/Tehran", "America/Santiago", "UTC",
        "Antarctica/Troll", "Europe/Moscow", "Pacific/Chatham",
    ]  # fmt: skip
    rng = random.Random(seed)
    keys, values, index = columnar_zones._zone_keys(names)
    rows = []
    for name in names:
        base = rng.randrange(columnar_zones.LO, columnar_zones.HI - 400 * 86400)
        rows += [
            (index[name], rng.randrange(columnar_zones.LO, columnar_zones.HI)) for _ in range(200)
        ]
        rows += [(index[name], base + 3600 * k + rng.randrange(3600)) for k in range(0, 9000, 11)]
    frame = pl.DataFrame(rows, schema=["zone", "utc"], orient="row")
    found = frame.select(columnar_zones.offset_of(keys, values)).to_series().to_list()
    zones = {index[n]: zoneinfo.ZoneInfo(n) for n in names}
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for (zone, utc), offset in zip(rows, found, strict=True):
        local = (epoch + dt.timedelta(seconds=utc)).astimezone(zones[zone])
        assert local.utcoffset() == dt.timedelta(seconds=offset), (zone, utc)


@pytest.mark.parametrize("close", [False, True])
@pytest.mark.parametrize("how", ["iterate", "flagged", "text"])
def test_a_loop_left_within_a_batch_still_counts_its_rest(
    tmp_path: Path, how: str, close: bool
) -> None:
    # A batch's results come from one iteration: leaving it early, or closing it, must
    # not lose them (closing once did).
    path = _write(tmp_path / "in.jsonl", [*make_audit_data.lines(300, seed=5)])
    whole = audit(read_records([str(path)]), STANDARD, engine="records").summary.to_dict()
    run = audit(read_records([str(path)]), STANDARD, engine="columnar")
    started: Any
    if how == "iterate":
        started = iter(run)
    elif how == "flagged":
        started = run.flagged()
    else:
        started = run.findings_text("jsonl")
    assert next(started)  # within the first batch: the audit is one here
    if close:
        started.close()
    assert run.summary.to_dict() == whole
    assert run.counted == 300
    with pytest.raises(KapRulesError, match="already consumed"):
        list(run)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T09:00:00-07:00",
        "2026-12-01T16:00:00Z",
        "2026-12-01T16:00:00+14:00",
        "2026-12-01T16:00:00-23:59",
        "2026-12-01T16:00:00-00:00",
        "2026-12-01T16:00:00+05:45",
        "2026-12-01T16:00:00+5:45",
        "2026-12-01T16:00:00+24:00",
        "2026-12-01T16:00:00+05:60",
        "1901-01-01T00:00:00Z",
        "1900-12-31T23:59:59Z",
        "2199-12-31T23:59:59+01:00",
        "2200-01-01T00:00:00Z",
        "2024-02-29T10:00:00Z",
        "2023-02-29T10:00:00Z",
        "2026-04-31T10:00:00Z",
        "2026-00-10T10:00:00Z",
        "2026-13-10T10:00:00Z",
        "2026-12-00T10:00:00Z",
        "2026-12-32T10:00:00Z",
        "2026-12-01T24:00:00Z",
        "2026-12-01T23:60:00Z",
        "2026-12-01T23:59:60Z",
        "2026-12-01T09:00:00.5Z",
        "2026-12-01 09:00:00Z",
        "2026-12-01T09:00:00z",
        "2026-12-01T09:00:00+0700",
        "+2026-12-01T09:00:00Z",
        "2026-12-01T09:00:00Z ",
        "",
    ],
)
def test_instants_are_read_as_python_reads_them_or_not_at_all(text: str) -> None:
    import polars as pl

    # Taken: in a line of the shape (the pattern holds the layout), and read.
    line = json.dumps({"timezone": "UTC", "sessions": [{"start": text, "last_food": text}]})
    got = (
        pl.DataFrame({"line": [line], "t": [text]})
        .select(
            s=columnar_zones.instant_seconds("t"), layout=pl.col("line").str.contains(decode.LINE)
        )
        .select("s", ok=pl.col("layout") & pl.col("s").is_not_null())
        .row(0)
    )
    try:
        instant = dt.datetime.fromisoformat(text)
        python = instant.tzinfo is not None and 1901 <= instant.year <= 2199
    except ValueError:
        python = False
    if got[1]:  # taken: Python reads it, to the same instant
        assert python
        assert got[0] == instant.timestamp()
    # Every instant of the two layouts is taken, offsets written as zones have them (the
    # rest, "+05:60" included, go per record).
    layout = re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:[0-5]\d)", text)
    if python and layout:
        assert got[1]


def test_the_findings_format_takes_its_two_forms() -> None:
    with pytest.raises(InputError, match="form: must be 'jsonl' or 'csv'"):
        findings_files.rows([], "CSV", inputs=False)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="form: must be 'jsonl' or 'csv'"):
        findings_files.header("xml", inputs=False)  # type: ignore[arg-type]


def test_findings_text_takes_the_two_forms_or_none(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.jsonl", [*make_audit_data.lines(20, seed=5)])
    run = audit(read_records([str(path)]), STANDARD)
    with pytest.raises(InputError, match="form: must be 'jsonl', 'csv' or None"):
        run.findings_text("xml")  # type: ignore[arg-type]
    assert "".join(run.findings_text("csv")).startswith("line,course,rule,")


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_first_course_of_a_chunk_is_read_once(tmp_path: Path, jobs: int) -> None:
    # The first row of a chunk's frame once had no "start of its course": without a rule
    # that reads the session before, its course went per record while its columnar
    # findings were still counted and written (found by a hostile run).
    first = '{"id":"c1","timezone":"UTC","sessions":[{"id":"s1","start":"2026-04-09T12:00:00Z"}]}'
    path = _write(tmp_path / "in.jsonl", [first, *make_audit_data.lines(50, seed=8)])
    fasting = Protocol("fasting", "1", (Fasting(),))
    texts = []
    for engine in ("records", "columnar"):
        run = audit(read_records([str(path)]), fasting, engine=engine, jobs=jobs)
        texts.append(("".join(run.findings_text("jsonl")), run.summary.to_dict()))
    assert texts[1] == texts[0]
    assert texts[0][0].count('"course": "c1"') == 1
    data = path.read_bytes()
    found, _ = columnar_findings.evaluated(data, fasting)
    assert 0 in found  # taken by the columnar path, not only handed over


@pytest.mark.parametrize("engine", ["records", "columnar"])
def test_an_input_named_in_bytes_that_are_not_utf8_is_written_escaped(
    tmp_path: Path, cli: Run, engine: str
) -> None:
    # Several inputs: each row names its input, and a name that is not UTF-8 (lone
    # surrogates in Python) cannot be written to a UTF-8 file as it is (found by a
    # hostile run: an internal error).
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/\xff\xfe.jsonl"))
    _write(odd, [*make_audit_data.lines(30, seed=9), "not a course"])
    plain = _write(tmp_path / "plain.jsonl", [*make_audit_data.lines(5, seed=9)])
    for suffix in ("jsonl", "csv"):
        out = tmp_path / f"findings.{suffix}"
        code, summary, err = cli(
            "audit", str(odd), str(plain), "--engine", engine, "--findings", str(out),
            "--format", "json",
        )  # fmt: skip
        assert (code, err) == (1, "")
        text = out.read_text(encoding="utf-8")
        named = text.splitlines()[1].split(",")[0] if suffix == "csv" else text.splitlines()[0]
        if suffix == "jsonl":
            named = json.loads(named)["input"]
        assert named.endswith("/\\xff\\xfe.jsonl")
        assert json.loads(summary)["rejected"][0]["input"] == named


def test_records_travel_in_chunks_of_a_few_hundred() -> None:
    # CSV courses are read slowly by the main process and evaluated one by one: a chunk
    # sized for JSON Lines bytes would hold thousands and keep the workers waiting.
    from kaprules.auditing import Record

    size = columnar_engine.Size()
    size.bytes = columnar_engine.CHUNK_BYTES
    records = (Record(n, "{}") for n in range(1, 1201))
    chunks = list(size.chunks(records))
    assert [len(c) for c in chunks] == [500, 500, 200]
    assert [r.line for c in chunks for r in c if isinstance(r, Record)] == list(range(1, 1201))


def test_rows_name_odd_inputs_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With several inputs each row names its input: the one text of a row that is not a
    # course's, so the one the columns must quote and escape (JSON and CSV) as Python does.
    monkeypatch.chdir(tmp_path)
    names = ["=a.jsonl", "-c", "\tb", "a,b", 'q"x', "new\nline", "\rx", "s\\l", "é ü"]
    for seed, name in enumerate(names):
        _write(tmp_path / name, [*make_audit_data.lines(40, seed=seed)])
    written = []
    for engine in ("records", "columnar"):
        for form in ("jsonl", "csv"):
            run = audit(read_records(names), STANDARD, engine=engine)
            written.append("".join(run.findings_text(form, inputs=True)))
    assert written[2:] == written[:2]
    assert "'=a.jsonl" in written[1]  # neutralised as a formula, and quoted where needed
    assert '"q""x"' in written[1]


def test_compliant_courses_are_counted_in_bulk_only_by_a_count() -> None:
    from kaprules.auditing import AuditSummary

    summary = AuditSummary("p", "1", None, ())
    summary.add_compliant(3)
    assert (summary.lines_read, summary.courses, summary.compliant) == (3, 3, 3)
    for bad in (-1, True, 2.0):
        with pytest.raises(InputError, match="courses: must be a whole number"):
            summary.add_compliant(bad)  # type: ignore[arg-type]


def test_chunks_wait_for_their_workers_in_shared_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    from kaprules.auditing import LineBlock, Record

    chunk: list[Any] = [
        LineBlock("a", 1, b"{}\n[]\n", 2),
        Record(3, "{}"),
        LineBlock("a", 4, b"x\n", 1),
    ]
    first, second = pipeline.Shared(1), pipeline.Shared(1)
    try:
        packed = first.packed((chunk, None))
        assert packed[2] is not None
        assert [u.data for u in packed[0]] == [b"", "{}", b""]
        # Read back by its buffer's key, whichever other audit's buffer is live: as the
        # lines joined when every block ends its last line, else block by block.
        assert pipeline.Shared.unpacked(packed[0], packed[2]) == (packed[0], b"{}\n[]\nx\n")
        ragged: list[Any] = [LineBlock("a", 1, b"{}", 1), LineBlock("b", 1, b"x\n", 1)]
        packed_ragged = second.packed((ragged, None))
        assert packed_ragged[2] is not None
        assert pipeline.Shared.unpacked(packed_ragged[0], packed_ragged[2]) == (ragged, None)
        second.release(packed_ragged)
        # No free slot, or no lines: the chunk travels with its task.
        assert first.packed((chunk, None)) == (chunk, None, None)
        assert second.packed(([Record(1, "{}")], None))[2] is None
        first.release(packed)
        assert first.packed((chunk, None))[2] == (first.key, 0, (6, 2))
        monkeypatch.setattr(pipeline.Shared, "SLOT", 7)
        assert second.packed((chunk, None)) == (chunk, None, None)  # too large
    finally:
        first.close()
        second.close()
    assert first.key not in pipeline.Shared.live


def test_two_audits_at_once_read_their_own_chunks(tmp_path: Path) -> None:
    # Each audit's workers inherit every buffer live when they are forked: a task names
    # its own. Two audits in two threads, each with workers, must not mix their lines.
    paths = []
    for seed in (1, 2):
        paths.append(_write(tmp_path / f"{seed}.jsonl", make_audit_data.lines(400, seed=seed)))
    script = (
        "import sys, threading\n"
        "from kaprules import STANDARD\n"
        "from kaprules.auditing import audit, read_records\n"
        "def run(path, engine, out):\n"
        "    run = audit(read_records([path]), STANDARD, jobs=2, engine=engine)\n"
        "    out.append(''.join(run.findings_text('jsonl')))\n"
        "alone = [[], []]\n"
        "for path, out in zip(sys.argv[1:], alone):\n"
        "    run(path, 'records', out)\n"
        "both = [[], []]\n"
        "threads = [threading.Thread(target=run, args=(p, 'columnar', o))\n"
        "           for p, o in zip(sys.argv[1:], both)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "assert both == alone and alone[0] != alone[1], 'mixed'\n"
        "print('ok')\n"
    )
    assert _fresh(script, *map(str, paths)) == (0, "ok\n", "")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_zone_tables_are_not_kept_for_every_set_of_zones() -> None:
    # A chunk's zones make one offset table, some 16 bytes a segment (a megabyte for the
    # zones of Europe, 3 MiB for every zone). Kept for each set of zones met, they took a
    # worker past 500 MB on a million courses whose chunks each had zones of their own.
    import gc
    import zoneinfo

    def resident() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) << 10 for line in status if line.startswith("VmRSS"))

    zones = sorted(z for z in zoneinfo.available_timezones() if z.startswith("Europe/"))[:40]
    session = {"id": "s1", "start": "2026-12-01T16:00:00Z", "last_food": "2026-12-01T08:00:00Z"}

    def chunk(left_out: int) -> bytes:
        courses = (
            {"id": f"c{k}", "timezone": zone, "sessions": [{**session, "escort": "E"}]}
            for k, zone in enumerate(zones)
            if k != left_out
        )
        return "".join(json.dumps(c, separators=(",", ":")) + "\n" for c in courses).encode()

    assert (
        columnar_findings.read_tables(chunk(-1), STANDARD) is not None
    )  # every zone's own table made
    gc.collect()
    before = resident()
    for left_out in range(len(zones)):  # a set of zones of its own each time
        columnar_findings.read_tables(chunk(left_out), STANDARD)
    gc.collect()
    assert resident() - before < 12 << 20


def test_a_rule_with_unhashable_fields_is_read_as_columns(tmp_path: Path) -> None:
    # A rule that inherits a built-in rule's two forms is read as columns: its protocol
    # must not need to be hashable (a list among its fields) for its plan to be kept.
    import attrs

    @attrs.frozen
    class NotedEscort(Escort):
        notes: list[str] = attrs.field(factory=list, kw_only=True)

    protocol = Protocol("noted", "1", (NotedEscort(notes=["x"]), Fasting()))
    assert forms.supports(protocol)
    path = _write(tmp_path / "in.jsonl", list(make_audit_data.lines(60, seed=3)))
    texts = [
        "".join(audit(read_records([str(path)]), protocol, engine=engine).findings_text())
        for engine in ("records", "columnar")
    ]
    assert texts[1] == texts[0] != ""


def test_equal_protocols_worded_apart_each_have_their_messages(tmp_path: Path) -> None:
    # Fasting(hours=0.0) == Fasting(hours=-0.0), but the second says "at least -0 h": a
    # plan kept for one protocol must not word another one's findings.
    start = "2026-12-01T09:00:00-07:00"
    session = {"id": "s1", "start": start, "last_food": _minus(start, hours=-1), "escort": "E"}
    course = {"id": "c", "timezone": "America/Denver", "sessions": [session]}
    path = _write(tmp_path / "in.jsonl", [json.dumps(course, separators=(",", ":"))])
    texts = []
    for hours in (0.0, -0.0):
        protocol = Protocol("fast", "1", (Fasting(hours=hours),))
        for engine in ("columnar", "records"):
            run = audit(read_records([str(path)]), protocol, engine=engine)
            texts.append("".join(run.findings_text()))
    assert "at least -0 h" in texts[3]
    assert texts[0::2] == texts[1::2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_chunk_read_from_its_slot_leaves_no_page_resident() -> None:
    # A worker reads a chunk from a slot and keeps its own copy: the slot's pages, left
    # resident, counted in each worker's memory for every slot it had read (a worker
    # passed 500 MB with --jobs 2 on lines near the 16 MiB limit).
    from kaprules.auditing import LineBlock

    def shared_resident() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) << 10 for line in status if "RssShmem" in line)

    data = b"".join(b"%07d\n" % i for i in range(1 << 20))  # 8 MiB
    shared = pipeline.Shared(1)
    try:
        before = shared_resident()
        chunk, _, slot = shared.packed(([LineBlock("a", 1, data, 1 << 20)], None))
        assert slot is not None
        assert shared_resident() - before >= 8 << 20  # written here, as the main process does
        _, joined = pipeline.Shared.unpacked(chunk, slot)
        assert joined == data
        assert shared_resident() - before < 1 << 20
    finally:
        shared.close()


@pytest.mark.parametrize("engine", ["records", "columnar"])
def test_an_audit_read_on_after_its_first_thread_ended(tmp_path: Path, engine: str) -> None:
    # A thread pool, or a web server's request threads, may read an audit begun in a
    # thread that has ended since: its workers must live as long as the process does
    # (the kernel's parent-death signal is the forking thread's: not asked for there).
    path = _write(tmp_path / "in.jsonl", list(make_audit_data.lines(600, seed=2)))
    script = (
        "import sys, threading\n"
        "from kaprules import STANDARD, auditing\n"
        "from kaprules._columnar import engine as columnar\n"
        "from kaprules.auditing import audit, files, read_records\n"
        "files.BLOCK_BYTES = columnar.CHUNK_BYTES = 16 << 10  # many chunks\n"
        "def texts(jobs, engine):\n"
        "    run = audit(read_records([sys.argv[1]]), STANDARD, jobs=jobs, engine=engine)\n"
        "    return run.findings_text('jsonl')\n"
        "alone = ''.join(texts(1, 'records'))  # (Polars not loaded: workers are forked)\n"
        "pieces = texts(2, sys.argv[2])\n"
        "read = []\n"
        "first = threading.Thread(target=lambda: read.append(next(pieces)))\n"
        "first.start()\n"
        "first.join()\n"
        "read.extend(pieces)\n"
        "print(''.join(read) == alone != '')\n"
    )
    assert _fresh(script, str(path), engine) == (0, "True\n", "")


def test_a_protocol_without_rules_gives_the_same_results(tmp_path: Path) -> None:
    # Nothing to vectorise: every form of Polars' fold over no finding forms failed
    # (ComputeError, "internal error" from the CLI with the default engine).
    protocol = Protocol("empty", "1", ())
    path = _write(tmp_path / "in.jsonl", [*_hostile(), *make_audit_data.lines(30, seed=1)])
    seen = []
    for engine in ("records", "columnar", "auto"):
        run = audit(read_records([str(path)]), protocol, engine=engine)
        seen.append(("".join(run.findings_text()), run.summary.to_dict()))
    assert seen == [seen[0]] * 3
    assert seen[0][1]["compliant"] > 0


def test_slots_reused_and_the_pipe_give_the_same_results(tmp_path: Path) -> None:
    # Small blocks, chunks and slots: real forked workers get chunks through reused
    # slots and, for chunks too large for a slot, through the pipe; all read the same.
    path = _write(tmp_path / "in.jsonl", [*_hostile(), *make_audit_data.lines(250, seed=9)])
    script = (
        "import sys\n"
        "from kaprules import STANDARD, auditing\n"
        "from kaprules._columnar import engine\n"
        "from kaprules.auditing import files, pipeline\n"
        "files.BLOCK_BYTES = 4096\n"
        "engine.CHUNK_BYTES = 1 << 14\n"
        "pipeline.Shared.SLOT = 18_000\n"
        "ways = []\n"
        "packed = pipeline.Shared.packed\n"
        "def counted(self, task):\n"
        "    out = packed(self, task)\n"
        "    ways.append(out[2][1] if out[2] is not None else 'pipe')\n"
        "    return out\n"
        "pipeline.Shared.packed = counted\n"
        "seen = []\n"
        "for engine, jobs in (('records', 1), ('columnar', 2)):\n"
        "    for form in ('jsonl', 'csv'):\n"
        "        run = auditing.audit(auditing.read_records([sys.argv[1]]), STANDARD,\n"
        "                             jobs=jobs, engine=engine)\n"
        "        seen.append((''.join(run.findings_text(form)), run.summary.to_dict()))\n"
        "assert seen[2:] == seen[:2], 'engines differ'\n"
        "reused = len([w for w in ways if w != 'pipe']) > 2 * len(set(ways) - {'pipe'})\n"
        "assert 'pipe' in ways and reused, ways\n"
        "print('ok')\n"
    )
    assert _fresh(script, str(path)) == (0, "ok\n", "")


def test_a_course_past_the_session_limit_is_rejected_as_the_loader_does(tmp_path: Path) -> None:
    # The loader refuses a course of more than MAX_SESSIONS sessions; a line of the
    # course's shape that holds them must not be read as columns.
    from kaprules.course_files import MAX_SESSIONS

    first = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def course(n: int) -> str:
        starts = [
            (first + dt.timedelta(hours=3 * k)).strftime("%Y-%m-%dT%H:%M:%SZ") for k in range(n)
        ]
        sessions = [{"start": start} for start in starts]
        return json.dumps(
            {"id": f"c{n}", "timezone": "UTC", "sessions": sessions}, separators=(",", ":")
        )

    path = _write(tmp_path / "in.jsonl", [course(MAX_SESSIONS), course(MAX_SESSIONS + 1)])
    protocol = PROTOCOLS[4]  # lenient: both courses compliant, were they read
    records = audit(read_records([str(path)]), protocol, engine="records")
    results = list(records)
    assert [r.rejected is None for r in results] == [True, False]
    run = audit(read_records([str(path)]), protocol, engine="columnar")
    assert list(run) == results
    assert run.summary.to_dict() == records.summary.to_dict()
    # The course at the limit is still read as columns.
    assert columnar_findings.evaluated(path.read_bytes(), protocol)[1][0] == [0]


@pytest.mark.parametrize(("limit", "name"), [(3, "BLOCK_LINES"), (40, "BLOCK_BYTES")])
def test_a_partition_is_cut_in_the_file_readers_blocks(
    limit: int, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dask partitions and files go in blocks of the same bounds, the reader's own.
    from kaprules import dask

    monkeypatch.setattr(dask, name, limit)
    items: list[object] = [f'{{"n": {k}}}\n' for k in range(10)]
    items[6] = {"not": "a line"}
    units = list(dask._partition_units(items, 5, "bag"))
    assert [(u.first_line, u.lines) for u in units if isinstance(u, LineBlock)] == (
        [(5, 3), (8, 3), (12, 3)] if name == "BLOCK_LINES" else [(5, 5), (10, 1), (12, 3)]
    )
    assert [u.line for u in units if isinstance(u, Record)] == [11]


@pytest.mark.parametrize("ending", [b"", b"\r\n"])
def test_files_the_workers_read_themselves_give_the_same_outputs(
    ending: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A regular file of JSON Lines read by the workers (the main process only finds
    # where blocks start, and a thread hashes it): the outputs of the streamed reading,
    # byte for byte, across blocks cut at odd places, blank lines, runs of more lines
    # than a block holds, and a last line with or without its line break.
    lines: list[str | bytes] = [*_hostile(), *make_audit_data.lines(120, seed=5)]
    lines[40:40] = [b""] * 700 + [b"x" * 3000]  # many lines in a few bytes; a long line
    data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    path = tmp_path / "in.jsonl"
    path.write_bytes(data[:-1] + ending)
    twice = [str(path), str(path)]  # each input's lines counted from 1
    expected = [_outputs(path, STANDARD, "records"), _texts(twice)]
    assert expected[0][0][-1].line == len(lines)
    monkeypatch.setattr(files, "SPANS_FROM", 0)
    monkeypatch.setattr(files, "BLOCK_BYTES", 2000)  # blocks cut within lines' reach
    monkeypatch.setattr(files, "BLOCK_LINES", 200)
    monkeypatch.setattr(files, "_COUNT_BYTES", 10_000)
    assert files.block_starts(str(path), path.stat().st_size) is not None
    for engine in ("records", "columnar"):
        run = audit(read_records([str(path)]), STANDARD, engine=engine, jobs=2, sample=5)
        got = [(list(run), run.summary.to_dict(), run.samples), _texts(twice, engine)]
        assert got == expected
    digest = hashlib.sha256()
    run = audit(read_records([str(path)], digest=digest), STANDARD, jobs=2)
    assert (
        run.summary.input_sha256
        == digest.hexdigest()
        == hashlib.sha256(path.read_bytes()).hexdigest()
    )


def _texts(paths: list[str], engine: str = "records") -> tuple[str, dict[str, Any]]:
    run = audit(read_records(paths), STANDARD, jobs=2, engine=engine)
    return "".join(run.findings_text("jsonl", inputs=True)), run.summary.to_dict(sources=True)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_telling_a_file_is_not_regular_neither_reads_nor_waits_for_it(tmp_path: Path) -> None:
    # A pipe named by a path (/dev/stdin) keeps every byte for the stream that reads it,
    # and a FIFO without a writer is not opened (which would wait for one).
    read, write = os.pipe()
    os.write(write, b"{}\n" * 10)
    os.close(write)
    try:
        assert files.plain_files([f"/dev/fd/{read}"]) is None
        assert os.read(read, 100) == b"{}\n" * 10
    finally:
        os.close(read)
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    told: list[object] = []
    telling = threading.Thread(target=lambda: told.append(files.plain_files([str(fifo)])))
    telling.start()
    telling.join(5)
    waited = telling.is_alive()
    if waited:  # it opened the FIFO, waiting for a writer: one comes, and goes
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        telling.join()
    assert (told, waited) == ([None], False)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="no /proc here")
def test_a_file_whose_size_says_nothing_is_read_as_a_stream(tmp_path: Path) -> None:
    # /proc's files say they hold 0 bytes: workers reading that many would audit none of
    # their lines, which the stream reads.
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert files.plain_files([str(empty)]) == [0]
    assert files.plain_files([str(empty), "/proc/self/status"]) is None


def test_files_the_workers_read_are_the_ones_each_audit_began_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file renamed over an input between two audits in one process (here Polars is
    # loaded: the columnar engine reads the files' spans in this process) is read by the
    # second, not the file the first held open; each audit reads the bytes it measured
    # at its start, and its digest is theirs, however the file grows.
    monkeypatch.setattr(files, "SPANS_FROM", 0)
    monkeypatch.setattr(files, "BLOCK_BYTES", 4000)
    lines = list(make_audit_data.lines(20, seed=6))
    path = tmp_path / "in.jsonl"
    counts = []
    for kept in (lines, lines[::-1][:15]):
        fresh = tmp_path / "fresh.jsonl"
        fresh.write_text("".join(line + "\n" for line in kept))
        fresh.replace(path)
        run = audit(read_records([str(path)]), STANDARD, engine="columnar", jobs=2)
        assert [r.course_id for r in run] == [json.loads(line)["id"] for line in kept]
        counts.append(run.summary.lines_read)
    assert counts == [20, 15]
    data = path.read_bytes()
    with path.open("ab") as grown:
        grown.write(b"{}\n")
    assert files.hashed([("in", str(path), len(data))]) == (
        hashlib.sha256(data).hexdigest(),
        [("in", hashlib.sha256(data).hexdigest())],
    )
    with pytest.raises(InputError, match="in: it changed while it was read"):
        files.hashed([("in", str(path), len(data) + 4)])
    # More inputs than are held open: each read where it is, with the same results.
    monkeypatch.setattr(files, "_HELD_AT_MOST", 1)
    run = audit(read_records([str(path), str(path)]), STANDARD, engine="columnar", jobs=2)
    assert run.summary.lines_read == 32
    assert run.summary.input_sha256 == hashlib.sha256(path.read_bytes() * 2).hexdigest()


def test_a_line_too_long_sends_a_file_the_streamed_way(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"{}\n" + b"x" * (auditing.MAX_LINE_BYTES + 1) + b"\n{}\n")
    assert files.block_starts(str(path), path.stat().st_size) is None
    path.write_bytes(b"{}\n" + b"x" * auditing.MAX_LINE_BYTES + b"\n{}\n")
    assert files.block_starts(str(path), path.stat().st_size) == [0, path.stat().st_size - 3]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.sampled_from(["good", "twice", "session twice", "junk", "blank", "crlf"]),
        min_size=1,
        max_size=12,
    )
)
def test_a_key_given_twice_is_found_whether_lines_are_counted_at_once_or_each(
    kinds: list[str],
) -> None:
    # Lines whose quotes are counted together (no CR in the chunk) or each on its own:
    # every course whose line gives a key twice is left to the per-record way, the lines
    # around it (left out or not, at the chunk's start, middle or end) whatever they are.
    good = list(make_audit_data.lines(len(kinds), seed=11))
    made: dict[str, Callable[[str], str]] = {
        "good": lambda line: line,
        "twice": lambda line: line.replace('"timezone"', '"timezone":"UTC","timezone"', 1),
        "session twice": lambda line: line.replace('"escort"', '"escort":"x","escort"', 1),
        "junk": lambda line: '"a"b"' + line,
        "blank": lambda line: "",
        "crlf": lambda line: line + "\r",
    }
    lines = [made[kind](line) for kind, line in zip(kinds, good, strict=True)]
    data = "".join(line + "\n" for line in lines).encode()
    courses = columnar_findings.courses_of(data)
    rows = [] if courses is None else courses["row"].to_list()
    assert rows == [
        n for n, kind in enumerate(kinds) if kind in ("good", "twice", "session twice", "crlf")
    ]
    twice = {"twice", "session twice"} & set(kinds)
    assert courses is None or ("course_quotes" in courses.columns) == bool(twice or "crlf" in kinds)
    found, (compliant, _, _) = columnar_findings.evaluated(data, STANDARD)
    taken = set(found) | set(compliant)
    assert not {n for n, kind in enumerate(kinds) if kind in twice} & taken
    assert {n for n, kind in enumerate(kinds) if kind in ("good", "crlf")} <= taken


@settings(max_examples=300, deadline=None)
@given(
    st.dates(dt.date(1900, 12, 31), dt.date(2200, 1, 1)),
    st.sampled_from([1, 2, 6, 11, 12, 13, 59, 1_200]),
)
def test_the_months_later_table_is_add_months_of_every_day(day: dt.date, months: int) -> None:
    table = columns.months_later(months)
    at = (day - dt.date(1970, 1, 1)).days
    assert (
        table[at - columns.FIRST_DAY] == (_time.add_months(day, months) - dt.date(1970, 1, 1)).days
    )


def test_the_months_later_table_covers_every_local_date_and_no_more() -> None:
    # Its ends and month ends (Jan 31 + 1 month is Feb 28, or 29), and a date outside it
    # is an unknown (null), never a wrong date.
    first = columns.FIRST_DAY
    table = columns.months_later(1)
    assert (first, columns.LAST_DAY) == (
        (dt.date(1900, 12, 31) - dt.date(1970, 1, 1)).days,
        (dt.date(2200, 1, 1) - dt.date(1970, 1, 1)).days,
    )
    assert table.len() == columns.LAST_DAY - first + 1
    for day, later in [
        (dt.date(1900, 12, 31), dt.date(1901, 1, 31)),
        (dt.date(2024, 1, 31), dt.date(2024, 2, 29)),
        (dt.date(2100, 1, 31), dt.date(2100, 2, 28)),
        (dt.date(2000, 1, 30), dt.date(2000, 2, 29)),
        (dt.date(2200, 1, 1), dt.date(2200, 2, 1)),
    ]:
        at = (day - dt.date(1970, 1, 1)).days
        assert table[at - first] == (later - dt.date(1970, 1, 1)).days
    import polars as pl

    vectorised = columns.Columns(None)
    days = pl.DataFrame({"d": [first - 1, first, columns.LAST_DAY + 1, None]})
    got = days.select(vectorised.add_months(pl.col("d"), 1))[:, 0].to_list()
    assert got == [None, (dt.date(1901, 1, 31) - dt.date(1970, 1, 1)).days, None, None]


@settings(max_examples=200, deadline=None)
@given(st.dates(dt.date(1890, 1, 1), dt.date(2210, 12, 31)))
def test_dates_are_written_as_isoformat_or_unknown_outside_the_table(day: dt.date) -> None:
    import polars as pl

    at = (day - dt.date(1970, 1, 1)).days
    got = pl.DataFrame({"d": [at]}).select(columns.iso_text(pl.col("d")))[0, 0]
    inside = columns.FIRST_DAY <= at <= columns.LAST_DAY
    assert got == (day.isoformat() if inside else None)
