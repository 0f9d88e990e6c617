"""Phased protocols and session-day data under a new user's and a hostile tester's input.

Each test here is the regression test of one defect found in the phased-protocol work
(issue 23's review): scheduling cost on long courses, phases no calendar can satisfy or
that leave weeks uncovered, plan ranges, the overdue message, tied readings, bounds and
pickling.
"""

from __future__ import annotations

import copy
import datetime as dt
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import Course, Kind, Protocol, ProtocolError, Session, Vital
from kaprules.cli import main
from kaprules.forecasting import PhasedSearch, check_booking, scheduling_timeline
from kaprules.phases import Phase, WeeklyCap
from kaprules.planning import plan
from kaprules.session_day import BloodPressureLimit

from helpers import DENVER, TWICE_WEEKLY_DATES, at, course, series

DAY = dt.timedelta(days=1)
TRD = kaprules.get_protocol("esketamine-trd@1")
D0 = dt.date(2026, 12, 1)


def same_day(count: int, day: str = "2026-12-01") -> Course:
    return course(Session(at(day), Kind.INDUCTION, f"s{k}") for k in range(count))


# --- 1. scheduling stays bounded on long courses --------------------------------------


def test_a_year_planned_over_a_thousand_same_day_sessions_takes_seconds() -> None:
    # Before: every candidate day re-evaluated every rule over the whole course (2,000
    # sessions took 52 s, 10,000 took 379 s); now a check reads the sessions it can
    # affect.
    big = same_day(1_000)
    began = time.perf_counter()
    weekdays = kaprules.ClinicCalendar()  # Monday to Friday
    result = plan(big, dt.date(2027, 1, 1), weekdays, TRD, until=dt.date(2027, 12, 31))
    assert time.perf_counter() - began < 5
    assert result.sessions
    assert result.sessions[0].start.date() == dt.date(2027, 1, 4)  # a Monday


@settings(max_examples=25, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 9), min_size=1, max_size=14),
    placed_gaps=st.lists(st.integers(1, 8), max_size=3),
    ahead=st.integers(1, 20),
)
def test_a_phased_booking_check_equals_the_whole_courses(
    gaps: list[int], placed_gaps: list[int], ahead: int
) -> None:
    # The search's check of a proposal is the public check_booking of the whole course
    # with the placed sessions added: same findings, same order.
    dates, day = [], D0
    for gap in gaps:
        day += gap * DAY
        dates.append(day)
    held = course(series([x.isoformat() for x in dates]))
    as_of = dates[-1]
    timeline = scheduling_timeline(held, as_of, None)
    search = PhasedSearch(timeline, TRD.rules[0].phases, TRD, None)  # type: ignore[attr-defined]
    placed, day = [], as_of
    for gap in placed_gaps:
        day += gap * DAY
        placed.append(day)
    proposal = day + ahead * DAY
    windowed = search.booking(tuple(placed), proposal)
    whole = Course(
        DENVER, [*held.sessions, *(search.candidate(x, k) for k, x in enumerate(placed))]
    )
    proposed = Session(at(proposal.isoformat()), Kind.INDUCTION, "proposed")
    assert windowed.findings == check_booking(whole, proposed, as_of, TRD).findings


# --- 2. every treatment week is in a phase --------------------------------------------


@pytest.mark.parametrize(
    ("phases", "words"),
    [
        (
            [{"name": "late", "weeks": [2, 4], "at_most": 1}],
            "[0] (phase late) starts in week 2: the first phase starts in week 1",
        ),
        (
            [
                {"name": "a", "weeks": [1, 2], "at_most": 2},
                {"name": "b", "weeks": [4], "at_most": 1},
            ],
            "[1] (phase b) starts in week 4, but phase [0] (a) ends in week 2: phases are "
            "contiguous, so that weeks 3 to 3 are in a phase",
        ),
    ],
)
def test_phases_that_leave_a_week_uncovered_are_refused(
    phases: list[dict[str, object]], words: str
) -> None:
    # Before: accepted, and 4 sessions in the uncovered week 3 were judged by no rule.
    data = {"id": "c", "version": "1", "phases": phases, "rules": [{"id": "weekly-cap"}]}
    with pytest.raises(ProtocolError) as caught:
        Protocol.from_dict(data)
    assert words in str(caught.value)
    with pytest.raises(ProtocolError, match="starts in week"):
        WeeklyCap(phases=[Phase(**p) for p in phases])  # type: ignore[arg-type]


def test_a_break_is_a_phase_without_limits() -> None:
    phases = (Phase("a", (1, 2), at_most=2), Phase("break", (3, 3)), Phase("b", (4,), at_most=1))
    assert WeeklyCap(phases=phases).phases == phases


