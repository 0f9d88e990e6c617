"""Time the planner's worst case against a plain hand-written planner, in one process.

Run:  python benchmarks/bench_planner.py [--quick]

The worst case of ``kaprules.plan`` is a new series that fits nowhere: every open first
day within the 366-day horizon is tried. A calendar with one open day a week makes every
first day fail for kap-standard (six sessions two days apart need three open days within
14), so the search runs to the end. Each case is timed with ``timeit`` (best of several
repeats) beside ``baseline_plan``: a plain function over sets and ``datetime.date``, no
classes, no checks, the leanest honest planner of the same semantics.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import timeit
from collections.abc import Iterator
from typing import ClassVar

import attrs

import kaprules

DAY = dt.timedelta(days=1)


def baseline_plan(
    today: dt.date, weekdays: set[int], closed: set[dt.date], count: int, window: int, gap: int
) -> list[dt.date] | None:
    """The first series of ``count`` open days, ``gap`` apart, within ``window`` days."""
    last_start = today + 366 * DAY
    start = today + DAY
    while start <= last_start:
        if start.weekday() in weekdays and start not in closed:
            placed = [start]
            closes = start + (window - 1) * DAY
            day = start + gap * DAY
            while len(placed) < count and day <= closes:
                if day.weekday() in weekdays and day not in closed:
                    placed.append(day)
                    day += gap * DAY
                else:
                    day += DAY
            if len(placed) == count:
                return placed
        start += DAY
    return None


def main() -> None:
    """Print each case's time for kaprules and the baseline, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeat, number = (3, 5) if args.quick else (7, 20)
    today = dt.date(2026, 12, 1)
    empty = kaprules.Course("America/Denver", [])
    wednesdays = kaprules.ClinicCalendar(weekdays=["wed"])
    long = kaprules.kap_protocol("long", "1", count=1000, window_days=6000, min_days=7)
    cases = [
        ("kap-standard, 1 open day a week (fits nowhere)", kaprules.STANDARD, 6, 14, 2),
        ("1000 weekly sessions in 6000 days (fits nowhere)", long, 1000, 6000, 7),
    ]
    print(f"Python {platform.python_version()} on {platform.machine()}, {sys.platform}")
    print(f"{'case':<52} {'kaprules':>10} {'baseline':>10} {'ratio':>6}")
    for title, protocol, count, window, gap in cases:
        plan = kaprules.plan(empty, today, wednesdays, protocol)
        assert plan.status == "cannot-complete"
        assert baseline_plan(today, {2}, set(), count, window, gap) is None
        ours = min(
            timeit.repeat(
                lambda p=protocol: kaprules.plan(empty, today, wednesdays, p),  # type: ignore[misc]
                repeat=repeat,
                number=number,
            )
        )
        theirs = min(
            timeit.repeat(
                lambda c=count, w=window, g=gap: baseline_plan(today, {2}, set(), c, w, g),  # type: ignore[misc]
                repeat=repeat,
                number=number,
            )
        )
        print(
            f"{title:<52} {ours / number * 1e3:>8.2f}ms {theirs / number * 1e3:>8.2f}ms "
            f"{ours / theirs:>6.2f}"
        )
    holidays = kaprules.ClinicCalendar(weekdays=["wed"], holidays="US", subdivision="CO")
    kaprules.plan(empty, today, holidays)  # load the holiday tables once
    timed = min(
        timeit.repeat(lambda: kaprules.plan(empty, today, holidays), repeat=repeat, number=number)
    )
    title = "kap-standard, 1 open day a week + US/CO holidays"
    print(f"{title:<52} {timed / number * 1e3:>8.2f}ms")
    # A clinic's own rule makes the planner search with booking checks (no closed form
    # covers it): a new series on weekdays, and the rest of one begun on Dec 1.
    own = kaprules.Protocol("own", "1", [*kaprules.STANDARD.rules, AtMostPerWeek()])
    weekdays = kaprules.ClinicCalendar()
    begun = kaprules.Course(
        "America/Denver",
        [kaprules.Session(dt.datetime(2026, 12, 1, 9, tzinfo=empty.zone), id="s1")],
    )
    for title, course in (
        ("+ a clinic's own rule: new series, weekdays", empty),
        ("+ a clinic's own rule: 5 more after Dec 1, weekdays", begun),
    ):
        assert kaprules.plan(course, today, weekdays, own).status == "planned"
        timed = min(
            timeit.repeat(
                lambda c=course: kaprules.plan(c, today, weekdays, own),  # type: ignore[misc]
                repeat=repeat,
                number=number,
            )
        )
        print(f"{title:<52} {timed / number * 1e3:>8.2f}ms")


@attrs.frozen(repr=False)
class AtMostPerWeek(kaprules.BaseRule):
    """At most 3 sessions in any 7 local days: a clinic's own rule, for the search."""

    default_id: ClassVar[str] = "at-most-3-in-7"
    title: ClassVar[str] = "At most 3 sessions a week"
    rationale: ClassVar[str] = "A benchmark's rule."
    source: ClassVar[kaprules.Source] = kaprules.Source("At most 3 in any 7 days.", "Bench")
    names: ClassVar[str] = "The 4th session."

    @property
    def statement(self) -> str:
        """What the rule requires."""
        return "At most 3 sessions in any 7 consecutive local days."

    def __call__(self, timeline: kaprules.Timeline) -> Iterator[kaprules.Finding]:
        """Yield a finding for each session that is the 4th in 7 days."""
        seen = timeline.sessions
        for index, t in enumerate(seen):
            if sum(1 for u in seen[: index + 1] if (t.date - u.date).days < 7) > 3:
                yield kaprules.Finding(self.id, self.severity, (t.id,), f"{t.label}: 4 in 7")


if __name__ == "__main__":
    main()
