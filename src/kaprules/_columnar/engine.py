"""The columnar engine (`COLUMNAR`): a chunk of lines into a batch of results.

Chunks are gathered from the reader's blocks (`Size` learns how large they may be);
courses read with certainty are evaluated as columns, every other record the per-record
way, and a chunk comes back as a `ResultBatch` of results or of findings text.
"""

from __future__ import annotations

import bisect
import os
import sys
from collections import deque
from collections.abc import Iterator
from typing import Any

import attrs

from kaprules import _fast
from kaprules._columnar.findings import assembled, evaluated, read_tables, vector
from kaprules._columnar.forms import supports
from kaprules._moments import AsOf
from kaprules.auditing.by_record import result_fields
from kaprules.auditing.pipeline import Job, Text, Unit, in_worker
from kaprules.auditing.records import (
    LineBlock,
    Record,
    RecordItem,
    line_item,
    record_bytes,
)
from kaprules.auditing.results import (
    AuditSummary,
    RecordData,
    ResultBatch,
    ResultFields,
    result_of,
    text_batch,
    wanted_in_samples,
)
from kaprules.findings_files import FindingsForm
from kaprules.findings_files import rows as findings_rows
from kaprules.protocol import Protocol

__all__ = ["CHUNK_BYTES", "COLUMNAR", "Columnar", "Size", "work_on"]


# Bytes of JSON Lines in one frame: large enough that Polars' per-call costs vanish,
# small enough that a few chunks in flight keep memory far under the 500 MB bound, and
# that the workers finish together (16 MiB left one idle at the end: 3 to 5% slower).
CHUNK_BYTES = 8 << 20


_FINDINGS = 40_000


# Lines in one chunk at most: each comes back as a result, and 8 MiB of blank lines
# would otherwise be 8 million of them at once.
_CHUNK_LINES = 1 << 15


# Records (CSV courses, read per record) in one chunk at most.
_RECORDS = 500


# What a record (a CSV course, read per record) counts for in a chunk's bytes.
_RECORD_BYTES = 1024


