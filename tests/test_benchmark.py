"""The benchmark's hand-written baseline is an independent oracle: it must agree with kaprules."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaprules import Course, evaluate
from kaprules.strategies import compliant_courses, courses

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_evaluate  # type: ignore[import-not-found]


def as_rows(course: Course) -> list[dict[str, object]]:
    return [
        {
            "id": s.id,
            "kind": str(s.kind),
            "start": s.start,
            "last_food": s.last_food,
            "escort": s.escort,
        }
        for s in course.sessions
    ]


@given(courses(max_sessions=10))
def test_baseline_and_kaprules_agree_on_any_course(course: Course) -> None:
    assert (
        bench_evaluate.baseline_check(course.timezone, as_rows(course))
        == evaluate(course).rules_found
    )


@given(compliant_courses(), st.data())
def test_baseline_and_kaprules_agree_near_the_boundaries(
    course: Course, data: st.DataObject
) -> None:
    # Nudge one session's start by up to a day and a half: dates cross midnight and DST.
    target = data.draw(st.sampled_from(course.sessions))
    shift = data.draw(st.timedeltas(dt.timedelta(hours=-36), dt.timedelta(hours=36)))
    nudged = attrs.evolve(target, start=target.start + shift)
    course = attrs.evolve(course, sessions=[nudged if s is target else s for s in course.sessions])
    assert (
        bench_evaluate.baseline_check(course.timezone, as_rows(course))
        == evaluate(course).rules_found
    )


def test_baseline_parse_matches_parse_course() -> None:
    text = bench_evaluate.six_session_text()
    timezone, rows = bench_evaluate.baseline_parse(text)
    assert not bench_evaluate.baseline_check(timezone, rows)


@pytest.mark.slow
def test_benchmark_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_evaluate.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "parse_course + evaluate" in out
    assert "ratio" in out
