"""Write a deterministic audit data set: JSON Lines (or a CSV session table) of courses.

Run:  python benchmarks/make_audit_data.py N OUT.jsonl [--seed S]
      python benchmarks/make_audit_data.py N OUT.csv --csv [--seed S]   (a CSV session table)

Each course has six to eight sessions in one of a dozen zones (DST and half-hour offsets
included). Two thirds are compliant with kap-standard v1; the rest carry one violation
each (spacing, fast, escort, window, an extra session, an early booster). One line in a
thousand is not a course at all. Every course holds a patient id and escort names, the
secrets an audit must never show. The same N and seed give the same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections.abc import Iterator
from zoneinfo import ZoneInfo

ZONES = (
    "America/Denver",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Pacific/Auckland",
    "UTC",
)
SECRET_PATIENT = "P-SECRET-4471"
SECRET_ESCORT = "Jordan Secretperson"
VIOLATIONS = ("spacing", "fast", "escort", "window", "extra", "booster")


def _at(day: dt.date, hour: int, minute: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def course(index: int, rng: random.Random) -> dict[str, object]:
    """One course: compliant, or with one violation."""
    zone_name = ZONES[rng.randrange(len(ZONES))]
    zone = ZoneInfo(zone_name)
    first = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randrange(3 * 365))
    violation = VIOLATIONS[rng.randrange(len(VIOLATIONS))] if index % 3 == 2 else None
    gaps = [2 + rng.randrange(2) for _ in range(5)]
    while sum(gaps) > 13:
        gaps[gaps.index(max(gaps))] -= 1
    days = [first]
    for gap in gaps:
        days.append(days[-1] + dt.timedelta(days=gap))
    if violation == "spacing":
        k = 1 + rng.randrange(5)
        days[k] = days[k - 1] + dt.timedelta(days=1)
        days[k + 1 :] = [d + dt.timedelta(days=0) for d in days[k + 1 :]]
        days = sorted(days)
    if violation == "window":
        days[-1] = first + dt.timedelta(days=14 + rng.randrange(3))
    if violation == "extra":
        days.append(days[-1] + dt.timedelta(days=2))
    sessions: list[dict[str, object]] = []
    for k, day in enumerate(days):
        start = _at(day, 8 + rng.randrange(6), 30 * rng.randrange(2), zone)
        fast = dt.timedelta(hours=4, minutes=rng.randrange(240))
        sessions.append(
            {
                "id": f"s{k + 1}",
                "start": start.isoformat(),
                "last_food": (start - fast).isoformat(),
                "escort": SECRET_ESCORT,
            }
        )
    target = sessions[rng.randrange(len(sessions))]
    if violation == "fast":
        start = dt.datetime.fromisoformat(str(target["start"]))
        target["last_food"] = (start - dt.timedelta(hours=3, minutes=59)).isoformat()
    if violation == "escort":
        target["escort"] = " "
    boosters = rng.randrange(3) if violation is None else (1 if violation == "booster" else 0)
    previous = days[-1]
    for b in range(boosters):
        months = 6 if violation is None else 5
        month = previous.month - 1 + months
        year, month = previous.year + month // 12, month % 12 + 1
        day = dt.date(year, month, min(previous.day, 28))
        if violation is None and day < previous + dt.timedelta(days=183):
            day += dt.timedelta(days=4)
        start = _at(day, 10, 0, zone)
        sessions.append(
            {
                "id": f"b{b + 1}",
                "kind": "booster",
                "start": start.isoformat(),
                "last_food": (start - dt.timedelta(hours=6)).isoformat(),
                "escort": SECRET_ESCORT,
            }
        )
        previous = day
        if len(sessions) >= 8:
            break
    rng.shuffle(sessions)  # ids in odd orders: the loader must not care
    return {
        "id": f"c-{index:07d}",
        "timezone": zone_name,
        "patient": SECRET_PATIENT,
        "sessions": sessions,
    }


def lines(count: int, seed: int = 1) -> Iterator[str]:
    """``count`` JSON lines: courses, and one in a thousand not a course."""
    rng = random.Random(seed)
    for index in range(1, count + 1):
        if index % 1000 == 500:
            yield '{"timezone": "UTC", "sessions": [{"start": "not a time"}]}'
        else:
            yield json.dumps(course(index, rng), separators=(",", ":"))


def csv_rows(count: int, seed: int = 1) -> Iterator[list[str]]:
    """The same courses as a session table, one row per session."""
    yield ["course_id", "timezone", "session_id", "kind", "start", "last_food", "escort"]
    for text in lines(count, seed):
        data = json.loads(text)
        for s in data["sessions"]:
            yield [
                data.get("id", "bad"),
                data["timezone"],
                s.get("id", ""),
                s.get("kind", "induction"),
                s["start"],
                s.get("last_food", ""),
                s.get("escort", ""),
            ]


def main() -> int:
    """Write the data set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--csv", action="store_true", help="write a CSV session table")
    args = parser.parse_args()
    with open(args.out, "w", encoding="utf-8", newline="") as handle:
        if args.csv:
            import csv

            csv.writer(handle, lineterminator="\n").writerows(csv_rows(args.count, args.seed))
        else:
            for line in lines(args.count, args.seed):
                handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