# --- 3. phases no course can keep to ----------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "words"),
    [
        (
            {"weeks": [1, 2], "at_most": 7, "target": 7, "min_gap_days": 2},
            "min_gap_days: 7 sessions (target) at least 2 days apart do not fit",
        ),
        (
            {"weeks": [1, 2], "target": 2, "min_gap_days": 8},
            "min_gap_days: 2 sessions (target) at least 8 days apart do not fit",
        ),
        (
            {"weeks": [1, 2], "target": 2, "min_gap_days": 5},
            "min_gap_days: 4 sessions (2 in each of 2 weeks) at least 5 days apart",
        ),
        (
            {"weeks": [1], "target": 2, "min_gap_days": 4},
            "min_gap_days: 2 sessions (target) a week at least 4 days apart cannot go on",
        ),
        (
            {"weeks": [1], "at_most": 1, "every_days": 3},
            "every_days: a session at most every 3 days needs more than at_most = 1",
        ),
        (
            {"weeks": [1], "every_days": 3, "min_gap_days": 4},
            "min_gap_days: sessions at least 4 days apart cannot be at most every_days = 3",
        ),
    ],
)
def test_a_phase_no_course_can_keep_to_is_refused(phase: dict[str, object], words: str) -> None:
    data = {"name": "p", **phase}
    with pytest.raises(ProtocolError) as caught:
        Phase(**data)  # type: ignore[arg-type]
    assert words in str(caught.value)
    document = {"id": "c", "version": "1", "phases": [data], "rules": [{"id": "min-gap"}]}
    with pytest.raises(ProtocolError, match=r"phases: \[0\] min_gap_days|phases: \[0\] every_days"):
        Protocol.from_dict(document)


@pytest.mark.parametrize(
    "phase",
    [
        {"weeks": [1, 1], "target": 7, "min_gap_days": 1},  # one every day
        {"weeks": [1, 3], "target": 2, "min_gap_days": 3},  # days 0, 3, 7, 10, 14, 17
        {"weeks": [1], "target": 1, "min_gap_days": 7},  # once a week, same weekday
        {"weeks": [1], "at_most": 2, "every_days": 4, "min_gap_days": 4},  # every 4 days
    ],
)
def test_phases_at_the_edge_of_possible_are_kept(phase: dict[str, object]) -> None:
    assert Phase(name="p", **phase).name == "p"  # type: ignore[arg-type]


# --- 4. a plan's range never runs backwards; never complete with a missed week ------------


def two_sessions() -> Course:
    return course(series(["2026-12-01", "2026-12-05"]))


@pytest.mark.parametrize("until", ["2026-12-01", "2026-12-05"])
def test_until_before_the_first_plannable_day_is_refused(until: str) -> None:
    # Before: status complete, "no session is needed or bookable from 2026-12-06 to
    # 2026-12-05".
    with pytest.raises(kaprules.InputError, match=r"until: .* is before 2026-12-06, the first"):
        plan(two_sessions(), D0, protocol=TRD, until=dt.date.fromisoformat(until))


