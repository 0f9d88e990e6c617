"""Table tests: every boundary of kap-standard v1, rule by rule."""

from __future__ import annotations

import datetime as dt

import pytest

from kaprules import (
    STANDARD,
    BoosterInterval,
    Fasting,
    InputError,
    Kind,
    Protocol,
    SessionCount,
    SessionSpacing,
    TreatmentWindow,
    evaluate,
)

from helpers import DENVER, STANDARD_DATES, at, course, rule_ids, series, session

H = dt.timedelta(hours=1)
MIN = dt.timedelta(minutes=1)


def only(rule: object) -> Protocol:
    return Protocol("one", "1", [rule])  # type: ignore[list-item]


def test_standard_dates_are_compliant() -> None:
    report = evaluate(course(series(STANDARD_DATES)))
    assert report.ok
    assert report.findings == ()


# --- session-count --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "ok", "named"),
    [(5, False, ()), (6, True, ()), (7, False, ("s7",)), (8, False, ("s7", "s8"))],
)
def test_session_count_final_record(n: int, ok: bool, named: tuple[str, ...]) -> None:
    dates = [f"2026-12-{d:02d}" for d in range(1, 2 * n, 2)][:n]
    report = evaluate(course(series(dates)), only(SessionCount(window_days=30)))
    assert report.ok is ok
    if not ok:
        [finding] = report.findings
        assert finding.sessions == named
        assert (finding.expected, finding.actual) == (6, n)


@pytest.mark.parametrize(
    ("as_of", "ok"),
    [
        (dt.date(2026, 12, 6), True),  # mid-series
        (dt.date(2026, 12, 14), True),  # day 14: the last day the series may still be completed
        (dt.date(2026, 12, 15), False),  # day 15: the window has closed
        (at("2026-12-14", "23:59"), True),  # an instant whose local date is day 14
        (at("2026-12-15", "00:00"), False),
        # 06:30 UTC on Dec 15 is still Dec 14 in Denver: local date decides.
        (dt.datetime(2026, 12, 15, 6, 30, tzinfo=dt.UTC), True),
        (dt.datetime(2026, 12, 15, 7, 0, tzinfo=dt.UTC), False),
    ],
)
def test_session_count_in_progress_window(as_of: dt.date, ok: bool) -> None:
    three = course(series(STANDARD_DATES[:3]))
    report = evaluate(three, only(SessionCount()), as_of=as_of)
    assert report.ok is ok
    if not ok:
        assert report.findings[0].sessions == ()
        assert "window closed on 2026-12-14" in report.findings[0].message


def test_session_count_no_induction_yet_is_fine_in_progress() -> None:
    empty = course([])
    assert evaluate(empty, only(SessionCount()), as_of=dt.date(2030, 1, 1)).ok
    assert not evaluate(empty, only(SessionCount())).ok


def test_too_many_is_a_finding_even_in_progress() -> None:
    seven = course(series([f"2026-12-{d:02d}" for d in (1, 3, 5, 7, 9, 11, 13)]))
    report = evaluate(seven, only(SessionCount()), as_of=dt.date(2026, 12, 2))
    assert [f.sessions for f in report.findings] == [("s7",)]


# --- treatment-window -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "ok"), [("2026-12-13", True), ("2026-12-14", True), ("2026-12-15", False)]
)
def test_treatment_window_day_14_vs_15(last: str, ok: bool) -> None:
    dates = [*STANDARD_DATES[:5], last]
    report = evaluate(course(series(dates)), only(TreatmentWindow()))
    assert report.ok is ok
    if not ok:
        [finding] = report.findings
        assert finding.sessions == ("s6",)
        assert (finding.expected, finding.actual) == ("2026-12-14", "2026-12-15")


def test_treatment_window_counts_local_dates_not_utc() -> None:
    # 23:30 in Denver on Dec 14 is Dec 15 in UTC; the local date (day 14) decides.
    dates = [*STANDARD_DATES[:5]]
    sessions = [*series(dates), session("s6", at("2026-12-14", "23:30"))]
    assert evaluate(course(sessions), only(TreatmentWindow())).ok


