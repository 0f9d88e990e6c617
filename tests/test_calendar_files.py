"""Calendars a clinic can write: closures as ranges, reasons, session length and place."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import icalendar
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import ClinicCalendar, Closure, Course, InputError, plan
from kaprules.clinic_calendar import _MAX_DURATION_MINUTES, _MAX_TEXT, WEEKDAYS

ROOT = Path(__file__).resolve().parent.parent
DENVER = "America/Denver"
DAY = dt.timedelta(days=1)
ALL_DAYS = list(range(7))


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def problems_of(call: Callable[[], object]) -> list[str]:
    with pytest.raises(InputError) as info:
        call()
    return [str(p) for p in info.value.problems]


# --- closures -----------------------------------------------------------------------------

WINTER = Closure(d("2026-12-24"), d("2027-01-02"), "Winter break")


@pytest.mark.parametrize(
    ("date", "open_"),
    [
        ("2026-12-23", True),  # the day before
        ("2026-12-24", False),  # the first day, included
        ("2026-12-31", False),  # the year's last day
        ("2027-01-01", False),  # across the year
        ("2027-01-02", False),  # the last day, included
        ("2027-01-03", True),  # the day after
    ],
)
def test_a_closure_includes_both_ends_across_a_year(date: str, open_: bool) -> None:
    calendar = ClinicCalendar(weekdays=ALL_DAYS, closed=[WINTER])
    assert calendar.is_open(d(date)) is open_
    assert (calendar.closure(d(date)) is None) is open_


@pytest.mark.parametrize(
    ("start", "end", "inside", "outside"),
    [
        ("2027-02-27", "2027-03-01", ["2027-02-28", "2027-03-01"], ["2027-03-02", "2027-02-26"]),
        ("2028-02-28", "2028-03-01", ["2028-02-29"], ["2028-03-02"]),  # a leap day
        ("2026-01-31", "2026-02-01", ["2026-01-31", "2026-02-01"], ["2026-02-02"]),
        ("2026-05-05", "2026-05-05", ["2026-05-05"], ["2026-05-04", "2026-05-06"]),  # one day
    ],
)
def test_closures_across_month_ends(
    start: str, end: str, inside: list[str], outside: list[str]
) -> None:
    calendar = ClinicCalendar(weekdays=ALL_DAYS, closed=[Closure(d(start), d(end))])
    assert [calendar.is_open(d(x)) for x in inside] == [False] * len(inside)
    assert [calendar.is_open(d(x)) for x in outside] == [True] * len(outside)


def test_a_long_closure_is_compared_not_listed() -> None:
    # Centuries closed: looked up by comparison, so it costs nothing to build.
    ages = Closure(d("1900-01-01"), d("8999-12-31"), "Renovation")
    calendar = ClinicCalendar(weekdays=ALL_DAYS, closed=[ages, d("9000-06-01")])
    assert calendar.closure(d("2026-12-01")) == "closed: Renovation"
    assert calendar.closure(d("9000-06-01")) == "the clinic is closed on 9000-06-01"
    assert calendar.closure(d("9000-01-01")) is None


@pytest.mark.parametrize(
    ("calendar", "date", "reason"),
    [
        (ClinicCalendar(), "2026-12-06", "the clinic is closed on Sundays"),
        (ClinicCalendar(), "2026-12-05", "the clinic is closed on Saturdays"),
        (ClinicCalendar(weekdays=["tue"]), "2026-12-07", "the clinic is closed on Mondays"),
        (ClinicCalendar(closed=[WINTER]), "2026-12-24", "closed: Winter break"),
        (
            ClinicCalendar(closed=[d("2026-12-24")]),
            "2026-12-24",
            "the clinic is closed on 2026-12-24",
        ),
        (
            ClinicCalendar(closed=[Closure(d("2026-12-21"), d("2026-12-22"))]),
            "2026-12-22",
            "the clinic is closed on 2026-12-22",
        ),
        # A reason wins over a plain closed date on the same day; the weekday over both.
        (ClinicCalendar(closed=[d("2026-12-28"), WINTER]), "2026-12-28", "closed: Winter break"),
        (ClinicCalendar(closed=[WINTER]), "2026-12-26", "the clinic is closed on Saturdays"),
        (ClinicCalendar(holidays="US"), "2026-12-25", "Christmas Day (public holiday)"),
        # The holiday of a subdivision only: Colorado's Cesar Chavez Day (a Tuesday).
        (
            ClinicCalendar(holidays="US", subdivision="CO"),
            "2026-03-31",
            "Cesar Chavez Day (public holiday)",
        ),
        (ClinicCalendar(holidays="US"), "2026-03-31", None),
        (ClinicCalendar(holidays="US", closed=[WINTER]), "2026-12-25", "closed: Winter break"),
        (ClinicCalendar(holidays="US"), "2026-12-24", None),
    ],
)
def test_closure_reasons(calendar: ClinicCalendar, date: str, reason: str | None) -> None:
    assert calendar.closure(d(date)) == reason
    assert calendar.is_open(d(date)) is (reason is None)


def test_holiday_names_are_bounded_and_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    from kaprules import clinic_calendar

    names = {d("2026-12-25"): "Feast\n\x1b[2J" + "x" * 300}
    monkeypatch.setattr(clinic_calendar, "_holiday_names", lambda *_: names)
    reason = ClinicCalendar(holidays="US").closure(d("2026-12-25"))
    assert reason is not None
    assert reason.isprintable()
    assert "\x1b" not in reason
    assert len(reason) < 120
    assert reason.endswith("(public holiday)")


@st.composite
def calendars(draw: st.DrawFn) -> ClinicCalendar:
    base = d("2026-11-01")
    offsets = st.integers(0, 120)
    items: list[dt.date | Closure] = [base + k * DAY for k in draw(st.lists(offsets, max_size=4))]
    for first, length, reason in draw(
        st.lists(
            st.tuples(offsets, st.integers(0, 20), st.sampled_from([None, "Break"])), max_size=3
        )
    ):
        items.append(Closure(base + first * DAY, base + (first + length) * DAY, reason))
    return ClinicCalendar(
        weekdays=draw(st.sets(st.integers(0, 6), min_size=1)),
        closed=draw(st.permutations(items)),
        holidays=draw(st.sampled_from([None, "US"])),
        duration_minutes=draw(st.none() | st.integers(1, _MAX_DURATION_MINUTES)),
        location=draw(st.sampled_from([None, "Room 2, 14 Lake St"])),
    )


@settings(max_examples=40)
@given(calendars(), st.integers(0, 160))
def test_is_open_exactly_when_there_is_no_closure(calendar: ClinicCalendar, offset: int) -> None:
    date = d("2026-10-20") + offset * DAY
    reason = calendar.closure(date)
    assert calendar.is_open(date) is (reason is None)
    covered = any((date in c) if isinstance(c, Closure) else date == c for c in calendar.closed)
    if covered or date.weekday() not in [WEEKDAYS.index(w) for w in calendar.weekdays]:
        assert reason is not None


@settings(max_examples=40)
@given(calendars())
def test_to_dict_round_trips_and_meets_the_schema(calendar: ClinicCalendar) -> None:
    data = calendar.to_dict()
    jsonschema.validate(data, kaprules.calendar_schema())
    assert ClinicCalendar.from_dict(data) == calendar
    assert kaprules.parse_calendar(json.dumps(data), format="json") == calendar


def test_dates_and_closures_are_kept_in_order_without_repeats() -> None:
    a = ClinicCalendar(closed=[WINTER, d("2026-12-01"), d("2026-12-01"), WINTER])
    b = ClinicCalendar(closed=(d("2026-12-01"), WINTER))
    assert a == b
    assert a.closed == (d("2026-12-01"), WINTER)


def test_a_toml_file_with_closure_tables() -> None:
    text = """
