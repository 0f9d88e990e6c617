"""The benchmark's hand-written baseline is an independent oracle: it must agree with kaprules."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaprules import ClinicCalendar, Course, evaluate, kap_protocol, parse_course, plan
from kaprules.strategies import compliant_courses, courses

from conftest import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_evaluate  # type: ignore[import-not-found]
import bench_planner  # type: ignore[import-not-found]


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
    course = parse_course(text)
    assert timezone == course.timezone
    assert rows == as_rows(course)
    assert bench_evaluate.baseline_check(timezone, rows) == evaluate(course).rules_found


@pytest.mark.slow
def test_benchmark_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_evaluate.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "parse_course + evaluate" in out
    assert "ratio" in out


@pytest.mark.slow
def test_floor_script_runs_beside_the_polars_peer(tmp_path: Path) -> None:
    peers = ROOT.parent / "shared" / "bench" / "peers"
    if not (peers / "peer_polars.py").exists():
        pytest.skip(
            f"the benchmark peers are missing: put peer_polars.py in {peers} (shared/bench/"
            "peers/ beside this checkout)"
        )
    if importlib.util.find_spec("polars") is None:
        # Polars is the columnar extra's, not the test extra's.
        pytest.skip("the Polars peer needs Polars: pip install '.[columnar]'")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_floor.py"), "--courses", "60",
         "--rounds", "1", "--dir", str(tmp_path), "--peers", str(peers)],
        capture_output=True, text=True, check=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    rows = [line.split() for line in out.stdout.splitlines() if line.endswith("x")]
    assert len(rows) == 5
    assert rows[0][-1] == "1.00x"
    assert all(float(row[-1][:-1]) > 0 for row in rows)
    assert "The proofs alone take" in out.stdout


@given(
    st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31)),
    st.sets(st.integers(0, 6), min_size=1),
    st.lists(st.integers(1, 60), max_size=20),
    st.integers(1, 8),
    st.integers(1, 30),
    st.integers(1, 4),
)
def test_planner_baseline_and_kaprules_agree(
    today: dt.date, weekdays: set[int], closed_in: list[int], count: int, window: int, gap: int
) -> None:
    closed = {today + dt.timedelta(days=k) for k in closed_in}
    protocol = kap_protocol("bench", "1", count=count, window_days=window, min_days=gap)
    proposed = plan(
        Course("UTC", []), today, ClinicCalendar(weekdays=weekdays, closed=closed), protocol
    )
    expected = bench_planner.baseline_plan(today, weekdays, closed, count, window, gap)
    assert [s.start.date() for s in proposed.sessions] == (expected or [])
