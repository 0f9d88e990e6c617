"""Time kaprules against a plain hand-written check, side by side in one process.

Run:  python benchmarks/bench_evaluate.py [--quick]

Two comparisons on a six-session compliant course (examples/compliant.json without its
booster, so that both sides do the six checks on six sessions):

1. ``evaluate(course)`` vs ``baseline_check(...)`` on already-parsed values;
2. ``parse_course(text)`` + ``evaluate`` vs ``json.loads`` + ``datetime.fromisoformat``
   + ``baseline_check``.

Each is timed with ``timeit`` (best of several repeats) and reported as a ratio; the goal
is a ratio of at most 2. kaprules reads JSON with orjson when it is installed (it is a
dependency on CPython); the baseline keeps ``json.loads``, the plainest honest reading.
``baseline_check`` is also the oracle of a differential test (tests/test_benchmark.py), so
it stays a faithful, independent reading of kap-standard v1.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import itertools
import json
import platform
import sys
import timeit
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import kaprules

UTC = dt.UTC
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "compliant.json"


def _add_months(date: dt.date, months: int) -> dt.date:
    month0 = date.month - 1 + months
    year, month = date.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(date.day, calendar.monthrange(year, month)[1]))


def baseline_check(timezone: str, sessions: list[dict[str, Any]]) -> set[str]:
    """kap-standard v1 by hand with the standard library: the ids of the rules broken.

    Sessions are dicts with id, kind, start, last_food (aware datetimes or None) and escort.
    The record is final (no as_of).
    """
    zone = ZoneInfo(timezone)
    rows = sorted((s["start"].astimezone(UTC), s["id"], s) for s in sessions)
    dates = [start.astimezone(zone).date() for start, _, _ in rows]
    broken: set[str] = set()
    series = [i for i, (_, _, s) in enumerate(rows) if s["kind"] == "induction"]
    if len(series) != 6:
        broken.add("session-count")
    if series and any(dates[i] > dates[series[0]] + dt.timedelta(days=13) for i in series):
        broken.add("treatment-window")
    if any((b - a).days < 2 for a, b in itertools.pairwise(dates)):
        broken.add("session-spacing")
    for start, _, s in rows:
        food = s["last_food"]
        if food is None or start - food.astimezone(UTC) < dt.timedelta(hours=4):
            broken.add("fasting")
        if s["escort"] is None or not s["escort"].strip():
            broken.add("escort")
    inductions = 0
    for i, (_, _, s) in enumerate(rows):
        if s["kind"] == "induction":
            inductions += 1
        elif i == 0 or inductions < 6 or dates[i] < _add_months(dates[i - 1], 6):
            broken.add("booster-interval")
    return broken


def baseline_parse(text: str) -> tuple[str, list[dict[str, Any]]]:
    """``json.loads`` + ``datetime.fromisoformat``: the baseline's reading of a course file."""
    data = json.loads(text)
    sessions = []
    for index, s in enumerate(data["sessions"], start=1):
        food = s.get("last_food")
        sessions.append(
            {
                "id": s.get("id", str(index)),
                "kind": s.get("kind", "induction"),
                "start": dt.datetime.fromisoformat(s["start"]),
                "last_food": None if food is None else dt.datetime.fromisoformat(food),
                "escort": s.get("escort"),
            }
        )
    return data["timezone"], sessions


def six_session_text() -> str:
    """The compliant example without its booster: six induction sessions."""
    data = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["sessions"] = [s for s in data["sessions"] if s.get("kind", "induction") == "induction"]
    return json.dumps(data)


def _best_pair(ours: Any, base: Any, number: int, repeat: int) -> tuple[float, float]:
    """The best time of each, measured in alternating rounds.

    This machine's speed drifts by a quarter within seconds: timing one side fully before
    the other would let the drift into the ratio.
    """
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for stmt, kept in ((ours, times[0]), (base, times[1])):
            kept.append(timeit.timeit(stmt, number=number) / number)
    return min(times[0]), min(times[1])


def main(argv: list[str] | None = None) -> int:
    """Run both comparisons and print the times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations (a smoke run)")
    args = parser.parse_args(argv)
    number, repeat = (200, 3) if args.quick else (2_000, 40)

    text = six_session_text()
    course = kaprules.parse_course(text)
    timezone, sessions = baseline_parse(text)
    if not kaprules.evaluate(course).ok or baseline_check(timezone, sessions):
        raise SystemExit("the benchmark course must be compliant on both sides")

    results = {
        "evaluate": _best_pair(
            lambda: kaprules.evaluate(course),
            lambda: baseline_check(timezone, sessions),
            number,
            repeat,
        ),
        "parse_course + evaluate": _best_pair(
            lambda: kaprules.evaluate(kaprules.parse_course(text)),
            lambda: baseline_check(*baseline_parse(text)),
            number,
            repeat,
        ),
    }
    print(
        f"kaprules {kaprules.__version__}, Python {platform.python_version()} "
        f"({platform.machine()}), six-session course, best of {repeat} x {number}"
    )
    print(f"{'comparison':<26}{'kaprules':>12}{'baseline':>12}{'ratio':>8}  goal <= 2")
    worst = 0.0
    for name, (ours, base) in results.items():
        ratio = ours / base
        worst = max(worst, ratio)
        print(f"{name:<26}{ours * 1e6:>10.1f}us{base * 1e6:>10.1f}us{ratio:>8.2f}")
    return 0 if worst <= 2 or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
