"""Phased protocols and session-day data under a new user's and a hostile tester's input.

Each test here is the regression test of one defect found in the phased-protocol work
(issue 23's review): scheduling cost on long courses, phases no calendar can satisfy or
that leave weeks uncovered, plan ranges, the overdue message, tied readings, bounds and
pickling.
"""

from __future__ import annotations

import datetime as dt
import time

from hypothesis import given, settings
from hypothesis import strategies as st

import kaprules
from kaprules import Course, Kind, Session
from kaprules.forecasting import PhasedSearch, check_booking, scheduling_timeline
from kaprules.planning import plan

from helpers import DENVER, at, course, series

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
    result = plan(big, dt.date(2027, 1, 1), protocol=TRD, until=dt.date(2027, 12, 31))
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
