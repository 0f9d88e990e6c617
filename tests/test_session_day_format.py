"""Session-day data in the course model and every course format: the model's checks, the
JSON loader's paths, the round trip, the CSV columns and the schema, which all agree."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import Course, InputError, Integration, Session, Vital, parse_course, parse_session
from kaprules.auditing import CSV_COLUMNS, read_records
from kaprules.course_files import DATE_PATTERN, VITAL_FORMAT, course_from_data
from kaprules.model import MAX_DOSE_MG, MAX_READINGS

DENVER = ZoneInfo("America/Denver")
START = dt.datetime(2026, 12, 1, 9, tzinfo=DENVER)
NAIVE = dt.datetime(2026, 12, 1, 7)
AT = dt.datetime(2026, 12, 1, 8, 40, tzinfo=DENVER)
SCHEMA = kaprules.course_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _full_session(**changes: Any) -> Session:
    values: dict[str, Any] = {
        "last_liquid": dt.datetime(2026, 12, 1, 7, tzinfo=DENVER),
        "vitals": [Vital(AT, 128, 82), Vital(AT + dt.timedelta(minutes=65), 130, 80)],
        "ready_to_leave": dt.datetime(2026, 12, 1, 11, tzinfo=DENVER),
        "dose_mg": 37.5,
        "monitoring_form": dt.datetime(2026, 12, 1, 11, 30, tzinfo=DENVER),
    }
    values.update(changes)
    return Session(START, "induction", "s1", **values)


# --- the model --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((NAIVE, 120, 80), r"vital\.at: naive datetime"),
        (("2026-12-01T09:00Z", 120, 80), r"vital\.at: must be a datetime\.datetime, got str"),
        ((dt.datetime(1800, 1, 1, tzinfo=dt.UTC), 120, 80), r"vital\.at: .*supported years"),
        ((AT, True, 80), r"vital\.systolic: must be a whole number from 1 to 400 .*got bool"),
        ((AT, 120.0, 80), r"vital\.systolic: must be a whole number .*got float"),
        ((AT, 0, 80), r"vital\.systolic: .*got one outside that range"),
        ((AT, 401, 80), r"vital\.systolic: .*got one outside that range"),
        ((AT, 120, "80"), r"vital\.diastolic: must be a whole number .*got str"),
        ((AT, 120, -1), r"vital\.diastolic: .*outside that range"),
    ],
)
def test_a_vital_checks_itself(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(InputError, match=match):
        Vital(*args)


def test_a_vital_with_the_diastolic_above_the_systolic_is_refused() -> None:
    # 60/200 is no reading (200/60 the wrong way round); the values are never shown.
    with pytest.raises(InputError, match=r"^vital\.diastolic: must be at most the systolic") as e:
        Vital(AT, 60, 200)
    assert "60" not in str(e.value)
    assert "200" not in str(e.value)
    assert Vital(AT, 120, 120).to_dict() == {
        "at": "2026-12-01T08:40:00-07:00",
        "systolic": 120,
        "diastolic": 120,
    }


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"last_liquid": NAIVE}, r"session 's1'\.last_liquid: naive datetime"),
        ({"last_liquid": "07:00"}, r"session 's1'\.last_liquid: must be a datetime\.datetime"),
        ({"ready_to_leave": NAIVE}, r"session 's1'\.ready_to_leave: naive datetime"),
        ({"ready_to_leave": dt.date(2026, 12, 1)}, r"ready_to_leave: must be a datetime\.datetime"),
        ({"monitoring_form": NAIVE}, r"session 's1'\.monitoring_form: naive datetime"),
        (
            {"monitoring_form": dt.datetime(9001, 1, 2, tzinfo=dt.UTC)},
            r"session 's1'\.monitoring_form: .*outside the supported years",
        ),
        (
            {"last_liquid": dt.datetime(1899, 6, 1, tzinfo=dt.UTC)},
            r"last_liquid: .*outside the supported years",
        ),
        ({"dose_mg": True}, r"session 's1'\.dose_mg: must be a number \(int or float\).*got bool"),
        ({"dose_mg": "37.5"}, r"session 's1'\.dose_mg: must be a number.*got str"),
        ({"dose_mg": 0}, r"session 's1'\.dose_mg: must be a number of milligrams above 0"),
        ({"dose_mg": -2.5}, r"session 's1'\.dose_mg: must be a number of milligrams above 0"),
        ({"dose_mg": math.nan}, r"session 's1'\.dose_mg: must be a finite number"),
        ({"dose_mg": math.inf}, r"session 's1'\.dose_mg: must be a finite number"),
        ({"vitals": [(AT, 120, 80)]}, r"session 's1'\.vitals\[0\]: must be a Vital, got tuple"),
        ({"vitals": {Vital(AT, 120, 80)}}, r"session 's1'\.vitals: is an unordered set"),
        ({"vitals": 5}, r"session 's1'\.vitals: must be a list or tuple of Vital, got int"),
        ({"vitals": "128/82"}, r"session 's1'\.vitals: must be a list or tuple of Vital, got str"),
    ],
)
def test_a_session_checks_its_session_day_data(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        _full_session(**changes)


def test_session_day_data_defaults_to_not_recorded() -> None:
    plain = Session(START)
    assert plain.last_liquid is None
    assert plain.vitals == ()
    assert plain.ready_to_leave is None
    assert plain.dose_mg is None
    assert plain.monitoring_form is None
    assert Course("UTC", []).enrolled is None


def test_vitals_take_any_ordered_iterable_and_instants_compare_by_instant() -> None:
    readings = [Vital(AT, 128, 82), Vital(AT, 120, 80)]
    assert _full_session(vitals=iter(readings)).vitals == tuple(readings)
    assert _full_session(dose_mg=50).dose_mg == 50
    # The same instants in another zone: the same session (and reading).
    utc = _full_session(
        last_liquid=dt.datetime(2026, 12, 1, 14, tzinfo=dt.UTC),
        vitals=[Vital(dt.datetime(2026, 12, 1, 15, 40, tzinfo=dt.UTC), 128, 82), readings[1]],
    )
    assert utc == _full_session(vitals=[readings[0], readings[1]])
    assert hash(utc) == hash(_full_session(vitals=readings))
    assert utc != _full_session(vitals=readings[:1])


@pytest.mark.parametrize(
    ("enrolled", "match"),
    [
        (dt.datetime(2026, 11, 2, tzinfo=dt.UTC), r"enrolled: must be a datetime\.date .*datetime"),
        ("2026-11-02", r"enrolled: must be a datetime\.date .*got str"),
        (dt.date(1899, 12, 31), r"enrolled: 1899-12-31 is outside the supported years"),
        (dt.date(9001, 1, 1), r"enrolled: 9001-01-01 is outside the supported years"),
    ],
)
def test_a_course_checks_its_enrollment_date(enrolled: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        Course("UTC", [], enrolled=enrolled)  # type: ignore[arg-type]


def test_reprs_show_no_readings_dose_or_session_day_times() -> None:
    session = _full_session(vitals=[Vital(AT, 187, 93)], dose_mg=61.25)
    course = Course("America/Denver", [session], enrolled=dt.date(2026, 11, 2))
    vital = Vital(AT, 187, 93)
    for text in (repr(session), repr(course), str(session), repr(vital)):
        for secret in ("187", "93", "61.25", "last_liquid", "dose_mg", "2026, 11, 2", "11, 30"):
            assert secret not in text, (secret, text)
    assert "<redacted>" in repr(vital)
    assert "2026, 12, 1, 8, 40" in repr(vital)  # the time of a reading is no reading


def test_the_loaders_fast_path_sets_the_defaults() -> None:
    text = json.dumps(
        {
            "timezone": "America/Denver",
            "sessions": [{"id": "s1", "start": "2026-12-01T09:00:00-07:00"}],
        }
    )
    course = parse_course(text)
    [session] = course.sessions
    assert (session.last_liquid, session.vitals, session.ready_to_leave) == (None, (), None)
    assert (session.dose_mg, session.monitoring_form, course.enrolled) == (None, None, None)
    assert course == Course("America/Denver", [Session(START, id="s1")])
    assert parse_course(kaprules.dumps(course)) == course


# --- the JSON format --------------------------------------------------------------------


def _course_doc(**session: Any) -> dict[str, Any]:
    return {
        "timezone": "America/Denver",
        "sessions": [
            {"id": "s1", "start": "2026-12-01T09:00:00-07:00"},
            {"id": "s2", "start": "2026-12-03T09:00:00-07:00"},
            {"id": "s3", "start": "2026-12-05T09:00:00-07:00", **session},
        ],
    }


def _problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_course(json.dumps(document))
    return [str(p) for p in info.value.problems]


S3 = "sessions[2] (id 's3')"


@pytest.mark.parametrize(
    ("session", "expected"),
    [
        (
            {"vitals": [{"at": "2026-12-05T08:40:00-07:00", "systolic": 0, "diastolic": 80}]},
            [
                f"{S3}.vitals[0].systolic: must be a whole number from 1 to 400 (mmHg), "
                "got one outside that range"
            ],
        ),
        (
            {"vitals": [{"at": "2026-12-05T08:40:00-07:00", "systolic": "128", "diastolic": 80}]},
            [f"{S3}.vitals[0].systolic: must be a whole number from 1 to 400 (mmHg), got a string"],
        ),
        (
            {"vitals": [{"at": "2026-12-05T08:40:00-07:00", "systolic": 128.5, "diastolic": 80}]},
            [
                f"{S3}.vitals[0].systolic: must be a whole number from 1 to 400 (mmHg), "
                "got a fraction"
            ],
        ),
        (
            {"vitals": [{"at": "2026-12-05T08:40:00", "systolic": 128}]},
            [
                f"{S3}.vitals[0].at: '2026-12-05T08:40:00' is not an ISO 8601 date-time with an "
                "offset; write it like '2026-12-01T09:00:00-07:00' or '2026-12-01T16:00:00Z'",
                f"{S3}.vitals[0].diastolic: is required: a whole number from 1 to 400 (mmHg)",
            ],
        ),
        (
            {"vitals": [{"at": "1850-12-05T08:40:00Z", "systolic": 128, "diastolic": 80}]},
            [
                f"{S3}.vitals[0].at: 1850-12-05T08:40:00+00:00 is outside the supported years "
                "1900-9000; check the year"
            ],
        ),
        (
            {"vitals": [5, None]},
            [
                f"{S3}.vitals[0]: must be an object {{at, systolic, diastolic}}, got a number",
                f"{S3}.vitals[1]: must be an object {{at, systolic, diastolic}}, got null",
            ],
        ),
        ({"vitals": None}, [f"{S3}.vitals: must be an array of readings, got null"]),
        ({"vitals": {"at": 1}}, [f"{S3}.vitals: must be an array of readings, got an object"]),
        ({"dose_mg": 0}, [f"{S3}.dose_mg: must be a number of milligrams above 0"]),
        ({"dose_mg": -12.5}, [f"{S3}.dose_mg: must be a number of milligrams above 0"]),
        ({"dose_mg": "37.5"}, [f"{S3}.dose_mg: must be a number or null, got a string"]),
        ({"dose_mg": True}, [f"{S3}.dose_mg: must be a number or null, got a boolean"]),
        (
            {"last_liquid": "2026-12-05T07:00:00"},
            [
                f"{S3}.last_liquid: '2026-12-05T07:00:00' is not an ISO 8601 date-time with an "
                "offset; write it like '2026-12-01T09:00:00-07:00' or '2026-12-01T16:00:00Z'"
            ],
        ),
        (
            {"ready_to_leave": 5},
            [f"{S3}.ready_to_leave: must be an ISO 8601 date-time string, got a number"],
        ),
        (
            {"monitoring_form": "2026-02-30T10:00:00Z"},
            [f"{S3}.monitoring_form: '2026-02-30T10:00:00Z' is not a real date and time"],
        ),
        ({"last_meal": "x"}, [f"{S3}.last_meal: unknown field; did you mean 'last_food'?"]),
        ({"last_drink": "x"}, [f"{S3}.last_drink: unknown field; did you mean 'last_liquid'?"]),
    ],
)
def test_json_problems_are_named_by_their_path(
    session: dict[str, Any], expected: list[str]
) -> None:
    assert _problems(_course_doc(**session)) == expected


def test_an_unknown_key_of_a_reading_is_named_by_its_position() -> None:
    reading = {"at": "2026-12-05T08:40:00-07:00", "systolic": 128, "diastolic": 80}
    [problem] = _problems(_course_doc(vitals=[{**reading, "Jordan Secretperson": 1}]))
    assert problem.startswith(f"{S3}.vitals[0]: unknown field (key 4 of the object); allowed: ")
    assert "Jordan" not in problem


def test_json_problems_never_show_readings_or_doses() -> None:
    reading = {"at": "2026-12-05T08:40:00-07:00", "systolic": 777, "diastolic": 555.5}
    text = " ".join(_problems(_course_doc(vitals=[reading], dose_mg=-61.25)))
    assert "vitals[0].systolic" in text
    assert "dose_mg" in text
    for secret in ("777", "555", "61.25"):
        assert secret not in text


@pytest.mark.parametrize(
    ("enrolled", "expected"),
    [
        (5, "enrolled: must be a date string (YYYY-MM-DD) or null, got a number"),
        (
            "2026-11-2",
            "enrolled: '2026-11-2' is not a date written YYYY-MM-DD, such as '2026-11-02'",
        ),
        ("2026-11-02T00:00:00Z", "enrolled: '2026-11-02T00:00:00Z' is not a date written"),
        ("2026-02-30", "enrolled: '2026-02-30' is not a real date"),
        ("1899-12-31", "enrolled: 1899-12-31 is outside the supported years 1900-9000"),
    ],
)
def test_json_enrollment_date_problems(enrolled: object, expected: str) -> None:
    [problem] = _problems({"timezone": "UTC", "enrolled": enrolled, "sessions": []})
    assert problem.startswith(expected)


def test_json_reads_every_session_day_field() -> None:
    document = _course_doc(
        last_liquid="2026-12-05T07:00:00-07:00",
        vitals=[
            {"at": "2026-12-05T15:40:00Z", "systolic": 128, "diastolic": 82.0},
            {"at": "2026-12-05T09:45:00-07:00", "diastolic": 80, "systolic": 130},
        ],
        ready_to_leave="2026-12-05T11:00:00-07:00",
        dose_mg=37.5,
        monitoring_form="2026-12-05T11:30:00-07:00",
    )
    document["enrolled"] = "2026-11-02"
    course = parse_course(json.dumps(document))
    day = dt.datetime(2026, 12, 5, tzinfo=DENVER)
    assert course.enrolled == dt.date(2026, 11, 2)
    assert course.sessions[2] == Session(
        day.replace(hour=9),
        id="s3",
        last_liquid=day.replace(hour=7),
        vitals=(
            Vital(day.replace(hour=8, minute=40), 128, 82),
            Vital(day.replace(hour=9, minute=45), 130, 80),
        ),
        ready_to_leave=day.replace(hour=11),
        dose_mg=37.5,
        monitoring_form=day.replace(hour=11, minute=30),
    )
    assert type(course.sessions[2].vitals[0].diastolic) is int  # 82.0 is a JSON integer
    # parse_session reads one session by the same code, pathed from the session.
    assert parse_session(document["sessions"][2]) == course.sessions[2]
    with pytest.raises(InputError, match=r"^dose_mg: must be a number of milligrams above 0$"):
        parse_session({**document["sessions"][2], "dose_mg": 0})
    with pytest.raises(InputError, match=r"^vitals\[1\]\.systolic: is required"):
        parse_session(
            {
                "start": "2026-12-05T09:00:00Z",
                "vitals": [
                    *document["sessions"][2]["vitals"][:1],
                    {"at": "2026-12-05T09:00:00Z", "diastolic": 80},
                ],
            }
        )


def test_to_dict_writes_the_fields_only_when_set() -> None:
    session = _full_session()
    data = session.to_dict()
    assert data["last_liquid"] == "2026-12-01T07:00:00-07:00"
    assert data["vitals"] == [
        {"at": "2026-12-01T08:40:00-07:00", "systolic": 128, "diastolic": 82},
        {"at": "2026-12-01T09:45:00-07:00", "systolic": 130, "diastolic": 80},
    ]
    assert data["ready_to_leave"] == "2026-12-01T11:00:00-07:00"
    assert data["dose_mg"] == 37.5
    assert data["monitoring_form"] == "2026-12-01T11:30:00-07:00"
    plain = Session(START, id="s1").to_dict()
    assert set(plain) == {"id", "kind", "start"}
    course = Course("America/Denver", [session], enrolled=dt.date(2026, 11, 2))
    assert course.to_dict()["enrolled"] == "2026-11-02"
    assert "enrolled" not in Course("UTC", []).to_dict()
    assert parse_course(json.dumps(course.to_dict())) == course


ZONES = st.sampled_from(
    [dt.UTC, DENVER, ZoneInfo("Asia/Kolkata"), dt.timezone(dt.timedelta(hours=-3, minutes=-30))]
)
INSTANTS = st.datetimes(
    min_value=dt.datetime(1901, 1, 1), max_value=dt.datetime(8999, 12, 31), timezones=ZONES
)
VITALS = st.integers(1, 400).flatmap(
    lambda systolic: st.builds(Vital, INSTANTS, st.just(systolic), st.integers(1, systolic))
)
DOSES = (
    st.none()
    | st.integers(1, MAX_DOSE_MG)
    | st.floats(min_value=0, max_value=MAX_DOSE_MG, exclude_min=True, allow_nan=False)
)


@st.composite
def day_sessions(draw: st.DrawFn, index: int) -> Session:
    return Session(
        draw(INSTANTS),
        draw(st.sampled_from(["induction", "booster"])),
        f"s{index}",
        draw(st.none() | INSTANTS),
        last_liquid=draw(st.none() | INSTANTS),
        vitals=draw(st.lists(VITALS, max_size=3)),
        ready_to_leave=draw(st.none() | INSTANTS),
        dose_mg=draw(DOSES),
        monitoring_form=draw(st.none() | INSTANTS),
    )


@st.composite
def day_courses(draw: st.DrawFn) -> Course:
    count = draw(st.integers(0, 4))
    sessions = [draw(day_sessions(i)) for i in range(count)]
    enrolled = draw(st.none() | st.dates(dt.date(1900, 1, 1), dt.date(9000, 12, 31)))
    return Course(draw(st.sampled_from(["UTC", "America/Denver"])), sessions, enrolled=enrolled)


@settings(max_examples=30)
@given(day_courses())
def test_session_day_data_round_trips(course: Course) -> None:
    text = kaprules.dumps(course)
    assert parse_course(text) == course
    assert parse_course(json.dumps(course.to_dict())) == course
    VALIDATOR.validate(json.loads(text))
    for session in course.sessions:
        assert parse_session(json.dumps(session.to_dict())) == session


def test_readings_are_bounded_in_the_model_the_loader_and_the_schema() -> None:
    reading = {"at": "2026-12-01T08:40:00-07:00", "systolic": 128, "diastolic": 82}
    document = _course_doc(vitals=[reading] * MAX_READINGS)
    parse_course(json.dumps(document))
    VALIDATOR.validate(document)
    document = _course_doc(vitals=[reading] * (MAX_READINGS + 1))
    with pytest.raises(InputError) as caught:
        parse_course(json.dumps(document))
    assert [str(p) for p in caught.value.problems] == [
        f"sessions[2] (id 's3').vitals: holds more than {MAX_READINGS} readings, the limit"
    ]
    assert not VALIDATOR.is_valid(document)
    assert SCHEMA["$defs"]["session"]["properties"]["vitals"]["maxItems"] == MAX_READINGS
    with pytest.raises(InputError, match=f"vitals: holds more than {MAX_READINGS} readings"):
        Session(START, vitals=[Vital(AT, 128, 82)] * (MAX_READINGS + 1))


# --- the CSV session table --------------------------------------------------------------

HEADER = ",".join(CSV_COLUMNS)


def _table(tmp_path: Path, *rows: str, header: str = HEADER) -> list[Any]:
    path = tmp_path / "sessions.csv"
    path.write_text("".join(f"{line}\n" for line in (header, *rows)), encoding="utf-8")
    return list(read_records([str(path)]))


def test_csv_reads_the_session_day_columns(tmp_path: Path) -> None:
    assert CSV_COLUMNS[:8] == (
        "course_id",
        "timezone",
        "session_id",
        "kind",
        "start",
        "last_food",
        "escort",
        "therapist",
    )
    assert set(CSV_COLUMNS[8:]) == {
        "last_liquid",
        "ready_to_leave",
        "dose_mg",
        "monitoring_form",
        "vitals",
        "enrolled",
    }
    cells = {
        "last_liquid": "2026-12-01T07:00:00-07:00",
        "ready_to_leave": "2026-12-01T11:00:00-07:00",
        "dose_mg": "37.5",
        "monitoring_form": "2026-12-01T11:30:00-07:00",
        "vitals": "2026-12-01T08:40:00-07:00 128/82; 2026-12-01T09:45:00-07:00 130/80",
        "enrolled": "2026-11-02",
    }
    base = "c-1,America/Denver,{id},{kind},{start},,on file,,"

    def row(session_id: str, kind: str, start: str, **day: str) -> str:
        tail = ",".join(day.get(name, "") for name in CSV_COLUMNS[8:])
        return base.format(id=session_id, kind=kind, start=start) + tail

    [record] = _table(
        tmp_path,
        row("s1", "induction", "2026-12-01T09:00:00-07:00", **cells),
        row("s2", "induction", "2026-12-03T09:00:00-07:00", dose_mg="50", enrolled="2026-11-02"),
        row("m1", "integration", "2026-12-20T09:00:00-07:00").replace(",on file,", ",,"),
    )
    assert record.rejected is None
    # The therapist cells are empty: blank therapists, as "therapist": "" is in JSON Lines.
    expected = Course(
        "America/Denver",
        [
            _full_session(escort="on file", therapist=""),
            Session(
                dt.datetime(2026, 12, 3, 9, tzinfo=DENVER),
                id="s2",
                escort="on file",
                therapist="",
                dose_mg=50,
            ),
        ],
        integrations=[Integration(dt.datetime(2026, 12, 20, 9, tzinfo=DENVER), "m1", therapist="")],
        id="c-1",
        enrolled=dt.date(2026, 11, 2),
    )
    course = course_from_data(record.data)
    assert course == expected
    assert type(course.sessions[1].dose_mg) is int
    [result] = kaprules.audit([record])
    assert result.rejected is None


def test_csv_without_the_new_columns_reads_as_before(tmp_path: Path) -> None:
    header = ",".join(CSV_COLUMNS[:7])
    [record] = _table(
        tmp_path, "c-1,UTC,s1,induction,2026-12-01T09:00:00Z,2026-12-01T04:00:00Z,E", header=header
    )
    assert record.data == {
        "timezone": "UTC",
        "sessions": [
            {
                "id": "s1",
                "kind": "induction",
                "start": "2026-12-01T09:00:00Z",
                "last_food": "2026-12-01T04:00:00Z",
                "escort": "E",
            }
        ],
        "id": "c-1",
    }


def _day_row(line_cells: dict[str, str], session_id: str = "s1", kind: str = "induction") -> str:
    head = (
        f"c-1,UTC,{session_id},{kind},2026-12-01T09:00:00Z,,{'E' if kind != 'integration' else ''},"
    )
    return head + "," + ",".join(line_cells.get(name, "") for name in CSV_COLUMNS[8:])


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        (
            {"vitals": "2026-12-01T08:40:00Z 128/82; 2026-12-01T09:40:00Z 187-93"},
            "line 3: reading 2 of the vitals cell is not 'AT SYSTOLIC/DIASTOLIC'",
        ),
        ({"vitals": "128/82"}, "line 3: reading 1 of the vitals cell is not"),
        ({"vitals": "yesterday 187/93"}, "line 3: reading 1 of the vitals cell is not"),
        ({"dose_mg": "61.25 mg"}, "line 3: the dose_mg cell is not a number of milligrams"),
        ({"dose_mg": "-61.25"}, "line 3: the dose_mg cell is not a number of milligrams"),
        ({"last_liquid": "07:00"}, "line 3: the last_liquid cell is not an ISO 8601 date-time"),
        ({"ready_to_leave": "x"}, "line 3: the ready_to_leave cell is not an ISO 8601"),
        ({"monitoring_form": "x"}, "line 3: the monitoring_form cell is not an ISO 8601"),
        ({"enrolled": "11/02/2026"}, "line 3: the enrolled cell is not a date written YYYY-MM-DD"),
    ],
)
def test_csv_malformed_cells_reject_the_course(
    tmp_path: Path, cells: dict[str, str], reason: str
) -> None:
    [record] = _table(tmp_path, _day_row({}, "s0"), _day_row(cells))
    assert record.rejected is not None
    assert record.rejected.startswith(reason)
    for secret in ("187", "93", "61.25", "yesterday", "11/02"):
        assert secret not in record.rejected
    [result] = kaprules.audit([record])
    assert result.rejected == record.rejected


def test_csv_out_of_range_readings_are_named_by_line_and_column(tmp_path: Path) -> None:
    [record] = _table(tmp_path, _day_row({"vitals": "2026-12-01T08:40:00Z 487/82", "dose_mg": "0"}))
    [result] = kaprules.audit([record])
    assert result.rejected == (
        "2 problems: line 2: reading 1 of the vitals cell: its systolic must be a whole number "
        "from 1 to 400 (mmHg), got one outside that range; line 2: the dose_mg cell must be a "
        "number of milligrams above 0"
    )


def test_csv_enrollment_is_one_date_a_course(tmp_path: Path) -> None:
    rows = (
        _day_row({"enrolled": "2026-11-02"}),
        _day_row({}, "s2"),
        _day_row({"enrolled": "2026-11-03"}, "s3"),
    )
    [record] = _table(tmp_path, *rows)
    assert record.rejected == (
        "line 4: the rows of one course give different enrolled dates; give the course's one "
        "date in each row, or leave the cell empty"
    )
    [record] = _table(tmp_path, *rows[:2], _day_row({"enrolled": "2026-11-02"}, "s3"))
    assert record.rejected is None
    assert course_from_data(record.data).enrolled == dt.date(2026, 11, 2)


def test_csv_integration_rows_take_no_session_day_data(tmp_path: Path) -> None:
    [record] = _table(tmp_path, _day_row({}, "s1"), _day_row({"dose_mg": "5"}, "m1", "integration"))
    assert record.rejected is not None
    assert record.rejected.startswith(
        "line 3: a row of kind 'integration' (an integration meeting) takes no session-day data"
    )
    # The course's enrollment date may be given on a meeting's row, as its timezone is.
    [record] = _table(
        tmp_path, _day_row({}, "s1"), _day_row({"enrolled": "2026-11-02"}, "m1", "integration")
    )
    assert record.rejected is None
    assert course_from_data(record.data).enrolled == dt.date(2026, 11, 2)


# --- the schema -------------------------------------------------------------------------


def test_the_schema_has_the_reading_fields() -> None:
    vital = SCHEMA["$defs"]["vital"]
    assert set(vital["properties"]) == {f.name for f in VITAL_FORMAT}
    assert set(vital["required"]) == {f.name for f in VITAL_FORMAT if f.required}
    assert vital["additionalProperties"] is False
    assert SCHEMA["$defs"]["date"]["pattern"] == f"^{DATE_PATTERN}$"
    items = SCHEMA["$defs"]["session"]["properties"]["vitals"]["items"]
    assert items == {"$ref": "#/$defs/vital"}


READING = {"at": "2026-12-05T08:40:00-07:00", "systolic": 128, "diastolic": 82}


@pytest.mark.parametrize(
    ("session", "course", "valid"),
    [
        ({"vitals": [READING], "dose_mg": 37.5, "last_liquid": None}, {"enrolled": None}, True),
        (
            {"vitals": [], "dose_mg": None, "monitoring_form": None},
            {"enrolled": "2026-11-02"},
            True,
        ),
        ({"vitals": [{**READING, "systolic": 128.0}], "dose_mg": 50}, {}, True),
        ({"vitals": [{**READING, "systolic": 0}]}, {}, False),
        ({"vitals": [{**READING, "diastolic": 401}]}, {}, False),
        ({"vitals": [{**READING, "systolic": 128.5}]}, {}, False),
        ({"vitals": [{**READING, "systolic": "128"}]}, {}, False),
        ({"vitals": [{**READING, "systolic": True}]}, {}, False),
        ({"vitals": [{**READING, "pulse": 70}]}, {}, False),
        ({"vitals": [{"at": READING["at"], "systolic": 128}]}, {}, False),
        ({"vitals": [{**READING, "at": "2026-12-05T08:40:00"}]}, {}, False),
        ({"vitals": None}, {}, False),
        ({"vitals": READING}, {}, False),
        ({"dose_mg": 0}, {}, False),
        ({"dose_mg": -1}, {}, False),
        ({"dose_mg": "37.5"}, {}, False),
        ({"dose_mg": False}, {}, False),
        ({"ready_to_leave": "2026-12-05T11:00:00"}, {}, False),
        ({"monitoring_form": 5}, {}, False),
        ({}, {"enrolled": "2026-11-2"}, False),
        ({}, {"enrolled": 20261102}, False),
        ({}, {"enrolled": "2026-11-02T00:00:00Z"}, False),
    ],
)
def test_the_schema_and_the_loader_agree(
    session: dict[str, Any], course: dict[str, Any], valid: bool
) -> None:
    document = {**_course_doc(**session), **course}
    assert VALIDATOR.is_valid(document) is valid
    if valid:
        parse_course(json.dumps(document))
    else:
        with pytest.raises(InputError):
            parse_course(json.dumps(document))


@pytest.mark.parametrize(
    ("course", "session", "said"),
    [
        ({"enrolled": "2026-02-30"}, {}, "not a real date"),
        ({"enrolled": "1899-12-31"}, {}, "outside the supported years"),
        ({}, {"vitals": [{**READING, "at": "1850-12-05T08:40:00Z"}]}, "outside the supported"),
    ],
)
def test_what_the_schema_cannot_say_the_loader_checks(
    course: dict[str, Any], session: dict[str, Any], said: str
) -> None:
    document = {**_course_doc(**session), **course}
    assert VALIDATOR.is_valid(document)
    assert "the enrollment date is a real one" in SCHEMA["description"]
    with pytest.raises(InputError, match=said):
        parse_course(json.dumps(document))


def test_a_dose_past_the_floats_is_refused_though_the_schema_cannot_say_so() -> None:
    text = json.dumps(_course_doc(dose_mg=1)).replace('"dose_mg": 1', '"dose_mg": 1e999')
    assert "a dose is a finite number" in SCHEMA["description"]
    with pytest.raises(InputError, match=r"dose_mg: must be a finite number of milligrams$"):
        parse_course(text)