def test_treatment_window_names_each_session_outside() -> None:
    sessions = series(["2026-12-01", "2026-12-16", "2026-12-20"])
    report = evaluate(course(sessions), only(TreatmentWindow()))
    assert [f.sessions for f in report.findings] == [("s2",), ("s3",)]


def test_treatment_window_month_end() -> None:
    # Jan 25 opens a window that ends Feb 7.
    ok = evaluate(course(series(["2027-01-25", "2027-02-07"])), only(TreatmentWindow()))
    late = evaluate(course(series(["2027-01-25", "2027-02-08"])), only(TreatmentWindow()))
    assert ok.ok
    assert late.findings[0].expected == "2027-02-07"


# --- session-spacing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "gap"),
    [
        (("2026-12-01", "09:00"), ("2026-12-01", "15:00"), 0),
        (("2026-12-01", "23:30"), ("2026-12-02", "00:30"), 1),  # one hour apart
        (("2026-12-01", "00:00"), ("2026-12-02", "23:59"), 1),  # 48 h apart, still consecutive days
        (("2026-12-01", "23:30"), ("2026-12-03", "00:30"), 2),  # 25 h apart, two days: passes
    ],
)
def test_session_spacing_local_calendar_days(
    a: tuple[str, str], b: tuple[str, str], gap: int
) -> None:
    sessions = [session("a", at(*a)), session("b", at(*b))]
    report = evaluate(course(sessions), only(SessionSpacing()))
    assert report.ok is (gap >= 2)
    if gap < 2:
        [finding] = report.findings
        assert finding.sessions == ("a", "b")
        assert finding.actual == gap


def test_session_spacing_local_date_vs_utc_date() -> None:
    # Denver 18:00 on Dec 1 is Dec 2 in UTC; Dec 3 08:00 is Dec 3 in UTC. UTC dates are
    # consecutive, local dates are two apart: passes.
    sessions = [session("a", at("2026-12-01", "18:00")), session("b", at("2026-12-03", "08:00"))]
    assert evaluate(course(sessions), only(SessionSpacing())).ok
    # The same instants in Tokyo are Dec 2 10:00 and Dec 4 00:00 local: still two days.
    assert evaluate(course(sessions, "Asia/Tokyo"), only(SessionSpacing())).ok
    # In Kiritimati (UTC+14) they are Dec 2 15:00 and Dec 4 05:00.
    assert evaluate(course(sessions, "Pacific/Kiritimati"), only(SessionSpacing())).ok
    # ...but in UTC they are Dec 2 01:00 and Dec 3 15:00: consecutive.
    assert not evaluate(course(sessions, "UTC"), only(SessionSpacing())).ok


def test_session_spacing_applies_to_boosters_and_adjacent_pairs_only() -> None:
    sessions = [
        session("a", at("2026-12-01")),
        session("b", at("2026-12-02"), kind="booster"),
        session("c", at("2026-12-03")),
    ]
    report = evaluate(course(sessions), only(SessionSpacing()))
    assert [f.sessions for f in report.findings] == [("a", "b"), ("b", "c")]


# --- fasting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fast", "ok"),
    [
        (4 * H, True),
        (4 * H - MIN, False),  # 3 h 59 min
        (4 * H - dt.timedelta(microseconds=1), False),
        (4 * H + MIN, True),
        (dt.timedelta(0), False),
        (-30 * MIN, False),  # ate after the start
    ],
)
def test_fasting_elapsed_hours(fast: dt.timedelta, ok: bool) -> None:
    report = evaluate(course([session("s1", at("2026-12-01"), fast=fast)]), only(Fasting()))
    assert report.ok is ok


def test_fasting_reports_iso_durations() -> None:
    report = evaluate(course([session("s1", at("2026-12-01"), fast=4 * H - MIN)]), only(Fasting()))
    [finding] = report.findings
    assert (finding.expected, finding.actual) == ("PT4H", "PT3H59M")
    assert "3 h 59 min" in finding.message


