"""What a rule's vectorised form reads and writes: `Columns`, a row a session."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable
from typing import Any

__all__ = [
    "FIRST_DAY",
    "LAST_DAY",
    "WHITESPACE",
    "Columns",
    "Expr",
    "FindingForm",
    "iso_dates",
    "iso_text",
    "looked_up",
    "months_later",
]

Expr = Any
"""A Polars expression (``polars.Expr``): Polars is imported only where a chunk is read."""

FindingForm = tuple[Any, ...]
"""One finding's vectorised form, as `Columns.finding` makes it."""


# Every character str.strip() removes (str.isspace()): a blank escort or id.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


# The local dates a session can have (LINE holds a start's local year to 1901-2199), a day
# either way, in days since 1970-01-01.
FIRST_DAY = (dt.date(1900, 12, 31) - dt.date(1970, 1, 1)).days


LAST_DAY = (dt.date(2200, 1, 1) - dt.date(1970, 1, 1)).days


@functools.cache
def _days() -> Any:
    # Every day from FIRST_DAY to LAST_DAY, as Polars dates.
    import polars as pl

    epoch = dt.date(1970, 1, 1)
    first, last = epoch + dt.timedelta(days=FIRST_DAY), epoch + dt.timedelta(days=LAST_DAY)
    return pl.date_range(first, last, eager=True)


@functools.lru_cache(maxsize=16)
def months_later(months: int) -> Any:
    """``_time.add_months(day, months)`` of each day from `FIRST_DAY` to `LAST_DAY`, in days.

    A Series, index 0 being `FIRST_DAY`, computed once per number of months: Polars'
    calendar months clamp the day to the month's last, as ``_time.add_months`` does (a
    test holds the two equal).
    """
    import polars as pl

    return _days().dt.offset_by(f"{months}mo").cast(pl.Int32).cast(pl.Int64)


@functools.cache
def iso_dates() -> Any:
    """``date.isoformat()`` of each day from `FIRST_DAY` to `LAST_DAY` (a Series of texts)."""
    return _days().dt.to_string("%Y-%m-%d")


def looked_up(table: Any, date: Expr) -> Expr:
    """The entry of ``table`` (one a day from `FIRST_DAY`) for each date of a column.

    Null (an unknown: its course is then read per record) for a date outside the local
    dates a session can have.
    """
    import polars as pl

    index = date.cast(pl.Int64) - FIRST_DAY
    inside = (index >= 0) & (index <= LAST_DAY - FIRST_DAY)
    return pl.lit(table).gather(pl.when(inside).then(index))


def iso_text(date: Expr) -> Expr:
    """A date column (days since 1970-01-01) as ``date.isoformat()``, looked up (`looked_up`).

    Several times cheaper than formatting each date.
    """
    return looked_up(iso_dates(), date)


