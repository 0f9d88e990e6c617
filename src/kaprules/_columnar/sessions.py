"""A row a session: the courses read here, in start order, with the timeline's columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from kaprules import _time
from kaprules._columnar.columns import iso_text
from kaprules._columnar.decode import SESSION_KEYS
from kaprules._columnar.zones import EPOCH, instant_seconds, zone_offsets
from kaprules._moments import AsOf

__all__ = ["as_of_columns", "labelled", "session_rows"]


def session_rows(courses: Any, as_of: AsOf = None) -> Any:
    """One row per session of the clean courses, in start order, with the rules' columns.

    Eager, step by step: on these frames Polars' in-memory steps cost less than one lazy
    plan. Only the courses certain to be read as the loader reads them are kept.
    ``courses``: `findings.courses_of`'s; with ``course_quotes``, each course's sessions'
    strings must account for its line's quotes left over (else a key was given twice).
    """
    import polars as pl

    # Each line's quotes to account for, unless all were at once (courses_of).
    quoted = "course_quotes" in courses.columns
    zones = courses["tz"].unique().drop_nulls().to_list()
    offset, index = zone_offsets(tuple(sorted(zones)))
    courses = courses.with_columns(
        zone=pl.col("tz").replace_strict(index, default=None, return_dtype=pl.Int64)
    )
    s = (
        courses.select(
            "row",
            "zone",
            "n",
            *(["course_quotes"] if quoted else []),
            "sessions",
            pos=pl.int_ranges(0, pl.col("n")),
        )
        .explode("sessions", "pos")
        .unnest("sessions")
    )
    start = instant_seconds("start")
    food = instant_seconds("last_food")
    given = [pl.col(k).is_not_null().cast(pl.Int64) for k in SESSION_KEYS]
    quotes = ["course_quotes", (pl.sum_horizontal(given) * 4).alias("quotes")] if quoted else []
    s = s.select(
        "row",
        "zone",
        *quotes,
        "pos",
        "escort",
        "therapist",
        utc=start,
        food=food,
        # A positional id where none is given (made only then: numbers as texts cost).
        sid=(
            pl.coalesce(pl.col("id"), (pl.col("pos") + 1).cast(pl.String))
            if s["id"].null_count()
            else pl.col("id")
        ),
        induction=pl.col("kind").is_null() | (pl.col("kind") == "induction"),
        valid=(pl.col("kind").is_null() | pl.col("kind").is_in(["induction", "booster"])),
        _food_given=pl.col("last_food").is_not_null(),
    )
    # A start (required), and a last_food when given, that were read: their layouts are
    # the line's (LINE), their dates real (see instant).
    read = pl.col("utc").is_not_null() & (~pl.col("_food_given") | pl.col("food").is_not_null())
    s = s.with_columns(valid=pl.col("valid") & read).drop("_food_given")
    s = s.with_columns(offset=offset)
    # Start order; sessions that start together (ordered by id in the timeline) send their
    # course the per-record way, so that only integers are sorted here.
    s = s.with_columns(date=(pl.col("utc") + pl.col("offset")) // 86400).sort("row", "utc")
    s = s.with_columns(as_of_columns(as_of, index))
    s = s.with_columns(
        _tie=(pl.col("row") == pl.col("row").shift(1)) & (pl.col("utc") == pl.col("utc").shift(1))
    )
    # Whether the course is certain: every session valid, every quote accounted for, its
    # zone known, its session ids unique, no two at the same instant.
    certain = (
        ~pl.col("_tie").fill_null(False).any()
        & pl.col("valid").all()
        & pl.col("offset").is_not_null().all()
        & (pl.col("sid").n_unique() == pl.len())
    )
    if quoted:
        certain = certain & (pl.col("course_quotes").first() == pl.col("quotes").sum())
    ok = s.group_by("row").agg(certain.alias("ok")).filter(pl.col("ok"))["row"]
    s = s.filter(pl.col("row").is_in(ok.implode()))
    if quoted:
        s = s.drop("course_quotes", "quotes")
    row = pl.col("row")
    # The frame's first row starts a course too (the shift gives it null, not True).
    start_row = (row != row.shift(1)).fill_null(True)
    number = pl.int_range(pl.len(), dtype=pl.Int64)
    ind = pl.col("induction").cast(pl.Int64)
    # Rows are sorted by course: each course's first row, and running sums from there.
    s = s.with_columns(
        _start=pl.when(start_row).then(number).forward_fill(),
        _cum=ind.cum_sum() - ind,
    )
    s = s.with_columns(
        place=number - pl.col("_start"),
        _base=pl.when(start_row).then(pl.col("_cum")).forward_fill(),
    )
    first_ind = pl.col("induction") & (pl.col("_cum") == pl.col("_base"))
    s = s.with_columns(
        prev_date=pl.when(~start_row).then(pl.col("date").shift(1)),
        inductions_before=pl.col("_cum") - pl.col("_base"),
        _fid_row=pl.when(first_ind).then(row).forward_fill(),
        _fid=pl.when(first_ind).then(pl.col("date")).forward_fill(),
    )
    return s.with_columns(
        n_induction=ind.sum().over("row"),
        first_induction_date=pl.when(pl.col("_fid_row") == row).then(pl.col("_fid")),
    ).drop("_start", "_cum", "_base", "_fid_row", "_fid", "_tie")


EPOCH_DAY = dt.date(1970, 1, 1)


def as_of_columns(as_of: AsOf, zones: dict[str, int]) -> list[Any]:
    """``planned`` and ``as_of_date`` of each session, as `Timeline.of` sets them.

    ``as_of_date``: the local date of ``as_of`` in the course's zone (``zones``: the ids
    of the ``zone`` column), in days since 1970-01-01, null without ``as_of``. A session
    is planned when it starts after an ``as_of`` instant, or on a local date after an
    ``as_of`` date; "today" is a date in each zone (the per-record path's ``date_in``).
    """
    import polars as pl

    if as_of is None:
        return [pl.lit(False).alias("planned"), pl.lit(None, dtype=pl.Int64).alias("as_of_date")]
    if isinstance(as_of, dt.date) and not isinstance(as_of, dt.datetime):
        day = (dt.date(as_of.year, as_of.month, as_of.day) - EPOCH_DAY).days
        return [
            (pl.col("date") > day).alias("planned"),
            pl.lit(day, dtype=pl.Int64).alias("as_of_date"),
        ]
    if isinstance(as_of, dt.datetime):
        instant = _time.to_utc(as_of)
        date = _local_dates(zones, lambda zone: instant.astimezone(zone).date())
        micro = (instant - EPOCH) // dt.timedelta(microseconds=1)
        return [(pl.col("utc") * 1_000_000 > micro).alias("planned"), date.alias("as_of_date")]
    date = _local_dates(zones, as_of.date_in)  # "today": its date in each zone
    return [(pl.col("date") > date).alias("planned"), date.alias("as_of_date")]


def _local_dates(zones: dict[str, int], local: Callable[[Any], dt.date]) -> Any:
    """``local(zone)`` of each session's zone, in days since 1970-01-01 (a column)."""
    import polars as pl

    days = {z: (local(_time.zone(name)) - EPOCH_DAY).days for name, z in zones.items()}
    return pl.col("zone").replace_strict(days, default=None, return_dtype=pl.Int64)


# " 09:00" for each minute of a day; " UTC+05:30)" for each offset in minutes, up to a
# day, then " UTC-05:30)" for the same negative ones.
_WALL_TIMES = [f" {m // 60:02d}:{m % 60:02d}" for m in range(24 * 60)]


_OFFSET_MINUTES = 24 * 60 + 1


_OFFSETS = [
    f" UTC{sign}{m // 60:02d}:{m % 60:02d})" for sign in "+-" for m in range(_OFFSET_MINUTES)
]


def labelled(sessions: Any) -> Any:
    """The sessions with their labels: ``session s3 (2026-12-03 09:00 UTC-07:00)``."""
    import polars as pl

    local = pl.col("utc") + pl.col("offset")
    of_day = local - pl.col("date") * 86400
    minutes = pl.col("offset").abs() // 60
    negative = (pl.col("offset") < 0).cast(pl.Int64)
    # Wall times and offsets as texts looked up (`_time.format_local`'s): several times
    # cheaper than formatting their numbers row by row.
    label = pl.concat_str(
        [
            pl.lit("session "),
            pl.col("sid"),
            pl.lit(" ("),
            iso_text(pl.col("date")),
            pl.lit(pl.Series(_WALL_TIMES)).gather(of_day // 60),
            pl.lit(pl.Series(_OFFSETS)).gather(minutes + negative * _OFFSET_MINUTES),
        ]
    )
    same = pl.col("row") == pl.col("row").shift(1)
    return sessions.with_columns(label=label).with_columns(
        prev_label=pl.when(same).then(pl.col("label").shift(1)),
        prev_sid=pl.when(same).then(pl.col("sid").shift(1)),
    )