@pytest.mark.parametrize(
    ("food", "start", "ok"),
    [
        # Spring forward, 2027-03-14 02:00 MST -> 03:00 MDT: 5 h on the wall clock, 4 h elapsed.
        ("2027-03-14T00:30:00-07:00", "2027-03-14T05:30:00-06:00", True),
        ("2027-03-14T00:30:00-07:00", "2027-03-14T05:29:00-06:00", False),  # 4 h 59 on the wall
        # Fall back, 2026-11-01 02:00 MDT -> 01:00 MST: 3 h on the wall clock, 4 h elapsed.
        ("2026-11-01T00:30:00-06:00", "2026-11-01T03:30:00-07:00", True),
        ("2026-11-01T00:30:00-06:00", "2026-11-01T03:29:00-07:00", False),
    ],
)
def test_fasting_across_denver_dst_changes(food: str, start: str, ok: bool) -> None:
    s = session("s1", dt.datetime.fromisoformat(start), fast=None)
    s = type(s)(s.start, s.kind, s.id, dt.datetime.fromisoformat(food), "E")
    assert evaluate(course([s]), only(Fasting())).ok is ok


def test_fasting_missing_last_food_is_a_finding_unless_planned() -> None:
    c = course([session("s1", at("2026-12-05"), fast=None)])
    assert not evaluate(c, only(Fasting())).ok
    assert evaluate(c, only(Fasting()), as_of=dt.date(2026, 12, 4)).ok
    assert not evaluate(c, only(Fasting()), as_of=dt.date(2026, 12, 5)).ok


# --- escort ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("escort", "ok"), [("Jo", True), ("x", True), (None, False), ("", False), ("  \t", False)]
)
def test_escort_missing_or_blank(escort: str | None, ok: bool) -> None:
    c = course([session("s1", at("2026-12-01"), escort=escort)])
    report = evaluate(c, STANDARD.without("session-count"))
    assert report.ok is ok
    assert rule_ids(report) == ([] if ok else ["escort"])


@pytest.mark.parametrize(
    ("as_of", "planned"),
    [
        (dt.date(2026, 12, 4), True),  # the day before: planned
        (dt.date(2026, 12, 5), False),  # a date on the session's day: not planned
        (at("2026-12-05", "08:59"), True),  # an instant before the start: planned
        (at("2026-12-05", "09:00"), False),  # the start itself: not planned
        (at("2026-12-05", "09:01"), False),
    ],
)
def test_as_of_date_vs_instant_on_the_day_of_a_session(as_of: dt.date, planned: bool) -> None:
    c = course([session("s1", at("2026-12-05", "09:00"), escort=None, fast=None)])
    report = evaluate(c, STANDARD.without("session-count"), as_of=as_of)
    assert rule_ids(report) == ([] if planned else ["fasting", "escort"])


# --- booster-interval -----------------------------------------------------------------


def with_booster(last_induction: str, booster: str, n: int = 6) -> list[str]:
    last = dt.date.fromisoformat(last_induction)
    dates = [(last - dt.timedelta(days=2 * k)).isoformat() for k in range(n - 1, -1, -1)]
    sessions = series(dates)
    sessions.append(session("b1", at(booster), kind=Kind.BOOSTER))
    return rule_ids(evaluate(course(sessions), only(BoosterInterval())))


@pytest.mark.parametrize(
    ("last_induction", "booster", "ok"),
    [
        ("2026-12-12", "2027-06-12", True),
        ("2026-12-12", "2027-06-11", False),
        # Month ends clamp: Aug 31 + 6 months = Feb 28 (2027), Feb 29 in a leap year (2028).
        ("2026-08-31", "2027-02-28", True),
        ("2026-08-31", "2027-02-27", False),
        ("2027-08-31", "2028-02-29", True),
        ("2027-08-31", "2028-02-28", False),
        ("2026-03-31", "2026-09-30", True),
        ("2026-03-31", "2026-09-29", False),
        # No roll to the 1st (CDC CDSi would ask for Mar 1).
        ("2026-08-30", "2027-02-28", True),
    ],
)
def test_booster_interval_month_arithmetic(last_induction: str, booster: str, ok: bool) -> None:
    found = with_booster(last_induction, booster)
    assert found == ([] if ok else ["booster-interval"])