class Columns:
    """What a rule's ``columnar`` form reads and writes: Polars expressions, a row a session.

    Rows are in start order within each course (ties broken by id), as the timeline has
    them; courses read here have no integration meetings. A form honours ``as_of``
    through `planned` and `as_of_date`, as ``__call__`` does through the timeline's.

    Attributes:
        induction: Whether the session is an induction session.
        date: Its local date, in days since 1970-01-01.
        previous_date: The local date of the session before it in the course, or null.
        utc: Its start, in seconds since 1970-01-01 UTC.
        food: Its ``last_food``, in seconds since 1970-01-01 UTC, or null.
        escort: Its escort, or null.
        therapist: Its therapist, or null.
        inductions: The course's induction sessions.
        inductions_before: Induction sessions before it in the course.
        first_induction_date: The local date of the course's first induction, or null.
        first: Whether it is the course's first session.
        label: How messages name it (`TimedSession.label`).
        previous_label: How messages name the session before it.
        planned: Whether the session is still planned (`TimedSession.planned`): always
            False without ``as_of``.
        as_of_date: The local date of ``as_of`` in the course's zone
            (`Timeline.as_of_date`), in days since 1970-01-01; null without ``as_of``.
        series_length: The protocol's series length (`Timeline.series_length`), or None.
    """

    def __init__(self, series_length: int | None) -> None:
        import polars as pl

        self._pl = pl
        self.series_length = series_length
        self.induction: Expr = pl.col("induction")
        self.date: Expr = pl.col("date")
        self.previous_date: Expr = pl.col("prev_date")
        self.utc: Expr = pl.col("utc")
        self.food: Expr = pl.col("food")
        self.escort: Expr = pl.col("escort")
        self.therapist: Expr = pl.col("therapist")
        self.inductions: Expr = pl.col("n_induction")
        self.inductions_before: Expr = pl.col("inductions_before")
        self.first_induction_date: Expr = pl.col("first_induction_date")
        self.first: Expr = pl.col("place") == 0
        self.label: Expr = pl.col("label")
        self.planned: Expr = pl.col("planned")
        self.as_of_date: Expr = pl.col("as_of_date")
        self.previous_label: Expr = pl.col("prev_label")
        self.groups: list[tuple[str, Expr]] = []

    def of_kinds(self, kinds: Iterable[object]) -> Expr:
        """Whether the session is of one of ``kinds``."""
        values = {str(k) for k in kinds}
        if values >= {"induction", "booster"}:
            return self._pl.lit(True)
        if "induction" in values:
            return self.induction
        if "booster" in values:
            return ~self.induction
        return self._pl.lit(False)

    def blank(self, text: Expr) -> Expr:
        """Whether a text column is null or only whitespace (as ``not text.strip()``)."""
        return text.is_null() | (text.str.strip_chars(WHITESPACE) == "")

    def add_months(self, date: Expr, months: int) -> Expr:
        """``_time.add_months`` on a date column (days since the epoch): day clamped.

        Looked up in a table of every local date a session can have (`months_later`);
        null (an unknown: the course is then read per record) for a date outside it.
        """
        return looked_up(months_later(months), date)

    # --- messages ---------------------------------------------------------------------

    def text(self, *parts: Expr) -> Expr:
        """Parts (text, or integer or text expressions) joined, as an f-string would."""
        pl = self._pl
        return pl.concat_str(
            [pl.lit(p) if isinstance(p, str) else p.cast(pl.String) for p in parts]
        )

    def choose(self, condition: Expr, then: Expr, otherwise: Expr) -> Expr:
        """``then`` where ``condition`` holds, else ``otherwise`` (texts or expressions)."""
        pl = self._pl
        return pl.when(condition).then(_lit(pl, then)).otherwise(_lit(pl, otherwise))

    def joined(self, where: Expr, text: Expr) -> Expr:
        """The texts of a course's sessions where ``where`` holds, joined by ``", "``."""
        name = f"_group{len(self.groups)}"
        self.groups.append((name, text.filter(where).str.join(", ")))
        return self._pl.col(name)

    def iso(self, date: Expr) -> Expr:
        """A date column as ``date.isoformat()`` (`iso_text`: null outside the table)."""
        return iso_text(date)

    def days(self, n: Expr) -> Expr:
        """``_days(n)``: ``1 day``, ``2 days``."""
        return self.text(n, self.choose(n == 1, " day", " days"))

    def duration(self, seconds: Expr) -> Expr:
        """``_time.format_duration`` of whole seconds: ``3 h 59 min``, ``-1 h 00 min 05 s``."""
        pl = self._pl
        size = seconds.abs()
        minutes = (size % 3600 // 60).cast(pl.String).str.zfill(2)
        secs = (size % 60).cast(pl.String).str.zfill(2)
        return self.text(
            self.choose(seconds < 0, "-", ""),
            size // 3600,
            " h ",
            minutes,
            " min",
            self.choose(size % 60 != 0, self.text(" ", secs, " s"), ""),
        )

    def iso_duration(self, seconds: Expr) -> Expr:
        """``_iso_duration`` of whole seconds: ``PT3H59M``, ``-PT1H``, ``PT0S``."""
        pl = self._pl
        size = seconds.abs()
        hours, minutes, secs = size // 3600, size % 3600 // 60, size % 60
        body = pl.concat_str(
            [
                self.choose(hours != 0, self.text(hours, "H"), ""),
                self.choose(minutes != 0, self.text(minutes, "M"), ""),
                self.choose(secs != 0, self.text(secs, "S"), ""),
            ]
        )
        return self.text(
            self.choose(seconds < 0, "-", ""), "PT", self.choose(body == "", "0S", body)
        )

    def number(self, value: Expr) -> Expr:
        """An integer (or integer column) as a finding's expected or actual value."""
        return self.text(value if not isinstance(value, int) else str(value))

    def string(self, value: Expr) -> Expr:
        """A text (or text column, without quotes or escapes) as an expected or actual value."""
        if isinstance(value, str):
            return self._pl.lit(json.dumps(value))
        return self.text('"', value, '"')

    def null(self) -> Expr:
        """None as an expected or actual value."""
        return self._pl.lit("null")

    def finding(
        self, where: Expr, message: Expr, expected: Expr, actual: Expr, sessions: Expr = "this"
    ) -> FindingForm:
        """A finding at each session where ``where`` holds.

        Args:
            where: Where the rule has the finding (one finding a row).
            message: Its message.
            expected: Its expected value, from `number`, `string` or `null`.
            actual: Its actual value, likewise.
            sessions: The sessions it names: ``"this"`` (the row's), ``"pair"`` (the one
                before and the row's), None (none), or a condition: the course's sessions
                where it holds.
        """
        if sessions is None or isinstance(sessions, str):
            return (where, message, expected, actual, sessions)
        name = f"_group{len(self.groups)}"
        self.groups.append((name + "_ids", self._pl.col("sid").filter(sessions)))
        self.groups.append((name + "_places", self._pl.col("place").filter(sessions)))
        return (where, message, expected, actual, name)


def _lit(pl: Any, value: Any) -> Any:
    return pl.lit(value) if isinstance(value, str) else value