class Size:
    """How many bytes the next chunk takes: findings, not only bytes, cost memory.

    A chunk's findings come back as dicts (about a kilobyte each) or as rows of text:
    chunks start at one block and grow to CHUNK_BYTES (twice that after 16 of them)
    while their findings stay under _FINDINGS; input dense with findings keeps them small,
    so memory stays bounded whatever the input.
    """

    def __init__(self) -> None:
        self.bytes = 1
        self.seen = 0
        self.sizes: deque[int] = deque()  # the sizes of the chunks not learnt from yet

    def chunks(self, units: Iterator[Unit]) -> Iterator[list[Any]]:
        """Blocks gathered up to ``bytes`` and `_CHUNK_LINES` lines.

        A record (a CSV course) travels with the chunk it falls in, in order, and
        `_RECORDS` of them make a chunk: a record is evaluated course by course, and the
        main process reads it slowly, so large chunks of them would only keep the workers
        waiting.
        """
        chunk: list[Any] = []
        size = lines = records = 0
        for unit in units:
            chunk.append(unit)
            if isinstance(unit, LineBlock):
                size += unit.size
                lines += unit.lines
            else:
                size += _record_size(unit)
                lines += 1
                records += 1
            if size >= self.bytes or lines >= _CHUNK_LINES or records >= _RECORDS:
                self.sizes.append(size)
                yield chunk
                chunk, size, lines, records = [], 0, 0, 0
        if chunk:
            self.sizes.append(size)
            yield chunk

    def learn(self, batch: ResultBatch) -> None:
        """Learn from the results of the earliest chunk not learnt from yet."""
        size = self.sizes.popleft()
        if batch.summary is not None:  # text: the findings' rows, not their dicts
            found = sum(tally[1] for tally in batch.summary.rules.values())
        else:
            found = sum(len(result_of(fields).findings) for _, fields, _ in batch.others)
        self.seen += size
        # A long input takes chunks twice as large: each chunk costs Polars some 25 ms of
        # its own, and a chunk left to one worker at the end matters less.
        cap = CHUNK_BYTES * (2 if self.seen >= 16 * CHUNK_BYTES else 1)
        if found <= _FINDINGS // 4:
            self.bytes = min(max(self.bytes, size) * 4, cap)
        elif found <= _FINDINGS // 2:
            self.bytes = min(max(self.bytes, size) * 2, cap)
        else:
            self.bytes = max(1, size * _FINDINGS // (2 * found))


def _record_size(record: Record) -> int:
    # A kilobyte at least, else what its sessions come to: a chunk of 500 long CSV courses
    # would otherwise hold the results of millions of sessions.
    return max(_RECORD_BYTES, record_bytes(record))


def work_on(
    chunk: list[Any],
    protocol: Protocol,
    as_of: AsOf,
    sample: int,
    text: Text = None,
    data: bytes | None = None,
) -> ResultBatch:
    """A chunk's results: compliant courses as columns, every other result as its fields.

    ``sample``: at most this many records come with their data, for a report to draw.
    ``text``: ``(form, inputs)`` for the findings file's rows and the counts instead (see
    `ResultBatch`). ``data``: the blocks' lines joined, each ending in a line break, when
    already at hand (the blocks are then empty).
    """
    if data is None:
        data = b"".join(
            unit.data if unit.data.endswith(b"\n") else unit.data + b"\n"
            for unit in chunk
            if isinstance(unit, LineBlock)
        )
    lines = Rows(data)
    # Only a line with an object can be a course: blank or stray lines need no Polars.
    certain = b"{" in data and supports(protocol)
    if text is not None and _fast.ENABLED:
        read = read_tables(data, protocol, as_of) if certain else None
        return written(chunk, lines, read, protocol, as_of, sample, text)
    found, (rows, ids, counts) = evaluated(data, protocol, as_of) if certain else ({}, ([], [], []))
    others: list[tuple[int, ResultFields, RecordData | None]] = []
    drawn = 0
    for position, row, unit, number, line in _rest(chunk, rows, lines):
        done = found.get(row)
        if done is not None:
            fields: ResultFields = (number, unit.source, done[0], done[1], done[2], None)
        else:
            fields = result_fields(_item(unit, number, line), protocol, as_of)
        record = None
        if drawn < sample and wanted_in_samples(fields):
            record, drawn = _item(unit, number, line)[1], drawn + 1
        others.append((position, fields, record))
    if text is None:
        return ResultBatch(others, rows, ids, counts, _blocks(chunk))
    return text_batch(others, len(rows), text)


def written(
    chunk: list[Any],
    lines: Rows,
    read: tuple[Any, Any] | None,
    protocol: Protocol,
    as_of: AsOf,
    sample: int,
    text: tuple[FindingsForm | None, bool],
) -> ResultBatch:
    """A chunk as the findings file's rows and its counts (a `ResultBatch` of text).

    The courses read with certainty are counted, and their rows written, as columns;
    every other record goes through the per-record code, as in `work_on`.
    """
    form, inputs = text
    blocks = _blocks(chunk)
    summary = AuditSummary("", "", None, ())
    pieces: tuple[list[int], list[str]] = ([], [])
    candidates: list[tuple[int, int]] = []  # (position, row) of courses a report may draw
    taken: list[int] = []
    table = heads = None
    if read is not None:
        heads, table = read
        found = vector(heads, table, protocol, form, inputs, blocks, sample)
        taken = found.taken
        summary.add_compliant(found.compliant)
        summary.lines_read += found.with_errors
        summary.courses += found.with_errors
        summary.with_errors += found.with_errors
        summary.rules = found.rules
        pieces = found.rows
        candidates = found.drawable
    others: list[tuple[int, ResultFields, RecordData | None]] = []
    record_pieces: list[tuple[int, str]] = []
    for position, _, unit, number, line in _rest(chunk, taken, lines):
        item = _item(unit, number, line)
        fields = result_fields(item, protocol, as_of)
        result = result_of(fields)
        summary.add(result)
        if form is not None and (result.findings or result.rejected is not None):
            record_pieces.append((position, findings_rows([result], form, inputs=inputs)))
        if sample and wanted_in_samples(fields):
            others.append((position, fields, item[1]))
    if sample and candidates and table is not None and heads is not None:
        others = _drawn(chunk, lines, others, candidates, sample, table, heads, protocol)
    others = sorted(others, key=lambda entry: entry[0])[:sample]
    rows = _interleaved(pieces, record_pieces) if form is not None else ""
    return ResultBatch(others, [], [], [], [], summary, rows)


def _interleaved(rows: tuple[list[int], list[str]], records: list[tuple[int, str]]) -> str:
    """The rows (positions ascending, and their texts) with the records' rows among them.

    ``records``: ``(position, rows)`` ascending, a few a chunk; the columns' rows, the
    many, are joined in runs between them.
    """
    positions, texts = rows
    parts: list[str] = []
    at = 0
    for position, text in records:
        cut = bisect.bisect_left(positions, position, lo=at)
        parts.extend((*texts[at:cut], text))
        at = cut
    parts.extend(texts[at:])
    return "".join(parts)


def _drawn(
    chunk: list[Any],
    lines: Rows,
    others: list[tuple[int, ResultFields, RecordData | None]],
    candidates: list[tuple[int, int]],
    sample: int,
    table: Any,
    heads: Any,
    protocol: Protocol,
) -> list[tuple[int, ResultFields, RecordData | None]]:
    """The first ``sample`` courses a report may draw: per-record ones, and those read here.

    ``candidates``: ``(position, row)`` of the courses read here with an error finding,
    ascending; their results are made (findings as dicts) only when drawn.
    """
    import polars as pl

    first = sorted([*((p, None) for p, _, _ in others), *candidates[:sample]])[:sample]
    rows = [row for _, row in first if row is not None]
    if not rows:
        return others
    found = assembled(table.filter(pl.col("row").is_in(rows)), protocol)
    known = heads.filter(pl.col("row").is_in(rows))
    facts = {row: (course_id, n) for row, course_id, n in known.iter_rows()}
    positions = {row: position for position, row in first if row is not None}
    kept = list(others)
    for row in rows:
        unit, number = _line_at(chunk, row)
        line = lines[row]
        findings = found[row]
        assert findings is not None  # drawable: checked by vector
        course_id, n = facts[row]
        fields: ResultFields = (number, unit.source, course_id, n, findings, None)
        kept.append((positions[row], fields, line_item(number, line, unit.source)[1]))
    return kept


def _line_at(chunk: list[Any], row: int) -> tuple[LineBlock, int]:
    """The block and line number of a row of the chunk's blocks."""
    start = 0
    for unit in chunk:
        if isinstance(unit, LineBlock):
            if row < start + unit.lines:
                return unit, unit.first_line + row - start
            start += unit.lines
    raise AssertionError(f"row {row} is beyond the chunk")


def _blocks(chunk: list[Any]) -> list[tuple[int, int, str, int]]:
    """``(first row, its position, source, its line)`` of each block (`ResultBatch`)."""
    found: list[tuple[int, int, str, int]] = []
    position = row = 0
    for unit in chunk:
        if isinstance(unit, LineBlock):
            found.append((row, position, unit.source, unit.first_line))
            row += unit.lines
            position += unit.lines
        else:
            position += 1
    return found


def _item(unit: LineBlock | Record, number: int, line: bytes | None) -> RecordItem:
    if isinstance(unit, LineBlock):
        assert line is not None
        return line_item(number, line, unit.source)
    return (unit.line, unit.data, unit.source, unit.rejected)


def _rest(
    chunk: list[Any], taken: list[int], lines: Rows
) -> Iterator[tuple[int, int, LineBlock | Record, int, bytes | None]]:
    """``(position, row, unit, line number, line)`` of each record whose row is not taken.

    ``taken``: rows ascending. A CSV record comes as itself (row -1, line None); a line
    with its block.
    """
    position = row = at = 0
    for unit in chunk:
        if not isinstance(unit, LineBlock):
            yield position, -1, unit, unit.line, None
            position += 1
            continue
        end = bisect.bisect_left(taken, row + unit.lines, lo=at)
        for r in _gaps(taken, at, end, row, row + unit.lines):
            yield position + r - row, r, unit, unit.first_line + r - row, lines[r]
        position += unit.lines
        row += unit.lines
        at = end


def _gaps(taken: list[int], at: int, end: int, low: int, high: int) -> Iterator[int]:
    """The rows from ``low`` to ``high`` not in ``taken[at:end]`` (ascending, within them)."""
    for t in taken[at:end]:
        yield from range(low, t)
        low = t + 1
    yield from range(low, high)


class Rows:
    """A chunk's lines by row (its blocks' lines, in order), found when wanted.

    Rows are asked for in ascending order, and few of them (the records not read as
    columns): each is found from the last, without splitting the chunk into lines.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._row = 0  # the row that starts at _at
        self._at = 0

    def __getitem__(self, row: int) -> bytes:
        data = self._data
        if row < self._row:
            self._row, self._at = 0, 0
        at = self._at
        find = data.find
        for _ in range(row - self._row):
            at = find(b"\n", at) + 1
            if not at:
                raise IndexError(f"row {row} is beyond the chunk")
        end = find(b"\n", at)
        if end < 0:
            end = len(data)
        self._row, self._at = row, at
        return data[at:end]


@attrs.frozen
class Columnar:
    """The columnar engine (`kaprules.auditing.pipeline.Evaluator`)."""

    in_flight: int = 2

    def supports(self, protocol: object) -> bool:
        """Whether every rule of ``protocol`` has a vectorised form (`forms.supports`)."""
        return supports(protocol)

    def chunker(self) -> Size:
        """Chunks that grow while their findings stay few (`Size`)."""
        return Size()

    def forks(self) -> bool:
        """Whether Polars is not loaded here: its own threads cannot be forked safely."""
        return "polars" not in sys.modules

    def work(self, chunk: list[Any], joined: bytes | None, *, job: Job, text: Text) -> ResultBatch:
        """A chunk's results: compliant courses as columns, the rest as their fields."""
        if in_worker():
            # One Polars thread a worker: the workers already fill the cores (--jobs is
            # the audit's one knob), and Polars' threads would only contend with them,
            # whatever the caller's environment asked of its own Polars.
            os.environ["POLARS_MAX_THREADS"] = "1"
        assert isinstance(job.protocol, Protocol)  # several versions never run here
        return work_on(chunk, job.protocol, job.as_of, job.sample, text, joined)


COLUMNAR = Columnar()
"""The columnar engine."""
