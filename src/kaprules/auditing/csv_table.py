"""The CSV session table: one row per session, read into one record per course.

Its reader names a problem by line and column, never by a cell's content (cells hold
readings and doses).
"""

from __future__ import annotations

import array
import contextlib
import csv
import io
import itertools
import re
import threading
from collections.abc import Iterable, Iterator
from typing import IO, Any, NamedTuple

from kaprules._time import MAX_YEAR, MIN_YEAR
from kaprules.auditing.records import MAX_LINE_BYTES, Record, too_long
from kaprules.course_files import DATE_PATTERN, DATETIME_PATTERN
from kaprules.errors import InputError, Problem, echo, shown_id
from kaprules.model import Kind

__all__ = [
    "CSV_COLUMNS",
    "INTEGRATION_KIND",
    "MAX_CELL_CHARS",
    "REQUIRED_COLUMNS",
    "CsvCourse",
    "Seen",
    "csv_courses",
    "csv_records",
]


INTEGRATION_KIND = "integration"
"""The ``kind`` of a CSV row that is an integration meeting, not a session: its
``session_id`` is the meeting's id, ``start`` its start, ``therapist`` who held it, and its
``last_food``, ``escort`` and session-day cells (``last_liquid`` to ``vitals``) are
empty."""


CSV_COLUMNS = (
    "course_id",
    "timezone",
    "session_id",
    "kind",
    "start",
    "last_food",
    "escort",
    "therapist",
    "last_liquid",
    "ready_to_leave",
    "dose_mg",
    "monitoring_form",
    "vitals",
    "enrolled",
)
"""The columns of the CSV session table, one row per session (or integration meeting, of
kind `INTEGRATION_KIND`).

The first seven are required; ``therapist`` and the rest are optional. An empty
``escort`` or ``therapist`` cell is a blank one (as ``""`` in JSON Lines); in the columns
after ``therapist`` an empty (or blank) cell is a value not recorded, and any other cell is
read exactly as written, without spaces around it. ``last_liquid``, ``ready_to_leave`` and
``monitoring_form`` are date-times written as ``start`` is; ``dose_mg`` is a number of
milligrams written with digits and an optional decimal point (``37.5``); ``vitals`` holds
the session's blood-pressure readings in one cell, each ``AT SYSTOLIC/DIASTOLIC`` (one
space, whole numbers without a leading zero), separated by ``"; "``
(``2026-12-01T08:40:00-07:00 128/82; 2026-12-01T09:45:00-07:00 130/80``). ``enrolled``
is the course's REMS enrollment date (``YYYY-MM-DD``): every row of a course that gives
one must give the same, and the others leave it empty. A cell that cannot be read, one
the loader refuses (a date that does not exist) and one longer than `MAX_CELL_CHARS` make
the course a rejected record naming the line and column, never the cell's content."""


REQUIRED_COLUMNS = CSV_COLUMNS[: CSV_COLUMNS.index("therapist")]
"""The columns a session table must have: ``therapist`` and the session-day columns after
it may be left out."""


# The session-day columns: cells of a session row, empty in an integration meeting's.
_SESSION_DAY_COLUMNS = ("last_liquid", "ready_to_leave", "dose_mg", "monitoring_form", "vitals")


MAX_CELL_CHARS = 128 * 1024
"""The longest cell of a CSV session table, in characters (the csv module's default field
limit): a longer cell makes its course a rejected record naming the line and the column; the
other courses are read as usual."""


class _CsvLines(Iterator[str]):
    """The lines of a CSV text for `csv.reader`, each row at most `MAX_LINE_BYTES` long.

    A row is one line, or several when a quoted cell holds line breaks: bounded as a whole,
    a file without line breaks (a gzip of zeros) stops at the limit instead of filling
    memory. The lines of the row being read are kept until it is done, so that a row with
    a cell over the csv module's field limit can be read again (`reread`).
    """

    def __init__(self, text: IO[str], source: str) -> None:
        self._text = text
        self._source = source
        self.number = 0  # lines read
        self._row = 0
        self._held: list[str] = []

    def __next__(self) -> str:
        line = self._text.readline(MAX_LINE_BYTES + 1)
        if not line:
            raise StopIteration
        self.number += 1
        self._row += len(line)
        if self._row > MAX_LINE_BYTES:
            raise InputError(too_long(self._source, self.number, "a CSV table"))
        self._held.append(line)
        return line

    def row_done(self) -> None:
        self._row = 0
        self._held.clear()

    def reread(self) -> list[str]:
        """The row that `csv.reader` gave up on at its field limit, read whole.

        csv drops a row whose cell passes ``csv.field_size_limit()`` part way through (at
        the line where the cell passed it; a quoted cell may go on over more lines). Read
        again from its first line, with the limit raised to the row's own bound, it ends
        where csv would have ended it, so the next row is read from its own first line:
        the row's course is rejected (`MAX_CELL_CHARS`), not the file.
        """
        held, self._held = self._held, []
        with _field_limit(MAX_LINE_BYTES + 1):
            return next(csv.reader(itertools.chain(held, self)))