closed = [
  2026-12-11,
  "2026-12-14",
  {from = 2026-12-24, to = 2027-01-02, reason = "Winter break"},
  {from = "2027-02-01", to = "2027-02-03"},
]
duration_minutes = 150
location = "Lakeside Clinic, Room 2"
"""
    calendar = kaprules.parse_calendar(text)
    assert calendar.closed == (
        d("2026-12-11"),
        d("2026-12-14"),
        WINTER,
        Closure(d("2027-02-01"), d("2027-02-03")),
    )
    assert calendar.duration_minutes == 150
    assert calendar.location == "Lakeside Clinic, Room 2"


@pytest.mark.parametrize(
    ("closed", "expected"),
    [
        ("[{from = 2026-12-24, to = 2026-12-23}]", "closed[0].to: 2026-12-23 is before from"),
        ('[{from = "2026-02-30", to = 2026-03-02}]', "closed[0].from: must be a date YYYY-MM-DD"),
        ("[{from = 2026-12-24}]", "closed[0].to: is required"),
        ("[{to = 2026-12-24}]", "closed[0].from: is required"),
        ("[{from = 2026-12-24, to = 2026-12-25, untill = 1}]", "closed[0]: unknown field"),
        ("[{from = 2026-12-24, to = 2026-12-25, reazon = 'x'}]", "closed[0].reazon: unknown"),
        ("[{from = 2026-12-24, to = 2026-12-25, reason = ''}]", "closed[0].reason: must not"),
        (
            '[{from = 2026-12-24, to = 2026-12-25, reason = "a\\nb"}]',
            "closed[0].reason: must be one",
        ),
        (
            "[{from = 2026-12-24, to = 2026-12-25, reason = 3}]",
            "closed[0].reason: must be a string",
        ),
        ("[2026-12-01, {from = 2026-12-24, to = 12}]", "closed[1].to: must be a date, got int"),
        ("[{from = 2026-12-24T09:00:00, to = 2026-12-25}]", "closed[0].from: must be a date"),
        ("[{from = 1899-12-31, to = 2026-12-25}]", "closed[0].from: is outside the years"),
        ("[12]", "closed[0]: must be a date YYYY-MM-DD or a closure"),
    ],
)
def test_closure_problems_name_the_path(closed: str, expected: str) -> None:
    found = problems_of(lambda: kaprules.parse_calendar(f"closed = {closed}\n"))
    assert any(p.startswith(expected) for p in found), found


def test_a_long_reason_is_refused_at_the_bound() -> None:
    ok = Closure(d("2026-12-24"), d("2026-12-24"), "x" * _MAX_TEXT)
    assert ok.reason is not None
    found = problems_of(lambda: Closure(d("2026-12-24"), d("2026-12-24"), "x" * (_MAX_TEXT + 1)))
    assert found == [f"reason: must be at most {_MAX_TEXT} characters"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"start": d("2026-12-02"), "end": d("2026-12-01")}, "end: 2026-12-01 is before start"),
        ({"start": "2026-12-01", "end": d("2026-12-01")}, "start: must be a date, got str"),
        ({"start": d("2026-12-01"), "end": dt.datetime(2026, 12, 2)}, "end: must be a date"),
        ({"start": d("2026-12-01"), "end": d("2026-12-01"), "reason": " "}, "reason: must not"),
    ],
)
def test_closure_problems_in_python(kwargs: dict[str, object], expected: str) -> None:
    found = problems_of(lambda: Closure(**kwargs))  # type: ignore[arg-type]
    assert found[0].startswith(expected), found


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("duration_minutes = 0", "duration_minutes: must be from 1 to 1440"),
        ("duration_minutes = 1441", "duration_minutes: must be from 1 to 1440"),
        ("duration_minutes = 90.0", "duration_minutes: must be a whole number"),
        ("duration_minutes = true", "duration_minutes: must be a whole number"),
        ('location = ""', "location: must not be blank"),
        ('location = "a\\tb"', "location: must be one line"),
        (f'location = "{"x" * (_MAX_TEXT + 1)}"', "location: must be at most"),
    ],
)
def test_session_length_and_place_problems(fields: str, expected: str) -> None:
    found = problems_of(lambda: kaprules.parse_calendar(fields + "\n"))
    assert found == [found[0]]
    assert found[0].startswith(expected), found


@pytest.mark.parametrize("minutes", [1, _MAX_DURATION_MINUTES])
def test_session_length_bounds_are_accepted(minutes: int) -> None:
    assert ClinicCalendar(duration_minutes=minutes).duration_minutes == minutes


def test_schema_and_loader_share_their_bounds() -> None:
    schema = kaprules.calendar_schema()
    props = schema["properties"]
    assert props["duration_minutes"]["minimum"] == 1
    assert props["duration_minutes"]["maximum"] == _MAX_DURATION_MINUTES
    assert props["location"]["maxLength"] == _MAX_TEXT
    closure = props["closed"]["items"]["oneOf"][1]
    assert closure["properties"]["reason"]["maxLength"] == _MAX_TEXT
    assert sorted(closure["properties"]) == ["from", "reason", "to"]
    validator = jsonschema.Draft202012Validator(schema)
    refused = [
        {"closed": [{"from": "2026-12-24"}]},
        {"closed": [{"from": "2026-12-24", "to": "2026-12-25", "why": "x"}]},
        {"closed": [{"from": "2026-12-24", "to": "2026-12-25", "reason": "a\nb"}]},
        {"duration_minutes": 0},
        {"duration_minutes": 1441},
        {"location": "x" * (_MAX_TEXT + 1)},
    ]
    for data in refused:
        assert list(validator.iter_errors(data)), data
        with pytest.raises(InputError):
            ClinicCalendar.from_dict(data)


# --- iCalendar: DTEND and LOCATION --------------------------------------------------------


def events(p: kaprules.Plan) -> list[icalendar.Component]:
    return list(icalendar.Calendar.from_ical(p.to_ical()).walk("VEVENT"))


def test_events_have_an_end_and_a_place() -> None:
    calendar = ClinicCalendar(duration_minutes=150, location="Lakeside Clinic, Room 2")
    p = plan(Course(DENVER, []), d("2026-12-01"), calendar)
    found = events(p)
    assert len(found) == 6
    for event, session in zip(found, p.sessions, strict=True):
        end, start = event.decoded("dtend"), event.decoded("dtstart")
        assert end.astimezone(dt.UTC) - start.astimezone(dt.UTC) == dt.timedelta(minutes=150)
        assert event["dtend"].params["TZID"] == DENVER
        assert str(event["location"]) == "Lakeside Clinic, Room 2"
        assert event.decoded("dtstart") == session.start


def test_without_a_length_events_have_no_end() -> None:
    for event in events(plan(Course(DENVER, []), d("2026-12-01"))):
        assert "DTEND" not in event
        assert "LOCATION" not in event


@pytest.mark.parametrize(
    ("day", "at", "minutes", "wall_end", "in_utc"),
    [
        # Denver springs forward at 02:00 on 2027-03-14: 01:30 + 60 min is 03:30 local.
        ("2027-03-14", dt.time(1, 30), 60, "2027-03-14T03:30:00-06:00", False),
        # ... falls back at 02:00 on 2027-11-07: 00:30 + 120 min is the second 01:30.
        ("2027-11-07", dt.time(0, 30), 120, "2027-11-07T01:30:00-07:00", True),
        ("2027-11-07", dt.time(0, 30), 180, "2027-11-07T02:30:00-07:00", False),
        ("2027-11-06", dt.time(23, 0), 1440, "2027-11-07T22:00:00-07:00", False),
        ("2026-12-31", dt.time(23, 30), 60, "2027-01-01T00:30:00-07:00", False),
    ],
)
def test_dtend_is_elapsed_time_across_dst(
    day: str, at: dt.time, minutes: int, wall_end: str, in_utc: bool
) -> None:
    calendar = ClinicCalendar(weekdays=ALL_DAYS, at=at, duration_minutes=minutes)
    p = plan(Course(DENVER, []), d(day) - DAY, calendar)
    event = events(p)[0]
    start, end = event.decoded("dtstart"), event.decoded("dtend")
    assert start == p.sessions[0].start
    assert end == dt.datetime.fromisoformat(wall_end)
    assert end.astimezone(dt.UTC) - start.astimezone(dt.UTC) == dt.timedelta(minutes=minutes)
    assert ("TZID" not in event["dtend"].params) is in_utc


# --- command line -------------------------------------------------------------------------

IN_PROGRESS = ("plan", "examples/in-progress.json", "--as-of", "2026-12-09")


def plan_json(cli: Callable[..., tuple[int, str, str]], *args: str) -> dict[str, Any]:
    code, out, err = cli(*args, "--format", "json")
    assert (code, err) == (0, "")
    data: dict[str, Any] = json.loads(out)
    return data


def test_cli_closed_ranges_and_dates(cli: Callable[..., tuple[int, str, str]]) -> None:
    data = plan_json(cli, *IN_PROGRESS, "--closed", "2026-12-14..2026-12-14")
    assert data["status"] == "cannot-complete"
    assert data["calendar"]["closed"] == [{"from": "2026-12-14", "to": "2026-12-14"}]
    data = plan_json(
        cli, *IN_PROGRESS, "--open", "mon,tue,wed,thu,fri,sat,sun",
        "--closed", "2026-12-10..2026-12-12", "--closed", "2026-12-13",
    )  # fmt: skip
    assert [s["start"][:10] for s in data["sessions"]] == ["2026-12-14"]
    assert data["calendar"]["closed"] == [
        {"from": "2026-12-10", "to": "2026-12-12"},
        "2026-12-13",
    ]


NEW = ("plan", "-", "--as-of", "2026-03-30", "--open", "mon,tue,wed,thu,fri,sat,sun")
LAKESIDE = ("--calendar", "examples/calendars/lakeside.toml")
EMPTY = json.dumps({"timezone": DENVER, "sessions": []})


@pytest.mark.parametrize(
    ("options", "first", "holidays"),
    [
        ((), "2026-03-31", (None, None)),
        (("--holidays", "US"), "2026-03-31", ("US", None)),
        (("--holidays", "US", "--subdivision", "CO"), "2026-04-01", ("US", "CO")),
        # The file's country and subdivision (US, CO); the same country keeps its subdivision.
        (LAKESIDE, "2026-04-01", ("US", "CO")),
        ((*LAKESIDE, "--holidays", "US"), "2026-04-01", ("US", "CO")),
        # Another country drops the file's subdivision, which was of its own country.
        ((*LAKESIDE, "--holidays", "CA"), "2026-03-31", ("CA", None)),
        ((*LAKESIDE, "--subdivision", "NY"), "2026-03-31", ("US", "NY")),
    ],
)  # fmt: skip
def test_cli_holidays_and_subdivision(
    options: tuple[str, ...],
    first: str,
    holidays: tuple[str | None, str | None],
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, err = cli(*NEW, *options, "--format", "json", stdin=EMPTY)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["sessions"][0]["start"][:10] == first
    calendar = data["calendar"]
    assert (calendar.get("holidays"), calendar.get("subdivision")) == holidays


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--holidays", "XX"), "holidays: 'XX' is not a country code"),
        (("--holidays", "US", "--subdivision", "ZZ"), "subdivision: 'ZZ' is not a subdivision"),
        (("--subdivision", "CO"), "subdivision: needs holidays"),
        (("--holidays", "U S"), "is not a country or subdivision code"),
        (("--holidays", "US", "--holidays", "CA"), "--holidays is given twice"),
        (("--closed", "2026-12-10..2026-12-01"), "2026-12-01 is before start 2026-12-10"),
        (("--closed", "2026-12-10.."), "is not a date YYYY-MM-DD or a range"),
        (("--closed", "2026-12-10...2026-12-11"), "is not a date YYYY-MM-DD or a range"),
        (("--closed", "2026-02-30..2026-03-01"), "is not a real date"),
        (("--closed", "1899-12-31..2026-03-01"), "is outside the years"),
    ],
)
def test_cli_bad_calendar_options_are_one_line_exit_2(
    options: tuple[str, ...], expected: str, cli: Callable[..., tuple[int, str, str]]
) -> None:
    code, out, err = cli(*IN_PROGRESS, *options)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("kaprules: ")
    assert expected in err


@pytest.mark.parametrize(
    ("closed", "status", "why"),
    [
        ("2026-12-10..2026-12-31", "cannot-complete", "the series cannot be completed"),
        # compliant.json's booster: no open day for it within the horizon.
        ("2026-12-01..2028-12-31", "complete", "no session is proposed"),
    ],
)
def test_cli_no_ics_file_without_sessions(
    closed: str, status: str, why: str, cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    target = tmp_path / "plan.ics"
    target.write_bytes(b"the clinic's own file")
    course = (
        "examples/in-progress.json" if status == "cannot-complete" else "examples/compliant.json"
    )
    args = ("plan", course, "--as-of", "2026-12-09", "--closed", closed, "--ics", str(target))
    code, out, err = cli(*args)
    assert (code, err) == (0, "")
    assert out.startswith(f"{status}: ")
    assert out.endswith(f"\nno calendar file written to {target}: {why}\n")
    assert target.read_bytes() == b"the clinic's own file"
    code, out, err = cli(*args, "--format", "json")
    assert code == 0
    assert json.loads(out)["status"] == status
    assert err == f"kaprules: note: no calendar file written to {target}: {why}\n"
    assert target.read_bytes() == b"the clinic's own file"
    target.unlink()
    assert cli(*args)[0] == 0
    assert not target.exists()


def test_cli_ics_has_end_and_location_from_the_file(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    calendar = tmp_path / "clinic.toml"
    calendar.write_text('duration_minutes = 120\nlocation = "Room 2"\n')
    target = tmp_path / "plan.ics"
    code, out, _ = cli(*IN_PROGRESS, "--calendar", str(calendar), "--ics", str(target))
    assert code == 0
    assert out.endswith("(1 event)\n")
    (event,) = icalendar.Calendar.from_ical(target.read_bytes()).walk("VEVENT")
    assert event.decoded("dtend") - event.decoded("dtstart") == dt.timedelta(hours=2)
    assert str(event["location"]) == "Room 2"


# --- parse_session ------------------------------------------------------------------------

GOOD = {
    "id": "s4",
    "kind": "induction",
    "start": "2026-12-07T09:00:00-07:00",
    "last_food": "2026-12-07T04:30:00-07:00",
    "escort": "on file",
}


def test_parse_session_reads_an_object_text_and_bytes() -> None:
    expected = kaprules.Session(
        dt.datetime.fromisoformat(GOOD["start"]),
        "induction",
        "s4",
        dt.datetime.fromisoformat(GOOD["last_food"]),
        "on file",
    )
    assert kaprules.parse_session(GOOD) == expected
    assert kaprules.parse_session(json.dumps(GOOD)) == expected
    assert kaprules.parse_session(b"\xef\xbb\xbf" + json.dumps(GOOD).encode()) == expected
    assert kaprules.parse_session(json.dumps(GOOD).encode("utf-16")) == expected
    bare = kaprules.parse_session({"start": "2026-12-07T16:00:00Z"})
    assert (bare.id, bare.kind, bare.last_food) == (None, kaprules.Kind.INDUCTION, None)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "booster"}, ["start: is required"]),
        ({"start": "2026-12-07T09:00:00"}, ["start: '2026-12-07T09:00:00' is not an ISO 8601"]),
        ({**GOOD, "last_food": "2026-02-30T04:00:00-07:00"}, ["last_food: '2026-02-30T04:00"]),
        ({**GOOD, "last_food": 4}, ["last_food: must be an ISO 8601 date-time string, got"]),
        ({**GOOD, "kind": "boost"}, ["kind: unknown kind 'boost'"]),
        ({**GOOD, "last_meal": GOOD["last_food"]}, ["last_meal: unknown field; did you mean"]),
        ({**GOOD, "id": None}, ["id: must be a string, got null"]),
        ({**GOOD, "id": " "}, ["id: is empty"]),
        ({**GOOD, "escort": ["x"]}, ["escort: must be a string or null, got"]),
        ({**GOOD, "extra": {"a": float("nan")}}, ["extra.<key 0>: must be a finite number"]),
        (
            {"id": 3, "start": "soon", "kind": 1},
            ["id: must be a string, got", "start: 'soon' is not", "kind: must be a string"],
        ),
        ("[1]", ["a session must be a JSON object, got an array"]),
        ('{"start": 1', ["not valid JSON"]),
        ('{"start": "2026-12-07T16:00:00Z", "start": "x"}', ["duplicate key 'start'"]),
    ],
)
def test_parse_session_problems_are_pathed_from_the_session(
    data: object, expected: list[str]
) -> None:
    found = problems_of(lambda: kaprules.parse_session(data))  # type: ignore[arg-type]
    assert len(found) == len(expected), found
    for problem, start in zip(sorted(found), sorted(expected), strict=True):
        assert problem.startswith(start), found


def test_parse_session_never_echoes_an_escort() -> None:
    found = problems_of(lambda: kaprules.parse_session({**GOOD, "escort": "Jordan", "kind": 5}))
    assert not any("Jordan" in p for p in found)


VALUES = {
    "id": st.sampled_from(["s1", "", " ", None, 7]),
    "kind": st.sampled_from(["induction", "booster", "boost", None, 1]),
    "start": st.sampled_from(
        ["2026-12-07T09:00:00-07:00", "2026-12-07T09:00:00", "2026-13-01T09:00:00Z", 5]
    ),
    "last_food": st.sampled_from(["2026-12-07T04:00:00-07:00", None, "noon", []]),
    "escort": st.sampled_from(["on file", None, 3]),
    "therapist": st.sampled_from(["T", None, {}]),
    "extra": st.sampled_from([{"room": 2}, {"x": 2**70}, [], None]),
    "last_meal": st.just("2026-12-07T04:00:00-07:00"),
}


def outcome(read: Callable[[], Any]) -> tuple[Any, list[kaprules.Problem]]:
    try:
        return read(), []
    except InputError as exc:
        return None, list(exc.problems)


@settings(max_examples=60)
@given(st.fixed_dictionaries({}, optional=VALUES))
def test_parse_session_reads_as_a_course_reads_its_sessions(obj: dict[str, Any]) -> None:
    # The same object, alone and as the one session of a course: the same session, or the
    # same problems under the course's path to it.
    course_text = json.dumps({"timezone": DENVER, "sessions": [obj]})
    course, in_course = outcome(lambda: kaprules.parse_course(course_text))
    session, alone = outcome(lambda: kaprules.parse_session(obj))
    assert bool(in_course) == bool(alone)
    named = isinstance(obj.get("id"), str) and obj["id"].strip()
    step: kaprules.PathItem = (0, obj["id"]) if named else 0
    # The same paths, kinds and words; only the advice on a null id differs (no position).
    assert sorted((p.path, p.code) for p in in_course) == sorted(
        (("sessions", step, *p.path), p.code) for p in alone
    )
    assert sorted(p.what for p in in_course if p.path[-1] != "id") == sorted(
        p.what for p in alone if p.path[-1] != "id"
    )
    if course is not None:
        expected = course.sessions[0]
        if "id" not in obj:
            assert session.id is None
            assert expected.id == "1"  # a positional id, as the course gives one
            session = attrs.evolve(session, id="1")
        assert session == expected


@settings(max_examples=30)
@given(calendars())
def test_compared_closures_answer_as_listed_ones(calendar: ClinicCalendar) -> None:
    # Long closures, and those past the budget of listed days, are compared on each lookup:
    # the same answers as the listed ones, day by day.
    from kaprules import clinic_calendar

    days = [d("2026-10-25") + k * DAY for k in range(150)]
    listed = [calendar.closure(x) for x in days]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clinic_calendar, "_EXPANDED_BUDGET", 0)
        compared = attrs.evolve(calendar)
    assert [compared.closure(x) for x in days] == listed
    assert [compared.is_open(x) for x in days] == [r is None for r in listed]
