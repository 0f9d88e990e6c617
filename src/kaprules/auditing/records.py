"""Records: what an audit reads, one course (or one unusable line) each.

A `Record` is a course to evaluate, or a line already known to be unusable; a `LineBlock`
holds whole lines of JSON Lines, read in one go for a worker to split into records.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import attrs

from kaprules.course_files import course_from_data
from kaprules.errors import InputError, shown_id
from kaprules.loading import parse_course
from kaprules.model import Course

__all__ = [
    "BLOCK_BYTES",
    "BLOCK_LINES",
    "HELD",
    "MAX_LINE_BYTES",
    "LineBlock",
    "Record",
    "RecordItem",
    "changed",
    "course_of",
    "held",
    "line_item",
    "line_record",
    "loaded",
    "opened",
    "read_span",
    "readable_id",
    "record_bytes",
    "too_long",
]


@attrs.frozen
class Record:
    """One input record: a course to evaluate, or a line already known to be unusable.

    Attributes:
        line: Its 1-based line in its input (for CSV, the line of the course's first row).
        data: The course as JSON text, as plain data (a CSV course), or a `Course`; for a
            record rejected before parsing, None or what is known of it (``{"id": ...}``).
        source: Which input it came from (a file name, ``-`` for standard input).
        rejected: Why the record cannot be a course, when known before parsing.
    """

    line: int
    data: str | bytes | dict[str, Any] | Course | None
    source: str = ""
    rejected: str | None = None

    def course(self) -> Course:
        """The record's course.

        Returns:
            The course, read from the record's data.

        Raises:
            InputError: The data is not a course (the loader's problems), or the record
                was rejected before parsing.
        """
        return course_of(self.data, self.rejected)


def course_of(data: object, rejected: str | None) -> Course:
    """The course of a record's data, or the loader's `InputError` (also for ``rejected``)."""
    if rejected is not None:
        raise InputError(rejected)
    if isinstance(data, Course):
        return data
    if isinstance(data, dict):
        return course_from_data(data)
    if isinstance(data, str | bytes):
        return parse_course(data)
    raise InputError(f"not a course: {type(data).__name__}")


# A record as plain values: (line, data, source, rejected), as Record holds them.
RecordItem = tuple[int, Any, str, str | None]


@attrs.frozen
class LineBlock:
    """Whole lines of a JSON Lines input, read in one go for a worker to split.

    ``lines`` counts them: the line breaks, and one more when ``data`` does not end in one
    (a file's last line without its line break). A block of a regular file may leave its
    bytes where they are: ``span`` then says where (``(path, offset, size)``), ``data`` is
    empty, and the worker that evaluates it reads them (`loaded`).
    """

    source: str
    first_line: int
    data: bytes
    lines: int
    span: tuple[str, int, int] | None = None

    @property
    def size(self) -> int:
        """Its bytes, read or not."""
        return len(self.data) if self.span is None else self.span[2]

    def items(self) -> Iterator[RecordItem]:
        """The block's records, one a line, as plain tuples (`RecordItem`)."""
        lines = self.data.split(b"\n")
        if self.data.endswith(b"\n"):
            lines.pop()
        for number, line in enumerate(lines, start=self.first_line):
            yield line_item(number, line, self.source)


MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest JSON line, or CSV row, an audit reads (16 MiB; a CSV row in characters, with
the line breaks of its quoted cells): a longer one stops the audit (exit 2) naming its
line, so an endless line (``/dev/zero``, a gzip of zeros) cannot fill memory."""


# Bytes of JSON Lines read at a time for the workers: about a thousand courses (fewer,
# larger tasks cost the pool less than a block of 256 KiB, 7% of the wall time).
BLOCK_BYTES = 1 << 20


# Lines in one block at most: a block comes back from its worker as one result per line,
# all at once, and a mebibyte of blank lines would be a million of them.
BLOCK_LINES = 4096


def too_long(source: str, number: int, form: str = "JSON Lines, one course per line") -> str:
    """The message of a line over `MAX_LINE_BYTES`, naming the input and the line."""
    return (
        f"{shown_id(source, 200)} line {number} is longer than {MAX_LINE_BYTES} bytes; "
        f"is it {form}?"
    )


def line_record(number: int, line: str | bytes, source: str) -> Record:
    """The record of a line of JSON Lines (`line_item`), as a `Record`."""
    # Shared with kaprules.dask, whose bags hold str lines.
    return Record(*line_item(number, line, source))


def line_item(number: int, line: str | bytes, source: str) -> RecordItem:
    """The record of a line of JSON Lines: a blank line is a rejected one."""
    text = line.rstrip(b"\r\n") if isinstance(line, bytes) else line.rstrip("\r\n")
    if not text.strip():
        return (number, None, source, "empty line")
    return (number, text, source, None)


def readable_id(data: object) -> str | None:
    """The course ``id`` of a rejected record, when its JSON parsed and the id is a string.

    Parsed again only for a rejected record (the loader's error does not carry it).
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return None
    if isinstance(data, dict):
        course_id = data.get("id")
        return course_id if isinstance(course_id, str) else None
    return None


# What a session of a record read as data (a CSV course's row) counts for in bytes.
SESSION_BYTES = 100


def record_bytes(record: Record) -> int:
    """About how many bytes of input a record is: its text, or its sessions' rows.

    What the engines chunk records by, so that a chunk's results stay bounded however
    long its courses are.
    """
    data = record.data
    if isinstance(data, str | bytes):
        return len(data)
    if isinstance(data, Course):
        return SESSION_BYTES * (len(data.sessions) + len(data.integrations))
    if isinstance(data, dict):
        sessions, meetings = data.get("sessions"), data.get("integrations")
        count = sum(len(x) for x in (sessions, meetings) if isinstance(x, list))
        return SESSION_BYTES * count
    return 0


HELD = "\x00fd:"
"""How a span names a file the main process holds open (`held`): not a path (a path has no
NUL), so no file of that name is opened."""


def held(descriptor: int) -> str:
    """What a span calls the file open as ``descriptor`` in the main process.

    Its forked workers inherit the descriptor, so every process reads the very file the
    audit began with, even if another is renamed to its name meanwhile.
    """
    return f"{HELD}{descriptor}"


@contextlib.contextmanager
def opened(path: str) -> Iterator[int]:
    """A descriptor of ``path``: the one `held` names (left open), or a new one, closed."""
    if path.startswith(HELD):
        yield int(path[len(HELD) :])
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def read_span(source: str, path: str, offset: int, size: int) -> bytes:
    """``size`` bytes of the file ``path`` (the input ``source``) from ``offset``.

    Raises:
        InputError: The file cannot be read, or is shorter than it was.
    """
    try:
        with opened(path) as descriptor:
            data = os.pread(descriptor, size, offset)
    except OSError as exc:
        raise InputError(f"cannot read {shown_id(source, 200)}: {exc.strerror}") from None
    if len(data) != size:
        raise InputError(changed(source))
    return data


def changed(source: str) -> str:
    """The message of an input file that became shorter while it was read."""
    return f"cannot read {shown_id(source, 200)}: it changed while it was read"


def loaded(chunk: list[Any]) -> tuple[list[Any], bytes | None]:
    """A chunk with the bytes of its blocks read (those that left them in their file).

    Returns the chunk, and, when its blocks are one run of one file ending in a line break,
    their lines joined, read in one go (the blocks then stay empty: one copy, not two).
    """
    spans = [unit.span for unit in chunk if isinstance(unit, LineBlock) and unit.span]
    if not spans:
        return chunk, None
    first = spans[0]
    end = first[1]
    for path, offset, size in spans:
        if path != first[0] or offset != end:
            break
        end += size
    else:
        if len(spans) == sum(isinstance(unit, LineBlock) for unit in chunk):
            source = next(u.source for u in chunk if isinstance(u, LineBlock))
            joined = read_span(source, first[0], first[1], end - first[1])
            if joined.endswith(b"\n"):
                return chunk, joined
    found = [
        attrs.evolve(unit, data=read_span(unit.source, *unit.span), span=None)
        if isinstance(unit, LineBlock) and unit.span
        else unit
        for unit in chunk
    ]
    return found, None