def test_booster_needs_a_full_series_and_a_session_before_it() -> None:
    assert with_booster("2026-12-12", "2027-07-01", n=5) == ["booster-interval"]
    alone = course([session("b1", at("2027-06-12"), kind="booster")])
    [finding] = evaluate(alone, only(BoosterInterval())).findings
    assert "no session before it" in finding.message


def test_booster_counts_from_the_previous_session_of_any_kind() -> None:
    sessions = series(STANDARD_DATES)
    sessions += [
        session("b1", at("2027-06-12"), kind="booster"),
        session("b2", at("2027-12-11"), kind="booster"),  # b1 + 6 months is Dec 12
    ]
    [finding] = evaluate(course(sessions), only(BoosterInterval())).findings
    assert finding.sessions == ("b2",)
    assert (finding.expected, finding.actual) == ("2027-12-12", "2027-12-11")


def test_booster_breaking_two_conditions_gets_two_findings() -> None:
    sessions = [*series(STANDARD_DATES[:2]), session("b1", at("2027-01-01"), kind="booster")]
    findings = evaluate(course(sessions), only(BoosterInterval())).findings
    assert [f.sessions for f in findings] == [("b1",), ("b1",)]
    assert {f.expected for f in findings} == {6, "2027-06-03"}


# --- parameters -----------------------------------------------------------------------


def test_parameters_change_the_boundaries() -> None:
    c = course(series(["2026-12-01", "2026-12-02"]))
    assert not evaluate(c, only(SessionSpacing())).ok
    assert evaluate(c, only(SessionSpacing(min_days=1))).ok
    assert not evaluate(c, only(SessionSpacing(min_days=3))).ok
    fast = course([session("s1", at("2026-12-01"), fast=2 * H)])
    assert evaluate(fast, only(Fasting(hours=2))).ok
    assert not evaluate(fast, only(Fasting(hours=2.5))).ok


@pytest.mark.parametrize(
    "build",
    [
        lambda: SessionCount(count=0),
        lambda: SessionCount(count=True),
        lambda: TreatmentWindow(days=1.5),  # type: ignore[arg-type]
        lambda: Fasting(hours=-1),
        lambda: Fasting(hours=float("nan")),
        lambda: BoosterInterval(months=0),
        lambda: SessionSpacing(severity="fatal"),
    ],
)
def test_bad_parameters_are_refused(build: object) -> None:
    with pytest.raises(ValueError, match=r"must be|unknown severity"):
        build()  # type: ignore[operator]


def test_as_of_must_be_aware() -> None:
    c = course(series(STANDARD_DATES))
    with pytest.raises(InputError, match="as_of: naive datetime"):
        evaluate(c, as_of=dt.datetime(2026, 12, 5, 9))
    with pytest.raises(InputError, match="as_of: must be"):
        evaluate(c, as_of="2026-12-05")  # type: ignore[arg-type]


def test_zone_is_the_course_zone() -> None:
    assert course([], DENVER).zone.key == DENVER


@pytest.mark.parametrize(
    "as_of",
    [
        dt.date(1899, 12, 31),
        dt.date(9001, 1, 1),
        dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=5))),
    ],
)
def test_as_of_must_be_in_the_supported_years(as_of: dt.date) -> None:
    with pytest.raises(InputError, match=r"as_of: .* outside the supported years 1900-9000"):
        evaluate(course(series(STANDARD_DATES)), as_of=as_of)


@pytest.mark.parametrize(
    ("build", "ok"),
    [
        (lambda: TreatmentWindow(days=36_600), True),
        (lambda: TreatmentWindow(days=36_601), False),
        (lambda: SessionCount(window_days=36_601), False),
        (lambda: SessionSpacing(min_days=36_601), False),
        (lambda: BoosterInterval(months=1_200), True),
        (lambda: BoosterInterval(months=1_201), False),
        (lambda: Fasting(hours=8_784), True),
        (lambda: Fasting(hours=8_784.5), False),
        (lambda: Fasting(hours=float("inf")), False),
    ],
)
def test_parameter_upper_bounds(build: object, ok: bool) -> None:
    if ok:
        build()  # type: ignore[operator]
        return
    with pytest.raises(ValueError, match="must be a"):
        build()  # type: ignore[operator]
