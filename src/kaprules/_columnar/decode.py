"""Lines into courses: the lines certain to be read as the loader reads them, decoded.

The course format's keys are `kaprules.course_files`' own; a line of any other shape (a
key this engine does not read, an escape, an instant in another layout) takes the
per-record path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from kaprules._columnar.columns import WHITESPACE
from kaprules.course_files import COURSE_FORMAT, MAX_SESSIONS, SESSION_FIELDS

__all__ = [
    "COURSE_KEYS",
    "LINE",
    "SESSION_KEYS",
    "decode_frame",
    "quotes_between",
    "read_courses",
    "schema",
    "session_strings",
    "utf8",
]


# The course format's fields (`kaprules.course_files`) this engine reads: the course's
# texts, and a session's own fields (those before its ``extra``; the session-day fields
# after it send a course the per-record way).
COURSE_KEYS = tuple(f.name for f in COURSE_FORMAT if f.type.startswith("string"))


SESSION_KEYS = SESSION_FIELDS[: SESSION_FIELDS.index("extra")]


INSTANT_KEYS = ("start", "last_food")


# An instant in the two layouts, 2026-12-01T09:00:00-07:00 and 2026-12-01T16:00:00Z, each
# field in its range (the day within its month is left to the parser), and the local year
# from 1901 to 2199: within the loader's range and the zone tables'.
_INSTANT = (
    r"(?:190[1-9]|19[1-9][0-9]|2[01][0-9]{2})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]|Z)"
)


# Strict JSON of the shape of a course: known keys with string values, "start" and
# "last_food" instants of `_INSTANT`, and "sessions" one array of flat objects (the
# sessions). Strings hold no escape, quote or control character (C0, DEL or C1: the
# findings file escapes those, as the per-record path writes them), so each is its own
# text. Lines outside this shape take the per-record path. The instants are checked
# here, where the pattern runs over the line anyway, at no cost a session.
_S = r'"[^"\\\x00-\x1f\x7f-\x9f]*"'


# An id: text that is not all whitespace (the loader refuses a blank id).
_ID = (
    r'"[^"\\\x00-\x1f\x7f-\x9f]*[^"\\\x00-\x1f\x7f-\x9f'
    + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE if c > "\x1f")
    + r'][^"\\\x00-\x1f\x7f-\x9f]*"'
)


def _keys(names: Iterable[str]) -> str:
    return '"(?:' + "|".join(re.escape(name) for name in names) + ')" ?: ?'


_SESSION_MEMBER = (
    "(?:" + _keys(k for k in SESSION_KEYS if k not in (*INSTANT_KEYS, "id")) + _S
    + "|" + _keys(["id"]) + _ID
    + "|" + _keys(INSTANT_KEYS) + '"' + _INSTANT + '")'
)  # fmt: skip


_O = r"\{ ?(?:" + _SESSION_MEMBER + r"(?: ?, ?" + _SESSION_MEMBER + r")*)? ?\}"


_A = r'"sessions" ?: ?\[ ?(?:' + _O + r"(?: ?, ?" + _O + r")*)? ?\]"


_MEMBER = (
    "(?:" + _keys(k for k in COURSE_KEYS if k != "id") + _S
    + "|" + _keys(["id"]) + _ID + "|" + _A + ")"
)  # fmt: skip


LINE = r"^\{ ?" + _MEMBER + r"(?: ?, ?" + _MEMBER + r")* ?\}$"


def schema() -> Any:
    import polars as pl

    session = pl.Struct(dict.fromkeys(SESSION_KEYS, pl.String))
    return pl.Struct({**dict.fromkeys(COURSE_KEYS, pl.String), "sessions": pl.List(session)})


def utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_frame(frame: Any) -> Any | None:
    """The lines with their courses decoded (``c``); lines Polars cannot decode left out."""
    import polars as pl

    try:
        return frame.with_columns(pl.col("line").str.json_decode(schema()).alias("c"))
    except pl.exceptions.PolarsError:
        if frame.height <= 1:
            return None
        half = frame.height // 2
        parts = [decode_frame(frame.slice(0, half)), decode_frame(frame.slice(half))]
        kept = [p for p in parts if p is not None]
        return pl.concat(kept) if kept else None


def read_courses(lines: Any) -> Any:
    """One row per line of the course's shape: ``row, course_id, n, tz, sessions``, and quotes.

    Lazy: ``lines`` is a LazyFrame of ``row, line``, or of ``row, line, c`` already decoded,
    with ``at`` (each line's offset in the chunk's bytes) when its lines are counted there.
    Quotes: ``strings``, those the course's decoded strings account for (two per string,
    keys included; its sessions' are counted in `session_rows`), and ``course_quotes``,
    the line's own less those, or with ``at``, the line's ``at`` and ``size`` in bytes
    instead, for `quotes_between` to count all the lines' quotes at once. Any key the
    decoder dropped (a key given twice) leaves quotes over.
    """
    import polars as pl

    if "c" not in lines.collect_schema():
        lines = lines.with_columns(pl.col("line").str.json_decode(schema()).alias("c"))
    c = pl.col("c")
    strings = (
        pl.sum_horizontal([c.struct.field(k).is_not_null().cast(pl.Int64) * 4 for k in COURSE_KEYS])
        + c.struct.field("sessions").is_not_null().cast(pl.Int64) * 2
    )
    # (A blank id does not pass LINE.) The loader refuses more than MAX_SESSIONS sessions.
    count = c.struct.field("sessions").list.len()
    clean = (
        c.is_not_null()
        & c.struct.field("timezone").is_not_null()
        & (count > 0)
        & (count <= MAX_SESSIONS)
    )
    if "at" in lines.collect_schema():
        quotes = {"at": pl.col("at"), "size": pl.col("line").str.len_bytes().cast(pl.Int64)}
    else:
        quotes = {"course_quotes": pl.col("line").str.count_matches('"', literal=True) - strings}
    return lines.filter(clean).select(
        "row",
        course_id=c.struct.field("id"),
        tz=c.struct.field("timezone"),
        sessions=c.struct.field("sessions"),
        n=c.struct.field("sessions").list.len(),
        strings=strings,
        **quotes,
    )


def session_strings(courses: Any) -> int:
    """The quotes the courses' sessions' decoded strings account for, keys included."""
    sessions = courses["sessions"].explode()
    return 4 * sum(
        int(sessions.len() - sessions.struct.field(k).null_count()) for k in SESSION_KEYS
    )


def quotes_between(data: bytes, courses: Any) -> int:
    """The quotes of the courses' lines: the chunk's, less those of the lines between them.

    ``courses``: ``at`` and ``size`` of each line (`read_courses`), rows ascending.
    """
    import polars as pl

    found = data.count(b'"')
    # The bytes before each course's line that follow the line before it (or the chunk's
    # start), and after the last: the lines left out, a few.
    spans = courses.select(
        start=(pl.col("at") + pl.col("size") + 1).shift(1, fill_value=0), end=pl.col("at")
    ).filter(pl.col("start") != pl.col("end"))
    for start, end in spans.iter_rows():
        found -= data.count(b'"', start, end)
    last = courses["at"][-1] + courses["size"][-1] + 1
    return found - data.count(b'"', last)