def test_cli_until_before_the_first_plannable_day_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.json"
    path.write_text(kaprules.dumps(two_sessions()))
    argv = ["plan", str(path), "--as-of", "2026-12-01", "--protocol", "esketamine-trd@1"]
    assert main([*argv, "--until", "2026-12-05"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "until: 2026-12-05 is before 2026-12-06" in err


def test_a_plan_is_not_complete_while_a_week_over_missed_its_target() -> None:
    # esketamine-mdsi's 4 weeks are over; weeks 2 to 4 had no session. Before: complete.
    mdsi = kaprules.get_protocol("esketamine-mdsi@1")
    result = plan(two_sessions(), dt.date(2027, 3, 1), protocol=mdsi)
    assert result.status == "targets-missed"
    assert [(m.week, m.sessions, m.needed) for m in result.missed] == [
        (2, 0, 2),
        (3, 0, 2),
        (4, 0, 2),
    ]
    assert "3 weeks over by as_of missed their targets: week 2" in result.reason
    kept = course(series(list(TWICE_WEEKLY_DATES)))
    assert plan(kept, dt.date(2027, 3, 1), protocol=mdsi).status == "complete"


# --- 8. the overdue message states the phase and due date it judged by --------------------


def test_overdue_with_as_of_names_the_phase_and_the_day_it_ran_out() -> None:
    # Before: "in phase maintenance the next session was due by 2026-12-15", a date in
    # the induction phase, where no session is ever overdue.
    one = course(series(["2026-12-01"]))
    report = kaprules.evaluate(one, TRD, as_of=dt.date(2027, 6, 1))
    (finding,) = [f for f in report.findings if f.rule == "overdue"]
    assert finding.message.endswith(
        "phase maintenance began on 2027-01-26 (treatment week 9) and allows at most 14 days "
        "between sessions, so the next session was due by 2027-01-25 (as of 2027-06-01)"
    )
    # The day it names is the last one it allows: as of 2027-01-25 nothing is overdue.
    on_time = kaprules.evaluate(one, TRD, as_of=dt.date(2027, 1, 24))
    assert "overdue" not in [f.rule for f in on_time.findings]
    assert "overdue" in [
        f.rule for f in kaprules.evaluate(one, TRD, as_of=dt.date(2027, 1, 25)).findings
    ]


def test_overdue_between_sessions_names_the_day_the_gap_ran_out() -> None:
    # The last optimization session on 2027-01-05, the next on 2027-01-27 (week 9).
    # Before: "due within 14 days (by 2027-01-19)", though a session in week 8 is never
    # overdue: up to 2027-01-25 the gap did not count.
    dates = [
        *TWICE_WEEKLY_DATES,
        "2026-12-29",
        "2027-01-05",
        "2027-01-27",
    ]
    report = kaprules.evaluate(course(series(dates)), TRD)
    (finding,) = [f for f in report.findings if f.rule == "overdue"]
    assert finding.message.endswith(
        "phase maintenance began on 2027-01-26 (treatment week 9) and allows at most 14 days "
        "between sessions, so the next session is due by 2027-01-25"
    )


# --- 5. tied readings: the worst counts, whatever their order -------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_blood_pressure_limit_takes_the_worst_of_readings_at_one_instant(reverse: bool) -> None:
    # Before: [08:50 120/80, 08:50 200/120] gave no finding; reversed gave one.
    start = at("2026-12-01")
    taken = start - dt.timedelta(minutes=10)
    vitals = [Vital(taken, 120, 80), Vital(taken, 200, 120)]
    one = course([Session(start, Kind.INDUCTION, "s1", vitals=vitals[::-1] if reverse else vitals)])
    report = kaprules.evaluate(one, Protocol("bp", "1", [BloodPressureLimit()]))
    assert [f.rule for f in report.findings] == ["blood-pressure-limit"]
    assert "200" not in report.findings[0].message


# --- 13. sessions and courses pickle and copy -----------------------------------------


@pytest.mark.parametrize(
    "clone", [lambda x: pickle.loads(pickle.dumps(x)), copy.deepcopy, copy.copy]
)
def test_sessions_and_courses_pickle_and_copy(clone: Callable[[object], object]) -> None:
    # Before: TypeError: cannot pickle 'mappingproxy' object (the frozen extra).
    session = Session(
        at("2026-12-01"),
        Kind.INDUCTION,
        "s1",
        vitals=[Vital(at("2026-12-01", "08:50"), 120, 80)],
        dose_mg=56,
        extra={"scale": {"phq9": [1, 2]}},
    )
    whole = Course(DENVER, [session], extra={"site": "north"}, id="c1", enrolled=D0)
    for value in (session, whole):
        copied = clone(value)
        assert copied == value
        assert hash(copied) == hash(value)
    assert clone(whole).sessions[0].extra == {"scale": {"phq9": (1, 2)}}  # type: ignore[attr-defined]


# --- 7. phases given twice ------------------------------------------------------------


def test_top_level_phases_and_a_rules_own_are_refused() -> None:
    # Before: the rule's own phases won and the file's were silently dropped.
    data = {
        "id": "c",
        "version": "1",
        "phases": [{"name": "a", "weeks": [1], "at_most": 2}],
        "rules": [
            {
                "id": "weekly-cap",
                "parameters": {"phases": [{"name": "b", "weeks": [1], "at_most": 3}]},
            }
        ],
    }
    with pytest.raises(ProtocolError) as caught:
        Protocol.from_dict(data)
    assert "rules[0].parameters.phases: the protocol gives phases at the top of the file" in str(
        caught.value
    )
    round_trip = Protocol.from_dict(Protocol("c", "1", [WeeklyCap()]).to_dict())
    assert round_trip.rules[0].phases == WeeklyCap().phases  # type: ignore[attr-defined]


# --- 6. a dose and a reading that cannot be real ------------------------------------------


@pytest.mark.parametrize("dose", ["1" + "0" * 400, "100001", "100000.5"])
def test_a_dose_over_the_bound_is_refused_without_its_value(dose: str) -> None:
    # Before: a 401-digit dose was accepted and written back.
    text = (
        '{"timezone": "UTC", "sessions": [{"id": "s1", "start": "2026-12-01T09:00:00Z", '
        f'"dose_mg": {dose}}}]}}'
    )
    with pytest.raises(kaprules.InputError) as caught:
        kaprules.parse_course(text)
    assert str(caught.value) == "sessions[0] (id 's1').dose_mg: must be at most 100000 mg, got more"
    assert kaprules.parse_course(text.replace(dose, "100000")).sessions[0].dose_mg == 100_000


def test_a_reading_with_the_diastolic_above_the_systolic_is_refused() -> None:
    text = (
        '{"timezone": "UTC", "sessions": [{"id": "s1", "start": "2026-12-01T09:00:00Z", '
        '"vitals": [{"at": "2026-12-01T08:50:00Z", "systolic": 60, "diastolic": 200}]}]}'
    )
    with pytest.raises(kaprules.InputError) as caught:
        kaprules.parse_course(text)
    assert "sessions[0] (id 's1').vitals[0].diastolic: must be at most" in str(caught.value)
    assert "60" not in str(caught.value)
    assert "200" not in str(caught.value)
