"""Building sessions and courses: structural problems are InputErrors naming session and field."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pendulum
import pytest

from kaprules import Course, InputError, Integration, KapRulesError, Kind, Session

from helpers import at

UTC = dt.UTC
START = dt.datetime(2026, 12, 1, 16, tzinfo=UTC)


def test_input_error_is_a_value_error_and_a_kaprules_error() -> None:
    assert issubclass(InputError, ValueError)
    assert issubclass(InputError, KapRulesError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": dt.datetime(2026, 12, 1, 9)}, r"session 's1'\.start: naive datetime"),
        (
            {"start": dt.date(2026, 12, 1)},
            r"session 's1'\.start: must be a datetime\.datetime, got date",
        ),
        ({"start": "2026-12-01T09:00Z"}, r"start: must be a datetime\.datetime, got str"),
        (
            {"kind": "boost"},
            r"session 's1'\.kind: unknown kind 'boost'; use one of 'induction', 'booster'",
        ),
        ({"kind": 1}, r"kind: must be a string, got int"),
        ({"last_food": dt.datetime(2026, 12, 1, 4)}, r"session 's1'\.last_food: naive datetime"),
        ({"escort": 42}, r"session 's1'\.escort: must be a string or None, got int"),
        ({"id": ""}, r"session \(no id\)\.id: is empty"),
        ({"id": "  "}, r"session \(no id\)\.id: is empty"),
        ({"id": 7}, r"session \(no id\)\.id: must be a string, got int"),
        (
            {"start": dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC).replace(tzinfo=None)},
            "naive",
        ),
    ],
)
def test_session_structural_problems(kwargs: dict[str, object], match: str) -> None:
    values: dict[str, object] = {"start": START, "id": "s1", **kwargs}
    with pytest.raises(InputError, match=match):
        Session(**values)  # type: ignore[arg-type]


def test_session_collects_every_problem() -> None:
    with pytest.raises(InputError) as info:
        Session(dt.datetime(2026, 1, 1), "boost", "s1", "yesterday", 3)  # type: ignore[arg-type]
    assert [p.where for p in info.value.problems] == [
        "session 's1'.start",
        "session 's1'.kind",
        "session 's1'.last_food",
        "session 's1'.escort",
    ]


def test_session_accepts_plain_strings_and_pendulum() -> None:
    s = Session(pendulum.datetime(2026, 12, 1, 9, tz="America/Denver"), "booster")
    assert s.kind is Kind.BOOSTER
    assert s.kind == "booster"  # type: ignore[comparison-overlap]  # a StrEnum is its string
    assert type(s.instant) is dt.datetime
    assert s.instant == dt.datetime(2026, 12, 1, 16, tzinfo=UTC)


def test_session_repr_hides_the_escort() -> None:
    s = Session(START, escort="Jordan Secret")
    assert "Jordan" not in repr(s)
    assert "kind='induction'" in repr(s)


def test_course_assigns_positional_ids_in_given_order() -> None:
    c = Course(
        "UTC", [Session(START + dt.timedelta(days=2)), Session(START, id="a"), Session(START)]
    )
    assert [s.id for s in c.sessions] == ["1", "a", "3"]


@pytest.mark.parametrize(
    ("timezone", "match"),
    [
        ("Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
        ("", "unknown timezone ''"),
        ("america/denver ", "unknown timezone"),
        ("../../etc/passwd", "unknown timezone"),
        (None, "timezone: must be a string, got NoneType"),
    ],
)
def test_course_rejects_unknown_timezones(timezone: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        Course(timezone, [])  # type: ignore[arg-type]


def test_course_rejects_duplicates_and_non_sessions() -> None:
    with pytest.raises(InputError) as info:
        Course("UTC", [Session(START, id="a"), Session(START, id="a"), "x", Session(START, id="4")])
    assert [str(p) for p in info.value.problems] == [
        "sessions[1] (id 'a').id: duplicate of sessions[0]; give each session its own id",
        "sessions[2]: must be a Session, got str",
    ]
    with pytest.raises(InputError, match="duplicate of sessions"):
        Course("UTC", [Session(START, id="2"), Session(START)])


@pytest.mark.parametrize("sessions", ["abc", 5, {"a": 1}])
def test_course_sessions_must_be_an_iterable_of_sessions(sessions: object) -> None:
    with pytest.raises(InputError, match="sessions: must be a list or tuple of Session"):
        Course("UTC", sessions)  # type: ignore[arg-type]


def test_course_patient_type_and_repr() -> None:
    with pytest.raises(InputError, match="patient: must be a string or None"):
        Course("UTC", [], patient=12)  # type: ignore[arg-type]
    assert "P-123" not in repr(Course("UTC", [], patient="P-123"))


def test_course_local() -> None:
    c = Course("America/Denver", [])
    assert c.local(START) == at("2026-12-01", "09:00")
    assert c.local(START).utcoffset() == dt.timedelta(hours=-7)


def test_courses_compare_by_instant() -> None:
    a = Course("UTC", [Session(START, id="x")])
    b = Course("UTC", [Session(START.astimezone(dt.timezone(dt.timedelta(hours=5))), id="x")])
    assert a == b


@pytest.mark.parametrize(
    ("start", "ok"),
    [
        (dt.datetime(1900, 1, 1, tzinfo=UTC), True),
        (dt.datetime(1899, 12, 31, 23, 59, tzinfo=UTC), False),
        # 1900-01-01 01:00 at +05:00 is 1899-12-31 in UTC: the instant decides.
        (dt.datetime(1900, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))), False),
        (dt.datetime(9000, 12, 31, 23, 59, tzinfo=UTC), True),
        (dt.datetime(9001, 1, 1, tzinfo=UTC), False),
        (dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))), False),  # would overflow
        (dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5))), False),
    ],
)
def test_instants_must_be_in_the_supported_years(start: dt.datetime, ok: bool) -> None:
    if ok:
        assert Session(start, last_food=start).instant.tzinfo is UTC
        return
    with pytest.raises(InputError, match=r"start: .* is outside the supported years 1900-9000"):
        Session(start, id="s1")
    with pytest.raises(InputError, match=r"last_food: .* outside the supported years"):
        Session(START, id="s1", last_food=start)


@pytest.mark.parametrize("fold", [0, 1])
def test_sessions_in_a_dst_fold_compare_by_instant(fold: int) -> None:
    # PEP 495: an aware datetime in a repeated hour never equals one in another zone, even
    # for the same instant; sessions and meetings compare (and hash) by instant instead.
    start = dt.datetime(2020, 11, 1, 1, 0, tzinfo=ZoneInfo("America/Los_Angeles"), fold=fold)
    food = start - dt.timedelta(hours=5)
    here = Session(start, last_food=food, id="s1")
    there = Session(start.astimezone(dt.UTC), last_food=food.astimezone(dt.UTC), id="s1")
    assert start != start.astimezone(dt.UTC)  # the trap itself
    assert here == there
    assert hash(here) == hash(there)
    assert Integration(start) == Integration(start.astimezone(dt.UTC))