# csv's field limit is one setting of the process; it is raised only while a row it refused
# is read again, one such row at a time.
_FIELD_LIMIT_LOCK = threading.Lock()


_FIELD_LIMIT_ERROR = "field larger than field limit"


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    with _FIELD_LIMIT_LOCK:
        before = csv.field_size_limit(limit)
        try:
            yield
        finally:
            csv.field_size_limit(before)


def csv_records(stream: IO[bytes], source: str) -> Iterator[Record]:
    """The records of a CSV session table, one per course (see `CSV_COLUMNS`)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    lines = _CsvLines(text, source)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            return
        lines.row_done()
        columns = [c.strip() for c in header]
        if any(c.lower() == "waivers" for c in columns):
            raise InputError(
                f"{shown_id(source, 200)}: the CSV session table cannot carry waivers (a "
                "waivers column was found); write courses with waivers as JSON Lines"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise InputError(
                f"{shown_id(source, 200)}: the CSV header lacks the column(s) "
                f"{', '.join(missing)}; found {_found(columns)}; the columns are "
                f"{', '.join(CSV_COLUMNS)}"
            )
        unknown = [i for i, c in enumerate(columns) if c not in CSV_COLUMNS]
        if unknown:
            raise InputError(
                f"{shown_id(source, 200)}: the CSV header has {len(unknown)} unknown column(s) (at "
                f"positions {', '.join(str(i + 1) for i in unknown[:20])}"
                f"{', ...' if len(unknown) > 20 else ''}); found {_found(columns)}; the columns "
                f"are {', '.join(CSV_COLUMNS)}"
            )
        index = {c: i for i, c in enumerate(columns)}

        def numbered() -> Iterator[tuple[int, list[str]]]:
            while True:
                start = lines.number + 1
                try:
                    row = next(reader, None)
                except csv.Error as exc:
                    if not str(exc).startswith(_FIELD_LIMIT_ERROR):
                        raise
                    row = lines.reread()
                if row is None:
                    return
                lines.row_done()
                if any(cell.strip() for cell in row):
                    yield start, row

        yield from csv_courses(numbered(), index, source)
    except UnicodeDecodeError:
        raise InputError(f"{shown_id(source, 200)}: the CSV file is not UTF-8 text") from None
    except csv.Error as exc:
        raise InputError(
            f"{shown_id(source, 200)} line {lines.number}: not a readable CSV file: {exc}"
        ) from None
    finally:
        text.detach()


# Header cells named in a message at most; the rest are counted.
_HEADER_SHOWN = 12


def _found(columns: list[str]) -> str:
    """A CSV header as found, for a message: what names a column is shown, the rest not.

    A cell that is a column's name but for case, spaces or hyphens (``COURSE_ID``,
    ``Session ID``) is shown, escaped; any other cell only by its position, since a file
    without a header has a course's data on its first line.
    """
    shown = []
    for number, cell in enumerate(columns[:_HEADER_SHOWN], start=1):
        plain = cell.strip().lower().replace("-", "_").replace(" ", "_")
        if plain in CSV_COLUMNS:
            shown.append(echo(cell, 40))
        else:
            shown.append(f"column {number} (not shown: it may be data)")
    more = len(columns) - _HEADER_SHOWN
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


class Seen:
    """The course ids of a CSV table met so far, each with its first line.

    For the check that a course's rows are together. A million ids in a dict took 120 MB;
    here each is a 64-bit hash and a line in two arrays, open addressing at most half full:
    32 bytes an id. Two ids with the same hash (odds of about n**2 / 2**65 for n ids, with
    Python's keyed string hash) would read as one course met twice.
    """

    def __init__(self) -> None:
        self._keys = array.array("q", _ZERO) * 1024
        self._lines = array.array("q", _ZERO) * 1024
        self._count = 0

    def setdefault(self, course_id: str, line: int) -> int:
        """The first line of ``course_id``, recorded as ``line`` if not met before."""
        key = hash(course_id) or 1  # 0 marks an empty slot
        keys = self._keys
        mask = len(keys) - 1
        slot = key & mask
        while keys[slot]:
            if keys[slot] == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        keys[slot] = key
        self._lines[slot] = line
        self._count += 1
        if 2 * self._count > len(keys):
            self._grow()
        return line

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        size = 2 * len(old_keys)
        self._keys = keys = array.array("q", _ZERO) * size
        self._lines = array.array("q", _ZERO) * size
        mask = size - 1
        for key, line in zip(old_keys, old_lines, strict=True):
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                self._lines[slot] = line


_ZERO = (0,)


def csv_courses(
    rows: Iterable[tuple[int, list[str]]], index: dict[str, int], source: str
) -> Iterator[Record]:
    """One record per course of numbered session rows (shared with `kaprules.dask`)."""
    # One record per course of numbered session rows; shared with kaprules.dask. The rows
    # of a course are contiguous: a course id met again after another course is a rejected
    # record naming both lines.
    seen = Seen()
    current: str | None = None
    group: list[tuple[int, list[str]]] = []
    column = index["course_id"]
    for line, row in rows:
        course_id = row[column] if len(row) > column else ""
        if course_id != current and group:
            yield _csv_course(group, index, source, seen)
            group = []
        current = course_id
        group.append((line, row))
    if group:
        yield _csv_course(group, index, source, seen)


_CSV_DOSE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12}")


# One reading of a vitals cell, exactly: the time, one space, whole numbers without a
# leading zero around a '/'. Readings are separated by "; " (`_CSV_SEPARATOR`).
_CSV_READING = re.compile(r"([^ ]+) (0|[1-9][0-9]{0,5})/(0|[1-9][0-9]{0,5})")


_CSV_SEPARATOR = "; "


_CSV_INSTANT = re.compile(DATETIME_PATTERN)


_CSV_DATE = re.compile(DATE_PATTERN)


def _given(row: list[str], index: dict[str, int], name: str) -> str | None:
    # A session-day cell's text as written; None for a cell that is empty or blank (or a
    # column the table lacks). A given cell is not stripped: ' 56' is not a dose.
    i = index.get(name)
    if i is None:
        return None
    value = row[i]
    return value if value.strip() else None


def _csv_session_day(
    line: int, row: list[str], index: dict[str, int]
) -> tuple[list[tuple[str, Any]], str | None]:
    """A session row's session-day cells as the course format's values, or why not.

    Returns the ``(name, value)`` pairs given, or no pairs and the reason (naming the line
    and column, never the cell: it holds readings and doses).
    """
    values: list[tuple[str, Any]] = []
    for name in ("last_liquid", "ready_to_leave", "monitoring_form"):
        value = _given(row, index, name)
        if value is None:
            continue
        if not _CSV_INSTANT.fullmatch(value):
            return [], (
                f"line {line}: the {name} cell is not an ISO 8601 date-time with an offset, "
                "such as 2026-12-01T09:00:00-07:00"
            )
        values.append((name, value))
    text = _given(row, index, "dose_mg")
    if text is not None:
        if not _CSV_DOSE.fullmatch(text):
            return [], (
                f"line {line}: the dose_mg cell is not a number of milligrams written with "
                "digits and an optional decimal point, such as 37.5"
            )
        values.append(("dose_mg", float(text) if "." in text else int(text)))
    vitals = _given(row, index, "vitals")
    if vitals is not None:
        readings = []
        for number, part in enumerate(vitals.split(_CSV_SEPARATOR), start=1):
            found = _CSV_READING.fullmatch(part)
            if found is None or not _CSV_INSTANT.fullmatch(found.group(1)):
                return [], (
                    f"line {line}: reading {number} of the vitals cell is not "
                    "'AT SYSTOLIC/DIASTOLIC' (such as 2026-12-01T08:40:00-07:00 128/82); "
                    "readings are separated by '; '"
                )
            at, systolic, diastolic = found.groups()
            readings.append({"at": at, "systolic": int(systolic), "diastolic": int(diastolic)})
        values.append(("vitals", readings))
    return values, None


def _csv_course(
    rows: list[tuple[int, list[str]]], index: dict[str, int], source: str, seen: Seen
) -> Record:
    first = rows[0][0]
    width = len(index)
    head = rows[0][1]
    column = index["course_id"]
    course_id = head[column] if len(head) > column and head[column] != "" else None
    # What a rejected record keeps: its course id, when its rows name one.
    known = None if course_id is None else {"id": course_id}
    if course_id is not None:
        # First, so that a course met again is found whatever else is wrong with it.
        started = seen.setdefault(course_id, first)
        if started != first:
            return Record(
                first,
                known,
                source,
                f"the rows of course {echo(course_id)} are not together: it started on line "
                f"{started} and appears again on line {first}",
            )
    for line, row in rows:
        if len(row) != width:
            return Record(first, known, source, f"line {line}: {width} cells expected in each row")
        if max(map(len, row)) > MAX_CELL_CHARS:
            name = next(c for c, i in index.items() if len(row[i]) > MAX_CELL_CHARS)
            return Record(
                first,
                known,
                source,
                f"line {line}: the {name} cell is longer than {MAX_CELL_CHARS} characters, "
                "the limit of a cell",
            )

    def cell(row: list[str], name: str) -> str | None:
        # An empty cell is a missing value; anything else is the value as written.
        i = index.get(name)
        value = row[i] if i is not None else ""
        return value if value != "" else None

    def text(row: list[str], name: str) -> str | None:
        # A name's cell as written, an empty one too: an empty escort or therapist is a
        # blank one, as JSON Lines' "" is, so that either form gives the same finding ("has
        # a blank escort"). None only when the table lacks the (optional) column.
        i = index.get(name)
        return row[i] if i is not None else None

    zones = {cell(row, "timezone") for _, row in rows}
    if len(zones) > 1:
        return Record(first, known, source, "the rows of one course give different timezones")
    enrolled: str | None = None
    enrolled_line = first
    if "enrolled" in index:
        for line, row in rows:
            given = _given(row, index, "enrolled")
            if given is None:
                continue
            if not _CSV_DATE.fullmatch(given):
                return Record(
                    first,
                    known,
                    source,
                    f"line {line}: the enrolled cell is not a date written YYYY-MM-DD, "
                    "such as 2026-11-02",
                )
            if enrolled is not None and given != enrolled:
                return Record(
                    first,
                    known,
                    source,
                    f"line {line}: the rows of one course give different enrolled dates; "
                    "give the course's one date in each row, or leave the cell empty",
                )
            if enrolled is None:
                enrolled, enrolled_line = given, line
    day_columns = [name for name in _SESSION_DAY_COLUMNS if name in index]
    sessions = []
    session_lines = []
    meetings = []
    meeting_lines = []
    for line, row in rows:
        if cell(row, "kind") == INTEGRATION_KIND:
            # An integration meeting: its id, start and therapist; nothing of a session.
            if cell(row, "last_food") is not None or cell(row, "escort") is not None:
                return Record(
                    first,
                    known,
                    source,
                    f"line {line}: a row of kind {INTEGRATION_KIND!r} (an integration meeting) "
                    "takes no last_food or escort",
                )
            if any(_given(row, index, name) is not None for name in day_columns):
                return Record(
                    first,
                    known,
                    source,
                    f"line {line}: a row of kind {INTEGRATION_KIND!r} (an integration meeting) "
                    f"takes no session-day data ({', '.join(_SESSION_DAY_COLUMNS)})",
                )
            meetings.append(
                {
                    name: value
                    for name, value in (
                        ("id", cell(row, "session_id")),
                        ("start", cell(row, "start")),
                        ("therapist", text(row, "therapist")),
                    )
                    if value is not None
                }
            )
            meeting_lines.append(line)
            continue
        session = {
            name: value
            for name, value in (
                ("id", cell(row, "session_id")),
                ("kind", cell(row, "kind")),
                ("start", cell(row, "start")),
                ("last_food", cell(row, "last_food")),
                ("escort", text(row, "escort")),
                ("therapist", text(row, "therapist")),
            )
            if value is not None
        }
        if day_columns:
            day, reason = _csv_session_day(line, row, index)
            if reason is not None:
                return Record(first, known, source, reason)
            session.update(day)
        sessions.append(session)
        session_lines.append(line)
    data: dict[str, Any] = {"timezone": zones.pop(), "sessions": sessions}
    if enrolled is not None:
        data["enrolled"] = enrolled
    if meetings:
        data["integrations"] = meetings
    if course_id is not None:
        data["id"] = course_id
    if data["timezone"] is None:
        del data["timezone"]
    rows_of = _RowLines(first, tuple(session_lines), tuple(meeting_lines), enrolled_line)
    return Record(first, CsvCourse(data, rows_of), source)


class _RowLines(NamedTuple):
    """Where a CSV course's values were read: the line of each row, for its problems."""

    first: int
    sessions: tuple[int, ...]
    meetings: tuple[int, ...]
    enrolled: int


class CsvCourse(dict[str, Any]):
    """A course read from CSV rows, as the course format's data, with each row's line.

    The loader names a problem by its path in that data (``sessions[0].vitals[0].at``), and
    its message may quote the value; a CSV table's reader promises the line and the column,
    never the cell's content: `explain` says the same in those terms. (A plain dict
    subclass: it is pickled to the workers as it is.)
    """

    def __init__(self, data: dict[str, Any], lines: _RowLines) -> None:
        super().__init__(data)
        self.lines = lines

    def explain(self, error: InputError) -> InputError:
        """``error``'s problems, each by its line and column, without the cells' content."""
        return InputError(*(self._problem(p) for p in error.problems))

    def _problem(self, problem: Problem) -> str:
        path, lines = problem.path, self.lines
        head = path[0] if path else None
        if head in ("sessions", "integrations") and len(path) >= 3:
            step = path[1]
            position = step[0] if isinstance(step, tuple) else step
            rows = lines.sessions if head == "sessions" else lines.meetings
            if isinstance(position, int) and 0 <= position < len(rows):
                line, field = rows[position], path[2]
                if field == "vitals" and len(path) == 5 and isinstance(path[3], int):
                    part = str(path[4])
                    what = self._what(part, problem)
                    return (
                        f"line {line}: reading {path[3] + 1} of the vitals cell: its "
                        f"{_READING_PARTS.get(part, part)} {what}"
                    )
                if len(path) == 3 and isinstance(field, str):
                    name = "session_id" if field == "id" else field
                    return f"line {line}: the {name} cell {self._what(field, problem)}"
        if head in ("timezone", "id", "enrolled") and len(path) == 1:
            line = lines.enrolled if head == "enrolled" else lines.first
            name = "course_id" if head == "id" else str(head)
            return f"line {line}: the {name} cell {self._what(name, problem)}"
        # A problem of the course as a whole ("sessions: holds more than ..."): its path
        # holds no cell's content.
        return f"line {lines.first}: {problem}"

    def _what(self, field: str, problem: Problem) -> str:
        if problem.code == "required":
            return problem.what  # says what is wanted, quotes nothing
        if field in _CSV_QUOTED:
            # The loader quotes the value in these messages: its words without it.
            known = _CSV_QUOTED[field]
            return known.get(problem.code) or known["format"]
        what = problem.what
        if what.startswith("duplicate of "):
            what = "is a " + what
        # "duplicate of sessions[1]" names a row by its place in the course's data.
        return _DATA_PLACE.sub(self._place, what)

    def _place(self, found: re.Match[str]) -> str:
        rows = self.lines.sessions if found.group(1) == "sessions" else self.lines.meetings
        position = int(found.group(2))
        return f"the row on line {rows[position]}" if position < len(rows) else found.group(0)


_READING_PARTS = {"at": "time"}


_DATA_PLACE = re.compile(r"\b(sessions|integrations)\[([0-9]+)\]")


_YEARS = f"is outside the supported years {MIN_YEAR}-{MAX_YEAR}; check the year"


_INSTANT_WORDS = {
    "format": "is not an ISO 8601 date-time with an offset, such as 2026-12-01T09:00:00-07:00",
    "value": "is not a real date and time",
    "range": _YEARS,
}


# The loader's words for a problem with a value it quotes, by field and problem code,
# without the value; "format" also stands for any other code.
_CSV_QUOTED: dict[str, dict[str, str]] = {
    **dict.fromkeys(
        ("start", "last_food", "last_liquid", "ready_to_leave", "monitoring_form", "at"),
        _INSTANT_WORDS,
    ),
    "enrolled": {
        "format": "is not a date written YYYY-MM-DD, such as 2026-11-02",
        "value": "is not a real date",
        "range": _YEARS,
    },
    "kind": {
        "format": "is not a kind: use one of "
        + ", ".join(repr(k.value) for k in Kind)
        + f" or {INTEGRATION_KIND!r} (an integration meeting)",
    },
    "timezone": {
        "format": "is not an IANA time zone name, such as America/Denver",
    },
}
